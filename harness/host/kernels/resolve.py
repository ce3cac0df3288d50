"""Turning --kernel values into Targets: catalog names, 'host', or paths."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Callable, Optional

from ... import kconfig
from ...arches import ARCH
from ...target import ARCHES, Target, host_arch
from . import buildcache, cache, catalog, fetch



class ResolveError(ValueError):
    pass


def split_specs(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


def targets(kernels: str, arches: str, entries: list[catalog.Entry],
            flavours: dict[str, catalog.Flavour]) -> dict[str, Target]:
    """The run's targets by id, from --kernel and --arch values (comma-separated)."""
    found: dict[str, Target] = {}
    for arch in split_specs(arches):
        for spec in split_specs(kernels):
            target = parse(spec, arch, entries, flavours)
            found[target.id] = target
    if any(t.kind == "host" for t in found.values()) and os.geteuid() != 0:
        raise ResolveError("--kernel host runs tests on the running kernel and needs "
                           "root; run pytest as root or pick a VM kernel")
    foreign_host = [t for t in found.values() if t.kind == "host" and t.foreign]
    if foreign_host:
        raise ResolveError(f"--kernel host runs on this {host_arch()} machine; "
                           f"it cannot be {foreign_host[0].arch}")
    return found


def parse(spec: str, arch: str, entries: list[catalog.Entry],
          flavours: Optional[dict[str, catalog.Flavour]] = None) -> Target:
    """The Target a --kernel value names; catalog kernels are not fetched or built yet."""
    target = _parse(spec, arch, entries, flavours)
    target.foreign = target.arch != host_arch()
    return target


def _parse(spec: str, arch: str, entries: list[catalog.Entry],
           flavours: Optional[dict[str, catalog.Flavour]]) -> Target:
    if arch not in ARCHES:
        raise ResolveError(f"unknown arch {arch!r}; use one of {', '.join(ARCHES)}")
    if spec == "host":
        release = os.uname().release
        return Target("host", arch, "host", release=release, version=release,
                      config=kconfig.running_config_path())
    if "/" in spec or os.path.exists(spec):
        return from_path(Path(spec), arch)
    built = catalog.split_built(spec, flavours or {})
    if built and not any(e.name == spec for e in entries):
        entry = catalog.lookup(entries, built[0], arch)
        return Target(spec, entry.arch, "built")
    entry = catalog.lookup(entries, spec, arch)
    return Target(entry.name, entry.arch, "catalog")


def materialize(target: Target, entries: list[catalog.Entry],
                progress: Callable[[str], None], fetch_missing: bool = True) -> bool:
    """Fill in a catalog or built target from the cache, fetching or building it first
    if it is not there (with fetch_missing); whether the target is ready."""
    if target.kind not in ("catalog", "built") or target.vmlinuz:
        return True
    entry_dir: Optional[Path]
    if target.kind == "built":
        line, flavour = catalog.split_built(target.name, catalog.load_flavours())
        entry = catalog.lookup(entries, line, target.arch)
        if fetch_missing:
            entry_dir = buildcache.build(entry, flavour, progress=progress, refresh=False)
        else:
            entry_dir = buildcache.cached(line, flavour, target.arch)
    else:
        entry = catalog.lookup(entries, target.name, target.arch)
        if fetch_missing:
            entry_dir = fetch.fetch(entry, progress=progress, refresh=False)
        else:
            entry_dir = fetch.cached(entry)
    if entry_dir is None:
        return False
    manifest = cache.read_manifest(entry_dir)
    assert manifest is not None
    target.release = manifest["release"]
    target.version = manifest["version"]
    target.vmlinuz = str(entry_dir / manifest["vmlinuz"])
    target.config = str(entry_dir / manifest["config"])
    return True


def from_path(path: Path, arch: str) -> Target:
    """A user's kernel: a build tree, or an image file (config beside it if any)."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise ResolveError(f"kernel path {path} does not exist")
    if path.is_dir():
        image = path / ARCH[arch].image
        if not image.is_file():
            raise ResolveError(f"{path} is not a built kernel tree for {arch}: "
                               f"{ARCH[arch].image} is missing (run make first)")
        release_file = path / "include/config/kernel.release"
        release = release_file.read_text().strip() if release_file.exists() else image_release(image)
        config = path / ".config"
        return Target(release or path.name, arch, "path", release=release or "",
                      version=release or "", vmlinuz=str(image),
                      config=str(config) if config.exists() else None, kdir=str(path))
    release = image_release(path)
    if release is None:
        raise ResolveError(f"{path} is not a kernel image (no Linux version found in it)")
    config = next((c for c in (path.parent / f"config-{release}", path.parent / ".config",
                               path.parent / "config") if c.exists()), None)
    return Target(release, arch, "path", release=release, version=release,
                  vmlinuz=str(path), config=str(config) if config else None)


def image_release(path: Path) -> Optional[str]:
    """The kernel release a bzImage/Image declares, as `file` reads it."""
    try:
        out = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        out = ""
    m = re.search(r"[Vv]ersion (\S{3,})", out)
    if m:
        return m.group(1)
    with open(path, "rb") as f:
        m = re.search(rb"Linux version (\S{3,})", f.read())
    return m.group(1).decode() if m else None
