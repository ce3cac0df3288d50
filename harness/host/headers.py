"""Kernel UAPI headers (asm/...) of a foreign arch, for building its BPF objects.

BPF programs include <asm/unistd.h> and friends, which differ per arch
(__NR_execve is 59 on x86_64, 221 on arm64). When the host lacks
/usr/include/<multiarch> for the guest's arch, Debian's linux-libc-dev of
that arch is unpacked into the cache instead of changing the host's dpkg.
"""
from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from . import cache, fetch

MULTIARCH = {"x86_64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}


def host_suite() -> str:
    """The host's Debian codename (the headers match the host's libbpf and clang)."""
    return platform.freedesktop_os_release().get("VERSION_CODENAME") or "bookworm"


def include_dir(arch: str) -> Path:
    """/usr/include/<multiarch> of arch: the host's, or one unpacked into the cache."""
    system = Path("/usr/include") / MULTIARCH[arch]
    if system.is_dir():
        return system
    final = cache.cache_dir() / "headers" / arch
    include = final / "usr/include" / MULTIARCH[arch]
    with cache.locked(f"headers-{arch}"):
        if include.is_dir():
            return include
        suite = host_suite()
        apt = fetch.apt_for(suite, arch)
        apt.update()
        version = apt.record("linux-libc-dev")["Version"]
        staged = cache.staging(final.parent, arch)
        try:
            apt.run("apt-get", "download", f"linux-libc-dev={version}", cwd=staged)
            for deb in staged.glob("*.deb"):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(staged / "root")], check=True)
            cache.publish(staged / "root", final)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    if not include.is_dir():
        raise fetch.FetchError(f"linux-libc-dev for {arch} has no usr/include/{MULTIARCH[arch]}")
    return include
