"""The requirement markers of a pytest item, as bpfvm reads them on host and guest alike.

(Which kernel an item is parametrized for is ``bpfvm.plugin.target_of``: the
plugin needs it before anything else of bpfvm is imported.)
"""
from __future__ import annotations

import pytest

from . import requirements


def marks_of(item: pytest.Item) -> dict[str, list[list]]:
    """Argument lists of the item's requirement markers, by marker name."""
    marks: dict[str, list[list]] = {}
    for name in requirements.MARKERS:
        for mark in item.iter_markers(name):
            hint = mark.kwargs.get("hint")
            args = list(mark.args) + ([requirements.Hint(hint)] if hint else [])
            marks.setdefault(name, []).append(args)
    return marks
