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
from typing import TYPE_CHECKING, Optional

import pytest

if TYPE_CHECKING:
    from .host.run.runner import HostRun
    from .target import Target

# Installed, this module is imported by every pytest run in the environment:
# it imports nothing else of bpfvm, and until a VM test is collected its
# hooks return at once (tests/test_wheel.py checks both).
RUN_KEY = pytest.StashKey["HostRun"]()
EARLY_RUN = pytest.StashKey["HostRun"]()  # made before collection, to boot early
GUEST_ENV = "BPFVM_GUEST"
KERNEL_PARAM = "bpfvm_target"  # the parameter VM tests are parametrized over


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bpfvm", "running tests inside VMs on real kernels")
    group.addoption("--kernel", default=None,
                    help="kernels to run VM tests on, comma-separated: catalog names "
                         "(5.10, 6.1, 6.12, latest), 'host', or a path to a bzImage/Image "
                         "or kernel build tree (default: ini bpfvm_kernels)")
    group.addoption("--arch", default=None,
                    help="guest architectures, comma-separated: x86_64, arm64 "
                         "(default: this machine's)")
    group.addoption("--accel", default="auto", choices=("auto", "kvm", "tcg"),
                    help="QEMU accelerator; auto probes KVM once and falls back to TCG")
    group.addoption("--bpfvm-timeout", type=float, default=None,
                    help="seconds one test may take in a VM before the VM is killed")
    group.addoption("--bpfvm-cpus", type=int, default=None, help="vCPUs per VM")
    group.addoption("--bpfvm-memory", default=None, help="memory per VM, e.g. 1G")
    group.addoption("--bpfvm-max-vms", type=int, default=None, metavar="N",
                    help="VMs alive at once per pytest process; the least recently used "
                         "one stops when another kernel is needed (0: no bound)")
    group.addoption("--bpfvm-reuse", action="store_true", default=None,
                    help="keep each healthy VM booted after the run, and use a kept one "
                         "instead of booting (ini bpfvm_reuse)")
    group.addoption("--bpfvm-logdir", default=None,
                    help="where VM console logs go (default: under pytest's basetemp)")
    group.addoption("--update-golden", action="store_const", const="yes", default=False,
                    dest="update_golden",
                    help="rewrite the verifier golden files (logs, stats) from this run's "
                         "passing tests; refused where CI is set")
    group.addoption("--update-golden=force", action="store_const", const="force",
                    default=False, dest="update_golden",
                    help="the same, also where CI is set")
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
    parser.addini("bpfvm_console_allow", "known-harmless kernel splats, one per line: "
                  "'REGEX ; REASON ; YYYY-MM-DD' (allowed until that date)", type="linelist",
                  default=[])
    parser.addini("bpfvm_max_vms", "VMs alive at once per pytest process (0: no bound; "
                  "default: the CPUs it may use, shared among xdist workers)", default="")
    parser.addini("bpfvm_reuse", "keep VMs booted between runs, as --bpfvm-reuse does",
                  type="bool", default=False)
    parser.addini("bpfvm_reuse_idle", "minutes a kept VM waits for the next run",
                  default="10")
    parser.addini("bpfvm_expected_skips", "a TOML file (relative to the ini file) of the "
                  "tests expected to skip on each kernel, and why; on the kernels it lists, "
                  "any other skip fails, and so does a listed test that runs", default="")
    parser.addini("bpfvm_selftests", "files or directories of annotated BPF C programs "
                  "(the kernel selftests' progs/*.c) collected as tests", type="paths",
                  default=[])
    parser.addini("bpfvm_selftests_clang", "the clang that builds annotated C files "
                  "(default: the newest clang-N on PATH)", default="")
    parser.addini("bpfvm_bpf_dirs", "directories of BPF C sources that bpf_object('name') "
                  "finds, searched before <rootdir>/bpf", type="paths", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: run this test inside a VM on each selected kernel")
    config.addinivalue_line("markers", "kernel(spec): needs a kernel version, e.g. '>=5.15'")
    config.addinivalue_line("markers", "kconfig(*options): needs kernel options, e.g. 'CONFIG_NETDEVSIM'")
    config.addinivalue_line("markers", "arch(*arches): runs only on these guest arches")
    if config.getoption("update_golden") == "yes" and os.environ.get("CI") \
            and not _in_guest() and not hasattr(config, "workerinput"):
        raise pytest.UsageError("--update-golden refused: CI is set, and golden files change "
                                "only on purpose, reviewed; pass --update-golden=force to "
                                "write them anyway")


def _in_guest() -> bool:
    return bool(os.environ.get(GUEST_ENV))


def _host_run(config: pytest.Config) -> Optional["HostRun"]:
    return config.stash.get(RUN_KEY, None)


def _start_host_run(config: pytest.Config, run: Optional["HostRun"] = None) -> "HostRun":
    """The run's HostRun, made (targets parsed from the catalog) on first need.

    Only a run that has VM tests gets here: that is where the catalog is
    read and the end-of-run reports are registered.
    """
    existing = _host_run(config)
    if existing is not None:
        return existing
    if run is None:
        run = config.stash.get(EARLY_RUN, None)
    if run is None:
        from .host.run.runner import HostRun

        run = HostRun(config)
        run.parse_targets()
    config.stash[RUN_KEY] = run
    atexit.register(run.kill_all)
    from .host import interrupt

    interrupt.sigterm_interrupts()  # before any fetch, probe or boot
    if run.expected_skips is not None:  # in every process: where a report is made, it is held
        from .host.report.expected_skips import SkipGuard

        config.pluginmanager.register(SkipGuard(run.expected_skips), "bpfvm-skip-guard")
    if not hasattr(config, "workerinput"):  # the xdist controller, or a plain run
        from .host.report.compat import CompatReport
        from .host.report.selftests import SelftestsSummary
        from .host.report.verdicts import VerifierReport

        config.pluginmanager.register(VerifierReport(config), "bpfvm-verifier")
        config.pluginmanager.register(SelftestsSummary(config), "bpfvm-selftests")
        config.pluginmanager.register(CompatReport(config), "bpfvm-compat")
    return run


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """In a run that asks for bpfvm (--kernel, or ini bpfvm_suites), start booting
    the first kernel while the host collects (HostRun.launch_early says when).
    Not under xdist: which kernel a worker gets first is decided later."""
    config = session.config
    if (_in_guest() or hasattr(config, "workerinput") or config.getoption("collectonly")
            or getattr(config.option, "dist", "no") != "no" or not _configures_bpfvm(config)):
        return
    from .host.run.runner import HostRun

    try:
        run = HostRun(config)
        run.parse_targets()
    except pytest.UsageError:
        return  # said once collection has found VM tests
    config.stash[EARLY_RUN] = run
    atexit.register(run.kill_all)
    from .host import interrupt

    interrupt.sigterm_interrupts()
    run.launch_early()


def guest_target() -> Optional["Target"]:
    text = os.environ.get(GUEST_ENV)
    if not text:
        return None
    from .target import Target

    return Target.from_json(text)


BAD_TARGETS = pytest.StashKey[pytest.UsageError]()


def _targets(config: pytest.Config) -> Optional[list["Target"]]:
    """The targets VM tests are parametrized over; None when --kernel/--arch are
    bad (the error is raised once collection is done, as one line)."""
    target = guest_target()
    if target is not None:
        return [target]
    if BAD_TARGETS in config.stash:
        return None
    try:
        return list(_start_host_run(config).targets.values())
    except pytest.UsageError as e:
        if hasattr(config, "workerinput"):  # an xdist worker reports it as a collection error
            raise pytest.Collector.CollectError(str(e)) from None
        config.stash[BAD_TARGETS] = e
        return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Annotated BPF C files (named on the command line or under ini bpfvm_selftests)."""
    if file_path.suffix != ".c":
        return None
    from . import annotated

    if not annotated.candidate(parent.config, file_path):
        return None
    return annotated.AnnotatedFile.from_parent(parent, path=file_path)


def is_vm_test(config: pytest.Config, definition) -> bool:
    if definition.get_closest_marker("vm") is not None:
        return True
    path = Path(definition.path)
    return any(path == p or p in path.parents for p in config.getini("bpfvm_suites"))


def target_of(item: pytest.Item) -> Optional["Target"]:
    """The kernel an item was parametrized for (an annotated program's, its own);
    None for ordinary tests."""
    own = getattr(item, "annotated_target", None)
    if own is not None:
        return own
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(KERNEL_PARAM) if callspec is not None else None


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not is_vm_test(metafunc.config, metafunc.definition):
        return
    from . import requirements

    for name in requirements.MARKERS:
        for mark in metafunc.definition.iter_markers(name):
            try:
                requirements.validate(name, mark.args)
            except requirements.RequirementError as e:
                raise pytest.Collector.CollectError(f"{metafunc.definition.nodeid}: {e}") from None
    targets = _targets(metafunc.config)
    if targets is None:
        return
    if KERNEL_PARAM not in metafunc.fixturenames:
        metafunc.fixturenames.append(KERNEL_PARAM)
    metafunc.parametrize(KERNEL_PARAM, targets, ids=[t.id for t in targets], scope="session")


@pytest.fixture
def bpfvm_target() -> Optional["Target"]:
    """The kernel this test runs on (VM tests are parametrized over it; else None)."""
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
    from . import kconfig

    path = kernel.config or kconfig.running_config_path()
    if path is None or not Path(path).exists():
        pytest.skip(f"kernel {kernel.describe()}: no kernel config available")
    return dict(kconfig.load(path))


@pytest.fixture
def bpf_object(request: pytest.FixtureRequest):
    """Factory: ``bpf_object("xdp_count")`` compiles bpf/xdp_count.c on the host
    (cached), loads it in the guest and returns a bpfvm.bpf.BpfObject.

    A path to a .c file (relative to the test's directory) and ``cflags``
    build an author's own source; a path to a .o file loads an object built
    elsewhere as it is; other keywords (log_level, autoload,
    offload, dev_bound) go to bpfvm.bpf.load. Every object is closed at
    teardown, detaching what its programs attached.
    """
    from .guest.compiled import load_object

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
    bpfvm.net.Topology of network namespaces, removed at teardown.
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
    """Factory: ``netdevsim(ports=1, namespace=None)`` makes a bpfvm.offload.NetdevSim
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
    """A bpfvm.verifier.Checker: expect_reject/expect_accept (recorded for the
    end-of-run matrix), golden_log/golden_stats (files in golden/<kernel id>/
    beside the test, rewritten with --update-golden)."""
    from .verifier import Checker

    return Checker(request.node, kernel.id, request.path,
                   request.config.getoption("update_golden"), base=request.path.parent)


@pytest.fixture
def host_boot_id() -> str:
    """The boot id of the machine that started pytest (differs inside a guest)."""
    return os.environ.get("BPFVM_HOST_BOOT_ID") or \
        Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BAD_TARGETS in config.stash:
        raise config.stash[BAD_TARGETS]
    for item in items:
        if target_of(item) is not None and "netdevsim" in getattr(item, "fixturenames", ()):
            item.add_marker(NETDEVSIM_MARK)
    run = _host_run(config)
    if run is None:
        if EARLY_RUN in config.stash:  # booting for VM tests the run does not have
            config.stash[EARLY_RUN].kill_all()
        return
    from .host.run.schedule import group_by_kernel

    group_by_kernel(items, lambda item: getattr(target_of(item), "id", None), list(run.targets))
    # An xdist worker decides when it is sent its first VM item: only then has
    # the controller fetched what the run needs (pytest_xdist_node_collection_finished).
    if not hasattr(config, "workerinput"):
        run.decide_requirements(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Requirements the host could not decide are decided on the running kernel."""
    target = target_of(item)
    if target is None or (target.in_vm and guest_target() is None):
        return
    from . import kconfig, requirements
    from .items import marks_of

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
    if run is None or target is None:
        return None
    if hasattr(item.config, "workerinput"):
        run.decide_requirements(item.session.items)
    if not target.in_vm:
        return None
    from .host.run.dispatch import SKIP_ON_HOST

    if item.stash.get(SKIP_ON_HOST, False):
        return None
    run.run_item(item, nextitem)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """Stop the VMs, before JUnit and the matrices are written: a kernel
    problem on a console at shutdown is reported as a failure of its own."""
    run = _host_run(session.config)
    if run is None:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        run.kill_all()
        return
    failed = session.testsfailed
    run.shutdown()
    if session.testsfailed > failed and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if hasattr(session.config, "workeroutput"):
        from .annotated import compile_errors

        session.config.workeroutput["bpfvm_vms"] = run.vm_summary()
        session.config.workeroutput["bpfvm_compile_errors"] = compile_errors(session.config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: a worker's VMs, for the run's last line."""
    run = _host_run(node.config)
    if run is not None:
        output = getattr(node, "workeroutput", {})
        run.add_vm_summary(output.get("bpfvm_vms"))
        summary = node.config.pluginmanager.get_plugin("bpfvm-selftests")
        if summary is not None:
            summary.add_compile_errors(output.get("bpfvm_compile_errors"))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    run = _host_run(config)
    if run is None:
        if EARLY_RUN in config.stash:  # the run ended before collection was done
            config.stash[EARLY_RUN].kill_all()
        return
    run.kill_all()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = run.vm_line() if not hasattr(config, "workerinput") else None
    if line and reporter is not None:
        reporter.write_line(line)


def _configures_bpfvm(config: pytest.Config) -> bool:
    """Whether the run asks for bpfvm before collecting: --kernel given, or ini bpfvm_suites set."""
    return config.getoption("kernel") is not None or bool(config.getini("bpfvm_suites"))


def _may_have_vm_tests(config: pytest.Config, ids: list[str]) -> bool:
    """Whether some of ids may be VM tests, told from the options alone (nothing
    of bpfvm imported): a test id ending in a --kernel name, with or without
    an arch, or any parametrized id when a kernel is a path (its id is the
    image's release, known once it is read)."""
    spec = config.getoption("kernel") or config.getini("bpfvm_kernels")
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if any("/" in name or os.path.exists(name) for name in names):
        return any(nodeid.endswith("]") for nodeid in ids)
    arches = [a.strip() for a in (config.getoption("arch") or "").split(",") if a.strip()]
    suffixes = tuple(f"{sep}{name}{arch}]" for name in names for sep in "[-"
                     for arch in ["", *(f"-{a}" for a in arches), "-arm64", "-x86_64"])
    return any(nodeid.endswith(suffixes) for nodeid in ids)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:
    """xdist controller: once a worker has collected VM tests, fetch, build and
    probe, once, before any test is sent (the controller collects nothing itself)."""
    config = node.config
    run = _host_run(config)
    if run is None:
        if _in_guest() or not _may_have_vm_tests(config, ids):
            return
        from .host.run.runner import HostRun

        candidate = HostRun(config)
        try:
            candidate.parse_targets()
        except pytest.UsageError:
            return  # the workers' collection reports it, if they have VM tests
        if not candidate.has_vm_tests(ids):
            return
        run = _start_host_run(config, candidate)
    run.prepare()


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Keep each kernel on as few workers as possible, in projects that use bpfvm;
    others keep xdist's own scheduling."""
    if config.getoption("dist") != "load" or not _configures_bpfvm(config):
        return None
    from .host.run.schedule import KernelScheduling

    def kernel_ids() -> list[str]:
        run = _host_run(config)
        return list(run.targets) if run is not None else []

    return KernelScheduling(config, log, kernel_ids=kernel_ids)
