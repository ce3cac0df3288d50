"""A tar of the Python files the guest worker will import, laid over sys.path.

Under TCG every file operation on the guest's 9p root costs milliseconds,
and starting pytest touches hundreds of files: importing it over 9p took
20-30 s per boot. The host has just imported everything the guest needs
(pytest, the plugin, the collected test modules and what they import), so
those files are packed into one tar, grouped by the sys.path entry they
were found under. The guest unpacks it into tmpfs in one sequential read
and mounts each group as an overlayfs layer on top of its sys.path entry:
imports then find the files at their usual paths, on tmpfs, and anything
not in the bundle is still found underneath. The bundle changes speed,
never behaviour.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import py_compile
import shlex
import sys
import tarfile
import tempfile
import types
from pathlib import Path
from typing import Iterable, Optional

from ..kernels import cache

GUEST_DIR = "/run/bpfvm-bundle"
FORMAT = b"bundle 3: bytecode, no host side\n"  # part of every key: a new layout makes new bundles
KEEP = 16


def module_roots(modules: Iterable[object]) -> dict[Path, list[Path]]:
    """Files of the given loaded modules (source, bytecode, extensions), by root.

    A module's root is the directory its dotted name is relative to (the
    sys.path entry it was found under, or an editable install's source
    tree; for a package installed from a directory of another name, the
    directory holding that one). Roots inside other roots are folded into the outer one, since
    overlays cannot be stacked arbitrarily deep.
    """
    by_name: dict[str, Path] = {}
    for module in modules:
        name = getattr(module, "__name__", "")
        path = getattr(module, "__file__", None)
        if name and path and os.path.isfile(path):
            by_name[name] = Path(os.path.abspath(path))
    found: dict[Path, set[Path]] = {}
    for name, f in by_name.items():
        parts = name.split(".")
        package_dirs = parts if f.stem == "__init__" else parts[:-1]
        dirs = list(f.parent.parts[len(f.parent.parts) - len(package_dirs):])
        if dirs != package_dirs and not _in_mapped_package(f, package_dirs, dirs, by_name):
            continue  # an alias such as collections.abc: its file is elsewhere
        path = str(f)
        root = f.parents[len(package_dirs)]
        files = found.setdefault(root, set())
        files.add(f)
        if path.endswith(".py"):
            pyc = importlib.util.cache_from_source(path)
            if os.path.isfile(pyc):
                files.add(Path(pyc))
    groups: dict[Path, list[Path]] = {}
    for root in sorted(found, key=lambda r: len(r.parts)):
        outer = next((g for g in groups if g in root.parents), root)
        groups.setdefault(outer, []).extend(sorted(found[root]))
    return groups


def _in_mapped_package(f: Path, package_dirs: list[str], dirs: list[str],
                       files: dict[str, Path]) -> bool:
    """Whether f belongs to a top-level package installed from a directory of
    another name (bpfvm from harness/ in an editable install)."""
    top = files.get(package_dirs[0]) if package_dirs else None
    return (top is not None and top.name == "__init__.py" and dirs[1:] == package_dirs[1:]
            and f.parents[len(package_dirs) - 1] == top.parent)


def build(groups: dict[Path, list[Path]]) -> tuple[Path, list[Path]]:
    """(tar, roots in tar order), from the cache when it is already there.

    A source without bytecode beside it (the host ran with
    PYTHONDONTWRITEBYTECODE, or could not write there) gets bytecode compiled
    here, so the guest does not compile it on an emulated CPU at every boot.
    Sources stay in, though they are 40% of the bytes: without them each
    import looks the source up on the share underneath (the finder and the
    bytecode check stat it), and under TCG those lookups cost as much as
    unpacking the sources saved (measured: tar 0.5 s faster, imports 0.5 s slower).
    """
    roots = sorted(groups)
    key = hashlib.sha256(FORMAT)
    for i, root in enumerate(roots):
        for f in groups[root]:
            st = f.stat()
            key.update(f"{i}\0{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    path = cache.cache_dir() / "bundles" / f"{key.hexdigest()[:24]}.tar"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tarfile.open(tmp, "w") as tar, tempfile.TemporaryDirectory() as scratch:
            for i, root in enumerate(roots):
                for f in groups[root]:
                    tar.add(str(f), arcname=f"{i}/{f.relative_to(root)}", recursive=False)
                    pyc = missing_bytecode(f, groups[root], Path(scratch))
                    if pyc is not None:
                        cached = Path(importlib.util.cache_from_source(str(f)))
                        tar.add(str(pyc), arcname=f"{i}/{cached.relative_to(root)}")
        os.replace(tmp, path)
        prune(path.parent)
    else:
        os.utime(path)
    return path, roots


def prune(directory: Path, keep: int = KEEP) -> None:
    """Remove all but the keep most recently used bundles (each run of a
    changed tree makes a new one; unpruned they filled gigabytes)."""
    def used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:  # pruned by a concurrent run
            return 0.0

    for old in sorted(directory.glob("*.tar"), key=used, reverse=True)[keep:]:
        old.unlink(missing_ok=True)


def missing_bytecode(source: Path, files: list[Path], scratch: Path) -> Optional[Path]:
    """Bytecode for a .py source that has none among files, compiled into scratch."""
    if source.suffix != ".py":
        return None
    cached = Path(importlib.util.cache_from_source(str(source)))
    if cached in files:
        return None
    fd, out = tempfile.mkstemp(suffix=".pyc", dir=scratch)
    os.close(fd)
    try:
        py_compile.compile(str(source), cfile=out, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    except py_compile.PyCompileError:
        return None
    return Path(out)


def guest_prelude(tar: Path, roots: list[Path]) -> str:
    """Shell commands for the guest: unpack, then layer each group over its root.

    Failures are ignored on purpose: without the layers the worker still
    runs, only slower.
    """
    # One 9p read per tar record: with tar's 10 KiB default, unpacking a 14 MB
    # bundle took 8.7 s of round trips under TCG; 1 MiB records took 1.4 s.
    cmds = [f"mkdir -p {GUEST_DIR}", f"tar -b 2048 -xf {shlex.quote(str(tar))} -C {GUEST_DIR}"]
    for i, root in enumerate(roots):
        r = shlex.quote(str(root))
        cmds.append(f"mount -t overlay bpfvm-bundle -o lowerdir={GUEST_DIR}/{i}:{r} {r}")
    return "\n".join(f"{c} 2>/dev/null" for c in cmds)


PACKAGE_DIR = Path(__file__).resolve().parents[2]
HOST_SIDE = ("bpfvm.host", "xdist", "execnet")  # imported by the host's pytest only


def for_guest(modules: Iterable[object], project: Path) -> list[object]:
    """modules but bpfvm's host side (the guest never imports it) and the
    project's own (its tests, conftests, helpers), bpfvm kept even where it
    lives in the project (an editable install). The project's files are read
    from the share as they are now: a kept VM runs edited tests, and the
    bundle, its key and the cache stay the same across edits."""
    outside = []
    for module in modules:
        name = getattr(module, "__name__", "")
        if any(name == side or name.startswith(f"{side}.") for side in HOST_SIDE):
            continue
        path = getattr(module, "__file__", None)
        resolved = Path(os.path.abspath(path)) if isinstance(path, str) else None
        if (resolved is not None and project in resolved.parents
                and PACKAGE_DIR not in resolved.parents):
            continue
        outside.append(module)
    return outside


Imports = list[tuple[str, str]]  # (module name, file) of what a guest will import


def imported(project: Path) -> Imports:
    """What this pytest process has imported that its guests will."""
    found = set()
    for module in for_guest(list(sys.modules.values()), Path(os.path.abspath(project))):
        name, path = getattr(module, "__name__", None), getattr(module, "__file__", None)
        if isinstance(name, str) and isinstance(path, str):
            found.add((name, os.path.abspath(path)))
    return sorted(found)


def prelude(modules: Imports) -> str:
    """The guest prelude that lays a bundle of modules' files over their roots
    ("" if it cannot be made: the guest then imports from the share)."""
    try:
        tar, roots = build(module_roots(types.SimpleNamespace(__name__=name, __file__=path)
                                        for name, path in modules))
    except (OSError, ValueError, tarfile.TarError):
        return ""
    return guest_prelude(tar, roots)


def record_path(project: Path) -> Path:
    """Where remember() keeps a project's record (per project, Python environment and bpfvm)."""
    key = hashlib.sha256(f"{FORMAT!r}\0{os.path.abspath(project)}\0{sys.prefix}\0"
                         f"{sys.implementation.cache_tag}\0{PACKAGE_DIR}".encode()).hexdigest()[:24]
    return cache.cache_dir() / "bundles" / f"imports-{key}.json"


def remember(project: Path, modules: Imports) -> None:
    """Record what this run's guests import, for the project's next run: it
    boots with them before its own collection has imported anything."""
    path = record_path(project)
    text = json.dumps(modules)
    try:
        if path.exists() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass  # the next run collects before it boots, as a first run does


def recall(project: Path) -> Imports:
    """What the project's runs recorded with remember(), where the files are
    still there (empty if nothing)."""
    try:
        data = json.loads(record_path(project).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [(pair[0], pair[1]) for pair in data if isinstance(pair, list) and len(pair) == 2
            and all(isinstance(part, str) for part in pair) and os.path.isfile(pair[1])]
