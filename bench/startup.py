"""Start-up and per-test cost of bpfvm, against bare virtme-ng, on one kernel.

Prints, measured in this run on this machine:
  1. time to the first test result through bpfvm vs `vng --exec true`, in a
     project's later runs (the VM boots while the host collects) and in its
     first run (no record of its guests' imports yet: it boots after
     collection); medians of --repeat alternating rounds, as this machine's
     speed drifts
  1b. the same two for a copy of examples/xdp-proto-count whose BPF source
     was edited before each run (clang builds it on the host while the VM boots)
  2. median per-test overhead of trivial tests in a warm VM
  3. 50 trivial tests in one VM vs one boot per test (boot-per-test is
     the median single-test run of figure 1, times 50)

Usage: python bench/startup.py [--kernel 6.12] [--accel tcg] [--repeat 3]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from common import HERE, bare_vng, median, pytest_run, target, trivial_project

from bpfvm.host.vm import bundle

EXAMPLE = HERE.parent / "examples" / "xdp-proto-count"


def first_run(work: Path, kernel: str, accel: str, tests: list[str], **kw) -> dict:
    """A run as the project's first: what its earlier runs recorded is forgotten."""
    bundle.record_path(work).unlink(missing_ok=True)
    return pytest_run(work, kernel, accel, tests, **kw)


def edited(project: Path) -> Path:
    """project, its BPF source changed (the host rebuilds the object)."""
    source = project / "bpf" / "xdp_proto_count.c"
    source.write_text(source.read_text() + "\n/* edited */\n")
    return project


def ratios(label: str, early: list[float], late: list[float], bare: list[float]) -> str:
    b = median(bare)
    return (f"{label}: bpfvm {median(early):.1f} s -> {median(early) / b:.2f}x; "
            f"a project's first run {median(late):.1f} s -> {median(late) / b:.2f}x "
            f"(medians of {len(early)}; bpfvm {min(early):.1f}-{max(early):.1f} s, "
            f"first runs {min(late):.1f}-{max(late):.1f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="6.12")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds measured for figures 1 and 1b")
    args = parser.parse_args(argv)
    kernel = target(args.kernel)
    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-") as tmp:
        work = trivial_project(Path(tmp))
        example = Path(tmp) / "xdp-proto-count"
        shutil.copytree(EXAMPLE, example)
        bare, late, early, single = [], [], [], []
        ex_late, ex_early = [], []
        for i in range(args.repeat):
            bare.append(bare_vng(kernel, args.accel))
            late.append(first_run(work, args.kernel, args.accel, [f"test_{i}"])["first_result"])
            run = pytest_run(work, args.kernel, args.accel, [f"test_{i}"])
            early.append(run["first_result"])
            single.append(run["wall"])
            ex_late.append(first_run(edited(example), args.kernel, args.accel, [],
                                     path="tests")["first_result"])
            ex_early.append(pytest_run(edited(example), args.kernel, args.accel, [],
                                       path="tests")["first_result"])
        print(f"kernel {kernel.describe()}, accel {args.accel}; bare vng --exec true "
              f"{median(bare):.1f} s ({min(bare):.1f}-{max(bare):.1f} s)")
        print(ratios("1. first test result, trivial test", early, late, bare) + " (goal <= 1.5x)")
        print(ratios("1b. first test result, xdp-proto-count with its BPF source edited",
                     ex_early, ex_late, bare))

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
