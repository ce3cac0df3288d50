"""The run's VMs: one per kernel, booted on first use, replaced after a crash,
stopped at the end, and killed when the run is interrupted.

At most `limit` VMs are alive at once in a process: under TCG a guest keeps
a host CPU busy, so a fifth 1 GiB guest booting beside four idle ones on
two cores crawls toward its boot timeout. When a kernel not booted is
needed and the pool is full, the least recently used VM is stopped; tests
arrive grouped by kernel (schedule.group_by_kernel orders them,
KernelScheduling sends a kernel's tests together), so each kernel boots once.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Optional

from ...target import Target
from ..vm.vm import KvmFailed, Vm, VmError


def default_limit(workers: Optional[int] = None) -> int:
    """One live VM per CPU this process may use, shared among the xdist
    workers (PYTEST_XDIST_WORKER_COUNT), at least one."""
    if workers is None:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    return max(1, len(os.sched_getaffinity(0)) // max(1, workers))


class VmPool:
    def __init__(self, make: Callable[[Target], Vm], limit: int = 1,
                 stopped: Callable[[Vm], None] = lambda vm: None,
                 attach: Callable[[Target], Optional[Vm]] = lambda target: None,
                 retire: Optional[Callable[[Vm], None]] = None):
        """make: a new, unstarted Vm for a target; limit: how many may be alive
        at once (0: no bound); stopped: called with each VM stopped in order
        (not killed), once its console is complete; attach: a kept VM of the
        target's, started for this run, if there is one (--bpfvm-reuse);
        retire: what ends a VM in order instead of stopping it (keeps it)."""
        self.make = make
        self.limit = limit
        self.stopped = stopped
        self.attach = attach
        self.retire = retire
        self.vms: dict[str, Vm] = {}  # least recently used first
        self.broken: dict[str, str] = {}  # target id -> why its boot failed
        self.boot_seconds = 0.0  # spent booting, attempts that failed included

    def get(self, target: Target) -> Vm:
        """The target's running VM, booted now if there is none (VmError if it cannot be)."""
        vm = self.vms.pop(target.id, None)
        if vm is not None and vm.alive:
            self.vms[target.id] = vm
            return vm
        if vm is not None:
            vm.kill()
        if target.id in self.broken:
            raise VmError(self.broken[target.id])
        while self.limit and len(self.vms) >= self.limit:
            self._stop(self.vms.pop(next(iter(self.vms))))
        vm = self.attach(target) or self._boot(target)
        self.vms[target.id] = vm
        return vm

    def _boot(self, target: Target) -> Vm:
        """A booted VM, on the second attempt if the first fails (a loaded host
        can miss a boot timeout once); after two failures, or KVM's own, the
        kernel is broken for the rest of the run, with the attempts' reasons."""
        failures: list[str] = []
        for attempt in ("first", "second"):
            vm = self.make(target)
            started = time.monotonic()
            try:
                vm.start()
                vm.boot_failures = failures
                return vm
            except VmError as e:
                failures.append(f"{attempt} boot: {e}")
                if isinstance(e, KvmFailed):
                    break
            finally:
                self.boot_seconds += time.monotonic() - started
        self.broken[target.id] = "(boot failed earlier in this run) " + "\n".join(failures)
        raise VmError("\n".join(failures))

    def discard(self, target: Target) -> None:
        """Kill the target's VM (after a crash or timeout); the next get() boots anew."""
        vm = self.vms.pop(target.id, None)
        if vm is not None:
            vm.kill()

    def shutdown(self) -> None:
        while self.vms:
            self._stop(self.vms.pop(next(iter(self.vms))))

    def _stop(self, vm: Vm) -> None:
        if self.retire is not None:
            self.retire(vm)
            return
        vm.stop()
        self.stopped(vm)

    def kill_all(self) -> None:
        for vm in self.vms.values():
            vm.kill()
        self.vms.clear()
