"""Kernel problems on a real guest's console outside a test's window: at
boot, just after a test (its grace period), at shutdown; and the allowlist.

The splat lines are written to /dev/kmsg by the guest's own pytest (its
conftest and tests), at the moments each case needs: the kernel prints them
on the console like its own, and the host tells them apart by where and
when they land. tests/test_vm_faults.py has a splat the kernel makes itself.
"""
import re

import pytest

from conftest import VM_KERNEL

pytestmark = pytest.mark.slow
ID = f"[{VM_KERNEL}]"

GUEST_CONFTEST = """
import os, time

def kmsg(where):
    with open("/dev/kmsg", "w") as f:
        f.write(f"WARNING: CPU: 0 PID: 1 at {where}\\n")

def pytest_configure(config):
    if os.environ.get("BPFVM_GUEST"):
        kmsg("bpfvm-test-boot")

def pytest_unconfigure(config):
    if os.environ.get("BPFVM_GUEST"):
        time.sleep(4)  # past the grace period of the last test
        kmsg("bpfvm-test-shutdown")
"""


@pytest.mark.fault("kernel problem reports at boot, just after a test, and at shutdown")
def test_problems_outside_a_test_window_are_reported(vm_runner, fault_outcome):
    (vm_runner.base / "conftest.py").write_text(GUEST_CONFTEST)
    vm_runner.write("""
        import subprocess
        from conftest import kmsg

        def test_allowed():
            kmsg("bpfvm-test-allowed")

        def test_expired():
            kmsg("bpfvm-test-expired")

        def test_leaves_work_behind():
            subprocess.Popen(["sh", "-c", "sleep 0.5; echo 'WARNING: CPU: 0 PID: 1 at "
                                          "bpfvm-test-late' > /dev/kmsg"])
    """)
    (vm_runner.base / "pytest.ini").write_text(
        "[pytest]\nbpfvm_console_allow =\n"
        "    at bpfvm-test-allowed ; written by this test ; 2999-12-31\n"
        "    at bpfvm-test-expired ; written by this test ; 2000-01-01\n")
    run = vm_runner.run()
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.output
    assert run.outcome(f"test_allowed{ID}") == "passed"
    assert run.outcome(f"test_expired{ID}") == "failed"
    assert "allowed until 2000-01-01, now past: written by this test" in \
        run.message(f"test_expired{ID}")
    late = run.message(f"test_leaves_work_behind{ID}")  # its error, after its pass
    assert run.outcome(f"test_leaves_work_behind{ID}") == "failed"
    assert "after this test ended (within the 2s grace period)" in late
    assert "at bpfvm-test-late" in late
    boot, shutdown = (run.message(f"{kind}{ID}") for kind in ("boot", "shutdown"))
    assert "at boot, before the first test" in boot and "at bpfvm-test-boot" in boot
    assert f"at shutdown, after test_inner.py::test_leaves_work_behind{ID}" in shutdown
    assert "at bpfvm-test-shutdown" in shutdown and "bpfvm-test-late" not in shutdown
    for kind in ("boot", "shutdown"):
        assert f"ERROR bpfvm-console::{kind}{ID}" in run.output
    said = {name: re.search(r"on the console (.*?) \(console log", run.message(name)).group(1)
            for name in (f"boot{ID}", f"shutdown{ID}", f"test_leaves_work_behind{ID}")}
    fault_outcome("; ".join(f"{name}: {where}" for name, where in said.items()))
