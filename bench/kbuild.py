"""Kernel build time from a cache miss and from a hit, measured in this run.

The miss builds a catalog line's Debian linux-source as a flavour into an
empty, temporary BPFVM_CACHE (so the machine's cache is not touched):
download, unpack, configure, compile, install modules. ccache is used as in
any build (warm when this machine built the same source before); --cold
turns it off. The hits are `bpfvm kernels build` again (asks the mirror
whether the source changed) and the lookup pytest does (no mirror).
Also printed: the build times recorded by the builds in the machine's cache.

Usage: python bench/kmake.py [--line 6.12] [--flavour test] [--cold] [--hit-only]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import HERE
from bpfvm.host.kernels import buildcache, cache, catalog
from bpfvm.target import host_arch


def bpfvm_build(line: str, flavour: str, env: dict) -> float:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bpfvm.host.cli", "kernels", "build", line,
                           "--flavour", flavour], cwd=HERE.parent, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench build failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.monotonic() - started


def lookup(line: str, flavour: str) -> float:
    fl = catalog.load_flavours()[flavour]
    started = time.monotonic()
    found = buildcache.cached(line, fl, host_arch())
    elapsed = time.monotonic() - started
    if found is None:
        sys.exit(f"bench: {line}-{flavour} is not in {cache.kernels_dir()} after building it")
    return elapsed


def recorded() -> list[str]:
    lines = []
    for manifest_path in sorted(cache.kernels_dir().glob(f"*/{cache.MANIFEST}")):
        manifest = json.loads(manifest_path.read_text())
        if "build_seconds" in manifest:
            s = manifest["build_seconds"]
            lines.append(f"{manifest['name']}-{manifest['arch']} {s // 60}m{s % 60:02d}s")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line", default="6.12")
    parser.add_argument("--flavour", default="test")
    parser.add_argument("--cold", action="store_true", help="build without ccache")
    parser.add_argument("--hit-only", action="store_true",
                        help="measure hits on the machine's cache, skip the miss")
    args = parser.parse_args(argv)
    name = f"{args.line}-{args.flavour}"
    history = ", ".join(recorded()) or "none"
    if args.hit_only:
        hit = bpfvm_build(args.line, args.flavour, dict(os.environ))
        print(f"5. kernel build {name}: miss not measured (--hit-only); hit: bpfvm kernels build "
              f"{hit:.1f} s, pytest's lookup {lookup(args.line, args.flavour) * 1000:.0f} ms; "
              f"recorded builds: {history}")
        return
    with tempfile.TemporaryDirectory(prefix="bpfvm-bench-cache-", dir=cache.cache_dir().parent) as tmp:
        env = dict(os.environ, BPFVM_CACHE=tmp)
        if args.cold:
            env["CCACHE_DISABLE"] = "1"
        miss = bpfvm_build(args.line, args.flavour, env)
        hit = bpfvm_build(args.line, args.flavour, env)
        os.environ["BPFVM_CACHE"] = tmp  # lookup() reads the cache dir from the environment
        try:
            found = lookup(args.line, args.flavour)
        finally:
            del os.environ["BPFVM_CACHE"]
    ccache = "without ccache" if args.cold else "ccache as left by earlier builds"
    print(f"5. kernel build {name} ({ccache}): miss {miss / 60:.1f} min; hit: bpfvm kernels "
          f"build {hit:.1f} s, pytest's lookup {found * 1000:.0f} ms -> miss/hit "
          f"{miss / hit:.0f}x; recorded builds: {history}")


if __name__ == "__main__":
    main()
