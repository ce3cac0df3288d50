"""vmlinux.h for a target kernel: its BTF as C, by bpftool, cached per kernel image.

The BTF comes from the host's copy of the kernel, never from a guest (a
guest's /sys/kernel/btf/vmlinux is the kernel under test's to forge, and
its names would become C the host compiles): the ELF vmlinux inside a
compressed boot image (bzImage, or a gzip'd arm64 Image's vmlinux is not
there, so arm64 catalog kernels have none), a build tree's vmlinux, or
this machine's /sys/kernel/btf/vmlinux for --kernel host.
"""
from __future__ import annotations

import lzma
import os
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Optional

from ...target import Target
from .. import tools
from ..kernels import cache

ELF = b"\x7fELF"
# Where a compressed vmlinux starts in a boot image, and how to unpack it.
DECOMPRESSORS = (
    (b"\x28\xb5\x2f\xfd", ["zstd", "-dcq"]),
    (b"\xfd7zXZ\x00", None),  # xz: Python's lzma
    (b"\x1f\x8b\x08", None),  # gzip
)


class VmlinuxError(RuntimeError):
    """No BTF for the kernel: why, in one line."""


def btf_source(target: Target) -> Path:
    """The file bpftool reads the kernel's BTF from, unpacked into the cache if need be."""
    if target.kind == "host":
        return Path("/sys/kernel/btf/vmlinux")
    if target.kdir and (Path(target.kdir) / "vmlinux").is_file():
        return Path(target.kdir) / "vmlinux"
    if not target.vmlinuz:
        raise VmlinuxError(f"kernel {target.describe()}: no image to read its BTF from")
    image = Path(target.vmlinuz)
    out = cache.cache_dir() / "btf" / cache.sha256_file(image)[:24] / "vmlinux"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(out, unpack_vmlinux(image.read_bytes(), target))
    return out


def unpack_vmlinux(data: bytes, target: Target) -> bytes:
    """The ELF vmlinux a boot image carries compressed (x86's bzImage)."""
    if data.startswith(ELF):
        return data
    for magic, command in DECOMPRESSORS:
        start = data.find(magic)
        while start >= 0:
            out = _decompress(data[start:], magic, command)
            if out is not None and out.startswith(ELF):
                return out
            start = data.find(magic, start + 1)
    raise VmlinuxError(f"kernel {target.describe()}: its image {target.vmlinuz} carries no "
                       f"ELF vmlinux to read BTF from (an arm64 Image does not); give a build "
                       f"tree (--kernel PATH) whose vmlinux has BTF")


def _decompress(data: bytes, magic: bytes, command: Optional[list[str]]) -> Optional[bytes]:
    try:
        if command is not None:
            # zstd stops at the end of the first frame and complains about what follows
            proc = subprocess.run([tools.require(command[0]), *command[1:]], input=data,
                                  capture_output=True)
            return proc.stdout or None
        if magic.startswith(b"\xfd7z"):
            return lzma.LZMADecompressor().decompress(data)  # stops at the stream's end
        return zlib.decompressobj(wbits=31).decompress(data)
    except (lzma.LZMAError, zlib.error, OSError):
        return None


def header(target: Target) -> Path:
    """vmlinux.h of target's kernel (cached beside the BTF source it came from)."""
    source = btf_source(target)
    btf_dir = cache.cache_dir() / "btf"
    if source.parent.parent == btf_dir:  # unpacked from an image: the header goes beside it
        out = source.with_name("vmlinux.h")
    else:
        out = btf_dir / cache.sha256_file(source)[:24] / "vmlinux.h"
    if out.is_file():
        return out
    proc = subprocess.run([tools.require("bpftool"), "btf", "dump", "file", str(source),
                           "format", "c"], capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise VmlinuxError(f"kernel {target.describe()}: bpftool cannot read BTF from "
                           f"{source}: {detail[-1] if detail else proc.returncode}")
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out, proc.stdout)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
