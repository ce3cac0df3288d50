"""Booting before collection, with real guests: a project's second run starts its
first kernel's VM while the host is still collecting, runs in it, and nothing
of an early boot outlives a run that turns out not to need it."""
from __future__ import annotations

import json
import signal
import time

import pytest

from conftest import VM_KERNEL, qemu_pids

# The inner run's conftest notes whether a VM of this run is booting (its leash
# is up; QEMU may not be yet: vng starts it) once the host has collected,
# before -k or bpfvm look at the items, and again when collection is done.
SEES_BOOT = """
import json, os
from pathlib import Path
import pytest

def leashes():
    up = []
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\\0", b" ").decode()
        except OSError:
            continue
        if "bpfvm.host.vm.leash" in line and os.environ["TMPDIR"] in line:
            up.append(int(proc.name))
    return up

def note(when):
    if os.environ.get("BPFVM_GUEST"):
        return
    path = Path("booting.json")
    seen = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**seen, when: leashes()}))

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    note("collected")

def pytest_collection_finish(session):
    note("done")
"""
IN_GUEST = """
        from pathlib import Path
        def test_runs_in_the_guest(host_boot_id):
            assert Path("/proc/sys/kernel/random/boot_id").read_text().strip() != host_boot_id
"""


def booting(runner, clear: bool = False) -> dict[str, list[int]]:
    """What SEES_BOOT noted in the inner run."""
    path = runner.base / "booting.json"
    seen = json.loads(path.read_text())
    if clear:
        path.unlink()
    return seen


def remember_imports(runner) -> None:
    """The record a project's earlier run leaves (what its guests imported)."""
    from bpfvm.host.vm import bundle

    bundle.remember(runner.base, bundle.imported(runner.base))


def test_a_second_run_boots_while_it_collects(vm_runner):
    (vm_runner.base / "conftest.py").write_text(SEES_BOOT)
    vm_runner.write(IN_GUEST)
    first = vm_runner.run()
    assert first.outcome(f"test_runs_in_the_guest[{VM_KERNEL}]") == "passed", first.output
    assert booting(vm_runner)["collected"] == [], "a first run has no record to boot with"
    booting(vm_runner, clear=True)
    second = vm_runner.run()
    assert second.outcome(f"test_runs_in_the_guest[{VM_KERNEL}]") == "passed", second.output
    assert len(booting(vm_runner)["collected"]) == 1, "the second run did not boot before collecting"
    assert len(list(vm_runner.logdir.glob(f"console-{VM_KERNEL}-*.log"))) == 2, "one boot a run"


@pytest.mark.fault("a run that boots early, then collects no VM test")
def test_an_early_boot_the_run_does_not_need_is_stopped(vm_runner, fault_outcome):
    (vm_runner.base / "conftest.py").write_text(SEES_BOOT)
    vm_runner.write(IN_GUEST)
    remember_imports(vm_runner)
    run = vm_runner.run("-k", "no_such_test")
    fault_outcome(run.output.strip().splitlines()[-1])
    assert run.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, run.output
    seen = booting(vm_runner)
    assert len(seen["collected"]) == 1 and seen["done"] == [], "not stopped when collection ended"


@pytest.mark.fault("SIGINT to the host pytest while it collects, a VM booting")
def test_ctrl_c_while_collecting_stops_the_early_boot(vm_runner, fault_outcome):
    collecting = vm_runner.base / "collecting"
    vm_runner.write(f"""
        import time
        from pathlib import Path
        Path({str(collecting)!r}).touch()
        time.sleep(600)

        def test_never_run():
            pass
    """)
    remember_imports(vm_runner)
    proc = vm_runner.start()
    deadline = time.monotonic() + 120
    while not (collecting.exists() and qemu_pids(str(vm_runner.tmp))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    run = vm_runner.finish(proc, timeout=120)
    fault_outcome(run.output.strip().splitlines()[-1])
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.output
