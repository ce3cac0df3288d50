"""Loading a program only to hear the verifier: accepted or not, its log, its statistics.

A program is the name of a BPF C source (compiled on the host, one program
of it loaded) or a list of instructions (bpfvm.verifier.asm), loaded with
bpf_prog_load. The log buffer starts at 1 MiB and grows (up to 64 MiB) while
the kernel answers ENOSPC with a full buffer.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ... import vlog
from . import insns as asm
from .attach import Interface, inside
from .libbpf import ProgLoadOpts, captured_messages, lib, sized, verified_insns
from .objects import DEFAULT_LOG_SIZE, PROG_TYPES, LoadError

LOG_STATS = 4
LOG_LIMIT = 1 << 26  # 64 MiB: more would not fit a guest's memory alongside its copies
PROG_TYPE_IDS = {name: number for number, name in PROG_TYPES.items()}
Source = Union[str, Path, list]


@dataclass
class Verdict:
    """What the verifier said about one program."""

    program: str
    accepted: bool
    errno: int
    log: str
    stats: Optional[vlog.Stats]

    @property
    def message(self) -> str:
        """For a rejection, the line saying why (the last before the statistics)."""
        return "" if self.accepted else vlog.message(self.log) or os.strerror(self.errno)


def _prog_type(prog_type: Union[str, int]) -> int:
    if isinstance(prog_type, int):
        return prog_type
    if prog_type not in PROG_TYPE_IDS:
        raise ValueError(f"program type {prog_type!r}: use one of {', '.join(PROG_TYPE_IDS)}")
    return PROG_TYPE_IDS[prog_type]


def load_insns(program: list, *, prog_type: Union[str, int] = "socket_filter",
               license: str = "GPL", log_level: int = 1, name: str = "raw",
               expected_attach_type: int = 0, prog_flags: int = 0,
               unprivileged: bool = False, offload: Optional[Interface] = None) -> Verdict:
    """Load hand-written instructions; the program is closed again at once.

    unprivileged=True loads from a child process running as nobody with no
    capabilities (kernel.unprivileged_bpf_disabled must be 0 for it to load).
    offload=iface binds the program to iface's device, whose own verifier
    then checks it too (loaded in iface's namespace).
    """
    if unprivileged:
        return _as_nobody(lambda: load_insns(
            program, prog_type=prog_type, license=license, log_level=log_level, name=name,
            expected_attach_type=expected_attach_type, prog_flags=prog_flags, offload=offload))
    if offload is not None:
        with inside(offload) as (index, _):
            return _load_insns(program, _prog_type(prog_type), license, log_level, name,
                               expected_attach_type, prog_flags, index)
    return _load_insns(program, _prog_type(prog_type), license, log_level, name,
                       expected_attach_type, prog_flags, 0)


def _load_insns(program: list, prog_type: int, license: str, log_level: int, name: str,
                expected_attach_type: int, prog_flags: int, ifindex: int) -> Verdict:
    code = asm.encode(program)
    buf = ctypes.create_string_buffer(code, len(code))
    size = DEFAULT_LOG_SIZE
    while True:
        log = ctypes.create_string_buffer(size)
        opts = sized(ProgLoadOpts, log_level=log_level, log_size=size if log_level else 0,
                     log_buf=ctypes.cast(log, ctypes.c_void_p) if log_level else None,
                     expected_attach_type=expected_attach_type, prog_flags=prog_flags,
                     prog_ifindex=ifindex)
        with captured_messages():
            fd = lib.bpf_prog_load(prog_type, name.encode(), license.encode(),
                                   buf, len(code) // 8, ctypes.byref(opts))
        text = log.value.decode(errors="replace")
        if fd == -errno.ENOSPC and len(text) >= size - 2 and size < LOG_LIMIT:
            size *= 8
            continue
        break
    if fd < 0:
        return Verdict(name, False, -fd, text, vlog.parse_stats(text))
    try:
        stats = vlog.parse_stats(text)
        if stats:
            stats.verified_insns = verified_insns(fd)
        return Verdict(name, True, 0, text, stats)
    finally:
        os.close(fd)


def _as_nobody(load) -> Verdict:
    """load() in a forked child that dropped to uid/gid 65534; its Verdict comes back as JSON."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)  # drops every capability as well
            verdict = load()
            stats = verdict.stats.as_dict() if verdict.stats else None
            data = json.dumps({**verdict.__dict__, "stats": stats}).encode()
            while data:
                data = data[os.write(write_end, data):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        raise RuntimeError(f"the unprivileged loader process failed (wait status {status})")
    fields = json.loads(data)
    stats = vlog.Stats(**fields.pop("stats")) if fields["stats"] else None
    return Verdict(**{**fields, "stats": stats})


def load_source(source: Union[str, Path], program: Optional[str] = None, *,
                log_level: int = 1, cflags: Sequence[str] = (), base: Optional[Path] = None,
                offload: Optional[Interface] = None) -> Verdict:
    """Compile source on the host and load program (the object's only one by default)."""
    from ..compiled import compiled
    from .objects import BpfObject, load

    name, data = compiled(source, cflags, base)
    probe = BpfObject(data, name)
    try:
        names = list(probe.programs)
    finally:
        probe.close()
    if program is None and len(names) != 1:
        raise ValueError(f"{name} has programs {names}: say which one with program=")
    program = program or names[0]
    if program not in names:
        raise KeyError(f"object {name!r} has no program {program!r}; it has {sorted(names)}")
    autoload = {p: p == program for p in names}
    try:
        with load(data, name, log_level=log_level, autoload=autoload, offload=offload) as obj:
            prog = obj.program(program)
            text = prog.log
            stats = vlog.parse_stats(text)
            if stats:
                stats.verified_insns = verified_insns(prog.fd)
            return Verdict(program, True, 0, text, stats)
    except LoadError as e:
        return Verdict(program, False, e.errno, e.log or "\n".join(e.messages),
                       vlog.parse_stats(e.log))


def verify(source: Source, program: Optional[str] = None, **options: Any) -> Verdict:
    """A list of instructions goes to load_insns, anything else to load_source."""
    if isinstance(source, list):
        if program is not None:
            options["name"] = program
        return load_insns(source, **options)
    return load_source(source, program, **options)
