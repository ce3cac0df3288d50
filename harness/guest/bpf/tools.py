"""Small guest-side helpers around the toolkit: bpftool's JSON, CPU pinning."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
from typing import Any, Iterator


def bpftool(*args: str) -> Any:
    """Run ``bpftool -j ARGS`` and return its JSON (None when it printed nothing)."""
    tool = shutil.which("bpftool", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if tool is None:
        raise FileNotFoundError(errno.ENOENT, "bpftool not found in the guest (a guest runs the "
                                "host's /usr): run bpfvm setup on the host")
    out = subprocess.run([tool, "-j", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bpftool {' '.join(args)} failed: {out.stderr.strip() or out.stdout}")
    return json.loads(out.stdout) if out.stdout.strip() else None


def online_cpus() -> list[int]:
    return _cpulist("/sys/devices/system/cpu/online")


def possible_cpus() -> list[int]:
    return _cpulist("/sys/devices/system/cpu/possible")


def _cpulist(path: str) -> list[int]:
    with open(path) as f:
        return _parse_cpulist(f.read())


def _parse_cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


@contextlib.contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run the block on one CPU (test runs execute on the calling CPU)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
