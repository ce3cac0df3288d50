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
import os
import shlex
import sys
import tarfile
from pathlib import Path
from typing import Iterable

from . import cache

GUEST_DIR = "/run/bpfvm-bundle"


def module_roots(modules: Iterable[object]) -> dict[Path, list[Path]]:
    """Files of the given loaded modules (source, bytecode, extensions), by root.

    A module's root is the directory its dotted name is relative to (the
    sys.path entry it was found under, or an editable install's source
    tree). Roots inside other roots are folded into the outer one, since
    overlays cannot be stacked arbitrarily deep.
    """
    found: dict[Path, set[Path]] = {}
    for module in modules:
        name = getattr(module, "__name__", "")
        path = getattr(module, "__file__", None)
        if not name or not path or not os.path.isfile(path):
            continue
        f = Path(os.path.abspath(path))
        parts = name.split(".")
        package_dirs = parts if f.stem == "__init__" else parts[:-1]
        if list(f.parent.parts[len(f.parent.parts) - len(package_dirs):]) != package_dirs:
            continue  # an alias such as collections.abc: its file is elsewhere
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


def build(groups: dict[Path, list[Path]]) -> tuple[Path, list[Path]]:
    """(tar, roots in tar order), from the cache when it is already there."""
    roots = sorted(groups)
    key = hashlib.sha256()
    for i, root in enumerate(roots):
        for f in groups[root]:
            st = f.stat()
            key.update(f"{i}\0{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    path = cache.cache_dir() / "bundles" / f"{key.hexdigest()[:24]}.tar"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tarfile.open(tmp, "w") as tar:
            for i, root in enumerate(roots):
                for f in groups[root]:
                    tar.add(str(f), arcname=f"{i}/{f.relative_to(root)}", recursive=False)
        os.replace(tmp, path)
    return path, roots


def guest_prelude(tar: Path, roots: list[Path]) -> str:
    """Shell commands for the guest: unpack, then layer each group over its root.

    Failures are ignored on purpose: without the layers the worker still
    runs, only slower.
    """
    cmds = [f"mkdir -p {GUEST_DIR}", f"tar -xf {shlex.quote(str(tar))} -C {GUEST_DIR}"]
    for i, root in enumerate(roots):
        r = shlex.quote(str(root))
        cmds.append(f"mount -t overlay bpfvm-bundle -o lowerdir={GUEST_DIR}/{i}:{r} {r}")
    return "\n".join(f"{c} 2>/dev/null" for c in cmds)


def for_this_process() -> str:
    """The guest prelude for what this pytest process has imported ("" if none)."""
    try:
        tar, roots = build(module_roots(list(sys.modules.values())))
    except (OSError, ValueError, tarfile.TarError):
        return ""
    return guest_prelude(tar, roots)
