"""The on-disk cache of fetched kernels: layout, manifests, checksums, locks.

An entry is a directory published by a single rename, with manifest.json
written last inside it; an entry whose manifest is missing or whose files
do not match the recorded checksums is treated as absent (and refetched).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

MANIFEST = "manifest.json"


def cache_dir() -> Path:
    if os.environ.get("BPFVM_CACHE"):
        return Path(os.environ["BPFVM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "bpfvm"


def out_of_space(error: Union[BaseException, str]) -> bool:
    """Whether error (an OSError, a tool's failure or its stderr) says the disk is full."""
    text = " ".join(str(part) for part in (error, getattr(error, "stderr", "") or ""))
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in text


def os_error_line(error: OSError) -> str:
    """The one line for a file operation that failed, with the fix when the
    cache directory is where it failed."""
    where = str(error.filename or "")
    line = f"{where or 'bpfvm'}: {error.strerror or error}"
    cdir = str(cache_dir())
    if where and (where == cdir or where.startswith(cdir + os.sep) or cdir.startswith(where)):
        line += f"; the cache is {cdir}: set BPFVM_CACHE to a writable directory"
    return line


def no_space(where: Path) -> str:
    """The one line for a full disk under the cache."""
    free = shutil.disk_usage(where).free // (1 << 20) if where.exists() else 0
    return (f"no space left for the cache in {where} ({free} MiB free): free some, or set "
            "BPFVM_CACHE to a directory on a larger disk")


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(path: Path) -> str:
    """Digest of a directory's file names and sizes (cheap; catches truncation).

    Every pytest process checks each kernel's modules this way, so it reads
    the directory entries once (scandir) instead of stat-ing each path twice:
    4,200 module files took 140-190 ms, now 35 ms.
    """
    h = hashlib.sha256()
    _digest_dir(h, str(path), "")
    return h.hexdigest()


def _digest_dir(h: "hashlib._Hash", directory: str, prefix: str) -> None:
    """Files (not symlinks) first, then subdirectories, each sorted by name: os.walk's order."""
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    subdirs = []
    for entry in entries:
        if entry.is_dir():
            subdirs.append(entry)
        elif not entry.is_symlink():
            h.update(f"{prefix}{entry.name}\0{entry.stat(follow_symlinks=False).st_size}\n"
                     .encode())
    for entry in subdirs:
        if not entry.is_symlink():
            _digest_dir(h, entry.path, f"{prefix}{entry.name}/")


def read_manifest(entry: Path) -> Optional[dict]:
    try:
        return json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def boot_files(root: Path, release: str, image: Path, config: Path) -> dict:
    """The manifest fields of an entry's kernel files, which verify() checks:
    the image and config (paths and sha256) and the modules (path and digest)."""
    return {
        "vmlinuz": str(image.relative_to(root)), "config": str(config.relative_to(root)),
        "modules": f"lib/modules/{release}",
        "modules_digest": tree_digest(root / "lib/modules" / release),
        "sha256": {str(p.relative_to(root)): sha256_file(p) for p in (image, config)},
    }


def verify(entry: Path) -> Optional[str]:
    """Why the entry cannot be used, or None when it is whole."""
    manifest = read_manifest(entry)
    if manifest is None:
        return f"{entry} has no readable {MANIFEST}"
    for rel, want in manifest.get("sha256", {}).items():
        path = entry / rel
        if not path.is_file():
            return f"{path} is missing"
        if sha256_file(path) != want:
            return f"{path} does not match its recorded sha256"
    modules = manifest.get("modules")
    if modules and tree_digest(entry / modules) != manifest.get("modules_digest"):
        return f"{entry / modules} does not match its recorded file list"
    return None


def staging(parent: Path, key: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".staging-{key}-", dir=parent))


class Stage:
    """An entry being made: its files go under root, published as final in one rename."""

    def __init__(self, final: Path, key: str):
        self.final = final
        self.dir = staging(final.parent, key)
        self.root = self.dir / "root"

    def publish(self, manifest: Optional[dict] = None) -> None:
        """Write manifest.json last (when given), then put root in final's place."""
        if manifest is not None:
            (self.root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        publish(self.root, self.final)


@contextlib.contextmanager
def new_entry(final: Path, key: str) -> Iterator[Stage]:
    """A Stage beside final; whatever is left of it goes when the block ends,
    published or not (failure, Ctrl-C). Hold key's lock."""
    stage = Stage(final, key)
    try:
        yield stage
    finally:
        shutil.rmtree(stage.dir, ignore_errors=True)


def publish(staged: Path, final: Path) -> None:
    """Atomically replace final with staged (both in the same directory)."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.rename(final, old)
    os.rename(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sweep(parent: Path, key: str) -> None:
    """Remove what interrupted fetches of key left (call with key's lock held)."""
    if not parent.is_dir():
        return
    for path in parent.iterdir():
        if path.name.startswith((f".staging-{key}-", f".old-{key}-")):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock shared by every bpfvm process using this cache."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
