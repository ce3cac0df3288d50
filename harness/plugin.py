"""The bpfvm pytest plugin (entry point 'bpfvm').

On the host it parametrizes VM tests by kernel and runs each in a guest;
inside a guest (BPFVM_GUEST set by the worker) it parametrizes the same
tests for the one kernel it runs on, so node ids match the host's, and
checks the requirement markers against the running kernel.
"""
from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Optional

import pytest

from . import kconfig, requirements
from .items import KERNEL_PARAM, marks_of, target_of
from .target import Target, host_arch

RUN_KEY = pytest.StashKey[object]()
GUEST_ENV = "BPFVM_GUEST"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bpfvm", "running tests inside VMs on real kernels")
    group.addoption("--kernel", default=None,
                    help="kernels to run VM tests on, comma-separated: catalog names "
                         "(5.10, 6.1, 6.12, latest), 'host', or a path to a bzImage/Image "
                         "or kernel build tree (default: ini bpfvm_kernels)")
    group.addoption("--arch", default=host_arch(), help="guest architecture (x86_64, arm64)")
    group.addoption("--accel", default="auto", choices=("auto", "kvm", "tcg"),
                    help="QEMU accelerator; auto probes KVM once and falls back to TCG")
    group.addoption("--bpfvm-timeout", type=float, default=None,
                    help="seconds one test may take in a VM before the VM is killed")
    group.addoption("--bpfvm-cpus", type=int, default=None, help="vCPUs per VM")
    group.addoption("--bpfvm-memory", default=None, help="memory per VM, e.g. 1G")
    group.addoption("--bpfvm-logdir", default=None,
                    help="where VM console logs go (default: under pytest's basetemp)")
    group.addoption("--update-golden", action="store_true", default=False,
                    help="rewrite the verifier golden files (logs, stats) from this run")
    group.addoption("--verifier-report", default=None, metavar="BASE",
                    help="write the verifier matrix to BASE.md and BASE.json")
    group.addoption("--compat-report", default=None, metavar="BASE",
                    help="write the compatibility table (test x kernel) to BASE.md and BASE.json")
    group.addoption("--compat-table", default="changes", choices=("changes", "all", "none"),
                    help="the compatibility table at the end of a run: tests that did not pass "
                         "on every kernel (default), all tests, or none")
    group.addoption("--compat-reasons", action="store_true", default=False,
                    help="list skip and failure reasons under the compatibility table")
    parser.addini("bpfvm_kernels", "default --kernel value", default="6.12")
    parser.addini("bpfvm_suites", "paths whose tests run inside VMs", type="paths",
                  default=[])
    parser.addini("bpfvm_timeout", "seconds one test may take in a VM", default="600")
    parser.addini("bpfvm_boot_timeout", "seconds a VM may take to boot", default="300")
    parser.addini("bpfvm_cpus", "vCPUs per VM", default="2")
    parser.addini("bpfvm_memory", "memory per VM", default="1G")
    parser.addini("bpfvm_bpf_dirs", "directories of BPF C sources that bpf_object('name') "
                  "finds (default: <rootdir>/bpf)", type="paths", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: run this test inside a VM on each selected kernel")
    config.addinivalue_line("markers", "kernel(spec): needs a kernel version, e.g. '>=5.15'")
    config.addinivalue_line("markers", "kconfig(*options): needs kernel options, e.g. 'CONFIG_NETDEVSIM'")
    config.addinivalue_line("markers", "arch(*arches): runs only on these guest arches")
    if os.environ.get(GUEST_ENV) or config.getoption("help", False) or config.getoption("version", 0):
        return
    from .host.compat import CompatReport
    from .host.runner import HostRun
    from .host.verdicts import VerifierReport

    if not hasattr(config, "workerinput"):  # the xdist controller, or a plain run
        config.pluginmanager.register(VerifierReport(config), "bpfvm-verifier")
        config.pluginmanager.register(CompatReport(config), "bpfvm-compat")
    run = HostRun(config)
    run.parse_targets()
    config.stash[RUN_KEY] = run
    atexit.register(run.kill_all)


def _host_run(config: pytest.Config):
    return config.stash.get(RUN_KEY, None)


def guest_target() -> Optional[Target]:
    text = os.environ.get(GUEST_ENV)
    return Target.from_json(text) if text else None


def _targets(config: pytest.Config) -> list[Target]:
    target = guest_target()
    if target is not None:
        return [target]
    run = _host_run(config)
    return list(run.targets.values()) if run else []


def is_vm_test(config: pytest.Config, definition) -> bool:
    if definition.get_closest_marker("vm") is not None:
        return True
    path = Path(definition.path)
    return any(path == p or p in path.parents for p in config.getini("bpfvm_suites"))


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name in requirements.MARKERS:
        for mark in metafunc.definition.iter_markers(name):
            try:
                requirements.validate(name, mark.args)
            except requirements.RequirementError as e:
                raise pytest.Collector.CollectError(f"{metafunc.definition.nodeid}: {e}") from None
    if not is_vm_test(metafunc.config, metafunc.definition):
        return
    targets = _targets(metafunc.config)
    metafunc.parametrize(KERNEL_PARAM, targets, ids=[t.id for t in targets], scope="session")


@pytest.fixture(autouse=True)
def bpfvm_target() -> Optional[Target]:
    """The kernel this test runs on (parametrized for VM tests, else None)."""
    return None


@pytest.fixture
def kernel(bpfvm_target: Optional[Target]) -> Target:
    """The Target (name, arch, release, version, config path) the test runs on."""
    if bpfvm_target is None:
        raise pytest.UsageError("the 'kernel' fixture is for VM tests: mark the test with "
                                "@pytest.mark.vm or put it under an ini bpfvm_suites path")
    return bpfvm_target


@pytest.fixture
def kernel_config(kernel: Target) -> dict[str, str]:
    """The running kernel's config as a dict (CONFIG_X -> 'y'/'m'/value)."""
    path = kernel.config or kconfig.running_config_path()
    if path is None or not Path(path).exists():
        pytest.skip(f"kernel {kernel.describe()}: no kernel config available")
    return dict(kconfig.load(path))


@pytest.fixture
def bpf_object(request: pytest.FixtureRequest):
    """Factory: ``bpf_object("xdp_count")`` compiles bpf/xdp_count.c on the host
    (cached), loads it in the guest and returns a harness.bpf.BpfObject.

    A path to a .c file (relative to the test's directory) and ``cflags``
    build an author's own source; a path to a .o file loads an object built
    elsewhere as it is; other keywords (log_level, autoload,
    offload, dev_bound) go to harness.bpf.load. Every object is closed at
    teardown, detaching what its programs attached.
    """
    from .guest.objects import load_object

    opened = []

    def factory(source: str, cflags: tuple = (), **options):
        obj = load_object(source, cflags, base=request.path.parent, **options)
        opened.append(obj)
        return obj

    yield factory
    for obj in reversed(opened):
        obj.close()


@pytest.fixture
def topology():
    """Factory: ``topology("pair")``, ``topology("router")``, ``topology("fanout", 3)``
    or ``topology(links=[("a", "b"), ("b", "c")])``, each with ``ipv6=``; returns a
    harness.net.Topology of network namespaces, removed at teardown.
    """
    from .guest import topology as shapes

    built = []

    def factory(shape: Optional[str] = None, *args, links=None, ipv6: bool = False):
        if (shape is None) == (links is None):
            raise pytest.UsageError("topology(): give a shape (pair, router, fanout) or links=")
        if shape is not None and shape not in shapes.SHAPES:
            raise pytest.UsageError(f"topology({shape!r}): no such shape; "
                                    f"use one of {', '.join(shapes.SHAPES)} or links=")
        net = shapes.SHAPES[shape](*args, ipv6=ipv6) if shape else shapes.Topology(links, ipv6)
        built.append(net)
        return net

    yield factory
    for net in reversed(built):
        net.close()


NETDEVSIM_MARK = pytest.mark.kconfig("CONFIG_NETDEVSIM", hint="use a *-test kernel")


@pytest.fixture
def netdevsim():
    """Factory: ``netdevsim(ports=1, namespace=None)`` makes a harness.offload.NetdevSim
    (a simulated NIC with BPF offload) and removes it at teardown. Tests using
    it need CONFIG_NETDEVSIM and skip on kernels without it (Debian's).
    """
    from .guest.netdevsim import NetdevSim

    made = []

    def factory(ports: int = 1, namespace=None):
        dev = NetdevSim(ports, namespace=namespace)
        made.append(dev)
        return dev

    yield factory
    for dev in reversed(made):
        dev.remove()


@pytest.fixture
def verifier(request: pytest.FixtureRequest, kernel: Target):
    """A harness.verifier.Checker: expect_reject/expect_accept (recorded for the
    end-of-run matrix), golden_log/golden_stats (files in golden/<kernel id>/
    beside the test, rewritten with --update-golden)."""
    from .verifier import Checker

    return Checker(request.node, kernel.id, request.path.parent / "golden",
                   request.config.getoption("update_golden"), base=request.path.parent)


@pytest.fixture
def host_boot_id() -> str:
    """The boot id of the machine that started pytest (differs inside a guest)."""
    return os.environ.get("BPFVM_HOST_BOOT_ID") or \
        Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "netdevsim" in getattr(item, "fixturenames", ()):
            item.add_marker(NETDEVSIM_MARK)
    run = _host_run(config)
    if run is not None:
        run.decide_requirements(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Requirements the host could not decide are decided on the running kernel."""
    target = target_of(item)
    if target is None or (target.in_vm and guest_target() is None):
        return
    marks = marks_of(item)
    if not marks:
        return
    path = target.config if target.config and Path(target.config).exists() \
        else kconfig.running_config_path()
    config = kconfig.load(path) if path and "kconfig" in marks else None
    try:
        reason = requirements.evaluate(target, marks, config)
    except requirements.Undecided:
        reason = f"kernel {target.describe()}: no kernel config available to check {marks}"
    if reason:
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Tests the host runs itself (``--kernel host``, skips decided on the host) say
    where they ran too; reports of tests run in a VM get that from the runner."""
    report = yield
    run, target = _host_run(item.config), target_of(item)
    if run is not None and target is not None:
        # A new list: the report shares item.user_properties with the other phases.
        report.user_properties = [*report.user_properties, *run.kernel_properties(target)]
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]):
    run = _host_run(item.config)
    target = target_of(item)
    if run is None or target is None or not target.in_vm:
        return None
    from .host.runner import SKIP_ON_HOST

    if item.stash.get(SKIP_ON_HOST, False):
        return None
    run.run_item(item, nextitem)
    return True


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    run = _host_run(session.config)
    if run is None:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        run.kill_all()
    else:
        run.shutdown()


def pytest_unconfigure(config: pytest.Config) -> None:
    run = _host_run(config)
    if run is not None:
        run.kill_all()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: fetch and probe once, and tell the workers the verdict."""
    run = _host_run(node.config)
    if run is not None and any(t.in_vm for t in run.targets.values()):
        run.prepare()
        node.workerinput["bpfvm_accel"] = run.accel


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    run = _host_run(config)
    if run is None or config.getoption("dist") != "load":
        return None
    from .host.schedule import KernelScheduling

    return KernelScheduling(config, log, kernel_ids=list(run.targets))
