"""VMs alive at once: a four-kernel suite run with the pool unbounded
(--bpfvm-max-vms 0, the behaviour before the bound) against the default
bound, measured in this run.

A sampler reads /proc twice a second and counts QEMU processes per pytest
process (the parent of each VM's leash), so the peak per xdist worker is
what was really alive, not what the pool believes.

Usage: python bench/live_vms.py [--kernels 5.10,6.1,6.12,latest] [-n 2] [PATH]
"""
from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import HERE, target


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), for every process readable now."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found[int(proc.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def vms_per_owner() -> collections.Counter:
    """QEMU processes alive now, counted by the pytest process that owns their leash."""
    procs = _processes()
    owners: collections.Counter = collections.Counter()
    for pid, (_, cmdline) in procs.items():
        if not cmdline.split(" ", 1)[0].rsplit("/", 1)[-1].startswith("qemu-system"):
            continue
        while pid in procs and "bpfvm.host.vm.leash" not in procs[pid][1]:
            pid = procs[pid][0]
        if pid in procs:
            owners[procs[pid][0]] += 1
    return owners


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.per_owner = 0
        self.total = 0

    def run(self) -> None:
        while not self.done.wait(0.5):
            owners = vms_per_owner()
            self.per_owner = max(self.per_owner, max(owners.values(), default=0))
            self.total = max(self.total, sum(owners.values()))


def suite_run(path: Path, kernels: str, workers: int, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path),
           f"--kernel={kernels}", "--accel=tcg", "-n", str(workers), *extra]
    sampler = Sampler()
    sampler.start()
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=path if path.is_dir() else path.parent,
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    lines = proc.stdout.strip().splitlines()
    return {"wall": wall, "per_worker": sampler.per_owner, "total": sampler.total,
            "summary": lines[-1] if lines else proc.stderr.strip()[-300:]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(HERE.parent / "suites"))
    parser.add_argument("--kernels", default="5.10,6.1,6.12,latest")
    parser.add_argument("-n", dest="workers", type=int, default=2)
    args = parser.parse_args(argv)
    for kernel in args.kernels.split(","):
        target(kernel)
    path = Path(args.path).resolve()
    runs = {"unbounded (--bpfvm-max-vms 0)": suite_run(path, args.kernels, args.workers,
                                                       "--bpfvm-max-vms=0"),
            "default bound": suite_run(path, args.kernels, args.workers)}
    base = next(iter(runs.values()))["wall"]
    print(f"8. {path.name} on {args.kernels}, -n {args.workers} (accel tcg):")
    for name, run in runs.items():
        print(f"   {name}: {run['wall']:.0f} s ({run['wall'] / base:.2f}x), peak QEMU per "
              f"worker {run['per_worker']}, peak in all {run['total']}; {run['summary']}")


if __name__ == "__main__":
    main()
