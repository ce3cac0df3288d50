"""Compiling BPF C sources with clang, cached by content.

An object's cache key hashes the clang version, the full command line and
the content of every file the preprocessor reads (``clang -M``), so editing
a header rebuilds what includes it and nothing else. Objects are written to
a temporary name and renamed, so concurrent builds (xdist workers) of the
same source are harmless.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import os
import re
import shlex
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ...arches import ARCH
from .. import tools
from ..kernels import cache, headers

CLANG = "clang"
BASE_FLAGS = ("-target", "bpf", "-O2", "-g", "-Wall", "-Wno-unused-function")


class CompileError(Exception):
    """A source could not be found or compiled; the message carries clang's output."""


# What a guest's build request may put on clang's command line: what a BPF
# build needs. Anything else could write host files (-o, -MF, -Wp,), load
# host code (-fplugin, -Xclang -load) or echo host files back (-include, @file).
ALLOWED_FLAGS = re.compile(
    r"-[DU][A-Za-z_][A-Za-z0-9_]*(=.*)?|-O[0-3sz]?|-g[0-3]?"
    r"|-W(no-)?[a-z][a-z0-9-]*(=[a-z0-9-]+)?|-mcpu=(v[1-4]|probe|generic)|-malu32"
    r"|-m(little|big)-endian|-std=(c|gnu)(89|99|11|17|18|2x|23)", re.S)
ALLOWED_TEXT = "-D, -U, -I within the project, -O, -g, -W..., -mcpu=, -malu32, -std="


@dataclasses.dataclass
class Confinement:
    """Where a guest's build request may reach on the host: sources under
    source_roots, -I directories under project."""
    project: Path
    source_roots: Sequence[Path]

    def flags(self, cflags: Any) -> list[str]:
        """cflags, each checked (an -I made absolute); one line per refused flag."""
        if not isinstance(cflags, (list, tuple)):
            raise CompileError(f"cflags must be a list of strings, not {cflags!r:.80}")
        checked, refused = [], []
        for flag in cflags:
            if isinstance(flag, str) and flag.startswith("-I") and len(flag) > 2:
                directory = (self.project / flag[2:]).resolve()
                if directory.is_relative_to(self.project.resolve()):
                    checked.append(f"-I{directory}")
                    continue
                refused.append(f"refused cflag {flag!r}: an -I directory must be inside the "
                               f"project ({self.project})")
            elif isinstance(flag, str) and ALLOWED_FLAGS.fullmatch(flag):
                checked.append(flag)
            else:
                refused.append(f"refused cflag {flag!r:.200}: a guest's build may use only "
                               f"{ALLOWED_TEXT}")
        if refused:
            raise CompileError("\n".join(refused))
        return checked

    def source(self, path: Path) -> Path:
        if not any(path.is_relative_to(root.resolve()) for root in self.source_roots):
            roots = ", ".join(str(r) for r in self.source_roots)
            raise CompileError(f"refused BPF source {path}: a guest may build only sources "
                               f"under {roots}")
        return path


@functools.lru_cache(maxsize=None)
def clang_version(clang: str = CLANG) -> str:
    if tools.find(clang) is None:
        raise CompileError(tools.missing(clang))
    out = subprocess.run([clang, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def is_path(name: str) -> bool:
    return name.endswith(".c") or os.sep in name


def find_source(name: str, dirs: Sequence[Path]) -> Path:
    """bpf_object('xdp_count') -> <a bpf dir>/xdp_count.c; a path is taken as it is."""
    if is_path(name):
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


def command(source: Path, arch: str, cflags: Sequence[str], clang: str = CLANG) -> list[str]:
    if arch not in ARCH:
        raise CompileError(f"cannot build BPF objects for arch {arch!r}; known: {sorted(ARCH)}")
    includes = [f"-I{d}" for d in include_dirs(source, arch)]
    return [clang, *BASE_FLAGS, f"-D__TARGET_ARCH_{ARCH[arch].bpf_target}", *includes,
            *cflags, "-c", str(source)]


def run_clang(cmd: list[str], timeout: Optional[float]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CompileError(f"clang did not finish {cmd[cmd.index('-c') + 1]} within "
                           f"{timeout:.0f}s, the time the test had left; it was killed") from None


def dependencies(cmd: list[str], timeout: Optional[float] = None) -> list[str]:
    """Every file the preprocessor reads for cmd, from clang -M."""
    out = run_clang(cmd + ["-M"], timeout)
    if out.returncode != 0:
        raise CompileError(f"clang failed on {cmd[-1]}:\n{out.stderr.strip()}")
    text = out.stdout.replace("\\\n", " ")
    return shlex.split(text.split(":", 1)[1])


def cache_key(cmd: list[str], deps: Iterable[str]) -> str:
    h = hashlib.sha256()
    h.update(clang_version(cmd[0]).encode() + b"\0" + "\0".join(cmd).encode())
    for dep in sorted(set(deps)):
        h.update(b"\0" + dep.encode() + b"\0" + Path(dep).read_bytes())
    return h.hexdigest()


def objects_dir() -> Path:
    return cache.cache_dir() / "bpf"


def build(source: Path, arch: str, cflags: Sequence[str] = (),
          timeout: Optional[float] = None, clang: str = CLANG) -> Path:
    """The compiled object for source (built now, or from the cache); clang
    is killed after timeout seconds."""
    clang_version(clang)
    cmd = command(source, arch, cflags, clang)
    end = time.monotonic() + timeout if timeout is not None else None
    key = cache_key(cmd, dependencies(cmd, timeout))
    out = objects_dir() / f"{source.stem}-{arch}-{key[:20]}.o"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    os.close(fd)
    try:
        left = max(1.0, end - time.monotonic()) if end is not None else None
        result = run_clang(cmd + ["-o", tmp], left)
        if result.returncode != 0:
            raise CompileError(f"clang failed on {source}:\n{result.stderr.strip()}\n"
                             f"command: {shlex.join(cmd)}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def serve(request: dict[str, Any], dirs: Sequence[Path], arch: str, confine: Confinement,
          timeout: Optional[float] = None) -> dict[str, Any]:
    """Answer a guest's build request: the object's bytes, or clang's diagnostics
    (or the refusal: the request is the guest's, so it is checked first)."""
    try:
        name = request.get("source")
        if not isinstance(name, str):
            raise CompileError(f"a build request names its source as a string, not {name!r:.80}")
        cflags = confine.flags(request.get("cflags", []))
        if is_path(name):  # checked before it is looked at, so nothing outside is probed
            confine.source(Path(name).resolve())
        source = confine.source(find_source(name, dirs))
        path = build(source, arch, cflags, timeout)
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
