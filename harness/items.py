"""What bpfvm reads off a pytest item, on host and guest alike."""
from __future__ import annotations

from typing import Optional

import pytest

from . import requirements
from .target import Target

KERNEL_PARAM = "bpfvm_target"


def target_of(item: pytest.Item) -> Optional[Target]:
    """The kernel an item was parametrized for; None for ordinary tests."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    return callspec.params.get(KERNEL_PARAM)


def marks_of(item: pytest.Item) -> dict[str, list[list]]:
    """Argument lists of the item's requirement markers, by marker name."""
    marks: dict[str, list[list]] = {}
    for name in requirements.MARKERS:
        for mark in item.iter_markers(name):
            hint = mark.kwargs.get("hint")
            args = list(mark.args) + ([requirements.Hint(hint)] if hint else [])
            marks.setdefault(name, []).append(args)
    return marks
