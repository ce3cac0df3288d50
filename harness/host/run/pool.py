"""The run's VMs: one per kernel, booted on first use, replaced after a crash,
stopped at the end, and killed when the run is interrupted (SIGTERM too)."""
from __future__ import annotations

import signal
from typing import Callable

from ...target import Target
from ..vm.vm import Vm, VmError


class VmPool:
    def __init__(self, make: Callable[[Target], Vm]):
        """make: a new, unstarted Vm for a target."""
        self.make = make
        self.vms: dict[str, Vm] = {}
        self.broken: dict[str, str] = {}  # target id -> why its boot failed

    def get(self, target: Target) -> Vm:
        """The target's running VM, booted now if there is none (VmError if it cannot be)."""
        vm = self.vms.get(target.id)
        if vm is not None and vm.alive:
            return vm
        if target.id in self.broken:
            raise VmError(self.broken[target.id])
        if not self.vms and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupt)  # ends the run like Ctrl-C: VMs stop
        vm = self.make(target)
        try:
            vm.start()
        except VmError as e:
            self.broken[target.id] = f"(boot failed earlier in this run) {e}"
            raise
        self.vms[target.id] = vm
        return vm

    def discard(self, target: Target) -> None:
        """Kill the target's VM (after a crash or timeout); the next get() boots anew."""
        vm = self.vms.pop(target.id, None)
        if vm is not None:
            vm.kill()

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
