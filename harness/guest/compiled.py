"""Where a guest test gets compiled BPF objects: it asks the host.

The host compiles (clang runs natively there, and its cache is shared by
every VM); the guest receives the object's bytes. On the host itself
(``--kernel host``) HostRun installs a compiler that builds in-process.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from .bpf.objects import BpfObject, load

Compiler = Callable[[dict[str, Any]], dict[str, Any]]
_compiler: Optional[Compiler] = None


class BuildError(Exception):
    """The host could not compile a source; the message is clang's output."""

    __module__ = "bpfvm.bpf"  # its public home, as tracebacks show it


def set_compiler(compiler: Optional[Compiler]) -> None:
    global _compiler
    _compiler = compiler


def compiled(source: Union[str, Path], cflags: Sequence[str] = (),
             base: Optional[Path] = None) -> tuple[str, bytes]:
    """(name, object bytes) for a source name in the bpf dirs, or a path to a .c file.

    A relative path is taken from base (the test's directory).
    """
    source = str(source)
    if (source.endswith(".c") or os.sep in source) and base is not None:
        source = str((base / source).resolve())
    reply = call({"call": "build", "source": source, "cflags": list(cflags)})
    return reply["name"], base64.b64decode(reply["object"])


def call(request: dict[str, Any]) -> dict[str, Any]:
    """The host's reply to a build request; BuildError with its message when it failed."""
    if _compiler is None:
        raise RuntimeError("no BPF compiler: BPF objects are built in tests run by bpfvm")
    reply = _compiler(request)
    if not reply["ok"]:
        raise BuildError(reply["error"])
    return reply


def load_object(source: Union[str, Path], cflags: Sequence[str] = (),
                base: Optional[Path] = None, **load_options: Any) -> BpfObject:
    """Compile (on the host, cached) and load an object; the caller closes it.

    A path ending in .o is an object built elsewhere, loaded as it is.
    """
    if str(source).endswith(".o"):
        name, data = prebuilt(Path(source), cflags, base)
    else:
        name, data = compiled(source, cflags, base)
    return load(data, name, **load_options)


def prebuilt(path: Path, cflags: Sequence[str], base: Optional[Path]) -> tuple[str, bytes]:
    if cflags:
        raise BuildError(f"{path} is already built: cflags apply to .c sources")
    if base is not None:
        path = base / path
    try:
        return path.name, path.read_bytes()
    except FileNotFoundError:
        raise BuildError(f"no BPF object {path}: build it first, or give its .c source") from None
