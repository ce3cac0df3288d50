"""Kernel sources to build: Debian's linux-source package of a line, or a user's tree."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from ..progress import Progress
from . import cache, fetch
from .catalog import Entry


class SourceError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class DebianSource:
    """linux-source-X.Y of the suite a catalog line follows."""
    suite: str
    package: str         # linux-source-6.12
    debian_version: str  # 6.12.107-1

    @property
    def label(self) -> str:
        """What identifies the source in cache keys and manifests."""
        return f"debian {self.suite} {self.package} {self.debian_version}"

    @property
    def version(self) -> str:
        return fetch.upstream_version(self.debian_version)


def debian_source(entry: Entry, progress: Progress) -> DebianSource:
    """Ask the mirror which linux-source-X.Y the line's suite has now."""
    apt = fetch.apt_for(entry.suite, entry.arch)
    progress(f"{entry.name}: updating package lists for {entry.suite}")
    apt.update()
    meta = apt.record("linux-source")
    versioned = next((d for d in fetch.depends(meta) if d.startswith("linux-source-")), None)
    if versioned is None:
        raise SourceError(f"linux-source in {entry.suite} depends on no linux-source-X.Y package")
    return DebianSource(entry.suite, versioned, apt.record(versioned)["Version"])


def unpack_debian(entry: Entry, source: DebianSource, dest: Path, progress: Progress) -> Path:
    """Download and unpack the source package; return the kernel tree under dest."""
    apt = fetch.apt_for(entry.suite, entry.arch)
    progress(f"{entry.name}: downloading {source.package} {source.debian_version}")
    unpacked = dest / "deb"
    apt.unpack([f"{source.package}={source.debian_version}"], unpacked)
    tarballs = list(unpacked.glob("usr/src/linux-source-*.tar.*"))
    if not tarballs:
        raise SourceError(f"{source.package} {source.debian_version} holds no source tarball")
    progress(f"{entry.name}: unpacking {tarballs[0].name}")
    subprocess.run(["tar", "-xf", str(tarballs[0]), "-C", str(dest)], check=True)
    shutil.rmtree(unpacked)
    tree = dest / tarballs[0].name.split(".tar")[0]
    if not (tree / "Makefile").is_file():
        raise SourceError(f"{tarballs[0].name} did not unpack to a kernel tree")
    return tree


def tree_version(tree: Path) -> str:
    """`make kernelversion` of a user's tree; one clear error when it is no tree."""
    if not (tree / "Makefile").is_file() or not (tree / "Kconfig").is_file():
        raise SourceError(f"{tree} is not a kernel source tree (no Makefile and Kconfig)")
    proc = subprocess.run(["make", "-s", "-C", str(tree), "kernelversion"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SourceError(f"make kernelversion failed in {tree}: {proc.stderr.strip()[-200:]}")
    return proc.stdout.strip()


def tree_revision(tree: Path) -> Optional[str]:
    """The git commit of a user's tree, with -dirty when it has changes."""
    try:
        proc = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty",
                               "--abbrev=12"], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def sources_dir() -> Path:
    return cache.cache_dir() / "sources"


def cached_tree(entry: Entry, progress: Progress) -> Path:
    """The line's current Debian kernel source, unpacked into the cache once
    (`bpfvm kernels source LINE`); the mirror says which version is current."""
    source = debian_source(entry, progress)
    key = f"{source.package}_{source.debian_version}"
    final = sources_dir() / key
    tree = final / source.package
    with cache.locked(f"source-{key}"):
        cache.sweep(final.parent, key)
        if cache.read_manifest(final) is not None and (tree / "Makefile").is_file():
            return tree
        with cache.new_entry(final, key) as stage:
            unpacked = unpack_debian(entry, source, stage.root, progress)
            if unpacked.name != source.package:
                unpacked.rename(stage.root / source.package)
            stage.publish({"source": source.label, "tree": source.package})
    return tree
