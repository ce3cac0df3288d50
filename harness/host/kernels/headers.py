"""Kernel UAPI headers (asm/...) of a foreign arch, for building its BPF objects.

BPF programs include <asm/unistd.h> and friends, which differ per arch
(__NR_execve is 59 on x86_64, 221 on arm64). When the host lacks
/usr/include/<multiarch> for the guest's arch, Debian's linux-libc-dev of
that arch is unpacked into the cache instead of changing the host's dpkg.
"""
from __future__ import annotations

import platform
from pathlib import Path

from ...arches import ARCH
from . import cache, fetch



def host_suite() -> str:
    """The host's Debian codename (the headers match the host's libbpf and clang)."""
    return platform.freedesktop_os_release().get("VERSION_CODENAME") or "bookworm"


def include_dir(arch: str) -> Path:
    """/usr/include/<multiarch> of arch: the host's, or one unpacked into the cache."""
    system = Path("/usr/include") / ARCH[arch].triplet
    if system.is_dir():
        return system
    final = cache.cache_dir() / "headers" / arch
    include = final / "usr/include" / ARCH[arch].triplet
    with cache.locked(f"headers-{arch}"):
        if include.is_dir():
            return include
        suite = host_suite()
        apt = fetch.apt_for(suite, arch)
        apt.update()
        version = apt.record("linux-libc-dev")["Version"]
        with cache.new_entry(final, arch) as stage:
            apt.unpack([f"linux-libc-dev={version}"], stage.root)
            stage.publish()
    if not include.is_dir():
        raise fetch.FetchError(f"linux-libc-dev for {arch} has no usr/include/{ARCH[arch].triplet}")
    return include
