"""Attachments: what a program is attached to, detached exactly once.

Each is a context manager; BpfObject.close() detaches whatever its programs
still have attached, so a fixture's teardown leaves no hook behind. XDP and
TC attachments remember the network namespace they were made in and detach
there, wherever the caller is by then (an ifindex means nothing elsewhere).
An interface is a name, an ifindex (both of the caller's namespace), or an
object with ``name`` and ``netns_fd`` (bpfvm.net's Iface), whose namespace
the call enters by itself.
"""
from __future__ import annotations

import ctypes
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

from .. import netns
from .libbpf import (BPF_TC_EGRESS, BPF_TC_INGRESS, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE,
                     XDP_FLAGS_SKB_MODE, TcHook, TcOpts, XdpAttachOpts, XdpQueryOpts,
                     captured_messages, lib, os_error, sized)

Interface = Union[str, int, Any]

XDP_MODES = {"generic": XDP_FLAGS_SKB_MODE, "skb": XDP_FLAGS_SKB_MODE,
             "native": XDP_FLAGS_DRV_MODE, "drv": XDP_FLAGS_DRV_MODE,
             "offload": XDP_FLAGS_HW_MODE, "hw": XDP_FLAGS_HW_MODE, None: 0}
TC_DIRECTIONS = {"ingress": BPF_TC_INGRESS, "egress": BPF_TC_EGRESS}


@contextmanager
def inside(iface: Interface) -> Iterator[tuple[int, str]]:
    """(ifindex, name to show) of iface, the caller in iface's namespace for the block."""
    name = str(getattr(iface, "name", iface))
    with netns.entered_for(iface):
        if isinstance(iface, int):
            yield iface, name
            return
        try:
            index = socket.if_nametoindex(name)
        except OSError:
            raise OSError(19, f"no network interface {name!r} in this namespace") from None
        yield index, name


def ifindex(iface: Interface) -> int:
    """iface's index in the namespace it belongs to (a name: the caller's)."""
    with inside(iface) as (index, _):
        return index


class Attachment:
    """Base: detach() once, also from __exit__ and from the owner's close()."""

    def __init__(self) -> None:
        self.attached = True
        self._owners: list[list] = []

    def __enter__(self) -> "Attachment":
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def detach(self) -> None:
        if not self.attached:
            return
        self.attached = False
        for owner in self._owners:
            if self in owner:
                owner.remove(self)
        self._detach()

    def _detach(self) -> None:
        raise NotImplementedError


def netlink_call(ret_fn, what: str) -> int:
    """A libbpf netlink call; its failure carries the kernel's extack message, if any."""
    with captured_messages() as messages:
        ret = ret_fn()
    if ret < 0:
        error = os_error(ret, what)
        error.extack = next((m.split("Kernel error message:", 1)[1].strip()
                             for m in messages if "Kernel error message:" in m), None)
        if error.extack:
            error.strerror += f" ({error.extack})"
        raise error
    return ret


def netlink_error(e: Any, what: str) -> OSError:
    """A pyroute2 NetlinkError as OSError; .extack is the kernel's message or None."""
    message = str(e.args[1]) if len(e.args) > 1 else ""
    extack = message if message and message != os.strerror(e.code) else None
    error = OSError(e.code, f"{what}: {extack or os.strerror(e.code)}")
    error.extack = extack
    return error


class NetAttachment(Attachment):
    """Attached to an interface of the namespace the caller was in."""

    def __init__(self) -> None:
        super().__init__()
        self.netns = netns.current()

    def _detach(self) -> None:
        try:
            with netns.entered(self.netns):
                self._detach_here()
        finally:
            os.close(self.netns)

    def _detach_here(self) -> None:
        raise NotImplementedError


class Link(Attachment):
    """A libbpf bpf_link (kprobe, tracepoint, raw tracepoint, ...)."""

    def __init__(self, handle: int, what: str):
        super().__init__()
        self.handle, self.what = handle, what

    def __repr__(self) -> str:
        return f"<Link {self.what}>"

    def _detach(self) -> None:
        lib.bpf_link__destroy(self.handle)


class XdpAttachment(NetAttachment):
    """An XDP program on an interface, detached with the mode it was attached in.

    A refusal is an OSError whose ``extack`` is the kernel's message (or None).
    """

    def __init__(self, prog_fd: int, iface: Interface, mode: str = "native", flags: int = 0,
                 replace_fd: int = 0):
        if mode not in XDP_MODES:
            raise ValueError(f"XDP mode {mode!r}: use one of generic, native, offload")
        self.mode, self.flags = mode, XDP_MODES[mode] | flags
        opts = sized(XdpAttachOpts, old_prog_fd=replace_fd)
        with inside(iface) as (self.ifindex, name):
            netlink_call(lambda: lib.bpf_xdp_attach(self.ifindex, prog_fd, self.flags,
                                                    ctypes.byref(opts)),
                         f"XDP attach ({mode}) to {name}")
            super().__init__()

    def __repr__(self) -> str:
        return f"<XdpAttachment ifindex={self.ifindex} mode={self.mode}>"

    def _detach_here(self) -> None:
        ret = lib.bpf_xdp_detach(self.ifindex, XDP_MODES[self.mode], None)
        if ret < 0 and ret != -19:  # the interface may be gone already
            raise os_error(ret, f"XDP detach ({self.mode}) from ifindex {self.ifindex}")


def xdp_detach(iface: Interface, mode: str = None) -> None:
    """Detach whatever XDP program runs on iface in mode (the kernel's answer as OSError)."""
    with inside(iface) as (index, name):
        netlink_call(lambda: lib.bpf_xdp_detach(index, XDP_MODES[mode], None),
                     f"XDP detach ({mode or 'any mode'}) from {name}")


def xdp_prog_id(iface: Interface, mode: str = None) -> int:
    """The id of the XDP program attached in mode (0 when none)."""
    out = ctypes.c_uint32()
    with inside(iface) as (index, name):
        netlink_call(lambda: lib.bpf_xdp_query_id(index, XDP_MODES[mode], ctypes.byref(out)),
                     f"XDP query on {name}")
    return out.value


# enum IFLA_XDP_ATTACHED (include/uapi/linux/if_link.h)
XDP_ATTACHED = {0: None, 1: "native", 2: "generic", 3: "offload", 4: "multi"}


@dataclass(frozen=True)
class XdpState:
    """What the kernel reports about an interface's XDP programs (ids, 0 for none).

    mode is native, generic or offload when one program is attached, multi
    when several are (offload beside native or generic), None when none is;
    prog_id is the one program's id, 0 in multi mode.
    """
    mode: Optional[str]
    prog_id: int
    native: int
    generic: int
    offload: int

    @property
    def attached(self) -> dict[str, int]:
        """mode -> program id, for each mode that has a program."""
        ids = {"native": self.native, "generic": self.generic, "offload": self.offload}
        return {mode: prog for mode, prog in ids.items() if prog}


def xdp_query(iface: Interface) -> XdpState:
    """iface's XDP programs, as ip link reports them (one netlink query)."""
    opts = sized(XdpQueryOpts)
    with inside(iface) as (index, name):
        netlink_call(lambda: lib.bpf_xdp_query(index, 0, ctypes.byref(opts)),
                     f"XDP query on {name}")
    return XdpState(XDP_ATTACHED.get(opts.attach_mode, str(opts.attach_mode)), opts.prog_id,
                    opts.drv_prog_id, opts.skb_prog_id, opts.hw_prog_id)


class TcAttachment(NetAttachment):
    """A TC program on a clsact hook; the hook is removed again if we created it."""

    def __init__(self, prog_fd: int, iface: Interface, direction: str = "ingress",
                 handle: int = 1, priority: int = 1):
        if direction not in TC_DIRECTIONS:
            raise ValueError(f"TC direction {direction!r}: use ingress or egress")
        self.direction = direction
        with inside(iface) as (index, name):
            self.hook = sized(TcHook, ifindex=index, attach_point=TC_DIRECTIONS[direction])
            ret = lib.bpf_tc_hook_create(ctypes.byref(self.hook))
            if ret < 0 and ret != -17:  # EEXIST: clsact was already there
                raise os_error(ret, f"create clsact on {name}")
            self.created_hook = ret == 0
            self.opts = sized(TcOpts, prog_fd=prog_fd, handle=handle, priority=priority)
            try:
                netlink_call(lambda: lib.bpf_tc_attach(ctypes.byref(self.hook),
                                                       ctypes.byref(self.opts)),
                             f"TC attach ({direction}) to {name}")
            except OSError:
                self._destroy_hook()
                raise
            super().__init__()

    @property
    def prog_id(self) -> int:
        return self.opts.prog_id

    def _detach_here(self) -> None:
        opts = sized(TcOpts, handle=self.opts.handle, priority=self.opts.priority)
        lib.bpf_tc_detach(ctypes.byref(self.hook), ctypes.byref(opts))
        self._destroy_hook()

    def _destroy_hook(self) -> None:
        if self.created_hook:
            self.hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS
            lib.bpf_tc_hook_destroy(ctypes.byref(self.hook))
