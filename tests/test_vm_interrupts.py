"""Interrupts at the edges of a run: during a kernel fetch, during the KVM
probe, and with a VM's leash that cannot answer. Each signals a real inner
pytest; the fault fixture then counts what the run left (its processes,
leashes and vng included, its run directories, its mounts)."""
import os
import signal
import time
from pathlib import Path

import pytest

from bpfvm.host.kernels import cache
from bpfvm.host.vm import accel

from conftest import FAULT_MARK, VM_KERNEL, marked_processes

pytestmark = pytest.mark.slow


def wait_for(what, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what.__doc__} never happened within {timeout:.0f}s")


@pytest.mark.fault("SIGTERM to the host pytest during a kernel fetch")
def test_sigterm_during_a_fetch_leaves_no_entry_or_process(vm_runner, tmp_path, monkeypatch,
                                                          fault_outcome):
    slow = tmp_path / "apt-slow.conf"
    slow.write_text('Acquire::http::Dl-Limit "4000";\n')  # 4 MB/s: still downloading below
    monkeypatch.setenv("APT_CONFIG", str(slow))
    monkeypatch.setenv("BPFVM_CACHE", str(tmp_path / "cache"))
    vm_runner.write("def test_x():\n    pass\n")
    proc = vm_runner.start()
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "downloading" in line:
            break
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    run = vm_runner.finish(proc, timeout=60)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, "".join(seen) + run.output
    assert list((tmp_path / "cache" / "kernels").iterdir()) == []  # no entry, no staging
    fault_outcome(f"exit {run.returncode}, no cache entry or staging left\n{run.output}",
                  also=["KeyboardInterrupt"])


def probe_leash() -> list[int]:
    """the KVM probe's leash started"""
    found = []
    for pid, what in marked_processes(os.environ[FAULT_MARK]).items():
        try:
            if what == "leash" and b"bpfvm-probe-" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


@pytest.mark.parametrize("sig", [
    pytest.param(signal.SIGTERM, id="sigterm",
                 marks=pytest.mark.fault("SIGTERM to the host pytest during the KVM probe")),
    pytest.param(signal.SIGKILL, id="sigkill",
                 marks=pytest.mark.fault("SIGKILL to the host pytest during the KVM probe")),
])
def test_signal_during_the_kvm_probe_leaves_no_qemu(vm_runner, tmp_path, monkeypatch, sig,
                                                    fault_outcome):
    if not accel.kvm_device_usable():
        pytest.skip("host: /dev/kvm is missing or not accessible, so no KVM probe runs")
    kernels = tmp_path / "cache" / "kernels"  # a cache of its own: no probe remembered
    kernels.mkdir(parents=True)
    entry = f"{VM_KERNEL}-x86_64"
    (kernels / entry).symlink_to(cache.kernels_dir() / entry)
    monkeypatch.setenv("BPFVM_CACHE", str(tmp_path / "cache"))
    vm_runner.write("def test_x():\n    pass\n")
    proc = vm_runner.start("--accel=auto")
    # Where KVM fails at once, QEMU lives for milliseconds; the probe's leash
    # and virtme-ng (a Python program) for about a second before it.
    wait_for(probe_leash)
    proc.send_signal(sig)
    run = vm_runner.finish(proc, timeout=60)
    expected = -signal.SIGKILL if sig == signal.SIGKILL else pytest.ExitCode.INTERRUPTED
    assert run.returncode == expected, run.output
    assert not (tmp_path / "cache" / accel.STATE).exists(), "an interrupted probe is no verdict"
    assert "KVM does not work here" not in run.output, "the probe had ended before the signal"
    fault_outcome(f"exit {run.returncode}; the probe (leash, virtme-ng, QEMU) went with it")


@pytest.mark.fault("a VM's leash stopped (SIGSTOP) when the run is interrupted")
def test_a_stuck_leash_does_not_orphan_qemu(vm_runner, fault_outcome):
    vm_runner.write("""
        import time
        def test_long():
            time.sleep(600)
    """)
    proc = vm_runner.start()
    vm_runner.wait_for_console("bpfvm-begin 1")
    (leash,) = [pid for pid, what in marked_processes(os.environ[FAULT_MARK]).items()
                if what == "leash"]
    os.kill(leash, signal.SIGSTOP)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    run = vm_runner.finish(proc, timeout=120)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.output
    fault_outcome(f"exit {run.returncode} after {time.monotonic() - started:.0f}s "
                  f"(the leash's grace); its QEMU's group killed with it")
