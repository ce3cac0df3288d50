"""Attachments: what a program is attached to, detached exactly once.

Each is a context manager; BpfObject.close() detaches whatever its programs
still have attached, so a fixture's teardown leaves no hook behind.
"""
from __future__ import annotations

import ctypes
import socket
from typing import Union

from .libbpf import (BPF_TC_EGRESS, BPF_TC_INGRESS, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE,
                     XDP_FLAGS_SKB_MODE, TcHook, TcOpts, XdpAttachOpts, check, lib, os_error,
                     sized)

Interface = Union[str, int]

XDP_MODES = {"generic": XDP_FLAGS_SKB_MODE, "skb": XDP_FLAGS_SKB_MODE,
             "native": XDP_FLAGS_DRV_MODE, "drv": XDP_FLAGS_DRV_MODE,
             "offload": XDP_FLAGS_HW_MODE, "hw": XDP_FLAGS_HW_MODE, None: 0}
TC_DIRECTIONS = {"ingress": BPF_TC_INGRESS, "egress": BPF_TC_EGRESS}


def ifindex(iface: Interface) -> int:
    if isinstance(iface, int):
        return iface
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        raise OSError(19, f"no network interface {iface!r} in this namespace") from None


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


class Link(Attachment):
    """A libbpf bpf_link (kprobe, tracepoint, raw tracepoint, ...)."""

    def __init__(self, handle: int, what: str):
        super().__init__()
        self.handle, self.what = handle, what

    def __repr__(self) -> str:
        return f"<Link {self.what}>"

    def _detach(self) -> None:
        lib.bpf_link__destroy(self.handle)


class XdpAttachment(Attachment):
    """An XDP program on an interface, detached with the mode it was attached in."""

    def __init__(self, prog_fd: int, iface: Interface, mode: str = "native", flags: int = 0,
                 replace_fd: int = 0):
        super().__init__()
        if mode not in XDP_MODES:
            raise ValueError(f"XDP mode {mode!r}: use one of generic, native, offload")
        self.ifindex, self.mode = ifindex(iface), mode
        self.flags = XDP_MODES[mode] | flags
        opts = sized(XdpAttachOpts, old_prog_fd=replace_fd)
        check(lib.bpf_xdp_attach(self.ifindex, prog_fd, self.flags, ctypes.byref(opts)),
              f"XDP attach ({mode}) to {iface}")

    def __repr__(self) -> str:
        return f"<XdpAttachment ifindex={self.ifindex} mode={self.mode}>"

    def _detach(self) -> None:
        ret = lib.bpf_xdp_detach(self.ifindex, XDP_MODES[self.mode], None)
        if ret < 0 and ret != -19:  # the interface may be gone (netns deleted) already
            raise os_error(ret, f"XDP detach ({self.mode}) from ifindex {self.ifindex}")


def xdp_prog_id(iface: Interface, mode: str = None) -> int:
    """The id of the XDP program attached in mode (0 when none)."""
    out = ctypes.c_uint32()
    check(lib.bpf_xdp_query_id(ifindex(iface), XDP_MODES[mode], ctypes.byref(out)),
          f"XDP query on {iface}")
    return out.value


class TcAttachment(Attachment):
    """A TC program on a clsact hook; the hook is removed again if we created it."""

    def __init__(self, prog_fd: int, iface: Interface, direction: str = "ingress",
                 handle: int = 1, priority: int = 1):
        super().__init__()
        if direction not in TC_DIRECTIONS:
            raise ValueError(f"TC direction {direction!r}: use ingress or egress")
        self.direction = direction
        self.hook = sized(TcHook, ifindex=ifindex(iface), attach_point=TC_DIRECTIONS[direction])
        ret = lib.bpf_tc_hook_create(ctypes.byref(self.hook))
        if ret < 0 and ret != -17:  # EEXIST: clsact was already there
            raise os_error(ret, f"create clsact on {iface}")
        self.created_hook = ret == 0
        self.opts = sized(TcOpts, prog_fd=prog_fd, handle=handle, priority=priority)
        try:
            check(lib.bpf_tc_attach(ctypes.byref(self.hook), ctypes.byref(self.opts)),
                  f"TC attach ({direction}) to {iface}")
        except OSError:
            self._destroy_hook()
            raise

    @property
    def prog_id(self) -> int:
        return self.opts.prog_id

    def _detach(self) -> None:
        opts = sized(TcOpts, handle=self.opts.handle, priority=self.opts.priority)
        lib.bpf_tc_detach(ctypes.byref(self.hook), ctypes.byref(opts))
        self._destroy_hook()

    def _destroy_hook(self) -> None:
        if self.created_hook:
            self.hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS
            lib.bpf_tc_hook_destroy(ctypes.byref(self.hook))
