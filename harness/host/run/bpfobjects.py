"""Compiling BPF C sources with clang, cached by content.

An object's cache key hashes the clang version, the full command line and
the content of every file the preprocessor reads (``clang -M``), so editing
a header rebuilds what includes it and nothing else. Objects are written to
a temporary name and renamed, so concurrent builds (xdist workers) of the
same source are harmless.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import os
import shlex
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Sequence

from ...arches import ARCH
from .. import tools
from ..kernels import cache, headers

CLANG = "clang"
BASE_FLAGS = ("-target", "bpf", "-O2", "-g", "-Wall", "-Wno-unused-function")


class CompileError(Exception):
    """A source could not be found or compiled; the message carries clang's output."""


@functools.lru_cache(maxsize=None)
def clang_version() -> str:
    if tools.find(CLANG) is None:
        raise CompileError(tools.missing(CLANG))
    out = subprocess.run([CLANG, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def find_source(name: str, dirs: Sequence[Path]) -> Path:
    """bpf_object('xdp_count') -> <a bpf dir>/xdp_count.c; a path is taken as it is."""
    if name.endswith(".c") or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise CompileError(f"BPF source {name} does not exist")
        return path.resolve()
    for directory in dirs:
        path = Path(directory) / f"{name}.c"
        if path.is_file():
            return path.resolve()
    where = ", ".join(str(d) for d in dirs) or "(no bpf directory configured)"
    raise CompileError(f"no BPF source {name}.c in {where}; add it there or pass a path to the .c file")


def include_dirs(source: Path, arch: str) -> list[str]:
    """The source's own directory and the guest arch's multiarch headers (asm/...)."""
    try:
        return [str(source.parent), str(headers.include_dir(arch))]
    except (RuntimeError, ValueError) as e:  # FetchError, MirrorError
        raise CompileError(f"no {arch} kernel headers for {source.name}: {e}") from None


def command(source: Path, arch: str, cflags: Sequence[str]) -> list[str]:
    if arch not in ARCH:
        raise CompileError(f"cannot build BPF objects for arch {arch!r}; known: {sorted(ARCH)}")
    includes = [f"-I{d}" for d in include_dirs(source, arch)]
    return [CLANG, *BASE_FLAGS, f"-D__TARGET_ARCH_{ARCH[arch].bpf_target}", *includes,
            *cflags, "-c", str(source)]


def dependencies(cmd: list[str]) -> list[str]:
    """Every file the preprocessor reads for cmd, from clang -M."""
    out = subprocess.run(cmd + ["-M"], capture_output=True, text=True)
    if out.returncode != 0:
        raise CompileError(f"clang failed on {cmd[-1]}:\n{out.stderr.strip()}")
    text = out.stdout.replace("\\\n", " ")
    return shlex.split(text.split(":", 1)[1])


def cache_key(cmd: list[str], deps: Iterable[str]) -> str:
    h = hashlib.sha256()
    h.update(clang_version().encode() + b"\0" + "\0".join(cmd).encode())
    for dep in sorted(set(deps)):
        h.update(b"\0" + dep.encode() + b"\0" + Path(dep).read_bytes())
    return h.hexdigest()


def objects_dir() -> Path:
    return cache.cache_dir() / "bpf"


def build(source: Path, arch: str, cflags: Sequence[str] = ()) -> Path:
    """The compiled object for source (built now, or from the cache)."""
    clang_version()
    cmd = command(source, arch, cflags)
    key = cache_key(cmd, dependencies(cmd))
    out = objects_dir() / f"{source.stem}-{arch}-{key[:20]}.o"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    os.close(fd)
    try:
        result = subprocess.run(cmd + ["-o", tmp], capture_output=True, text=True)
        if result.returncode != 0:
            raise CompileError(f"clang failed on {source}:\n{result.stderr.strip()}\n"
                             f"command: {shlex.join(cmd)}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def serve(request: dict[str, Any], dirs: Sequence[Path], arch: str) -> dict[str, Any]:
    """Answer a guest's build request: the object's bytes, or clang's diagnostics."""
    try:
        source = find_source(request["source"], dirs)
        path = build(source, request.get("arch") or arch, request.get("cflags", ()))
    except CompileError as e:
        return {"ok": False, "error": str(e)}
    return {"ok": True, "name": source.stem, "path": str(path),
            "object": base64.b64encode(path.read_bytes()).decode()}


def prebuild(dirs: Sequence[Path], arches: Iterable[str]) -> list[str]:
    """Build every source in dirs for arches, in parallel, before any test runs.

    Returns the errors; a source that does not compile is reported by the
    tests that load it, so the run goes on.
    """
    sources = sorted(p.resolve() for d in dirs if Path(d).is_dir() for p in Path(d).glob("*.c"))
    jobs = [(s, a) for a in sorted(set(arches)) for s in sources]

    def one(job: tuple[Path, str]) -> str:
        try:
            build(*job)
        except CompileError as e:
            return str(e)
        return ""

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return [e for e in pool.map(one, jobs) if e]
