"""The guest's CPUs: which are online and possible, and running a block on one."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator


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
