"""Section names newer than the guest's libbpf, taught to it through its own API.

Debian 12's libbpf 1.1 leaves a program in SEC("tcx/ingress"),
SEC("netfilter") or SEC("cgroup/connect_unix") without a type, so its load
fails before the kernel sees it, whatever the kernel could do. libbpf's
libbpf_register_prog_handler() maps such a name to the type and expected
attach type later libbpf versions give it (uapi values from linux/bpf.h);
registered once, and only for what this libbpf predates.
"""
from __future__ import annotations

from .libbpf import lib, version

SCHED_CLS, CGROUP_SOCK_ADDR, NETFILTER = 3, 18, 32
# name -> (program type, expected attach type, first libbpf version that knows it)
NEWER = {
    "netfilter": (NETFILTER, 45, (1, 2)),
    "tcx/ingress": (SCHED_CLS, 46, (1, 3)),
    "tcx/egress": (SCHED_CLS, 47, (1, 3)),
    "tc/ingress": (SCHED_CLS, 46, (1, 3)),
    "tc/egress": (SCHED_CLS, 47, (1, 3)),
    "cgroup/connect_unix": (CGROUP_SOCK_ADDR, 49, (1, 3)),
    "cgroup/sendmsg_unix": (CGROUP_SOCK_ADDR, 50, (1, 3)),
    "cgroup/recvmsg_unix": (CGROUP_SOCK_ADDR, 51, (1, 3)),
    "cgroup/getpeername_unix": (CGROUP_SOCK_ADDR, 52, (1, 3)),
    "cgroup/getsockname_unix": (CGROUP_SOCK_ADDR, 53, (1, 3)),
    "netkit/primary": (SCHED_CLS, 54, (1, 3)),
    "netkit/peer": (SCHED_CLS, 55, (1, 3)),
}
_registered = False


def register_newer() -> None:
    """Teach this process's libbpf the section names it is older than."""
    global _registered
    if _registered:
        return
    _registered = True
    have = version()
    for name, (prog_type, attach_type, since) in NEWER.items():
        if have < since:
            lib.libbpf_register_prog_handler(name.encode(), prog_type, attach_type, None)
