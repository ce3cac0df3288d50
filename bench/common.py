"""What the benches share: a file of trivial VM tests, timed pytest runs, bare vng."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

HERE = Path(__file__).resolve().parent

from bpfvm.host.kernels import catalog, resolve  # noqa: E402
from bpfvm.host.tools import search_path  # noqa: E402
from bpfvm.host.vm.vm import VmOptions, boot_command  # noqa: E402
from bpfvm.target import Target, host_arch  # noqa: E402

TRIVIAL = "import pytest\npytestmark = pytest.mark.vm\n\n" + "".join(
    f"def test_{i}():\n    pass\n\n" for i in range(50))


def target(kernel: str) -> Target:
    """The kernel, fetched if the cache lacks it."""
    entries = catalog.load()
    found = resolve.parse(kernel, host_arch(), entries, catalog.load_flavours())
    resolve.materialize(found, entries, progress=print)
    return found


def trivial_project(work: Path) -> Path:
    (work / "pytest.ini").write_text("[pytest]\n")
    (work / "test_trivial.py").write_text(TRIVIAL)
    return work


def bare_vng(target: Target, accel: str) -> float:
    """`vng --exec true` as a user would run it, with bpfvm's QEMU accelerator settings.

    Its exit status is not checked: on hosts without udev virtme-ng cannot
    find its return-code port and exits 255 even when `true` succeeded.
    """
    cmd = boot_command(target, VmOptions(accel=accel), "true", verbose=False)
    started = time.monotonic()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=dict(os.environ, PATH=search_path()))
    return time.monotonic() - started


def pytest_run(workdir: Path, kernel: str, accel: str, tests: Sequence[str],
               *extra: str, path: str = "test_trivial.py") -> dict:
    """One pytest run of tests in path (all of path's, if none are named); its
    wall time and when each result arrived."""
    times = workdir / "times.json"
    env = dict(os.environ, BPFVM_BENCH_TIMES=str(times), PYTHONPATH=str(HERE))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "timer_plugin",
           f"--kernel={kernel}", f"--accel={accel}", *extra,
           *([f"{path}::{t}" for t in tests] or [path])]
    started = time.time()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.time() - started
    if proc.returncode != 0:
        sys.exit(f"bench run failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    records = json.loads(times.read_text())
    return {"wall": wall, "tests": records, "first_result": records[0]["finish"] - started}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
