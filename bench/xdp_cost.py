"""XDP program cost per kernel, in ns per packet, from BPF_PROG_TEST_RUN.

For each kernel, each program of bench/xdp_cost_guest.py runs 5 rounds of
20,000 repeats on one 60-byte UDP frame (the kernel reports the mean time
per run; the median round is shown), and again with
BPF_F_TEST_XDP_LIVE_FRAMES where the kernel has it (5.18+: the frames go
through the real XDP verdict handling, here dropped or passed to the
stack on lo). The ratio column compares each program with the empty
program on the same kernel, measured in the same run.

Usage: python bench/xdp_cost.py [--kernel 5.10,6.1,6.12,latest] [--accel tcg]
Under TCG the absolute figures are those of an emulated CPU; compare kernels
and programs with each other, not with hardware.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = "xdp_pass (empty)"


def run(kernels: str, accel: str, junit: Path) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--kernel={kernels}",
           f"--accel={accel}", f"--junitxml={junit}", str(HERE / "xdp_cost_guest.py")]
    proc = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench run failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")


def figures(junit: Path) -> dict[str, dict[str, dict[str, float]]]:
    """kernel -> program label -> {"test_run_ns": .., "live_ns": ..}."""
    table: dict = defaultdict(dict)
    for case in ET.parse(junit).iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        table[props["kernel"]][props["label"]] = {
            k: float(props[k]) for k in ("test_run_ns", "live_ns") if k in props}
    return table


def render(table: dict, kernels: list[str]) -> str:
    labels = list(next(iter(table.values())))
    head = f"{'program':<22}" + "".join(f"{k:>22}" for k in kernels)
    sub = f"{'test-run':>9} {'live':>6} {'x':>5}"
    lines = [head, f"{'':<22}" + "".join(f"{sub:>22}" for _ in kernels)]
    for label in labels:
        cells = []
        for kernel in kernels:
            row, base = table[kernel][label], table[kernel][BASELINE]
            live = f"{row['live_ns']:6.0f}" if "live_ns" in row else f"{'-':>6}"
            cells.append(f"{row['test_run_ns']:9.0f} {live} {row['test_run_ns'] / base['test_run_ns']:4.1f}x")
        lines.append(f"{label:<22}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="5.10,6.1,6.12,latest")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-") as tmp:
        junit = Path(tmp) / "junit.xml"
        run(args.kernel, args.accel, junit)
        table = figures(junit)
    kernels = [k for k in args.kernel.split(",") if k in table]
    print(f"6. XDP program cost, ns per packet (accel {args.accel}; x = test-run cost "
          f"relative to the empty program on the same kernel)")
    print(render(table, kernels))


if __name__ == "__main__":
    main()
