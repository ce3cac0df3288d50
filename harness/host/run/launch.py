"""What a guest is started with: the worker's spec and, for a foreign arch, its root.

The guest runs an ordinary pytest over the same files: the spec names them,
the plugins the host has from installed distributions (the guest loads
exactly these: scanning every distribution's entry points over 9p costs
seconds under TCG), the ini file, the option values it may have
(options.py) and the environment that tells the plugin it is in a guest.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Optional

import pytest

from ...protocol import BootSpec, GuestSpec
from ...target import Target
from ..report.expected_skips import ExpectedSkips, ExpectedSkipsError
from ..vm import console, kept
from ..vm.vm import ForeignRoot, VmOptions
from . import options, pool

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # bpfvm's own directory (harness/ in a checkout)
GUEST_BASETEMP = "/tmp/bpfvm-guest"


def guest_spec(config: pytest.Config, target: Target, files: list[str]) -> GuestSpec:
    rootdir = str(config.rootpath)
    args = collection_args(files) + ["--rootdir", rootdir, "-p", "no:cacheprovider", "-p", "no:terminal",
                            "--continue-on-collection-errors", "--basetemp", GUEST_BASETEMP,
                            f"--capture={config.getoption('capture')}"]
    for plugin in entry_point_plugins(config):
        args += ["-p", plugin]
    if config.inipath:
        args += ["-c", str(config.inipath)]
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return GuestSpec(rootdir=rootdir, args=args, options=options.forwarded(config),
                     env={"BPFVM_GUEST": target.to_json(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                          "BPFVM_HOST_BOOT_ID": boot_id},
                     files=sorted(files), annotated=annotated_specs(config, target, files))


def collection_args(files: list[str]) -> list[str]:
    """What the guest's pytest is told to collect: each file, or its directory when
    several files are wanted from one (the guest ignores the rest of it). pytest
    walks a file's whole directory once per argument: 95 files of one directory
    of 900 took minutes over 9p under TCG."""
    by_dir: dict[str, list[str]] = {}
    for f in sorted(files):
        by_dir.setdefault(str(Path(f).parent), []).append(f)
    return [d if len(fs) > 1 else fs[0] for d, fs in sorted(by_dir.items())]


def annotated_specs(config: pytest.Config, target: Target,
                    files: list[str]) -> dict[str, list[dict]]:
    """The Specs of the annotated C files among files, as built for target."""
    from ...annotated import BUILT

    built = config.stash.get(BUILT, {})
    return {f: [s.to_dict() for s in built[(f, target.id)].specs]
            for f in files if (f, target.id) in built}


def entry_point_plugins(config: pytest.Config) -> list[str]:
    """Modules of the setuptools-registered plugins active on the host, but xdist's."""
    names = []
    for plugin, _dist in config.pluginmanager.list_plugin_distinfo():
        name = getattr(plugin, "__name__", None)
        if name and not name.startswith("xdist"):
            names.append(name)
    return names


def foreign_root(config: pytest.Config, target: Target, root: str) -> ForeignRoot:
    """The arch's cached root, with the project, bpfvm (which may be installed
    outside the project), the kernel's files and the directories of the
    annotated C files built for it (a kernel tree in the cache) shared."""
    from ...annotated import BUILT

    assert target.vmlinuz is not None
    image = Path(target.vmlinuz)
    entry = image.parents[1] if image.parent.name == "boot" else image.parent
    annotated = {str(Path(f).parent) for f, kernel in config.stash.get(BUILT, {})
                 if kernel == target.id}
    shares = {str(config.rootpath), str(PACKAGE_DIR), str(entry), *annotated}
    modules = entry / "lib/modules" / target.release
    return ForeignRoot(root, sorted(shares), str(modules) if modules.is_dir() else None,
                       str(PACKAGE_DIR))


def vm_options(config: pytest.Config, accel: str) -> VmOptions:
    """CPUs, memory, boot timeout and console log directory, from options and ini."""
    getini, opt = config.getini, config.getoption
    logdir = opt("bpfvm_logdir") or Path(
        config._tmp_path_factory.getbasetemp()) / "bpfvm-logs"  # type: ignore[attr-defined]
    return VmOptions(accel=accel, cpus=int(opt("bpfvm_cpus") or getini("bpfvm_cpus")),
                     memory=memory(config),
                     boot_timeout=float(getini("bpfvm_boot_timeout")), logdir=Path(logdir),
                     console_allowed=console_allowed(config), keep_idle=keep_idle(config))


def check(config: pytest.Config) -> None:
    """A usage error now, before anything boots, for a VM setting no VM could use."""
    memory(config)
    console_allowed(config)
    keep_idle(config)


def keep_idle(config: pytest.Config) -> Optional[float]:
    """Seconds a kept VM waits for the next run; None without --bpfvm-reuse (or ini bpfvm_reuse)."""
    if not (config.getoption("bpfvm_reuse") or config.getini("bpfvm_reuse")):
        return None
    text = config.getini("bpfvm_reuse_idle").strip()
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise pytest.UsageError(f"ini bpfvm_reuse_idle = {text!r}: give the minutes a kept VM "
                                f"waits for the next run, such as 10")
    try:
        kept.run_dir()
    except kept.RunDirError as e:
        raise pytest.UsageError(str(e)) from None
    return minutes * 60


PRELOAD = ("scapy.all", "pyroute2", "bpfvm.bpf", "bpfvm.net", "bpfvm.offload", "bpfvm.verifier")


def boot_spec(imported: Iterable[str]) -> BootSpec:
    """What the guest's parent imports before sessions: the heavy modules this run's tests did."""
    names = set(imported)
    return BootSpec(preload=[name for name in PRELOAD if name in names])


def memory(config: pytest.Config) -> str:
    """Memory per VM as virtme-ng takes it: a number of MiB, or with a K, M or G suffix."""
    value = config.getoption("bpfvm_memory") or config.getini("bpfvm_memory")
    if not re.fullmatch(r"[1-9]\d*[KMG]?", value):
        raise pytest.UsageError(f"memory per VM {value!r} (--bpfvm-memory, ini bpfvm_memory): "
                                f"give a size such as 1G or 512M")
    return value


def console_allowed(config: pytest.Config) -> tuple[console.Allowed, ...]:
    """The known-harmless splats: bpfvm's own and ini bpfvm_console_allow's."""
    try:
        return tuple(console.allowed_from(config.getini("bpfvm_console_allow")))
    except ValueError as e:
        raise pytest.UsageError(f"ini bpfvm_console_allow: {e}") from None


def expected_skips(config: pytest.Config) -> Optional[ExpectedSkips]:
    """The project's list of expected skips (ini bpfvm_expected_skips), if it has one."""
    name = config.getini("bpfvm_expected_skips")
    if not name:
        return None
    base = config.inipath.parent if config.inipath else config.rootpath
    try:
        return ExpectedSkips.load(base / name)
    except ExpectedSkipsError as e:
        raise pytest.UsageError(str(e)) from None


def test_timeout(config: pytest.Config) -> float:
    """Seconds one test may take in a VM."""
    return float(config.getoption("bpfvm_timeout") or config.getini("bpfvm_timeout"))


def max_vms(config: pytest.Config) -> int:
    """How many VMs one pytest process keeps alive at once (0: no bound)."""
    value = config.getoption("bpfvm_max_vms")
    if value is None:
        text = config.getini("bpfvm_max_vms").strip()
        if not text:
            return pool.default_limit()
        try:
            value = int(text)
        except ValueError:
            raise pytest.UsageError(f"ini bpfvm_max_vms = {text!r} is not a number; "
                                    f"give a count of VMs, or 0 for no bound") from None
    if value < 0:
        raise pytest.UsageError(f"--bpfvm-max-vms {value}: give a count of VMs, "
                                f"or 0 for no bound")
    return value
