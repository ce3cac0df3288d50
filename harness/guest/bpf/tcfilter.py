"""cls_bpf filters with the flags libbpf's TC API leaves out: skip_sw, skip_hw, chains.

libbpf's bpf_tc_attach() always asks for a filter the kernel may run in
software or hardware as it likes; offloading (skip_sw), software-only
filters (skip_hw) and chains other than 0 need the generic filter flags.
The request goes out through pyroute2, whose cls_bpf options stop short of
TCA_BPF_FLAGS_GEN (and its tcmsg of TCA_CHAIN), so this module declares the
message with those attributes; refusals are OSError with the kernel's errno
and extack.
Filters are read back with iproute2's ``tc -j filter show``.
"""
from __future__ import annotations

import errno
import functools
import json
import shutil
import socket
import subprocess
from typing import Any, Optional

from .. import netns
from .attach import Interface, NetAttachment, inside, netlink_error

ETH_P_ALL = 0x0003
TC_H_CLSACT = 0xFFFFFFF1
PARENTS = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}  # TC_H_MAKE(TC_H_CLSACT, MIN_*)
TCA_BPF_FLAG_ACT_DIRECT = 1 << 0
TCA_CLS_FLAGS_SKIP_HW = 1 << 0
TCA_CLS_FLAGS_SKIP_SW = 1 << 1


@functools.lru_cache(maxsize=None)
def _messages():
    """The pyroute2 message class for a cls_bpf filter with every attribute named.

    Declared on nlmsg with tcmsg's layout rather than as a subclass of tcmsg:
    pyroute2 compiles a class's attribute map once, into class attributes, and a
    subclass of a tcmsg already compiled (by any earlier qdisc dump) would use the
    parent's map and silently drop the attributes added here.
    """
    from pyroute2.netlink import nla, nlmsg
    from pyroute2.netlink.rtnl.tcmsg import tcmsg

    class BpfOptions(nla):
        nla_map = (("TCA_BPF_UNSPEC", "none"), ("TCA_BPF_ACT", "hex"),
                   ("TCA_BPF_POLICE", "hex"), ("TCA_BPF_CLASSID", "uint32"),
                   ("TCA_BPF_OPS_LEN", "uint16"), ("TCA_BPF_OPS", "hex"),
                   ("TCA_BPF_FD", "uint32"), ("TCA_BPF_NAME", "asciiz"),
                   ("TCA_BPF_FLAGS", "uint32"), ("TCA_BPF_FLAGS_GEN", "uint32"),
                   ("TCA_BPF_TAG", "hex"), ("TCA_BPF_ID", "uint32"))

    class BpfFilterMsg(nlmsg):
        prefix = tcmsg.prefix
        fields = tcmsg.fields
        nla_map = (("TCA_UNSPEC", "none"), ("TCA_KIND", "asciiz"),
                   ("TCA_OPTIONS", "get_options"), ("TCA_STATS", "hex"), ("TCA_XSTATS", "hex"),
                   ("TCA_RATE", "hex"), ("TCA_FCNT", "hex"), ("TCA_STATS2", "hex"),
                   ("TCA_STAB", "hex"), ("TCA_PAD", "hex"), ("TCA_DUMP_INVISIBLE", "flag"),
                   ("TCA_CHAIN", "uint32"))

        @staticmethod
        def get_options(self, *argv, **kwarg):
            return BpfOptions

    return BpfFilterMsg


def message(msg_type: int, flags: int, ifindex: int, parent: int, info: int = 0,
            kind: Optional[str] = None, options: Optional[list] = None,
            chain: Optional[int] = None) -> Any:
    """A tc request (pyroute2 message) for ifindex's qdisc or filter at parent."""
    msg = _messages()()
    msg["family"], msg["index"], msg["parent"], msg["info"] = socket.AF_UNSPEC, ifindex, parent, info
    attrs = [["TCA_KIND", kind]] if kind else []
    if options is not None:
        attrs.append(["TCA_OPTIONS", {"attrs": options}])
    if chain is not None:
        attrs.append(["TCA_CHAIN", chain])
    msg["attrs"] = attrs
    msg["header"]["type"], msg["header"]["flags"] = msg_type, flags
    return msg


def _request(msg_type: int, flags: int, what: str, ifindex: int, parent: int, info: int = 0,
             kind: Optional[str] = None, options: Optional[list] = None,
             chain: Optional[int] = None) -> None:
    """One tc netlink request in the caller's namespace; NetlinkError becomes OSError."""
    from pyroute2 import IPRoute
    from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
    from pyroute2.netlink.exceptions import NetlinkError

    msg = message(msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, ifindex, parent, info, kind,
                  options, chain)
    with IPRoute(ext_ack=True) as ipr:
        try:
            ipr.nlm_request_batch([msg])  # (IPRoute.nlm_request fails in pyroute2 0.9.7)
        except NetlinkError as e:
            raise netlink_error(e, what) from None


def tc_json(*args: str) -> Any:
    """``tc -j ARGS`` in the caller's namespace, parsed."""
    tool = shutil.which("tc") or "/usr/sbin/tc"
    proc = subprocess.run([tool, "-j", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"tc -j {' '.join(args)}: {proc.stderr.strip()}")
    return json.loads(proc.stdout or "[]")


def filters(iface: Interface, direction: str = "ingress") -> list[dict[str, Any]]:
    """The BPF filters on iface's clsact hook, from ``tc -j filter show``.

    Each is tc's JSON for one filter with its ``options`` merged in: pref,
    chain, handle, bpf_name, direct_action, in_hw / not_in_hw, skip_hw,
    skip_sw, prog (id, tag, ...).
    """
    with inside(iface) as (_, name):
        shown = tc_json("filter", "show", "dev", name, direction)
    return [{**{k: v for k, v in f.items() if k != "options"}, **f["options"]}
            for f in shown if "options" in f]


class TcFilter(NetAttachment):
    """A cls_bpf direct-action filter on a clsact hook.

    skip_sw offloads it (the device must take it, or the add fails),
    skip_hw keeps it in software; neither lets the kernel try both. The
    clsact qdisc is removed again on detach if this filter added it.
    """

    def __init__(self, prog_fd: int, prog_name: str, iface: Interface,
                 direction: str = "ingress", *, skip_sw: bool = False, skip_hw: bool = False,
                 chain: int = 0, priority: int = 1):
        from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
        from pyroute2.netlink.rtnl import RTM_NEWQDISC, RTM_NEWTFILTER

        if direction not in PARENTS:
            raise ValueError(f"TC direction {direction!r}: use ingress or egress")
        self.direction, self.chain, self.priority = direction, chain, priority
        flags = (TCA_CLS_FLAGS_SKIP_SW if skip_sw else 0) | (TCA_CLS_FLAGS_SKIP_HW if skip_hw else 0)
        with inside(iface) as (self.ifindex, self.name):
            try:
                _request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, f"add clsact to {self.name}",
                         self.ifindex, TC_H_CLSACT, kind="clsact")
                self.created_qdisc = True
            except FileExistsError:
                self.created_qdisc = False
            try:
                _request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL,
                         f"TC filter ({direction}, chain {chain}) on {self.name}", self.ifindex,
                         PARENTS[direction], (priority << 16) | socket.htons(ETH_P_ALL), "bpf",
                         [["TCA_BPF_FD", prog_fd], ["TCA_BPF_NAME", prog_name],
                          ["TCA_BPF_FLAGS", TCA_BPF_FLAG_ACT_DIRECT],
                          ["TCA_BPF_FLAGS_GEN", flags]], chain)
            except OSError:
                self._remove_clsact()
                raise
            super().__init__()

    def __repr__(self) -> str:
        return f"<TcFilter {self.name} {self.direction} chain {self.chain} pref {self.priority}>"

    def _remove_clsact(self) -> None:
        from pyroute2.netlink.rtnl import RTM_DELQDISC

        if self.created_qdisc:
            _request(RTM_DELQDISC, 0, f"remove clsact from {self.name}", self.ifindex,
                     TC_H_CLSACT, kind="clsact")

    def show(self) -> Optional[dict[str, Any]]:
        """This filter as ``filters()`` reports it (None once it is gone)."""
        with netns.entered(self.netns):
            return next((f for f in filters(self.name, self.direction)
                         if f.get("chain", 0) == self.chain and f.get("pref") == self.priority),
                        None)

    def _detach_here(self) -> None:
        from pyroute2.netlink.rtnl import RTM_DELTFILTER

        try:
            _request(RTM_DELTFILTER, 0, f"remove TC filter from {self.name}", self.ifindex,
                     PARENTS[self.direction], self.priority << 16, chain=self.chain)
            self._remove_clsact()
        except OSError as e:
            if e.errno != errno.ENODEV:  # the device may be gone already
                raise
