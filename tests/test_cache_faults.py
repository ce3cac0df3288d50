"""Faults of the kernel cache, made real: a full disk under BPFVM_CACHE."""
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 40 MiB tmpfs: room for the package lists, not for a kernel package."""
    if os.geteuid() != 0:
        pytest.skip("host: mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full_while_fetching_is_one_line_and_leaves_nothing(small_disk):
    proc = subprocess.run([sys.executable, "-m", "harness.host.cli", "kernels", "fetch", "6.12",
                           "--arch", "x86_64"], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, BPFVM_CACHE=str(small_disk)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bpfvm: no space left for the cache in {small_disk} (")
    assert last.endswith("free some, or set BPFVM_CACHE to a directory on a larger disk")
    assert sorted(p.name for p in (small_disk / "kernels").iterdir()) == []
