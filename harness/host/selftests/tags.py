"""The programs of a BPF object and the decl tags on each, read with libbpf.

libbpf's ctypes binding lives with the guest, which uses most of it;
opening an object without loading it parses the ELF and its BTF and asks
nothing of the kernel, so the host reads annotations with it too.
"""
from __future__ import annotations

import ctypes
import errno
import os

from ...guest.bpf.libbpf import (BTF_KIND_DECL_TAG, BTF_KIND_FUNC, BtfType, ObjectOpenOpts,
                                 captured_messages, lib, sized)


class TagsError(RuntimeError):
    """The object cannot be opened or has no BTF."""


def programs(data: bytes, name: str) -> list[tuple[str, str, list[str]]]:
    """(program name, section, decl tags on its FUNC) for each program, in object order."""
    buf = ctypes.create_string_buffer(data, len(data))
    opts = sized(ObjectOpenOpts, object_name=name.encode())
    with captured_messages() as messages:
        obj = lib.bpf_object__open_mem(buf, len(data), ctypes.byref(opts))
    if not obj:
        err = ctypes.get_errno() or errno.EINVAL
        detail = "; ".join(m.strip() for m in messages) or os.strerror(err)
        raise TagsError(f"libbpf cannot open {name}: {detail}")
    try:
        btf = lib.bpf_object__btf(obj)
        if not btf:
            raise TagsError(f"{name} has no BTF (build it with -g)")
        tags = _tags_by_type(btf)
        found = []
        prog = lib.bpf_object__next_program(obj, None)
        while prog:
            prog_name = lib.bpf_program__name(prog)
            func = lib.btf__find_by_name_kind(btf, prog_name, BTF_KIND_FUNC)
            found.append((prog_name.decode(), lib.bpf_program__section_name(prog).decode(),
                          tags.get(func, []) if func > 0 else []))
            prog = lib.bpf_object__next_program(obj, prog)
        return found
    finally:
        lib.bpf_object__close(obj)


def _tags_by_type(btf: int) -> dict[int, list[str]]:
    """Decl tags on whole types (component_idx -1), by the id of the type they tag."""
    tags: dict[int, list[str]] = {}
    for type_id in range(1, lib.btf__type_cnt(btf)):
        address = lib.btf__type_by_id(btf, type_id)
        t = BtfType.from_address(address)
        if (t.info >> 24) & 0x1f != BTF_KIND_DECL_TAG:
            continue
        if ctypes.c_int32.from_address(address + ctypes.sizeof(BtfType)).value != -1:
            continue
        text = lib.btf__str_by_offset(btf, t.name_off)
        tags.setdefault(t.type, []).append(text.decode(errors="replace") if text else "")
    return tags
