"""VM integration tests: real guests, real faults, and nothing left behind.

Each test runs an inner pytest against a real kernel (BPFVM_TEST_KERNEL,
default 6.12) and checks what it reported; the vm_runner fixture then
checks that no QEMU process or run directory outlived the inner run.
"""
import json
import os
import signal
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import bpfvm
from bpfvm.host import tools
from bpfvm.target import host_arch

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


@pytest.mark.fault("guest kernel panic")
def test_panic_fails_that_test_and_the_vm_restarts(vm_runner, fault_outcome):
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
    fault_outcome(message, also=["Kernel panic"])
    log = message.split("console log: ")[1].split()[0]
    assert Path(log).exists()
    assert len(list(run.logdir.glob("console-*.log"))) == 2, "expected a second boot"


@pytest.mark.fault("guest hang")
def test_hang_is_killed_at_the_timeout(vm_runner, fault_outcome):
    vm_runner.write("""
        import time
        def test_hangs():
            time.sleep(3600)
        def test_after():
            pass
    """)
    run = vm_runner.run("--bpfvm-timeout=20")
    fault_outcome(run.assert_blamed("test_hangs", "timed out after 20s"))
    assert f"FAILED test_inner.py::test_hangs{ID}" in run.output


@pytest.mark.fault("kernel problem report (WARN/oops/hung task) during a test")
def test_kernel_problem_report_fails_a_passing_test(vm_runner, fault_outcome):
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
    fault_outcome(run.assert_blamed("test_blocks_in_d_state",
                                    "the kernel reported a problem on the console",
                                    "blocked for more than"), also=["blocked for more than"])


@pytest.mark.fault("QEMU killed from outside")
def test_qemu_killed_from_outside_is_reported(vm_runner, fault_outcome):
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
    fault_outcome(run.assert_blamed("test_victim", "the guest VM died",
                                    "terminating on signal 15"), also=["terminating on signal 15"])


@pytest.mark.fault("the guest worker process dies")
def test_guest_worker_death_is_reported(vm_runner, fault_outcome):
    vm_runner.write("""
        import os
        def test_kills_worker():
            os._exit(3)
        def test_after():
            pass
    """)
    run = vm_runner.run()
    fault_outcome(run.assert_blamed("test_kills_worker", "the guest VM died"))


# Raw bytes a guest test writes into the bpfvm channel, on the worker's own fd.
FRAME = "(lambda body: struct.pack('>I', len(body)) + body)"
GARBAGE = {
    "not_json": f"{FRAME}(b'{{not json')",
    "unknown_event": f"{FRAME}(b'{{\"ev\": \"bogus\"}}')",
    "oversized": "struct.pack('>I', 0xffffffff)",
}


@pytest.mark.parametrize("kind, said", [
    pytest.param("not_json", "a message that is not JSON: {not json",
                 marks=pytest.mark.fault("a guest message that is not JSON")),
    pytest.param("unknown_event", "an unknown event bogus",
                 marks=pytest.mark.fault("a guest message with an unknown event")),
    pytest.param("oversized", "a message of 4294967295 bytes",
                 marks=pytest.mark.fault("an oversized guest message")),
])
def test_a_bad_guest_message_fails_only_the_test_in_flight(vm_runner, fault_outcome, kind, said):
    vm_runner.write(f"""
        import os, struct
        def test_garbage(request):
            session = next(p for p in request.config.pluginmanager.get_plugins()
                           if type(p).__name__ == "GuestSession")
            os.write(session.link.fd, {GARBAGE[kind]})
            import time; time.sleep(30)
        def test_after():
            pass
    """)
    run = vm_runner.run()
    message = run.assert_blamed("test_garbage", f"the guest sent {said}",
                                "the VM was killed and is booted anew")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.output
    fault_outcome(message)


@pytest.mark.parametrize("sig", [
    pytest.param(signal.SIGINT, id="ctrl-c", marks=pytest.mark.fault("Ctrl-C to the host pytest")),
    pytest.param(signal.SIGTERM, id="sigterm", marks=pytest.mark.fault("SIGTERM to the host pytest")),
])
def test_interrupted_run_leaves_nothing(vm_runner, sig, fault_outcome):
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
    fault_outcome(f"exit {run.returncode}\n{run.output}", also=["KeyboardInterrupt"])


@pytest.mark.fault("an xdist worker killed (SIGKILL)")
def test_xdist_worker_crash_leaves_nothing(vm_runner, fault_outcome):
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
    fault_outcome(f"test_long failed: {run.message(f'test_long{ID}')}; test_other passed")


def accel_properties(run_dir: Path) -> set[str]:
    root = ET.parse(run_dir / "junit.xml").getroot()
    return {p.get("value") for p in root.iter("property") if p.get("name") == "accel"}


@pytest.mark.fault("KVM present but broken, --accel auto")
def test_broken_kvm_is_probed_and_tcg_used(vm_runner, fault_outcome):
    vm_runner.write("""
        def test_runs():
            pass
    """)
    run = vm_runner.run("--accel=auto", hide=["/dev/kvm"])
    warning = [line for line in run.output.splitlines() if "KVM does not work here" in line]
    assert warning and "failed to initialize kvm" in warning[0], run.output
    assert run.outcome(f"test_runs{ID}") == "passed"
    assert accel_properties(vm_runner.base) == {"tcg"}
    fault_outcome(warning[0])


@pytest.mark.fault("KVM present but broken, --accel kvm forced")
def test_forced_broken_kvm_fails_each_test_with_the_fix(vm_runner, fault_outcome):
    vm_runner.write("""
        def test_a():
            pass
        def test_b():
            pass
    """)
    run = vm_runner.run("--accel=kvm", hide=["/dev/kvm"])
    for name in ("test_a", "test_b"):
        assert run.outcome(f"{name}{ID}") == "failed", run.output
        message = run.message(f"{name}{ID}")
        assert "KVM failed during boot (failed to initialize kvm)" in message
        assert "use --accel auto (probes KVM, falls back to TCG) or --accel tcg" in message
        assert "second boot" not in message  # KVM's own failure is not tried again
    assert len(list(run.logdir.glob("console-*.log"))) == 1
    fault_outcome(run.message(f"test_a{ID}"))


@pytest.mark.fault("QEMU not installed")
def test_missing_qemu_is_one_line(vm_runner, fault_outcome):
    vm_runner.write("""
        def test_x():
            pass
    """)
    qemu = tools.QEMU[host_arch()]
    run = vm_runner.run(hide=[tools.require(qemu)])
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR: ")]
    assert errors == [f"ERROR: {qemu} not found: {tools.install_hint(qemu)}"]
    fault_outcome(errors[0])


@pytest.mark.parametrize("tool, use", [
    pytest.param("clang", "bpf_object('tiny')", marks=pytest.mark.fault("clang not installed")),
    pytest.param("bpftool", "bpf.bpftool('prog', 'show')",
                 marks=pytest.mark.fault("bpftool not installed")),
])
def test_missing_tool_fails_the_test_using_it(vm_runner, fault_outcome, tool, use):
    (vm_runner.base / "bpf").mkdir()
    (vm_runner.base / "bpf" / "tiny.c").write_text(TINY_BPF)
    vm_runner.write(f"""
        from bpfvm import bpf
        def test_uses_tool(bpf_object):
            {use}
        def test_after():
            pass
    """)
    run = vm_runner.run(hide=[tools.require(tool)])
    message = run.assert_blamed("test_uses_tool", f"{tool} not found",
                                "bpfvm setup")
    fault_outcome(message)


TINY_BPF = """
__attribute__((section("xdp"), used)) int tiny(void *ctx) { return 2; }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
"""


@pytest.mark.fault("a guest writes to /etc, /usr, the project tree and bpfvm's own files")
def test_guest_writes_do_not_reach_the_host(vm_runner, fault_outcome):
    mark = f"bpfvm-isolation-{os.getpid()}-{time.monotonic_ns()}"
    ini, keep = vm_runner.base / "pytest.ini", vm_runner.base / "keep.txt"
    keep.write_text("the guest must not delete this\n")
    writes = {"/etc": Path("/etc", mark), "/usr": Path("/usr", mark),
              "the project tree": vm_runner.base / mark,
              "bpfvm's package": Path(bpfvm.__file__).parent / mark, "pytest.ini": ini}
    vm_runner.write(f"""
        import json, os
        def test_writes():
            tried = {{}}
            for what, path in {({k: str(v) for k, v in writes.items()})!r}.items():
                try:
                    with open(path, "a") as f:
                        f.write("written by the guest\\n")
                    tried[what] = "written"
                except OSError as e:
                    tried[what] = e.strerror
            try:
                os.unlink({str(keep)!r})
                tried["deleting a project file"] = "done"
            except OSError as e:
                tried["deleting a project file"] = e.strerror
            print("TRIED", json.dumps(tried))
    """)
    ini_before = ini.read_bytes()
    try:
        run = vm_runner.run("-rP")
        assert run.outcome(f"test_writes{ID}") == "passed", run.output
        tried = json.loads(run.output.split("TRIED ", 1)[1].splitlines()[0])
        assert [p for w, p in writes.items() if w != "pytest.ini" and p.exists()] == []
        assert ini.read_bytes() == ini_before
        assert keep.read_text() == "the guest must not delete this\n"
    finally:
        for what, path in writes.items():
            if what != "pytest.ini":
                path.unlink(missing_ok=True)
    fault_outcome("in the guest: " + ", ".join(f"{w}: {r}" for w, r in tried.items())
                  + "; on the host: nothing changed")
