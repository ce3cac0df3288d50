"""Every figure the README quotes, in one run on this machine.

  1-3. start-up and per-test cost (startup.py)
  4.   -n 2 over two kernels vs -n 1 (parallel.py)
  5.   kernel build from a cache miss and a hit (kbuild.py; the miss is a full
       kernel build, 5-30 min; --build-hit-only skips it)
  6.   XDP ns/packet per kernel (xdp_cost.py)
  7.   what installing bpfvm costs a project without VM tests (plugin_cost.py)

Usage: python bench/all.py [--kernel 6.12] [--accel tcg] [--build-hit-only]
"""
from __future__ import annotations

import argparse
import time

import kbuild
import plugin_cost
import parallel
import startup
import xdp_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="6.12")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    parser.add_argument("--build-hit-only", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    startup.main(["--kernel", args.kernel, "--accel", args.accel])
    parallel.main(["--kernels", f"5.10,{args.kernel}", "--accel", args.accel])
    kbuild.main(["--line", args.kernel] + (["--hit-only"] if args.build_hit_only else []))
    xdp_cost.main(["--accel", args.accel])
    plugin_cost.main([])
    print(f"(all figures measured in {(time.monotonic() - started) / 60:.0f} min)")


if __name__ == "__main__":
    main()
