"""An annotated file built for one kernel: its object and its programs' Specs,
or the one line saying why it did not compile."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from ... import annotations
from ...target import Target
from .. import tools
from ..run import bpfobjects
from . import recipe, tags, vmlinux


@dataclasses.dataclass
class Built:
    source: Path
    target: Target
    clang: str
    object: Optional[Path] = None
    specs: list[annotations.Spec] = dataclasses.field(default_factory=list)
    error: str = ""  # why it did not compile: one line

    @property
    def annotated(self) -> bool:
        return bool(self.specs)


def build(source: Path, target: Target, clang: str) -> Built:
    """Compile source for target's kernel and arch (cached) and read its annotations;
    a file with no annotated program has no specs."""
    built = Built(source, target, clang)
    try:
        try:
            built.object = _compile(source, target, clang, False)
        except bpfobjects.CompileError as e:
            if recipe.NO_VMLINUX not in str(e):
                raise
            built.object = _compile(source, target, clang, True)
        found = tags.programs(built.object.read_bytes(), source.stem)
    except (bpfobjects.CompileError, recipe.RecipeError, vmlinux.VmlinuxError,
            tags.TagsError, tools.ToolMissing, OSError) as e:
        built.error = first_error(str(e)).replace(f"{source.parent}/", "")
        return built
    if any(annotations.is_annotation(t) for _, _, ts in found for t in ts):
        built.specs = [annotations.parse(name, section, ts) for name, section, ts in found]
    return built


def _compile(source: Path, target: Target, clang: str, with_vmlinux: bool) -> Path:
    return bpfobjects.build(source, target.arch, recipe.flags(source, target, with_vmlinux),
                            clang=clang)


def first_error(text: str) -> str:
    """The line of a compiler's output that says what is wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if "error:" in line), lines[0] if lines else "failed")
