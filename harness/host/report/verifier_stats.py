"""`bpfvm verifier-stats`: the golden verifier statistics compared across kernels.

Reads ``<golden dir>/<kernel>/<program>.stats.json`` (written by
``pytest --update-golden``) and prints, in the spirit of veristat's compare
mode, one row per program: the figure on each kernel, then the change from
the first kernel to the last (difference and percent).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from ...target import kernel_order

FIELDS = ("processed_insns", "total_states", "peak_states", "verified_insns")


class StatsError(Exception):
    """No statistics where they were looked for."""


INI_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
_SKIP_DIRS = ("node_modules", "site-packages", "__pycache__")


def project_root(start: Path) -> Path:
    """The directory pytest would take as rootdir from start: the nearest one
    up with a pytest configuration file; start itself when there is none."""
    for directory in [start, *start.parents]:
        for name in INI_FILES:
            path = directory / name
            if path.is_file() and _configures_pytest(path):
                return directory
    return start


def _configures_pytest(path: Path) -> bool:
    if path.name in ("pytest.ini", ".pytest.ini"):
        return True
    text = path.read_text(errors="replace")
    markers = {"pyproject.toml": ("[tool.pytest",), "tox.ini": ("[pytest]",),
               "setup.cfg": ("[tool:pytest]",)}[path.name]
    return any(marker in text for marker in markers)


def project_golden(start: Path) -> Path:
    """The golden directory (of statistics) of the project start is in.

    Golden files live in golden/ beside the tests that wrote them; a
    project with several such directories must name one.
    """
    root = project_root(start)
    found = []
    for directory, subdirs, _files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in _SKIP_DIRS]
        if Path(directory).name == "golden" and kernel_dirs(Path(directory)):
            found.append(Path(directory))
            subdirs[:] = []
    if len(found) == 1:
        return found[0]
    if not found:
        raise StatsError(f"no golden statistics in the project at {root}; write them with "
                         "pytest --update-golden, or name the directory with --golden")
    raise StatsError(f"several golden directories in {root}: "
                     f"{', '.join(str(f.relative_to(root)) for f in found)}; pick one with --golden")




def kernel_dirs(root: Path) -> list[str]:
    """Kernel directories under root holding stats, oldest version first."""
    names = [d.name for d in root.iterdir() if d.is_dir() and any(d.glob("*.stats.json"))] \
        if root.is_dir() else []
    return sorted(names, key=kernel_order)


def load(root: Path, kernels: list[str], field: str) -> dict[str, dict[str, Optional[int]]]:
    """program -> kernel -> figure (None where that kernel has no stats for it)."""
    table: dict[str, dict[str, Optional[int]]] = {}
    for kernel in kernels:
        directory = root / kernel
        if not directory.is_dir():
            raise StatsError(f"no golden statistics for kernel {kernel!r} in {root}; "
                             f"there are: {', '.join(kernel_dirs(root)) or 'none'}")
        for path in sorted(directory.glob("*.stats.json")):
            program = path.name[:-len(".stats.json")]
            table.setdefault(program, {})[kernel] = json.loads(path.read_text()).get(field)
    return table


def render(table: dict[str, dict[str, Optional[int]]], kernels: list[str], field: str) -> str:
    width = max([len("program")] + [len(p) for p in table]) + 2
    head = "program".ljust(width) + "".join(f"{k:>12}" for k in kernels) + f"{'diff':>10}{'%':>9}"
    lines = [f"{field} per kernel ({kernels[0]} -> {kernels[-1]})", head]
    for program in sorted(table):
        row = table[program]
        cells = "".join(f"{'-' if row.get(k) is None else row[k]:>12}" for k in kernels)
        first, last = row.get(kernels[0]), row.get(kernels[-1])
        if first is None or last is None:
            change = f"{'-':>10}{'-':>9}"
        else:
            percent = f"{(last - first) / first:+.1%}" if first else "-"
            change = f"{last - first:>+10}{percent:>9}"
        lines.append(program.ljust(width) + cells + change)
    return "\n".join(lines)
