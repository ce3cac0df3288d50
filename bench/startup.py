"""Start-up and per-test cost of bpfvm, against bare virtme-ng, on one kernel.

Prints, measured in this run on this machine:
  1. time to the first test result through bpfvm vs `vng --exec true`
     (median of --repeat alternating pairs: this machine's speed drifts)
  2. median per-test overhead of trivial tests in a warm VM
  3. 50 trivial tests in one VM vs one boot per test (boot-per-test is
     the median single-test run of figure 1, times 50)

Usage: python bench/startup.py [--kernel 6.12] [--accel tcg] [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import bare_vng, median, pytest_run, target, trivial_project


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="6.12")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    parser.add_argument("--repeat", type=int, default=3,
                        help="bare/bpfvm pairs measured for figure 1")
    args = parser.parse_args(argv)
    kernel = target(args.kernel)
    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-") as tmp:
        work = trivial_project(Path(tmp))
        bare, first, single = [], [], []
        for i in range(args.repeat):
            bare.append(bare_vng(kernel, args.accel))
            run = pytest_run(work, args.kernel, args.accel, [f"test_{i}"])
            first.append(run["first_result"])
            single.append(run["wall"])
        print(f"kernel {kernel.describe()}, accel {args.accel}")
        print(f"1. first test result: bpfvm {median(first):.1f} s, bare vng --exec true "
              f"{median(bare):.1f} s -> {median(first) / median(bare):.2f}x "
              f"(medians of {args.repeat}; bpfvm {min(first):.1f}-{max(first):.1f} s, "
              f"bare {min(bare):.1f}-{max(bare):.1f} s) (goal <= 1.5x)")

        warm = pytest_run(work, args.kernel, args.accel, [f"test_{i}" for i in range(50)])
        per_test = [t["finish"] - t["start"] for t in warm["tests"][1:]]
        print(f"2. per-test overhead in a warm VM: median {statistics.median(per_test) * 1000:.0f}"
              f" ms over {len(per_test)} trivial tests (goal <= 50 ms)")

        projected = median(single) * 50
        print(f"3. 50 trivial tests: one VM {warm['wall']:.1f} s; one boot per test "
              f"{median(single):.1f} s each (whole single-test runs above), x50 = "
              f"{projected:.0f} s -> {projected / warm['wall']:.1f}x faster (goal >= 20x)")


if __name__ == "__main__":
    main()
