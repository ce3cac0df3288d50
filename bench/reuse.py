"""Kept VMs (--bpfvm-reuse): a second run, the edit-run loop, and four kernels, cold and warm.

Prints, measured in this run on this machine (each cold run boots; the
warm one after it attaches to the VMs the cold one kept):
  1. the smoke suite (suites/test_smoke.py): first result and wall time,
     cold and warm, and their ratio (goal: warm first result <= 2 s under
     TCG, and <= 0.1x the cold one)
  2. the edit-run loop on a copy of examples/xdp-proto-count: a test file
     and the BPF source edited, then rerun warm: first result and wall time,
     at once after the cold run and --pause seconds after the first rerun
  3. four kernels (--kernel 5.10,6.1,6.12,latest), trivial tests: cold and warm
(The cold first result against a bare `vng --exec true` is startup.py's figure 1.)

Usage: python bench/reuse.py [--accel tcg]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HERE, trivial_project

REPO = HERE.parent


def run(workdir: Path, rundir: Path, accel: str, *args: str) -> dict:
    """One pytest run with --bpfvm-reuse: wall time and first result, in seconds."""
    times = rundir / "times.json"
    env = dict(os.environ, BPFVM_BENCH_TIMES=str(times), PYTHONPATH=str(HERE),
               BPFVM_RUNDIR=str(rundir))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "timer_plugin",
           f"--accel={accel}", "--bpfvm-reuse", *args]
    started = time.time()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.time() - started
    if proc.returncode != 0 or "bpfvm: kept" not in proc.stdout:
        sys.exit(f"bench run failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    records = json.loads(times.read_text())
    return {"wall": wall, "first": records[0]["finish"] - started}


def stop_all(rundir: Path) -> None:
    subprocess.run([str(Path(sys.executable).with_name("bpfvm")), "vms", "stop", "--all"],
                   env=dict(os.environ, BPFVM_RUNDIR=str(rundir)), capture_output=True)


def pair(label: str, workdir: Path, accel: str, *args: str) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-run-") as rundir:
        try:
            cold = run(workdir, Path(rundir), accel, *args)
            warm = run(workdir, Path(rundir), accel, *args)
        finally:
            stop_all(Path(rundir))
    print(f"{label}: cold first result {cold['first']:.1f} s, wall {cold['wall']:.1f} s; "
          f"warm first result {warm['first']:.2f} s, wall {warm['wall']:.1f} s -> first result "
          f"{warm['first'] / cold['first']:.2f}x, wall {warm['wall'] / cold['wall']:.2f}x")
    return cold, warm


def edit(project: Path, n: int) -> None:
    """Edit a test file (a test added) and the BPF source, as an author does."""
    test = next((project / "tests").glob("test_*.py"))
    test.write_text(test.read_text() + f"\n\ndef test_added_in_edit_{n}():\n    pass\n")
    source = next((project / "bpf").glob("*.c"))
    source.write_text(source.read_text() + f"\n/* edit {n} */\n")


def edit_loop(accel: str, pause: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-") as tmp, \
            tempfile.TemporaryDirectory(prefix="bpfvm-bench-run-") as rundir:
        project = Path(tmp) / "xdp-proto-count"
        shutil.copytree(REPO / "examples" / "xdp-proto-count", project)
        try:
            cold = run(project, Path(rundir), accel)
            edit(project, 1)
            at_once = run(project, Path(rundir), accel)
            time.sleep(pause)
            edit(project, 2)
            later = run(project, Path(rundir), accel)
        finally:
            stop_all(Path(rundir))
    print(f"2. edit-run loop (a test and the BPF source edited, rerun warm): first result "
          f"{later['first']:.2f} s, wall {later['wall']:.1f} s; rerun at once after the cold "
          f"run, while its VM still imports what that run's tests did: {at_once['first']:.2f} s, "
          f"{at_once['wall']:.1f} s (the cold run: {cold['first']:.1f} s, {cold['wall']:.1f} s; "
          f"{pause:g} s between the reruns, as an edit takes)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    parser.add_argument("--pause", type=float, default=5.0,
                        help="seconds between the edit-run loop's reruns (the edit)")
    args = parser.parse_args(argv)
    pair("1. smoke suite on 6.12", REPO, args.accel, "suites/test_smoke.py", "--kernel=6.12")
    edit_loop(args.accel, args.pause)
    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-") as tmp:
        work = trivial_project(Path(tmp))
        pair("3. four kernels, 4 trivial tests each", work, args.accel,
             "--kernel=5.10,6.1,6.12,latest", *(f"test_trivial.py::test_{i}" for i in range(4)))


if __name__ == "__main__":
    main()
