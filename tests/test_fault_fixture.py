"""The fault table's leak count sees the run under test and nothing else."""
import os
import subprocess
import sys
import time

from conftest import FAULT_MARK, leftovers_since, marked_processes, mounts, run_dirs


def test_only_the_marked_runs_processes_count_leash_and_all(tmp_path):
    rundir = tmp_path / "bpfvm-run"
    rundir.mkdir()
    leash_r, leash_w = os.pipe()
    mine = subprocess.Popen(
        [sys.executable, "-m", "bpfvm.host.vm.leash", str(leash_r), str(rundir),
         str(tmp_path / "console.log"), "--", "sleep", "60"],
        pass_fds=(leash_r,), env=dict(os.environ, **{FAULT_MARK: "mine"}))
    os.close(leash_r)
    # Another bpfvm run's QEMU on the same machine: not this run's leak.
    theirs = subprocess.Popen(["bash", "-c", "exec -a qemu-system-x86_64 sleep 60"],
                              env=dict(os.environ, **{FAULT_MARK: "theirs"}))
    try:
        watched = [tmp_path]
        deadline = time.monotonic() + 10
        while "sleep" not in marked_processes("mine").values() and time.monotonic() < deadline:
            time.sleep(0.05)  # the leash starting its command
        left = leftovers_since("mine", mounts(watched), set(), tmp_path, watched, settle=0)
        assert "leash pid %d" % mine.pid in left
        assert any(item.startswith("sleep pid") for item in left)
        assert str(rundir) in left
        assert not any(item.startswith("QEMU") for item in left)
        assert "QEMU" in marked_processes("theirs").values()
    finally:
        os.close(leash_w)  # the leash's owner is gone: it kills sleep, removes rundir
        mine.wait(10)
        theirs.kill()
        theirs.wait()
    assert leftovers_since("mine", set(), set(), tmp_path, [tmp_path], settle=5) == []
    assert run_dirs(tmp_path) == set()
