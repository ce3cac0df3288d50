"""The programs bpfvm runs on the host, and what to install when one is missing."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from ..arches import ARCH

QEMU = {name: arch.qemu for name, arch in ARCH.items()}
_INSTALL = {
    "vng": "pip install virtme-ng",
    "qemu-system-x86_64": "bpfvm setup (qemu-system-x86)",
    "qemu-system-aarch64": "bpfvm setup (qemu-system-arm)",
    "clang": "bpfvm setup (clang)",
    "bpftool": "bpfvm setup (bpftool)",
}


class ToolMissing(RuntimeError):
    pass


def search_path() -> str:
    """PATH with this interpreter's bin dir first (where pip put vng), and the sbin dirs."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", ""),
                            "/usr/sbin", "/sbin"])


def find(tool: str) -> Optional[str]:
    return shutil.which(tool, path=search_path())


def install_hint(tool: str) -> str:
    return _INSTALL.get(tool, f"bpfvm setup, or install {tool}")


def missing(tool: str) -> str:
    """The one line for a missing tool."""
    return f"{tool} not found: {install_hint(tool)}"


def require(tool: str) -> str:
    """The tool's path; ToolMissing with the fix when there is none."""
    found = find(tool)
    if found is None:
        raise ToolMissing(missing(tool))
    return found
