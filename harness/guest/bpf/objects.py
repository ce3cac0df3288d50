"""BPF objects and programs: open and load through libbpf, test runs, attach."""
from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from . import attach, objfile
from .libbpf import (BPF_F_XDP_DEV_BOUND_ONLY, ObjectOpenOpts, TestRunOpts, captured_messages,
                     check, lib, object_id, sized)
from .maps import Map, open_map
from .tcfilter import TcFilter

DEFAULT_LOG_SIZE = 1 << 20
MAX_LOG_SIZE = 1 << 28

# enum bpf_prog_type (include/uapi/linux/bpf.h)
PROG_TYPES = {
    1: "socket_filter", 2: "kprobe", 3: "sched_cls", 4: "sched_act", 5: "tracepoint",
    6: "xdp", 7: "perf_event", 8: "cgroup_skb", 9: "cgroup_sock", 10: "lwt_in",
    11: "lwt_out", 12: "lwt_xmit", 13: "sock_ops", 14: "sk_skb", 15: "cgroup_device",
    16: "sk_msg", 17: "raw_tracepoint", 18: "cgroup_sock_addr", 19: "lwt_seg6local",
    20: "lirc_mode2", 21: "sk_reuseport", 22: "flow_dissector", 23: "cgroup_sysctl",
    24: "raw_tracepoint_writable", 25: "cgroup_sockopt", 26: "tracing", 27: "struct_ops",
    28: "ext", 29: "lsm", 30: "sk_lookup", 31: "syscall", 32: "netfilter",
}


class LoadError(OSError):
    """An object failed to load; .log is the verifier log of the program that failed."""

    __module__ = "bpfvm.bpf"  # its public home, as tracebacks show it

    def __init__(self, err: int, obj: str, program: Optional[str], log: str,
                 messages: list[str], summary: Optional[str] = None):
        """summary: what went wrong, when more can be said than the errno."""
        self.object, self.program, self.log, self.messages = obj, program, log, messages
        what = f"program {program!r}" if program else "the object"
        detail = log.strip() or "\n".join(m.rstrip() for m in messages) or "(no log)"
        tail = "\n".join(detail.splitlines()[-60:])
        summary = summary or f"{what} failed: {errno.errorcode.get(err, err)}"
        super().__init__(err, f"loading {obj}: {summary}\n{tail}")

    def __str__(self) -> str:
        return self.strerror


@dataclass
class TestRun:
    """What BPF_PROG_TEST_RUN returned."""
    __test__ = False  # not a pytest test class

    retval: int
    data: bytes
    duration: int  # ns per repetition, as the kernel measured it
    ctx: bytes = b""

    def packet(self) -> Any:
        """The output data as a scapy Ether packet."""
        from scapy.layers.l2 import Ether

        return Ether(self.data)


def _as_bytes(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return bytes(data)  # scapy packets and ctypes instances


class Program:
    def __init__(self, handle: int, owner: "BpfObject"):
        self.handle = handle
        self.owner = owner
        self.name = lib.bpf_program__name(handle).decode()
        self.section = lib.bpf_program__section_name(handle).decode()
        self.log_buf: Optional[ctypes.Array] = None

    def __repr__(self) -> str:
        return f"<Program {self.name!r} ({self.section})>"

    @property
    def fd(self) -> int:
        fd = lib.bpf_program__fd(self.handle)
        if fd < 0:
            raise OSError(errno.EBADF, f"program {self.name!r} is not loaded")
        return fd

    @property
    def type_name(self) -> str:
        return PROG_TYPES.get(lib.bpf_program__type(self.handle), "unknown")

    @property
    def id(self) -> int:
        return object_id(self.fd)

    @property
    def log(self) -> str:
        """The verifier log of this program's load (when a log level was asked for)."""
        return self.log_buf.value.decode(errors="replace") if self.log_buf else ""

    # -- BPF_PROG_TEST_RUN -----------------------------------------------------

    def test_run(self, data: Any = b"", *, repeat: int = 1, ctx: Any = None,
                 data_out_size: Optional[int] = None, ctx_out_size: Optional[int] = None,
                 flags: int = 0, cpu: int = 0) -> TestRun:
        """Run the program once (or repeat times) on data: bytes or a scapy packet.

        The output buffer defaults to the input size plus 4 KiB, room for
        adjust_head/adjust_tail growth; a smaller data_out_size makes the
        kernel fail with ENOSPC (as OSError) when the output does not fit.
        """
        data_in = _as_bytes(data)
        ctx_in = _as_bytes(ctx) if ctx is not None else b""
        out_size = len(data_in) + 4096 if data_out_size is None else data_out_size
        data_out = ctypes.create_string_buffer(max(out_size, 1))
        ctx_size = len(ctx_in) if ctx_out_size is None else ctx_out_size
        ctx_out = ctypes.create_string_buffer(max(ctx_size, 1))
        in_buf = ctypes.create_string_buffer(data_in, len(data_in)) if data_in else None
        ctx_buf = ctypes.create_string_buffer(ctx_in, len(ctx_in)) if ctx_in else None
        opts = sized(TestRunOpts, data_in=ctypes.cast(in_buf, ctypes.c_void_p),
                     data_size_in=len(data_in),
                     data_out=ctypes.cast(data_out, ctypes.c_void_p) if out_size else None,
                     data_size_out=out_size,
                     ctx_in=ctypes.cast(ctx_buf, ctypes.c_void_p), ctx_size_in=len(ctx_in),
                     ctx_out=ctypes.cast(ctx_out, ctypes.c_void_p) if ctx_size else None,
                     ctx_size_out=ctx_size, repeat=repeat, flags=flags, cpu=cpu)
        check(lib.bpf_prog_test_run_opts(self.fd, ctypes.byref(opts)),
              f"test run of program {self.name!r}")
        return TestRun(opts.retval, data_out.raw[:opts.data_size_out], opts.duration,
                       ctx_out.raw[:opts.ctx_size_out] if ctx_size else b"")

    # -- attaching ---------------------------------------------------------------

    def _own(self, attachment: attach.Attachment) -> attach.Attachment:
        self.owner.attachments.append(attachment)
        attachment._owners.append(self.owner.attachments)
        return attachment

    def _link(self, what: str, attach_fn, *args) -> attach.Link:
        """A libbpf attach call's link; its failure carries libbpf's messages."""
        with captured_messages() as messages:
            ptr = attach_fn(self.handle, *args)
        if not ptr:
            err = ctypes.get_errno() or errno.EINVAL
            detail = "".join(f"\n  {m.rstrip()}" for m in messages)
            raise OSError(err, f"attach {self.name!r} to {what}: {os.strerror(err)}{detail}")
        return self._own(attach.Link(ptr, what))

    def attach(self) -> attach.Link:
        """Attach where the section name says (kprobe/..., tracepoint/..., ...)."""
        return self._link(self.section, lib.bpf_program__attach)

    def attach_kprobe(self, function: str, retprobe: bool = False) -> attach.Link:
        kind = "kretprobe" if retprobe else "kprobe"
        return self._link(f"{kind} {function}", lib.bpf_program__attach_kprobe, retprobe,
                          function.encode())

    def attach_tracepoint(self, category: str, name: str) -> attach.Link:
        return self._link(f"tracepoint {category}:{name}", lib.bpf_program__attach_tracepoint,
                          category.encode(), name.encode())

    def attach_raw_tracepoint(self, name: str) -> attach.Link:
        return self._link(f"raw tracepoint {name}", lib.bpf_program__attach_raw_tracepoint,
                          name.encode())

    def attach_xdp(self, iface: attach.Interface, mode: str = "native", flags: int = 0,
                   replace: Optional["Program"] = None) -> attach.XdpAttachment:
        """Attach to iface in mode generic, native or offload; detach uses the same mode."""
        return self._own(attach.XdpAttachment(self.fd, iface, mode, flags,
                                              replace.fd if replace else 0))

    def attach_tc(self, iface: attach.Interface, direction: str = "ingress",
                  handle: int = 1, priority: int = 1) -> attach.TcAttachment:
        """Attach as a direct-action filter on iface's clsact ingress or egress hook."""
        return self._own(attach.TcAttachment(self.fd, iface, direction, handle, priority))

    def attach_tc_filter(self, iface: attach.Interface, direction: str = "ingress", *,
                         skip_sw: bool = False, skip_hw: bool = False, chain: int = 0,
                         priority: int = 1) -> TcFilter:
        """Attach as a cls_bpf filter with tc's flags: skip_sw offloads it to the device."""
        return self._own(TcFilter(self.fd, self.name, iface, direction, skip_sw=skip_sw,
                                  skip_hw=skip_hw, chain=chain, priority=priority))

    # -- pinning -------------------------------------------------------------------

    def pin(self, path: str) -> None:
        check(lib.bpf_program__pin(self.handle, path.encode()), f"pin {self.name!r} at {path}")

    def unpin(self, path: str) -> None:
        check(lib.bpf_program__unpin(self.handle, path.encode()), f"unpin {self.name!r}")


class BpfObject:
    """A loaded BPF object file: programs and maps by name; close() releases all."""

    def __init__(self, data: bytes, name: str, log_level: int = 0,
                 log_size: int = DEFAULT_LOG_SIZE, ifindex: int = 0,
                 autoload: Optional[dict[str, bool]] = None, dev_bound: bool = False):
        self.name = name
        self.attachments: list[attach.Attachment] = []
        self.handle: Optional[int] = None
        self._data = ctypes.create_string_buffer(data, len(data))
        self._name = name.encode()
        opts = sized(ObjectOpenOpts, object_name=self._name)
        with captured_messages() as messages:
            self.handle = lib.bpf_object__open_mem(self._data, len(data), ctypes.byref(opts))
        if not self.handle:
            err = ctypes.get_errno() or errno.EINVAL
            raise LoadError(err, name, None, "", messages, objfile.wrong_target(err, data))
        self.programs: dict[str, Program] = {}
        for handle in self._iterate(lib.bpf_object__next_program):
            program = Program(handle, self)
            self.programs[program.name] = program
            if autoload and program.name in autoload:
                lib.bpf_program__set_autoload(handle, autoload[program.name])
            if ifindex and not dev_bound:
                lib.bpf_program__set_ifindex(handle, ifindex)
            elif ifindex and program.type_name == "xdp":  # device-bound XDP: not offloaded
                lib.bpf_program__set_ifindex(handle, ifindex)
                lib.bpf_program__set_flags(handle, lib.bpf_program__flags(handle)
                                           | BPF_F_XDP_DEV_BOUND_ONLY)
            program.log_buf = ctypes.create_string_buffer(log_size)
            lib.bpf_program__set_log_buf(handle, program.log_buf, log_size)
            if log_level:
                lib.bpf_program__set_log_level(handle, log_level)
        self.maps: dict[str, Map] = {}  # filled by load(): fds exist from then on
        self._map_handles = list(self._iterate(lib.bpf_object__next_map))
        for handle in self._map_handles if ifindex and not dev_bound else ():
            lib.bpf_map__set_ifindex(handle, ifindex)

    def _iterate(self, next_fn) -> Iterator[int]:
        current = next_fn(self.handle, None)
        while current:
            yield current
            current = next_fn(self.handle, current)

    def load(self) -> "BpfObject":
        with captured_messages() as messages:
            ret = lib.bpf_object__load(self.handle)
        if ret < 0:
            failed = next((p for p in self.programs.values() if p.log), None)
            raise LoadError(-ret, self.name, failed.name if failed else None,
                            failed.log if failed else "", messages)
        self.maps = {m.name: m for m in map(open_map, self._map_handles)}
        return self

    def program(self, name: str) -> Program:
        return self._named("program", self.programs, name)

    def map(self, name: str) -> Map:
        return self._named("map", self.maps, name)

    def _named(self, kind: str, table: dict, name: str):
        if name not in table:
            raise KeyError(f"object {self.name!r} has no {kind} {name!r}; it has {sorted(table)}")
        return table[name]

    def close(self) -> None:
        """Detach what the programs attached, then free the object (fds close)."""
        for attachment in reversed(list(self.attachments)):
            attachment.detach()
        if self.handle:
            lib.bpf_object__close(self.handle)
            self.handle = None

    def __enter__(self) -> "BpfObject":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(data: bytes, name: str, *, log_level: int = 0, log_size: int = DEFAULT_LOG_SIZE,
         offload: Optional[attach.Interface] = None, dev_bound: Optional[attach.Interface] = None,
         autoload: Optional[dict[str, bool]] = None) -> BpfObject:
    """Open and load an object from its bytes; the verifier log buffer grows on ENOSPC.

    offload=iface binds every program and map to iface's device (the
    device's verifier checks the programs; they run only there, attached in
    offload mode). dev_bound=iface binds the XDP programs only (6.3+), to
    run in native mode on that device with its metadata kfuncs. Either is
    loaded in iface's namespace.
    """
    if offload is not None and dev_bound is not None:
        raise ValueError("load(): give offload= or dev_bound=, not both")
    device = offload if offload is not None else dev_bound
    if device is None:
        return _load(data, name, log_level, log_size, 0, autoload, False)
    with attach.inside(device) as (index, _):
        return _load(data, name, log_level, log_size, index, autoload, dev_bound is not None)


def _load(data: bytes, name: str, log_level: int, log_size: int, ifindex: int,
          autoload: Optional[dict[str, bool]], dev_bound: bool) -> BpfObject:
    while True:
        obj = BpfObject(data, name, log_level, log_size, ifindex, autoload, dev_bound)
        try:
            return obj.load()
        except LoadError as e:
            obj.close()
            truncated = e.errno == errno.ENOSPC and len(e.log) >= log_size - 2
            if not truncated or log_size >= MAX_LOG_SIZE:
                raise
            log_size *= 8
