"""Reading a guest's kernel console: test boundaries, kernel splats, and who owns them.

A test owns the console text between its begin and end markers, and what
follows its end marker within GRACE seconds of kernel time (what the test
left running: netns cleanup, RCU callbacks, deferred work). A splat in text
no test owns -- at boot, between tests after the grace, at shutdown -- is
the kernel's own problem and is reported as a failure of its own.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Iterable, Optional, Sequence

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
# An assertion in QEMU's own KVM code names its source file (seen with broken
# nested KVM: "failed to set MSR 0x10a", then kvm_buf_set_msrs asserting).
_KVM_FATAL = ("KVM internal error", "failed to initialize kvm", "Could not access KVM",
              "emulation failure", "failed to set MSR", "target/i386/kvm/kvm.c:",
              "target/arm/kvm.c:")
# A working KVM guest prints its banner within a second or two; a broken one
# often prints nothing at all.
KVM_FIRST_OUTPUT = 10.0


GRACE = 2.0  # seconds of kernel time after a test's end marker that are still the test's
EXCERPT_CHARS = 8192
_TIME = re.compile(r"^\[\s*(\d+\.\d+)\]")


@dataclasses.dataclass(frozen=True)
class Allowed:
    """A known-harmless splat: lines matching pattern are not problems until expires."""
    pattern: re.Pattern
    reason: str
    expires: datetime.date

    @classmethod
    def parse(cls, line: str) -> "Allowed":
        """From 'REGEX ; REASON ; YYYY-MM-DD' (ini bpfvm_console_allow); ValueError says what is wrong."""
        parts = [p.strip() for p in line.rsplit(";", 2)]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{line!r} is not 'REGEX ; REASON ; YYYY-MM-DD'")
        try:
            pattern = re.compile(parts[0])
        except re.error as e:
            raise ValueError(f"{parts[0]!r} is not a regular expression ({e})") from None
        try:
            expires = datetime.date.fromisoformat(parts[2])
        except ValueError:
            raise ValueError(f"{parts[2]!r} is not a date (YYYY-MM-DD)") from None
        return cls(pattern, parts[1], expires)


# Splats known to be harmless on the kernels bpfvm ships, each with why and
# until when (then it is a problem again, and the entry is reviewed). None
# has been seen yet: the console logs of every suite run on 5.10, 6.1, 6.12
# and latest were clean.
BUILTIN_ALLOWED: tuple[Allowed, ...] = ()


def find_splats(text: str, allowed: Sequence[Allowed] = (),
                today: Optional[datetime.date] = None) -> list[str]:
    """An excerpt for each splat not allowed, starting at its first line (a
    splat line within the previous excerpt and the same second of kernel time
    belongs to that splat: a BUG followed by its Oops).

    A line an expired entry matches is a splat, its excerpt saying so.
    """
    today = today or datetime.date.today()
    lines = text.splitlines()
    found, covered, began = [], 0, None
    for i, line in enumerate(lines):
        if not _SPLAT.search(line):
            continue
        when = timestamp(line)
        if i < covered and (when is None or began is None or when - began < 1.0):
            continue
        entries = [a for a in allowed if a.pattern.search(line)]
        if any(a.expires >= today for a in entries):
            continue
        excerpt = "\n".join(lines[i:i + EXCERPT_LINES])[:EXCERPT_CHARS]
        for a in entries:
            excerpt += f"\n(bpfvm_console_allow: allowed until {a.expires}, now past: {a.reason})"
        found.append(excerpt)
        covered, began = i + EXCERPT_LINES, when
    return found


def find_splat(text: str, allowed: Sequence[Allowed] = (),
               today: Optional[datetime.date] = None) -> Optional[str]:
    """The excerpt of the first splat not allowed, or None."""
    found = find_splats(text, allowed, today)
    return found[0] if found else None


def timestamp(line: str) -> Optional[float]:
    """The printk time of a console line, if it has one."""
    match = _TIME.match(line)
    return float(match.group(1)) if match else None


@dataclasses.dataclass
class Problem:
    """A splat no test window holds. kind: boot, between-tests or shutdown;
    test: (nodeid, location) of the test it is attributed to, when it came
    within GRACE of that test's end."""
    kind: str
    where: str
    excerpt: str
    test: Optional[tuple[str, tuple]] = None


class Watch:
    """How far one VM's console has been checked, and which test ended last."""

    def __init__(self, allowed: Sequence[Allowed] = BUILTIN_ALLOWED):
        self.allowed = tuple(allowed)
        self.checked = 0
        self.last: Optional[tuple[str, tuple, Optional[float]]] = None  # nodeid, location, end time
        self.splats = 0  # found in tests' windows

    def booted(self, text: str) -> list[Problem]:
        """Problems in the console up to the worker's readiness: the boot's."""
        found = self._unowned(text[self.checked:], "boot")
        self.checked = len(text)
        return found

    def test_ended(self, text: str, seq: int, nodeid: str, location: tuple
                   ) -> tuple[Optional[str], list[Problem], Optional[str]]:
        """(a splat in the test's window, problems before it began, a note when the
        end marker had not arrived: then the window is what has).

        The text from the last check to the begin marker is the previous
        test's within its grace, else nobody's.
        """
        begin_marker, end_marker = boundary(BEGIN, seq) + "\n", boundary(END, seq) + "\n"
        begin = text.find(begin_marker, self.checked)
        start = begin if begin >= 0 else self.checked
        found = self._unowned(text[self.checked:start], "between-tests")
        end = text.find(end_marker, start)
        note = None
        if end < 0:
            note = ("the test's end marker did not reach the console in time; the console "
                    "was checked up to what had arrived")
            end_time = None
            stop = len(text)
        else:
            stop = end + len(end_marker)
            end_time = timestamp(text[text.rfind("\n", 0, end) + 1:stop])
        splat = find_splat(text[start:stop], self.allowed)
        self.splats += splat is not None
        since = self._since_last_end(splat) if splat else None
        if since is not None and since <= GRACE:
            splat += (f"\n(this came {since:.1f}s after {self.last[0]} ended: work that "
                      f"test left running may be the cause)")
        self.checked = stop
        self.last = (nodeid, location, end_time)
        return splat, found, note

    def ended(self, text: str) -> list[Problem]:
        """Problems in what the console printed after the last check, at shutdown."""
        found = self._unowned(text[self.checked:], "shutdown")
        self.checked = len(text)
        return found

    def _unowned(self, text: str, kind: str) -> list[Problem]:
        """The first splat in text within the grace of the last test's end (that
        test's), and the first after it (the kernel's own)."""
        late, own = None, None
        for excerpt in find_splats(text, self.allowed):
            since = self._since_last_end(excerpt)
            if since is not None and since <= GRACE:
                late = late or Problem(kind, f"{since:.1f}s after this test ended (within "
                                             f"the {GRACE:.0f}s grace period)",
                                       excerpt, self.last[:2])
            elif self.last is None:
                own = own or Problem("boot", "at boot, before the first test", excerpt)
            else:
                own = own or Problem(kind, f"{_WHERE[kind]}, after {self.last[0]}", excerpt)
        return [p for p in (late, own) if p is not None]

    def _since_last_end(self, excerpt: str) -> Optional[float]:
        """Seconds of kernel time from the last test's end marker to the excerpt's first line."""
        when = timestamp(excerpt.split("\n", 1)[0])
        if self.last is None or self.last[2] is None or when is None:
            return None
        return when - self.last[2]


_WHERE = {"between-tests": "between tests", "shutdown": "at shutdown"}


def allowed_from(lines: Iterable[str]) -> list[Allowed]:
    """BUILTIN_ALLOWED and the ini's entries (ValueError for a malformed one)."""
    return [*BUILTIN_ALLOWED, *(Allowed.parse(line) for line in lines if line.strip())]


def kvm_fatal(text: str) -> Optional[str]:
    """The message in which QEMU said KVM cannot run the guest, if it did."""
    return next((f for f in _KVM_FATAL if f in text), None)


def kvm_failure(text: str, elapsed: float) -> Optional[str]:
    """Why a guest booting under KVM for `elapsed` seconds is not going to boot, or None."""
    fatal = kvm_fatal(text)
    if fatal:
        return fatal
    if "Linux version" not in text and elapsed > KVM_FIRST_OUTPUT:
        return f"the guest printed nothing within {KVM_FIRST_OUTPUT:.0f}s"
    return None


def tail(text: str, lines: int = EXCERPT_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])
