"""The host side of a bpfvm pytest run: targets, VMs, and running items in them."""
from __future__ import annotations

import base64
import contextlib
import time
from pathlib import Path
from typing import Any, Iterator, Optional

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
from ..vm import accel, bundle, console, kept, rootfs
from ..vm.rootfs import RootfsError
from ..vm.vm import Vm, VmError
from . import bpfobjects, dispatch, launch, schedule
from .pool import VmPool


class HostRun:
    """The session's orchestration on the host: targets, preparing them once,
    host-side skips, and each VM item run in its kernel's VM (from the pool)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.targets: dict[str, Target] = {}
        launch.check(config)
        self.expected_skips = launch.expected_skips(config)
        self.keep_idle = launch.keep_idle(config)
        reusing = self.keep_idle is not None
        self.pool = VmPool(self.new_vm, launch.max_vms(config), self.vm_stopped,
                           attach=self.attach_kept if reusing else lambda target: None,
                           retire=self.retire if reusing else None)
        self.vm_outcomes: dict[str, str] = {}  # target id -> "kept", or why not
        self.boot_seconds = 0.0  # the most one process of the run spent booting
        self.started = time.monotonic()
        self.seq = 0
        self.accel = "tcg"
        self.files: dict[str, set[str]] = {}
        self.entries: list = []
        self.roots: dict[str, str] = {}  # arch -> guest root, for foreign arches
        self.prepared = False
        self.decided = False
        self.early: dict[str, Vm] = {}  # booting since before collection, by target id
        self.imports: Optional[bundle.Imports] = None  # what every guest of the run imports
        self._prelude: Optional[str] = None
        from ...guest import compiled  # tests run on this host (--kernel host) build here

        compiled.set_compiler(lambda request: self.serve("host", host_arch(), request,
                                                         self.config.rootpath))

    # -- setup -----------------------------------------------------------

    def parse_targets(self) -> None:
        """Targets from --kernel/--arch (or the ini default), without fetching."""
        opt = self.config.getoption
        try:
            self.entries = catalog.load()
            self.targets = resolve.targets(opt("kernel") or self.config.getini("bpfvm_kernels"),
                                           opt("arch") or host_arch(), self.entries,
                                           catalog.load_flavours())
        except (CatalogError, resolve.ResolveError) as e:
            raise pytest.UsageError(str(e)) from None

    def has_vm_tests(self, nodeids: list[str]) -> bool:
        """Whether any of nodeids (an xdist worker's collection) is parametrized by a target."""
        return any(schedule.kernel_of(nodeid, list(self.targets)) for nodeid in nodeids)

    def prepare(self) -> None:
        """Fetch what is missing and decide the accelerator (once per process)."""
        if self.prepared:
            return
        self.prepared = True
        with self._usage_errors():
            for tool in self.tools_needed():
                tools.require(tool)
            for target in self.targets.values():
                resolve.materialize(target, self.entries, self._progress)
            for arch in sorted({t.arch for t in self.targets.values() if t.foreign}):
                self.roots[arch] = str(rootfs.ensure(arch, self._progress))
        if any(t.kind == "host" for t in self.targets.values()):
            from ...guest import system  # --kernel host: this machine is the guest

            system.mount_filesystems()
        if not hasattr(self.config, "workerinput"):
            bpfobjects.prebuild(self.bpf_dirs(), {t.arch for t in self.targets.values()})
        self.decide_accel()

    def launch_early(self) -> None:
        """Start booting the first kernel's VM now, before collection, so that
        the boot overlaps the host's collection and BPF builds.

        Only when that costs nothing a run without VM tests would not pay: the
        kernel is cached, the tools are there, no KVM probe is due, and the
        project has run before (its guests' imports were recorded: a bundle
        made before collection would lack what the tests import, and the
        guest would read those over 9p). Anything missing leaves the boot to
        the first VM test, which reports it.
        """
        recorded = bundle.recall(self.config.rootpath)
        target = next(iter(self.targets.values()), None)
        if not recorded or target is None or not target.in_vm or target.foreign:
            return
        accel_now = accel.settled(self.config.getoption("accel"))
        if accel_now is None or not all(tools.find(t) for t in self.tools_needed()):
            return
        try:
            if not resolve.materialize(target, self.entries, self._progress, fetch_missing=False):
                return
        except (CatalogError, OSError):
            return
        self.accel = accel_now
        self.imports = recorded
        vm = self.new_vm(target)
        if self.keep_idle is not None and kept.unclaimed(vm.reuse_key()):
            return  # the first VM test attaches to it (or says it is gone)
        try:
            vm.launch()
        except VmError:
            return
        self.early[target.id] = vm

    def note_imports(self) -> None:
        """Fix what the run's guests import, once collection has imported the
        tests' modules (unless an early boot fixed it already), and record it
        for the project's next run. Called as each VM is made, after what
        making one imports: a run that boots early has imported that before
        it collects. What is recorded only grows, so the next run's bundle,
        and the reuse key of the VMs this one keeps, stay the same until a
        test imports something new."""
        now = bundle.imported(self.config.rootpath)
        if self.imports is None:
            self.imports = sorted(set(bundle.recall(self.config.rootpath)) | set(now))
        bundle.remember(self.config.rootpath, sorted(set(self.imports) | set(now)))

    def materialize(self, target: Target) -> None:
        """Fetch (or build) one target's kernel now: annotated C files are built
        against its BTF while they are collected."""
        with self._usage_errors():
            resolve.materialize(target, self.entries, self._progress)

    @contextlib.contextmanager
    def _usage_errors(self) -> Iterator[None]:
        """What fetching and building raise, as the one-line usage error pytest prints."""
        try:
            yield
        except (CatalogError, FetchError, MirrorError, KernelBuildError, SourceError,
                RootfsError, tools.ToolMissing) as e:
            raise pytest.UsageError(str(e)) from None
        except OSError as e:
            raise pytest.UsageError(cache.os_error_line(e)) from None

    def tools_needed(self) -> list[str]:
        """What booting this run's guests takes; clang and bpftool are checked
        when a test uses them, so runs without BPF objects do not need them."""
        arches = sorted({t.arch for t in self.targets.values() if t.in_vm})
        return (["vng"] if arches else []) + [tools.QEMU[a] for a in arches]

    def bpf_dirs(self) -> list[Path]:
        """Where bpf_object('name') looks: ini bpfvm_bpf_dirs, then <rootdir>/bpf."""
        return list(dict.fromkeys([*self.config.getini("bpfvm_bpf_dirs"),
                                   self.config.rootpath / "bpf"]))

    def serve(self, kernel: str, arch: str, request: dict[str, Any], test_dir: Path,
              timeout: Optional[float] = None) -> dict[str, Any]:
        """Answer a call a guest test makes: a BPF object build of a source in
        the bpf dirs or under test_dir, within timeout seconds, or the object
        of an annotated file this run built for the guest's kernel."""
        if request.get("call") == "annotated":
            return self.annotated_object(kernel, request)
        if request.get("call") != "build":
            return {"ok": False, "error": f"unknown guest call {request.get('call')!r:.80}"}
        dirs = self.bpf_dirs()
        confine = bpfobjects.Confinement(self.config.rootpath, [*dirs, test_dir])
        return bpfobjects.serve(request, dirs, arch, confine, timeout)

    def annotated_object(self, kernel: str, request: dict[str, Any]) -> dict[str, Any]:
        """The object of an annotated file, when this process built it for kernel
        (the guest names the file; nothing else is read)."""
        from ...annotated import BUILT

        source = request.get("source")
        built = None
        if isinstance(source, str):
            built = self.config.stash.get(BUILT, {}).get((source, kernel))
        if built is None or built.object is None:
            return {"ok": False, "error": f"{source!r:.200} is no annotated "
                                          f"file this run built for kernel {kernel}"}
        return {"ok": True, "object": base64.b64encode(built.object.read_bytes()).decode()}

    def decide_accel(self) -> None:
        """KVM or TCG; an xdist worker finds the controller's probe remembered in the cache."""
        vm_targets = [t for t in self.targets.values() if t.in_vm]
        if vm_targets:
            try:
                self.accel = accel.choose(self.config.getoption("accel"), vm_targets[0],
                                          self._progress)
            except ValueError as e:
                raise pytest.UsageError(str(e)) from None

    def _progress(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not hasattr(self.config, "workerinput"):
            reporter.write_line(line)

    # -- collection ------------------------------------------------------

    def decide_requirements(self, items: list[pytest.Item]) -> None:
        """Skip, without a boot, items whose requirements the host can rule out (once)."""
        if self.decided or self.config.getoption("collectonly"):
            return
        self.decided = True
        if any(target_of(item) is not None for item in items):
            self.prepare()
        configs: dict[str, Optional[dict[str, str]]] = {}
        needed = set()  # targets with an item to run in a VM
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
                reason = None
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
                item.stash[dispatch.SKIP_ON_HOST] = True
            elif target.in_vm:
                needed.add(target.id)
        for target_id in set(self.early) - needed:
            self.early.pop(target_id).kill()  # booted early for tests -k, --lf or skips left out

    # -- running ---------------------------------------------------------

    def run_item(self, item: pytest.Item, nextitem: Optional[pytest.Item]) -> None:
        target = target_of(item)
        assert target is not None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        nextid = dispatch.next_in_guest(target, nextitem)
        problems: list[console.Problem] = []
        retried: list[str] = []
        try:
            vm = self.pool.get(target)
        except VmError as e:
            reports = dispatch.synthesize(item, [], f"cannot boot: {e}")
        else:
            if not vm.watch.checked:  # booted for this test
                problems = vm.watch.booted(vm.console_text())
                retried, vm.boot_failures = vm.boot_failures, []
            self.seq += 1
            reports, error, later = dispatch.run(
                vm, item, nextid, self.seq, launch.test_timeout(self.config),
                lambda request, left: self.serve(target.id, target.arch, request,
                                                 item.path.parent, left))
            problems += later
            if problems or vm.watch.splats:
                vm.taint = vm.taint or "the kernel reported a problem on its console"
            if error is not None:
                self.vm_outcomes[target.id] = f"its VM failed: {str(error).splitlines()[0]}"
                self.pool.discard(target)
        if retried:
            shown = next((r for r in reports if r.when == "call"), reports[-1])
            shown.sections.append(("bpfvm boot", "booted on the second attempt; "
                                                 + "\n".join(retried)))
        for report in reports:
            report.user_properties.extend(self.kernel_properties(target))
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if problems:
            self.report_console(target, vm.log_path, problems)

    def report_console(self, target: Target, log_path: Path,
                       problems: list[console.Problem]) -> None:
        """Kernel problems no test window holds, each reported as its own failure."""
        hook = self.config.hook
        for problem in problems:
            reports = dispatch.console_reports(target, problem, str(log_path))
            nodeid, location = reports[0].nodeid, reports[0].location
            hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
            for report in reports:
                report.user_properties.extend(self.kernel_properties(target))
                hook.pytest_runtest_logreport(report=report)
            hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    def vm_stopped(self, vm: Vm) -> None:
        self.report_console(vm.target, vm.log_path, vm.watch.ended(vm.console_text()))

    # -- kept VMs (--bpfvm-reuse) ------------------------------------------

    def attach_kept(self, target: Target) -> Optional[Vm]:
        """A kept VM of this run's configuration, attached; None if there is none
        free, or if this run has been booting its own since before collection."""
        if target.id in self.early:
            return None
        vm = self.new_vm(target)
        key = vm.reuse_key()
        for directory, record in kept.entries():
            if record is None or record.key != key or record.state == "busy":
                continue
            claim = kept.Claim.take(directory)
            if claim is None:
                continue
            record = kept.Record.load(directory)  # again, now that it is ours
            if record is None or record.state == "busy":
                claim.release()
                continue
            age = kept.describe_age(time.time() - record.booted)
            if record.state == "gone":
                claim.release()
                kept.remove(directory)
                self._progress(f"bpfvm: the kept VM for {target.id} (booted {age} ago) is gone: "
                               f"{record.gone}; booting a new one")
                continue
            try:
                vm.attach(claim, record)
            except VmError as e:
                self._progress(f"bpfvm: the kept VM for {target.id} (booted {age} ago) cannot be "
                               f"used ({str(e).splitlines()[0]}); booting a new one")
                vm = self.new_vm(target)
                continue
            return vm
        return None

    def vm_summary(self) -> dict[str, Any]:
        """What an xdist worker tells the controller of its VMs (workeroutput)."""
        return {"outcomes": dict(self.vm_outcomes), "boot_seconds": self.pool.boot_seconds}

    def add_vm_summary(self, data: Any) -> None:
        if isinstance(data, dict):
            outcomes = data.get("outcomes")
            if isinstance(outcomes, dict):
                self.vm_outcomes.update({str(k): str(v) for k, v in outcomes.items()})
            if isinstance(data.get("boot_seconds"), (int, float)):
                self.boot_seconds = max(self.boot_seconds, float(data["boot_seconds"]))

    def vm_line(self) -> Optional[str]:
        """The run's last line: which VMs were kept and why others were not; or,
        without --bpfvm-reuse, a hint when booting took a third of the run."""
        if self.keep_idle is None:
            boots = max(self.boot_seconds, self.pool.boot_seconds)
            elapsed = time.monotonic() - self.started
            if boots > elapsed / 3 and boots > 1:
                return (f"bpfvm: {boots:.0f} s of this {elapsed:.0f} s run went to booting VMs; "
                        f"--bpfvm-reuse keeps them booted for the next run")
            return None
        outcomes = {**self.vm_outcomes, **self.vm_summary()["outcomes"]}
        if not outcomes:
            return None
        kept_ids = [t for t, why in outcomes.items() if why == "kept"]
        others = [f"{t} ({why})" for t, why in outcomes.items() if why != "kept"]
        parts = []
        if kept_ids:
            parts.append(f"kept {', '.join(kept_ids)} for the next run "
                         f"(up to {self.keep_idle / 60:g} min idle; bpfvm vms stop ends them)")
        if others:
            parts.append(f"not kept: {'; '.join(others)}")
        return "bpfvm: " + "; ".join(parts)

    def retire(self, vm: Vm) -> None:
        """At the run's end (or to make room): keep the VM for the next run if it
        is as healthy as booted, else stop it; either way, say why."""
        reason = vm.taint
        if reason is None:
            try:
                left = vm.end_session()
            except VmError as e:
                reason = f"its session did not end cleanly ({str(e).splitlines()[0]})"
            else:
                if left:
                    reason = ("its run left state outside the session's namespaces: "
                              + "; ".join(left))
        if reason is None:
            problems = vm.watch.ended(vm.console_text())
            self.report_console(vm.target, vm.log_path, problems)
            if problems:
                reason = "the kernel reported a problem on its console"
        if reason is None:
            vm.detach()
            self.vm_outcomes[vm.target.id] = "kept"
            return
        self.vm_outcomes[vm.target.id] = reason
        vm.stop()
        self.vm_stopped(vm)

    def kernel_properties(self, target: Target) -> list[tuple[str, str]]:
        """Where a test ran, for its report, JUnit record and the compatibility table."""
        accel_used = "none" if not target.in_vm else "tcg" if target.foreign else self.accel
        return compat.kernel_properties(target, accel_used)

    def new_vm(self, target: Target) -> Vm:
        """The target's VM, not started: the one booting since before collection
        (launch_early), with the spec collection made, or a new one."""
        spec = launch.guest_spec(self.config, target, list(self.files.get(target.id, ())))
        opts = launch.vm_options(self.config, self.accel)
        self.note_imports()
        early = self.early.pop(target.id, None)
        if early is not None:
            early.guest_spec = spec
            return early
        boot = launch.boot_spec(name for name, _ in self.imports)
        if target.foreign:
            opts.accel = "tcg"  # KVM runs the host's arch only
            root = launch.foreign_root(self.config, target, self.roots[target.arch])
            return Vm(target, opts, spec, foreign=root, boot=boot)
        if self._prelude is None:
            self._prelude = bundle.prelude(self.imports)
        return Vm(target, opts, spec, self._prelude, boot=boot)

    def shutdown(self) -> None:
        self.pool.shutdown()
        self.kill_early()

    def kill_all(self) -> None:
        self.pool.kill_all()
        self.kill_early()

    def kill_early(self) -> None:
        while self.early:
            self.early.popitem()[1].kill()

