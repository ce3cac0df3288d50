"""What a session left outside its namespaces, told by comparing with the VM at boot.

A kept VM is reused only if the kernel state outside a session's
namespaces is what it was when the VM booted. After each session the
guest's parent kills the processes the session left in its own mount
namespace or in network namespaces it made (they would keep those alive),
unloads the modules it loaded,
and then compares: netdevsim devices, interfaces and mounts of the
initial namespaces, BPF programs, maps and links (any still alive after
the session's processes are gone is attached, pinned or held somewhere),
pins in the initial bpffs, modules still loaded, processes still running.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from . import system
from .bpf import libbpf

Snapshot = dict[str, set[str]]
NAMESPACES = ("mnt", "net")
SETTLE = 3.0  # seconds freed BPF objects and exiting processes may take to go


def _names(path: str) -> set[str]:
    try:
        return set(os.listdir(path))
    except OSError:
        return set()


def _pins(root: str = "/sys/fs/bpf") -> set[str]:
    return {os.path.join(d, f)[len(root) + 1:] for d, _, files in os.walk(root) for f in files}


def _modules() -> set[str]:
    return {line.split()[0] for line in Path("/proc/modules").read_text().splitlines()}


def processes() -> dict[int, str]:
    """pid -> name of the userspace processes (kernel threads have no executable)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                os.readlink(entry / "exe")
                found[int(entry.name)] = (entry / "comm").read_text().strip()
            except OSError:
                continue
    return found


def _bpf(kind: str) -> Callable[[], set[str]]:
    return lambda: {str(i) for i in libbpf.object_ids(kind)}


PROBES: dict[str, Callable[[], set[str]]] = {
    "netdevsim device": lambda: _names("/sys/bus/netdevsim/devices"),
    "interface": lambda: _names("/sys/class/net"),
    "mount": lambda: {f"{point} ({kind})" for _, point, kind in system.mount_table()},
    "module": _modules,
    "BPF program": _bpf("prog"),
    "BPF map": _bpf("map"),
    "BPF link": _bpf("link"),
    "pinned object": _pins,
    "process": lambda: {f"{pid} ({name})" for pid, name in processes().items()},
}


def snapshot() -> Snapshot:
    return {what: probe() for what, probe in PROBES.items()}


def compare(baseline: Snapshot, now: Snapshot) -> list[str]:
    """One line per thing in now that baseline does not have."""
    return [f"{what} {name}" for what, names in now.items()
            for name in sorted(names - baseline.get(what, set()))]


def clean_up(baseline: Snapshot, left: list[str]) -> None:
    """End what the session left inside its own namespaces: its processes
    (in a mount or network namespace not this one's), and the modules it loaded
    (unloading fails, harmlessly, while one is in use: a dying namespace
    may still hold it)."""
    mine = [os.readlink(f"/proc/self/ns/{ns}") for ns in NAMESPACES]
    for pid in set(processes()) - {int(p.split()[0]) for p in baseline["process"]}:
        try:
            if [os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES] != mine:
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    for line in left:
        if line.startswith("module "):
            subprocess.run(["modprobe", "-r", "-q", line.split()[1]], capture_output=True,
                           check=False)


def reap() -> None:
    """Collect the exit status of the session's orphans (the parent is their
    subreaper), so that none lingers as a zombie into the next session."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def check(baseline: Snapshot, settle: float = SETTLE) -> list[str]:
    """What the last session left outside its namespaces (empty: the VM is as booted)."""
    deadline = time.monotonic() + settle
    while True:
        reap()
        left = compare(baseline, snapshot())
        if not left or time.monotonic() > deadline:
            return left
        clean_up(baseline, left)
        time.sleep(0.1)
