"""Root filesystems for guests of a foreign arch (arm64 on an x86_64 host).

An x86_64 guest runs on the host's own root; an arm64 guest cannot, so it
gets a Debian root built with debootstrap (second stage under
qemu-user-static through binfmt_misc) plus the pure-Python packages the
guest worker imports, pip-installed at the host's versions. The root is
cached under rootfs/ARCH, keyed by its recipe, and rebuilt only when the
recipe changes.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ...arches import ARCH, host_arch
from ..kernels import aptsources, cache
from ..progress import Progress

SUITE = "bookworm"  # the host's suite: python3.11, libbpf 1.1, bpftool 7.1 like x86_64 guests
PACKAGES = ("python3", "libbpf1", "bpftool", "iproute2", "kmod", "busybox-static", "procps")
# What the guest worker imports from outside the project: pytest, the plugins
# the host passes to the guest with -p, the packet/netlink libraries the
# suites use, and their dependencies (as installed on the host).
PYTHON_DISTS = ("pytest", "pytest-xdist", "scapy", "pyroute2")
# Trimmed after debootstrap: documentation, translations and apt's caches.
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf")


class RootfsError(RuntimeError):
    pass


def python_versions(roots: tuple[str, ...] = PYTHON_DISTS) -> dict[str, str]:
    """The host's versions of roots and of everything they require, for the guest root."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    versions: dict[str, str] = {}
    queue = list(roots)
    while queue:
        name = canonicalize_name(queue.pop())
        if name in versions:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise RootfsError(f"{name} is not installed on the host: pip install "
                              f"{name} into the environment that runs pytest") from None
        versions[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                queue.append(req.name)
    return dict(sorted(versions.items()))


def recipe(arch: str) -> dict:
    return {"suite": SUITE, "arch": ARCH[arch].debian, "variant": "minbase",
            "packages": sorted(PACKAGES), "python": python_versions(), "trim": list(TRIM),
            "version": 1}


def recipe_key(rec: dict) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:20]


def rootfs_dir(arch: str) -> Path:
    return cache.cache_dir() / "rootfs" / arch


def cached(arch: str) -> Path | None:
    """The cached root when its recipe is today's."""
    final = rootfs_dir(arch)
    manifest = cache.read_manifest(final)
    if manifest and manifest.get("recipe_key") == recipe_key(recipe(arch)):
        return final
    return None


def ensure(arch: str, progress: Progress = print) -> Path:
    """The root for arch's guests, built first if the cache lacks it."""
    if arch == host_arch():
        raise RootfsError(f"{arch} guests run on the host's root; no root to build")
    final = rootfs_dir(arch)
    with cache.locked(f"rootfs-{arch}"):
        if cached(arch):
            return final
        rec = recipe(arch)
        _check_tools(arch)
        cache.sweep(final.parent, arch)
        with cache.new_entry(final, arch) as stage:
            root = stage.root
            _debootstrap(rec, root, progress)
            _pip_install(rec, root, progress)
            _finish(root)
            size = _du(root)
            stage.publish({"recipe": rec, "recipe_key": recipe_key(rec),
                           "python": _guest_python(root).name})
        progress(f"rootfs-{arch}: built {final} ({size / 1e6:.0f} MB)")
        return final


def _check_tools(arch: str) -> None:
    if os.geteuid() != 0:
        raise RootfsError(f"building the {arch} guest root needs root (debootstrap); "
                          "run this once as root: sudo bpfvm rootfs build --arch " + arch)
    for tool, pkg in (("debootstrap", "debootstrap"), (f"{ARCH[arch].qemu_user}-static",
                                                       "qemu-user-static")):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
            raise RootfsError(f"{tool} is not installed: run bpfvm setup ({pkg})")
    ensure_binfmt(arch)


def ensure_binfmt(arch: str) -> None:
    """Register qemu-user-static with binfmt_misc, as its package does on systemd hosts."""
    name = ARCH[arch].qemu_user
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if (binfmt / name).exists():
        return
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)],
                       check=False, capture_output=True)
    subprocess.run(["update-binfmts", "--enable", name], check=False, capture_output=True)
    if not (binfmt / name).exists():
        raise RootfsError(f"cannot run {arch} programs: {name} is not registered with "
                          f"binfmt_misc; run: update-binfmts --enable {name}")


def _debootstrap(rec: dict, root: Path, progress: Progress) -> None:
    uri, keyring = aptsources.mirror()
    progress(f"rootfs-{rec['arch']}: debootstrap {rec['suite']} {rec['variant']} "
             f"(+{', '.join(rec['packages'])})")
    log = cache.cache_dir() / "logs" / f"rootfs-{rec['arch']}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["debootstrap", f"--arch={rec['arch']}", f"--variant={rec['variant']}",
           f"--include={','.join(rec['packages'])}", f"--keyring={keyring}",
           rec["suite"], str(root), uri]
    with open(log, "w") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RootfsError(f"debootstrap failed (exit {proc.returncode}); log: {log}")


def _guest_python(root: Path) -> Path:
    found = sorted(root.glob("usr/lib/python3.*/"), key=lambda p: p.name)
    found = [p for p in found if p.name.replace("python3.", "").isdigit()]
    if not found:
        raise RootfsError(f"{root} has no python3 standard library")
    return found[-1]


def _pip_install(rec: dict, root: Path, progress: Progress) -> None:
    """The Python packages as pure wheels, installed from the host into the root."""
    site = root / "usr/local/lib" / _guest_python(root).name / "dist-packages"
    pins = [f"{d}=={v}" for d, v in sorted(rec["python"].items())]
    progress(f"rootfs-{rec['arch']}: pip install {' '.join(pins)}")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--no-compile", "--only-binary=:all:", "--target", str(site), *pins],
        capture_output=True, text=True)
    if proc.returncode != 0:
        raise RootfsError(f"pip could not install the guest packages: "
                          f"{proc.stderr.strip().splitlines()[-1:]}")
    for bindir in site.glob("bin"):
        shutil.rmtree(bindir)


def _finish(root: Path) -> None:
    """Trim, and give virtme-ng's init what it expects of a root."""
    for rel in TRIM:
        shutil.rmtree(root / rel, ignore_errors=True)
    busybox = root / "bin/busybox"
    for applet in ("poweroff", "reboot"):
        target = root / "sbin" / applet
        if not target.exists() and not target.is_symlink():
            target.symlink_to("/bin/busybox")
    if not busybox.exists():
        raise RootfsError("the root has no /bin/busybox (busybox-static)")
    (root / "lib/modules").mkdir(parents=True, exist_ok=True)


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
