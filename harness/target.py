"""What a test runs on: a kernel, its arch, and where its files are.

Plain data shared by host and guest; the host builds it and hands it to
the guest worker as JSON.
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Optional

from .arches import NAMES as ARCHES
from .arches import host_arch

__all__ = ["ARCHES", "Target", "host_arch", "kernel_order", "parse_version"]


def parse_version(text: str) -> tuple[int, int, int]:
    """The leading 'X.Y[.Z]' of a kernel release or Debian version, padded."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        raise ValueError(f"not a kernel version: {text!r}")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


@dataclasses.dataclass
class Target:
    """One kernel to run tests on.

    kind is "catalog" (a fetched Debian kernel), "path" (a user's image or
    build tree) or "host" (the running kernel, no VM).
    """

    name: str
    arch: str
    kind: str
    release: str = ""
    version: str = ""
    vmlinuz: Optional[str] = None
    config: Optional[str] = None
    kdir: Optional[str] = None
    foreign: bool = False  # the arch differs from the host's (decided on the host)

    @property
    def id(self) -> str:
        """The test-id suffix: the kernel name, plus the arch when foreign."""
        return f"{self.name}-{self.arch}" if self.foreign else self.name

    @property
    def in_vm(self) -> bool:
        return self.kind != "host"

    def version_tuple(self) -> Optional[tuple[int, int, int]]:
        for text in (self.version, self.release):
            if text:
                try:
                    return parse_version(text)
                except ValueError:
                    pass
        return None

    def describe(self) -> str:
        """'6.12 (6.12.107+deb13-amd64)' for skip reasons and reports."""
        if self.release and self.release != self.name:
            return f"{self.id} ({self.release})"
        return self.id

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Target":
        return cls(**json.loads(text))


def kernel_order(kernel_id: str) -> tuple:
    """Sort key for kernel ids: numbered lines by version, then 'latest', 'host', paths."""
    try:
        return (0, parse_version(kernel_id.split("-")[0]), kernel_id)
    except ValueError:
        return (1, (0, 0, 0), kernel_id)
