"""Two kernels in one run: `-n 2` (one xdist worker, and VM, per kernel at a
time) against `-n 1`, on the same trivial tests, measured in this run.

Usage: python bench/parallel.py [--kernels 5.10,6.12] [--accel tcg] [--tests 20]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import pytest_run, target, trivial_project


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", default="5.10,6.12")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    parser.add_argument("--tests", type=int, default=20)
    args = parser.parse_args(argv)
    for kernel in args.kernels.split(","):
        target(kernel)
    tests = [f"test_{i}" for i in range(args.tests)]
    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-") as tmp:
        work = trivial_project(Path(tmp))
        serial = pytest_run(work, args.kernels, args.accel, tests, "-n", "1")["wall"]
        parallel = pytest_run(work, args.kernels, args.accel, tests, "-n", "2")["wall"]
    items = args.tests * len(args.kernels.split(","))
    print(f"4. {items} trivial tests on {args.kernels} (accel {args.accel}): -n 1 {serial:.1f} s, "
          f"-n 2 {parallel:.1f} s -> {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()
