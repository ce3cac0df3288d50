"""A failed boot is tried once more before the kernel counts as broken."""
import os
import re
import signal
import threading

import pytest

from conftest import FAULT_MARK, VM_KERNEL, marked_processes

pytestmark = pytest.mark.slow
ID = f"[{VM_KERNEL}]"


@pytest.mark.fault("QEMU killed during the first boot")
def test_a_boot_that_fails_once_is_retried(vm_runner, fault_outcome):
    vm_runner.write("def test_runs():\n    pass\n")
    killed, done = [], threading.Event()

    def kill_first_qemu():
        while not done.wait(0.05) and not killed:
            for pid, what in marked_processes(os.environ[FAULT_MARK]).items():
                if what == "QEMU":
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return

    killer = threading.Thread(target=kill_first_qemu)
    killer.start()
    try:
        run = vm_runner.run()
    finally:
        done.set()
        killer.join()
    assert killed, "no QEMU appeared to kill"
    assert run.returncode == 0 and run.outcome(f"test_runs{ID}") == "passed", run.output
    assert "booted on the second attempt; first boot: " in run.output
    assert len(list(run.logdir.glob("console-*.log"))) == 2
    fault_outcome(next(line for line in run.output.splitlines() if "second attempt" in line))


@pytest.mark.fault("a kernel that misses its boot deadline twice (bpfvm_boot_timeout = 1)")
def test_a_kernel_that_fails_twice_is_broken_with_both_reasons(vm_runner, fault_outcome):
    vm_runner.write("def test_one():\n    pass\ndef test_two():\n    pass\n")
    (vm_runner.base / "pytest.ini").write_text("[pytest]\nbpfvm_boot_timeout = 1\n")
    run = vm_runner.run()
    first, second = run.message(f"test_one{ID}"), run.message(f"test_two{ID}")
    assert run.outcome(f"test_one{ID}") == "failed"
    assert "cannot boot: first boot: " in first and "\nsecond boot: " in first
    assert len(set(re.findall(r"console log: (\S+\.log)", first))) == 2, "both boots' logs"
    assert "(boot failed earlier in this run) first boot: " in second
    assert len(list(run.logdir.glob("console-*.log"))) == 2, "no third boot"
    fault_outcome(first, also=["second boot"])
