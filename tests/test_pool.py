"""The VM pool's bound: which VM stops when another kernel is needed (pure
logic, with stand-in VMs; tests/test_vm_pool.py and test_vm_boot_retry.py boot real ones)."""
import pytest

from bpfvm.host.run import pool
from bpfvm.host.run.pool import VmPool
from bpfvm.host.vm.vm import KvmFailed, VmError
from bpfvm.target import Target

pytest_plugins = ["pytester"]


class FakeVm:
    def __init__(self, target, events, fail=None):
        self.target, self.events, self.fail, self.alive = target, events, fail, False

    def start(self):
        self.events.append(f"boot {self.target.id}")
        if self.fail:
            raise self.fail(f"{self.target.id} would not boot")
        self.alive = True

    def stop(self):
        self.events.append(f"stop {self.target.id}")
        self.alive = False

    kill = stop


def targets(*ids):
    return [Target(name=i, kind="catalog", arch="x86_64", release=i) for i in ids]


def test_the_least_recently_used_vm_stops_when_the_pool_is_full():
    events = []
    p = VmPool(lambda t: FakeVm(t, events), limit=2)
    a, b, c = targets("a", "b", "c")
    for t in (a, b, a, c):
        p.get(t)
    assert events == ["boot a", "boot b", "stop b", "boot c"]
    assert list(p.vms) == ["a", "c"]


def test_limit_one_runs_one_kernel_at_a_time_and_zero_has_no_bound():
    events = []
    one = VmPool(lambda t: FakeVm(t, events), limit=1)
    for t in targets("a", "b", "c"):
        one.get(t)
    assert events == ["boot a", "stop a", "boot b", "stop b", "boot c"]
    events.clear()
    unbounded = VmPool(lambda t: FakeVm(t, events), limit=0)
    for t in targets("a", "b", "c"):
        unbounded.get(t)
    assert events == ["boot a", "boot b", "boot c"] and len(unbounded.vms) == 3


def test_a_dead_vm_is_replaced_without_stopping_another():
    events = []
    p = VmPool(lambda t: FakeVm(t, events), limit=2)
    a, b = targets("a", "b")
    p.get(a), p.get(b)
    p.vms["a"].alive = False  # crashed
    p.get(a)
    assert events == ["boot a", "boot b", "stop a", "boot a"] and len(p.vms) == 2


def test_default_limit_shares_the_cpus_among_the_workers(monkeypatch):
    monkeypatch.setattr(pool.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert pool.default_limit(1) == 4
    assert pool.default_limit(2) == 2
    assert pool.default_limit(8) == 1
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    assert pool.default_limit() == 1


@pytest.mark.parametrize("ini, said", [
    ("bpfvm_max_vms = many", "*bpfvm_max_vms = 'many' is not a number*"),
    ("bpfvm_memory = 1T", "*memory per VM '1T' (--bpfvm-memory, ini bpfvm_memory): give a size*"),
    ("bpfvm_console_allow = at x ; no date", "*ini bpfvm_console_allow: 'at x ; no date' is not*"),
])
def test_a_bad_vm_setting_is_one_line_before_any_boot(pytester, ini, said):
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("import pytest\n@pytest.mark.vm\ndef test_x():\n    pass\n")
    result = pytester.runpytest("--kernel=6.12", "--collect-only")
    result.stderr.fnmatch_lines([said])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def failing(events, *outcomes):
    """make() for VmPool: each boot fails with the next of outcomes (None: boots)."""
    queue = list(outcomes)
    return lambda t: FakeVm(t, events, queue.pop(0) if queue else None)


def test_a_failed_boot_is_tried_once_more():
    events = []
    p = VmPool(failing(events, VmError), limit=1)
    (a,) = targets("a")
    vm = p.get(a)
    assert events == ["boot a", "boot a"] and vm.boot_failures == ["first boot: a would not boot"]


def test_two_failures_or_kvms_own_break_the_kernel_for_the_run():
    events = []
    p = VmPool(failing(events, VmError, VmError), limit=1)
    a, b = targets("a", "b")
    with pytest.raises(VmError, match="first boot: a would not boot\nsecond boot: a would not"):
        p.get(a)
    with pytest.raises(VmError, match="boot failed earlier in this run"):
        p.get(a)
    assert events == ["boot a", "boot a"]
    kvm = VmPool(failing(events, KvmFailed), limit=1)
    with pytest.raises(VmError, match="^first boot: b would not boot$"):
        kvm.get(b)
    assert events[2:] == ["boot b"], "KVM's own failure is not tried again"


def test_each_stopped_vm_is_handed_over_once():
    events, stopped = [], []
    p = VmPool(lambda t: FakeVm(t, events), limit=1, stopped=lambda vm: stopped.append(vm.target.id))
    for t in targets("a", "b"):
        p.get(t)
    p.shutdown()
    assert stopped == ["a", "b"] and p.vms == {}
