"""A fresh session's namespaces: what one run's tests may change without the next seeing it.

A kept VM serves many runs. Each run's pytest is forked from the guest's
long-lived parent and enters new mount, IPC and UTS namespaces first. In
the new mount namespace bpffs at /sys/fs/bpf is a fresh one, and
/run/netns (where `ip netns` and pyroute2 pin named network namespaces) a
tmpfs of its own: pins, mounts, named namespaces (and what lives in them)
and IPC objects a test leaves die with the session.

The session stays in the initial network namespace: the kernel's
net.core.bpf_jit_* sysctls exist only there, and BPF tests read them. What
a test leaves there (interfaces, netdevsim devices, attached programs) is
found by leftovers.py after the session, and the VM is then not kept.

Every run enters these, kept VM or not, so a test sees the same world in both
(a kernel built without IPC or UTS namespaces, as virtme-ng's minimal
configs are, keeps the one it has).
"""
from __future__ import annotations

import ctypes
import errno
import os

from .system import libc_call, mount

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
BPFFS, NETNS_DIR = "/sys/fs/bpf", "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def enter() -> None:
    """Put this process into fresh namespaces (see the module's docstring)."""
    libc_call(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    for flag in (CLONE_NEWIPC, CLONE_NEWUTS):
        if _libc.unshare(flag) != 0 and ctypes.get_errno() != errno.EINVAL:
            libc_call(-1, f"unshare({flag:#x})")  # EINVAL: a kernel without CONFIG_IPC_NS/UTS_NS
    libc_call(_libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None),
              "making / private")
    mount("bpf", BPFFS)
    os.makedirs(NETNS_DIR, exist_ok=True)
    mount("tmpfs", NETNS_DIR)
