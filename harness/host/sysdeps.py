"""The Debian packages bpfvm needs on the host, and installing them (`bpfvm setup`).

This is the one list: ci/run.sh and the GitHub workflow call `bpfvm setup`
rather than naming packages themselves.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from typing import Callable, Iterable

RUN = {
    "booting guests with virtme-ng": ("qemu-system-x86", "busybox-static", "kmod", "file",
                                      "iproute2"),
    "building and inspecting BPF": ("clang", "llvm", "bpftool", "libbpf1", "libbpf-dev"),
    "fetching Debian kernels": ("debian-archive-keyring",),
    "arm64 guests and their root": ("qemu-system-arm", "qemu-user-static", "debootstrap",
                                    "binfmt-support"),
}
BUILD = {
    "building kernels": ("make", "gcc", "flex", "bison", "bc", "dwarves", "libelf-dev",
                         "libssl-dev", "ccache"),
    "building arm64 kernels": ("gcc-aarch64-linux-gnu",),
}


class SetupError(RuntimeError):
    pass


def wanted(build: bool = False) -> list[str]:
    groups = [RUN, BUILD] if build else [RUN]
    packages = [pkg for group in groups for pkgs in group.values() for pkg in pkgs]
    return list(dict.fromkeys(packages + selftests_packages()))


def selftests_packages() -> list[str]:
    """For the kernel's annotated programs: the newest clang-N the apt sources offer
    (recent selftests need a newer clang than Debian's default), and on x86_64
    the 32-bit glibc stubs its headers want under -target bpf."""
    try:
        out = subprocess.run(["apt-cache", "pkgnames", "clang-"], capture_output=True,
                             text=True).stdout
    except FileNotFoundError:
        return []
    versions = [int(m.group(1)) for m in re.finditer(r"^clang-(\d+)$", out, re.M)]
    packages = [f"clang-{max(versions)}"] if versions else []
    return packages + (["libc6-dev-i386"] if platform.machine() == "x86_64" else [])


def installed(package: str) -> bool:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                             capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return out.returncode == 0 and out.stdout.endswith("install ok installed")


def missing(packages: Iterable[str]) -> list[str]:
    return [pkg for pkg in packages if not installed(pkg)]


def install(packages: list[str], say: Callable[[str], None]) -> None:
    """apt-get install packages (as root, or through sudo)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise SetupError("bpfvm setup needs apt-get and dpkg (Debian or Ubuntu); "
                         f"elsewhere install the equivalents of: {' '.join(packages)}")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise SetupError(f"installing {' '.join(packages)} needs root: run bpfvm setup "
                             "as root or install sudo")
        prefix = ["sudo"]
    say(f"bpfvm setup: installing {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
        out = subprocess.run(prefix + cmd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SetupError(f"{' '.join(cmd[:2])} failed: {last}")


def setup(build: bool, say: Callable[[str], None], quiet: bool = False) -> None:
    """Install what is missing of the run (and build) packages; say so when
    nothing is, unless quiet."""
    todo = missing(wanted(build))
    if not todo:
        if not quiet:
            say("bpfvm setup: every Debian package bpfvm needs is installed")
        return
    install(todo, say)
