"""VM integration tests: real guests, real faults, and nothing left behind.

Each test runs an inner pytest against a real kernel (BPFVM_TEST_KERNEL,
default 6.12) and checks what it reported; the vm_runner fixture then
checks that no QEMU process or run directory outlived the inner run.
"""
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import VM_KERNEL, children_of, qemu_pids

pytestmark = pytest.mark.slow
ID = f"[{VM_KERNEL}]"


def test_pass_and_fail_are_reported_per_test(vm_runner):
    vm_runner.write("""
        import os
        def test_ok(kernel):
            assert os.uname().release == kernel.release
        def test_bad():
            assert 1 + 1 == 3
    """)
    run = vm_runner.run("-v")
    assert f"test_ok{ID} PASSED" in run.output
    assert f"test_bad{ID} FAILED" in run.output
    assert run.outcome(f"test_ok{ID}") == "passed"
    assert "assert (1 + 1) == 3" in run.message(f"test_bad{ID}")
    assert run.returncode == 1


def test_panic_fails_that_test_and_the_vm_restarts(vm_runner):
    vm_runner.write("""
        def test_before():
            pass
        def test_panics():
            with open("/proc/sysrq-trigger", "w") as f:
                f.write("c")
        def test_after():
            pass
    """)
    run = vm_runner.run()
    assert run.outcome(f"test_before{ID}") == "passed"
    message = run.assert_blamed("test_panics", "the guest VM died", "Kernel panic")
    log = message.split("console log: ")[1].split()[0]
    assert Path(log).exists()
    assert len(list(run.logdir.glob("console-*.log"))) == 2, "expected a second boot"


def test_hang_is_killed_at_the_timeout(vm_runner):
    vm_runner.write("""
        import time
        def test_hangs():
            time.sleep(3600)
        def test_after():
            pass
    """)
    run = vm_runner.run("--bpfvm-timeout=20")
    run.assert_blamed("test_hangs", "timed out after 20s")
    assert f"FAILED test_inner.py::test_hangs{ID}" in run.output


def test_kernel_problem_report_fails_a_passing_test(vm_runner):
    """A kernel problem report on the console fails the test that caused it.

    Stock Debian kernels give userspace no switch for a WARN splat (5.10's
    generic-XDP WARN on an invalid action was backported into a pr_warn), so
    this uses the kernel's hung-task detector: a writer stuck in D state on a
    frozen filesystem makes the kernel print "INFO: task ... blocked".
    """
    vm_runner.write("""
        import subprocess, threading, time

        def sh(*args):
            proc = subprocess.run(args, capture_output=True, text=True)
            assert proc.returncode == 0, f"{args}: {proc.stderr}"

        def test_blocks_in_d_state(tmp_path):
            img, mnt = tmp_path / "fs.img", tmp_path / "mnt"
            mnt.mkdir()
            sh("modprobe", "loop")
            sh("truncate", "-s", "16M", str(img))
            sh("mkfs.ext4", "-q", str(img))
            sh("mount", "-o", "loop", str(img), str(mnt))
            with open("/proc/sys/kernel/hung_task_timeout_secs", "w") as f:
                f.write("1")
            sh("fsfreeze", "-f", str(mnt))
            writer = threading.Thread(target=lambda: open(mnt / "f", "w").close())
            writer.start()
            time.sleep(8)
            sh("fsfreeze", "-u", str(mnt))
            writer.join()
            sh("umount", str(mnt))

        def test_after():
            pass
    """)
    run = vm_runner.run()
    run.assert_blamed("test_blocks_in_d_state", "the kernel reported a problem on the console",
                      "blocked for more than")


def test_qemu_killed_from_outside_is_reported(vm_runner):
    vm_runner.write("""
        import time
        def test_victim():
            time.sleep(600)
        def test_after():
            pass
    """)
    proc = vm_runner.start()
    vm_runner.wait_for_console("bpfvm-begin 1")
    for pid in qemu_pids(str(vm_runner.tmp)):
        os.kill(pid, signal.SIGTERM)
    run = vm_runner.finish(proc)
    run.assert_blamed("test_victim", "the guest VM died", "terminating on signal 15")


def test_guest_worker_death_is_reported(vm_runner):
    vm_runner.write("""
        import os
        def test_kills_worker():
            os._exit(3)
        def test_after():
            pass
    """)
    run = vm_runner.run()
    run.assert_blamed("test_kills_worker", "the guest VM died")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_leaves_nothing(vm_runner, sig):
    vm_runner.write("""
        import time
        def test_long():
            time.sleep(600)
    """)
    proc = vm_runner.start()
    vm_runner.wait_for_console("bpfvm-begin 1")
    assert qemu_pids(str(vm_runner.tmp)), "the VM should be running now"
    proc.send_signal(sig)
    run = vm_runner.finish(proc, timeout=120)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.output


def test_xdist_worker_crash_leaves_nothing(vm_runner):
    vm_runner.write("""
        import time
        def test_long():
            time.sleep(600)
        def test_other():
            pass
    """)
    proc = vm_runner.start("-n", "1", "--bpfvm-timeout=120")
    vm_runner.wait_for_console("bpfvm-begin 1")
    workers = [p for p in children_of(proc.pid) if b"execnet" in Path(f"/proc/{p}/cmdline").read_bytes()
               or b"exec(eval(" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert workers, "no xdist worker found"
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while qemu_pids(str(vm_runner.tmp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not qemu_pids(str(vm_runner.tmp)), "the crashed worker's VM is still running"
    run = vm_runner.finish(proc)
    assert "crashed" in run.output
    assert run.outcome(f"test_long{ID}") == "failed"
    assert run.outcome(f"test_other{ID}") == "passed"
