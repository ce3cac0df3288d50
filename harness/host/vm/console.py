"""Reading a guest's kernel console: test boundaries and kernel splats."""
from __future__ import annotations

import re
from typing import Optional

from ...protocol import BEGIN, END, boundary


# Lines that mean the kernel itself went wrong, whatever the test asserted.
_SPLAT = re.compile(
    r"Kernel panic - not syncing"
    r"|\bBUG: "
    r"|kernel BUG at"
    r"|\bOops\b"
    r"|WARNING: (?:CPU: \d+ PID: \d+|at )"
    r"|general protection fault"
    r"|Unable to handle kernel"
    r"|\bKASAN: "
    r"|\bUBSAN: "
    r"|rcu: INFO: rcu_\w+ (?:self-)?detected stall"
    r"|INFO: task \S+ blocked for more than"
)
EXCERPT_LINES = 40
# What QEMU prints when KVM cannot run the guest (it then stops or hangs, never
# falls back to TCG by itself).
_KVM_FATAL = ("KVM internal error", "failed to initialize kvm", "Could not access KVM",
              "emulation failure")
# A working KVM guest prints its banner within a second or two; a broken one
# often prints nothing at all.
KVM_FIRST_OUTPUT = 10.0


def between(text: str, seq: int) -> Optional[str]:
    """The console text printed between a test's begin and end markers.

    None when the end marker has not appeared (yet).
    """
    begin = text.find(boundary(BEGIN, seq) + "\n")
    end = text.find(boundary(END, seq) + "\n", max(begin, 0))
    if end < 0:
        return None
    return text[begin if begin >= 0 else 0:end]


def find_splat(text: str) -> Optional[str]:
    """An excerpt starting at the first splat line, or None."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _SPLAT.search(line):
            return "\n".join(lines[i:i + EXCERPT_LINES])
    return None


def kvm_failure(text: str, elapsed: float) -> Optional[str]:
    """Why a guest booting under KVM for `elapsed` seconds is not going to boot, or None."""
    fatal = next((f for f in _KVM_FATAL if f in text), None)
    if fatal:
        return fatal
    if "Linux version" not in text and elapsed > KVM_FIRST_OUTPUT:
        return f"the guest printed nothing within {KVM_FIRST_OUTPUT:.0f}s"
    return None


def tail(text: str, lines: int = EXCERPT_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])
