"""Kconfig fragments: reading, merging, and checking what a configured tree kept.

A fragment is a .config excerpt: `CONFIG_X=value` or `# CONFIG_X is not
set` lines and comments. A trailing `# if-known` comment on a line makes
that option conditional: it is only checked on trees whose Kconfig
declares the symbol (options that arrived in a later kernel).
"""
from __future__ import annotations

import dataclasses
import os
import re
from importlib import resources
from pathlib import Path
from typing import Iterable

from ... import kconfig

PACKAGED_DIR = Path(str(resources.files("bpfvm.kernels") / "fragments"))
_SET = re.compile(r'^(CONFIG_\w+)=("(?:[^"\\]|\\.)*"|\S*)\s*(#.*)?$')
_UNSET = re.compile(r"^# (CONFIG_\w+) is not set\s*$")


class FragmentError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    value: str          # "n" for "is not set"
    source: str         # "bpf.config:12", for error messages
    if_known: bool = False


def parse(text: str, source: str) -> list[Option]:
    options = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{source}:{number}"
        m = _SET.match(line)
        if m:
            comment = m.group(3) or ""
            options.append(Option(m.group(1), m.group(2), where,
                                  comment.lstrip("# ").startswith("if-known")))
        elif _UNSET.match(line):
            options.append(Option(_UNSET.match(line).group(1), "n", where))
        elif line and not line.startswith("#"):
            raise FragmentError(f"{where}: not a Kconfig line: {raw!r}")
    return options


def search_dirs() -> list[Path]:
    """Where fragments are looked up: the directories of BPFVM_FRAGMENTS
    (colon-separated, first match wins), then bpfvm's own."""
    extra = [Path(d) for d in os.environ.get("BPFVM_FRAGMENTS", "").split(os.pathsep) if d]
    return extra + [PACKAGED_DIR]


def fragment_path(name: str, directories: Iterable[Path] | None = None) -> Path:
    """The first NAME.config in directories (default: search_dirs()); the last
    directory's path when there is none, so the error names a real place."""
    dirs = list(directories) if directories is not None else search_dirs()
    for directory in dirs:
        path = directory / f"{name}.config"
        if path.is_file():
            return path
    return dirs[-1] / f"{name}.config"


def load(names: Iterable[str], directory: Path | None = None) -> list[Option]:
    """The options of the named fragments, in order (from directory, or the search path)."""
    options = []
    for name in names:
        path = fragment_path(name, [directory] if directory is not None else None)
        try:
            text = path.read_text()
        except OSError as e:
            raise FragmentError(f"cannot read Kconfig fragment {path}: {e.strerror}") from None
        options += parse(text, path.name)
    return options


def merge(options: Iterable[Option]) -> dict[str, Option]:
    """One option per name; a later fragment overrides an earlier one."""
    merged: dict[str, Option] = {}
    for opt in options:
        merged.pop(opt.name, None)
        merged[opt.name] = opt
    return merged


def render(merged: dict[str, Option]) -> str:
    """The merged options as .config lines, to append before olddefconfig."""
    lines = []
    for opt in merged.values():
        if opt.value == "n":
            lines.append(f"# {opt.name} is not set")
        else:
            lines.append(f"{opt.name}={opt.value}")
    return "\n".join(lines) + "\n"


def dropped(merged: dict[str, Option], config_text: str,
            known: set[str]) -> list[str]:
    """One line per option the configured tree did not keep as asked.

    known: the symbols the tree's Kconfig declares (without CONFIG_).
    """
    final = kconfig.parse(config_text)
    problems = []
    for opt in merged.values():
        symbol = opt.name[len("CONFIG_"):]
        if opt.if_known and symbol not in known:
            continue
        got = final.get(opt.name, "n")
        if got != opt.value:
            why = "the kernel has no such option" if symbol not in known else (
                "unmet dependencies" if got == "n" else f"it is {got}")
            problems.append(f"{opt.name}={opt.value} ({opt.source}) was dropped: {why}")
    return problems


_DECL = re.compile(r"^\s*(?:menu)?config\s+(\w+)\s*$", re.M)


def declared_symbols(tree: Path) -> set[str]:
    """Every symbol a kernel tree's Kconfig files declare."""
    symbols: set[str] = set()
    for path in tree.rglob("Kconfig*"):
        try:
            symbols.update(_DECL.findall(path.read_text(errors="replace")))
        except OSError:
            continue
    return symbols
