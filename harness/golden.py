"""Golden files: where a test's golden files live, and what may name one (guest and host).

A test's golden files are ``golden/<kernel id>/<name>`` beside its test file.
The guest names a golden file by kernel id and file name only; the host
derives the directory from the test's node id, so nothing a guest sends can
point a write outside the golden directories of the run's own test files.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

DIR = "golden"
_COMPONENT = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,200}\Z")


def bad_name(text: Any) -> Optional[str]:
    """Why text cannot be a golden file name or kernel id, or None if it can."""
    if isinstance(text, str) and _COMPONENT.match(text):
        return None
    return (f"{text!r} is not a golden file name: one name of letters, digits and ._+-, "
            f"not starting with '.', without '/'")


def directory(test_dir: Path, kernel_id: str) -> Path:
    """The golden directory of a kernel for the tests in test_dir."""
    return test_dir / DIR / kernel_id
