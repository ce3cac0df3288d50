"""Why libbpf refused to open an object file that was built for something else.

libbpf says "not a valid eBPF object file" or "endianness mismatch"; the
user needs to know what the file is and how to build the right one.
"""
from __future__ import annotations

import struct
import sys
from typing import Optional

LIBBPF_ERRNO_FORMAT = 4001
LIBBPF_ERRNO_ENDIAN = 4003
EM_BPF = 247
_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390", 40: "arm",
             62: "x86-64", 183: "aarch64", 243: "riscv", 258: "loongarch"}
_ORDER = {1: "little", 2: "big"}
BUILD_HINT = "build it with clang -target bpf (bpf_object() does that for a .c source)"


def wrong_target(err: int, data: bytes) -> Optional[str]:
    """One line saying what the object was built for instead, or None."""
    if err not in (LIBBPF_ERRNO_FORMAT, LIBBPF_ERRNO_ENDIAN):
        return None
    if data[:4] != b"\x7fELF" or len(data) < 20 or data[5] not in _ORDER:
        return f"not an ELF object file: {BUILD_HINT}"
    order = _ORDER[data[5]]
    machine = struct.unpack_from("<H" if order == "little" else ">H", data, 18)[0]
    if machine != EM_BPF:
        name = _MACHINES.get(machine, f"ELF machine {machine}")
        return f"an object built for {name}, not BPF: {BUILD_HINT}"
    if order != sys.byteorder:
        return (f"a {order}-endian BPF object, and this kernel is {sys.byteorder}-endian: "
                f"build it with clang -target bpf on a {sys.byteorder}-endian host or "
                f"-target bpf{'el' if sys.byteorder == 'little' else 'eb'}")
    return None
