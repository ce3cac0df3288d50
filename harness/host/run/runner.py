"""The host side of a bpfvm pytest run: targets, VMs, and running items in them."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Optional

import pytest

from ... import kconfig, requirements
from ...items import marks_of
from ...plugin import target_of
from ...target import Target, host_arch
from .. import tools
from ..kernels import cache, catalog, resolve
from ..kernels.aptsources import MirrorError
from ..kernels.catalog import CatalogError
from ..kernels.fetch import FetchError
from ..kernels.kmake import KernelBuildError
from ..kernels.ksource import SourceError
from ..report import compat
from ..vm import accel, bundle, rootfs
from ..vm.rootfs import RootfsError
from ..vm.vm import ForeignRoot, Vm, VmError, VmOptions
from . import bpfobjects, dispatch, options, schedule

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # bpfvm's own directory (harness/ in a checkout)

class HostRun:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.targets: dict[str, Target] = {}
        self.vms: dict[str, Vm] = {}
        self.broken: dict[str, str] = {}
        self.seq = 0
        self.accel = "tcg"
        self.files: dict[str, set[str]] = {}
        self.entries: list = []
        self.roots: dict[str, str] = {}  # arch -> guest root, for foreign arches
        self.prepared = False
        self.decided = False
        from ...guest import objects  # tests run on this host (--kernel host) build here

        objects.set_compiler(lambda request: self.serve(host_arch(), request))

    # -- setup -----------------------------------------------------------

    def parse_targets(self) -> None:
        """Targets from --kernel/--arch (or the ini default), without fetching."""
        opt = self.config.getoption
        specs = resolve.split_specs(opt("kernel") or self.config.getini("bpfvm_kernels"))
        try:
            self.entries = catalog.load()
            flavours = catalog.load_flavours()
            for arch in resolve.split_specs(opt("arch") or host_arch()):
                for spec in specs:
                    target = resolve.parse(spec, arch, self.entries, flavours)
                    self.targets[target.id] = target
        except (CatalogError, resolve.ResolveError) as e:
            raise pytest.UsageError(str(e)) from None
        if any(t.kind == "host" for t in self.targets.values()) and os.geteuid() != 0:
            raise pytest.UsageError("--kernel host runs tests on the running kernel and needs "
                                    "root; run pytest as root or pick a VM kernel")
        foreign_host = [t for t in self.targets.values() if t.kind == "host" and t.foreign]
        if foreign_host:
            raise pytest.UsageError(f"--kernel host runs on this {host_arch()} machine; "
                                    f"it cannot be {foreign_host[0].arch}")

    def has_vm_tests(self, nodeids: list[str]) -> bool:
        """Whether any of nodeids (an xdist worker's collection) is parametrized by a target."""
        return any(schedule.kernel_of(nodeid, list(self.targets)) for nodeid in nodeids)

    def prepare(self) -> None:
        """Fetch what is missing and decide the accelerator (once per process)."""
        if self.prepared:
            return
        self.prepared = True
        try:
            for tool in self.tools_needed():
                tools.require(tool)
            for target in self.targets.values():
                resolve.materialize(target, self.entries, self._progress)
            for arch in sorted({t.arch for t in self.targets.values() if t.foreign}):
                self.roots[arch] = str(rootfs.ensure(arch, self._progress))
        except (CatalogError, FetchError, MirrorError, KernelBuildError, SourceError,
                RootfsError, tools.ToolMissing) as e:
            raise pytest.UsageError(str(e)) from None
        except OSError as e:
            raise pytest.UsageError(cache.os_error_line(e)) from None
        if any(t.kind == "host" for t in self.targets.values()):
            from ...guest import system  # --kernel host: this machine is the guest

            system.mount_filesystems()
        if not hasattr(self.config, "workerinput"):
            bpfobjects.prebuild(self.bpf_dirs(), {t.arch for t in self.targets.values()})
        self.decide_accel()

    def tools_needed(self) -> list[str]:
        """What booting this run's guests takes; clang and bpftool are checked
        when a test uses them, so runs without BPF objects do not need them."""
        arches = sorted({t.arch for t in self.targets.values() if t.in_vm})
        return (["vng"] if arches else []) + [tools.QEMU[a] for a in arches]

    def bpf_dirs(self) -> list[Path]:
        """Where bpf_object('name') looks: ini bpfvm_bpf_dirs, then <rootdir>/bpf."""
        return list(dict.fromkeys([*self.config.getini("bpfvm_bpf_dirs"),
                                   self.config.rootpath / "bpf"]))

    def serve(self, arch: str, request: dict[str, Any]) -> dict[str, Any]:
        """Answer a call a guest test makes (a BPF object build)."""
        if request.get("call") != "build":
            return {"ok": False, "error": f"unknown guest call {request.get('call')!r}"}
        return bpfobjects.serve(request, self.bpf_dirs(), arch)

    def decide_accel(self) -> None:
        """KVM or TCG; an xdist worker finds the controller's probe remembered in the cache."""
        vm_targets = [t for t in self.targets.values() if t.in_vm]
        if not vm_targets:
            return
        requested = self.config.getoption("accel")
        try:
            self.accel, warning = accel.decide(
                requested, accel.kvm_device_usable(),
                lambda: accel.remembered(cache.cache_dir() / accel.STATE,
                                         lambda: accel.probe(vm_targets[0])))
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
        if warning:
            self._progress(warning)

    def _progress(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not hasattr(self.config, "workerinput"):
            reporter.write_line(line)

    def vm_options(self) -> VmOptions:
        getini = self.config.getini
        opt = self.config.getoption
        logdir = opt("bpfvm_logdir") or Path(
            self.config._tmp_path_factory.getbasetemp()) / "bpfvm-logs"  # type: ignore[attr-defined]
        return VmOptions(accel=self.accel, cpus=int(opt("bpfvm_cpus") or getini("bpfvm_cpus")),
                         memory=opt("bpfvm_memory") or getini("bpfvm_memory"),
                         boot_timeout=float(getini("bpfvm_boot_timeout")),
                         logdir=Path(logdir))

    def timeout(self) -> float:
        return float(self.config.getoption("bpfvm_timeout") or self.config.getini("bpfvm_timeout"))

    # -- collection ------------------------------------------------------

    def decide_requirements(self, items: list[pytest.Item]) -> None:
        """Skip, without a boot, items whose requirements the host can rule out (once)."""
        if self.decided or self.config.getoption("collectonly"):
            return
        self.decided = True
        if any(target_of(item) is not None for item in items):
            self.prepare()
        configs: dict[str, Optional[dict[str, str]]] = {}
        for item in items:
            target = target_of(item)
            if target is None:
                continue
            if target.in_vm:
                self.files.setdefault(target.id, set()).add(str(item.path))
            if target.id not in configs:
                configs[target.id] = kconfig.load(target.config) if target.config else None
            try:
                reason = requirements.evaluate(target, marks_of(item), configs[target.id])
            except requirements.Undecided:
                continue
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
                item.stash[SKIP_ON_HOST] = True

    # -- running ---------------------------------------------------------

    def run_item(self, item: pytest.Item, nextitem: Optional[pytest.Item]) -> None:
        target = target_of(item)
        assert target is not None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        nextid = self.next_in_guest(target, nextitem)
        try:
            vm = self.vm_for(target)
        except VmError as e:
            reports = dispatch.synthesize(item, [], f"cannot boot: {e}")
        else:
            self.seq += 1
            reports, error = dispatch.run(vm, item, nextid, self.seq, self.timeout(),
                                          lambda request: self.serve(target.arch, request))
            if error is not None:
                vm.kill()
                del self.vms[target.id]
        for report in reports:
            report.user_properties.extend(self.kernel_properties(target))
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    def kernel_properties(self, target: Target) -> list[tuple[str, str]]:
        """Where a test ran, for its report, JUnit record and the compatibility table."""
        accel_used = "none" if not target.in_vm else "tcg" if target.foreign else self.accel
        return compat.kernel_properties(target, accel_used)

    @staticmethod
    def next_in_guest(target: Target, nextitem: Optional[pytest.Item]) -> Optional[str]:
        """The node id the guest will run next, when known, so it keeps the
        fixtures they share; None makes it tear everything down. An item the
        host skips never reaches the guest, so it is not a next item there."""
        if nextitem is None or nextitem.stash.get(SKIP_ON_HOST, False):
            return None
        next_target = target_of(nextitem)
        return nextitem.nodeid if next_target is not None and next_target.id == target.id else None

    def vm_for(self, target: Target) -> Vm:
        vm = self.vms.get(target.id)
        if vm is not None and vm.alive:
            return vm
        if target.id in self.broken:
            raise VmError(self.broken[target.id])
        if not self.vms and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # SIGTERM ends the run like Ctrl-C does, so the VMs are stopped.
            signal.signal(signal.SIGTERM, _interrupt)
        opts = self.vm_options()
        if target.foreign:
            opts.accel = "tcg"  # KVM runs the host's arch only
            vm = Vm(target, opts, self.guest_spec(target), foreign=self.foreign_root(target))
        else:
            vm = Vm(target, opts, self.guest_spec(target), bundle.for_this_process())
        try:
            vm.start()
        except VmError as e:
            self.broken[target.id] = f"(boot failed earlier in this run) {e}"
            raise
        self.vms[target.id] = vm
        return vm

    def foreign_root(self, target: Target) -> ForeignRoot:
        """The arch's cached root, with the project, bpfvm (which may be installed
        outside the project) and the kernel's files shared."""
        assert target.vmlinuz is not None
        image = Path(target.vmlinuz)
        entry = image.parents[1] if image.parent.name == "boot" else image.parent
        shares = {str(self.config.rootpath), str(PACKAGE_DIR), str(entry)}
        modules = entry / "lib/modules" / target.release
        return ForeignRoot(self.roots[target.arch], sorted(shares),
                           str(modules) if modules.is_dir() else None, str(PACKAGE_DIR))

    def guest_spec(self, target: Target) -> dict[str, Any]:
        config = self.config
        rootdir = str(config.rootpath)
        args = sorted(self.files.get(target.id, ()))
        args += ["--rootdir", rootdir, "-p", "no:cacheprovider", "-p", "no:terminal",
                 "--continue-on-collection-errors", "--basetemp", "/tmp/bpfvm-guest",
                 f"--capture={config.getoption('capture')}"]
        for plugin in entry_point_plugins(config):
            args += ["-p", plugin]
        if config.inipath:
            args += ["-c", str(config.inipath)]
        return {
            "rootdir": rootdir,
            "args": args,
            "options": options.forwarded(config),
            "env": {"BPFVM_GUEST": target.to_json(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                    "BPFVM_HOST_BOOT_ID": Path("/proc/sys/kernel/random/boot_id").read_text().strip()},
        }

    def shutdown(self) -> None:
        for vm in self.vms.values():
            vm.stop()
        self.vms.clear()

    def kill_all(self) -> None:
        for vm in self.vms.values():
            vm.kill()
        self.vms.clear()


def _interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def entry_point_plugins(config: pytest.Config) -> list[str]:
    """Modules of the setuptools-registered plugins active on the host.

    The guest loads exactly these (autoload off): scanning every installed
    distribution's entry points costs seconds over 9p under TCG.
    """
    names = []
    for plugin, _dist in config.pluginmanager.list_plugin_distinfo():
        name = getattr(plugin, "__name__", None)
        if name and not name.startswith("xdist"):
            names.append(name)
    return names


SKIP_ON_HOST = pytest.StashKey[bool]()
