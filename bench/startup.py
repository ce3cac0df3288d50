"""Start-up and per-test cost of bpfvm, against bare virtme-ng, on one kernel.

Prints, measured in this run on this machine:
  1. time to the first test result through bpfvm vs `vng --exec true`
  2. median per-test overhead of trivial tests in a warm VM
  3. 50 trivial tests in one VM vs one boot per test (boot-per-test is
     measured for --boots single-test runs and scaled to 50)

Usage: python bench/startup.py [--kernel 6.12] [--accel tcg] [--boots 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness.host import catalog, resolve  # noqa: E402
from harness.host.vm import VmOptions, _tool_path, vng_command  # noqa: E402
from harness.target import host_arch  # noqa: E402

TRIVIAL = "import pytest\npytestmark = pytest.mark.vm\n\n" + "".join(
    f"def test_{i}():\n    pass\n\n" for i in range(50))


def bare_vng(target, accel: str) -> float:
    """`vng --exec true` as a user would run it, with bpfvm's QEMU accelerator settings.

    Its exit status is not checked: on hosts without udev virtme-ng cannot
    find its return-code port and exits 255 even when `true` succeeded.
    """
    cmd = vng_command(target, VmOptions(accel=accel), Path("/dev/null"), "true")
    tcg = ["--qemu-opts=-accel tcg,thread=single"] if accel == "tcg" else []
    cmd = [c for c in cmd if not c.startswith("--qemu-opts=") and c != "--verbose"] + tcg
    started = time.monotonic()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=dict(os.environ, PATH=_tool_path()))
    return time.monotonic() - started


def bpfvm_run(workdir: Path, kernel: str, accel: str, tests: list[str]) -> dict:
    """One pytest run; its wall time and when each test's result arrived."""
    times = workdir / "times.json"
    env = dict(os.environ, BPFVM_BENCH_TIMES=str(times), PYTHONPATH=str(HERE))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "timer_plugin",
           f"--kernel={kernel}", f"--accel={accel}", *(f"test_trivial.py::{t}" for t in tests)]
    started = time.time()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.time() - started
    if proc.returncode != 0:
        sys.exit(f"bench run failed:\n{proc.stdout[-2000:]}")
    records = json.loads(times.read_text())
    return {"wall": wall, "tests": records, "first_result": records[0]["finish"] - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="6.12")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    parser.add_argument("--boots", type=int, default=3,
                        help="single-test runs to measure for the boot-per-test figure")
    args = parser.parse_args()
    target = resolve.parse(args.kernel, host_arch(), catalog.load())
    resolve.materialize(target, catalog.load(), progress=print)

    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-") as tmp:
        work = Path(tmp)
        (work / "pytest.ini").write_text("[pytest]\n")
        (work / "test_trivial.py").write_text(TRIVIAL)

        bare = bare_vng(target, args.accel)
        first = bpfvm_run(work, args.kernel, args.accel, ["test_0"])
        print(f"kernel {target.describe()}, accel {args.accel}")
        print(f"1. first test result: bpfvm {first['first_result']:.1f} s "
              f"(whole run {first['wall']:.1f} s), bare vng --exec true {bare:.1f} s "
              f"-> {first['first_result'] / bare:.2f}x (goal <= 1.3x)")

        warm = bpfvm_run(work, args.kernel, args.accel, [f"test_{i}" for i in range(50)])
        per_test = [t["finish"] - t["start"] for t in warm["tests"][1:]]
        median_ms = statistics.median(per_test) * 1000
        print(f"2. per-test overhead in a warm VM: median {median_ms:.0f} ms over "
              f"{len(per_test)} trivial tests (goal <= 50 ms)")

        singles = [bpfvm_run(work, args.kernel, args.accel, [f"test_{i}"])["wall"]
                   for i in range(1, args.boots + 1)]
        per_boot = statistics.mean(singles)
        projected = per_boot * 50
        print(f"3. 50 trivial tests: one VM {warm['wall']:.1f} s; one boot per test "
              f"{per_boot:.1f} s each over {args.boots} measured runs, x50 = {projected:.0f} s "
              f"-> {projected / warm['wall']:.1f}x faster (goal >= 20x)")


if __name__ == "__main__":
    main()
