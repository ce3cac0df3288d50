"""Verifier logs as data: statistics, normalization, expected messages.

Pure functions, shared by the guest (checking a load) and the host (golden
files, the end-of-run matrix, ``bpfvm verifier-stats``).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

from .requirements import version_matches

Pattern = Union[str, "re.Pattern[str]"]
Expected = Union[Pattern, list, dict]

_PROCESSED = re.compile(r"processed (\d+) insns \(limit \d+\) max_states_per_insn (\d+) "
                        r"total_states (\d+) peak_states (\d+) mark_read (\d+)")
_TIME = re.compile(r"verification time (\d+) usec")
_STACK = re.compile(r"stack depth ([\d+]+)")
# Lines around the reason that are not it: the instruction trace and register
# states, precision tracking, source lines, statistics.
_NOT_THE_REASON = re.compile(r"^(\d+: |cur state:|old state:|mark_precise:|regs=|last_idx |; |"
                             r"func#|processed \d+ insns|verification time|stack depth|"
                             r"insns processed)")

# What changes from run to run and nothing else: timings, kernel addresses
# (map pointers in ld_imm64, helper addresses at log level 2), object ids.
_VOLATILE = [
    (_TIME, "verification time N usec"),
    (re.compile(r"0x[0-9a-f]{9,16}\b"), "0xADDR"),
    (re.compile(r"\b(map_id|prog_id|btf_id|attach_btf_id)=\d+"), r"\1=N"),
]


@dataclass
class Stats:
    """What the verifier reports about an accepted (or rejected) program."""

    processed_insns: int
    max_states_per_insn: int = 0
    total_states: int = 0
    peak_states: int = 0
    mark_read: int = 0
    verification_usec: Optional[int] = None
    stack_depth: list[int] = field(default_factory=list)  # per frame: main, subprograms
    verified_insns: Optional[int] = None  # bpf_prog_info, kernels 5.16+

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_stats(log: str) -> Optional[Stats]:
    """The statistics lines of a verifier log (log level 1 or 4), or None."""
    m = _PROCESSED.search(log)
    if not m:
        return None
    stats = Stats(*map(int, m.groups()))
    t = _TIME.search(log)
    if t:
        stats.verification_usec = int(t.group(1))
    s = _STACK.search(log)
    if s:
        stats.stack_depth = [int(d) for d in s.group(1).split("+") if d]
    return stats


def normalize(log: str) -> str:
    """The log with what varies between identical runs replaced by placeholders."""
    for pattern, placeholder in _VOLATILE:
        log = pattern.sub(placeholder, log)
    return "\n".join(line.rstrip() for line in log.strip().splitlines()) + "\n"


def message(log: str) -> str:
    """The line that says why a program was rejected: the last one that is not the
    trace, a register state dump or the statistics."""
    for line in reversed(log.strip().splitlines()):
        if line.strip() and not _NOT_THE_REASON.match(line.strip()):
            return line.strip()
    return ""


def patterns_for(expected: Expected, version: Optional[tuple[int, int, int]]) -> list[Pattern]:
    """The patterns that apply on a kernel of this version, in the order they must appear.

    expected is a substring, a compiled regex, a list of those, or a mapping
    from version specs ('<5.18', '>=5.18,<6.4') to any of those.
    """
    if isinstance(expected, dict):
        if version is None:
            raise ValueError("expected messages per kernel version, but the version is unknown")
        for spec, value in expected.items():
            if version_matches(version, spec):
                return patterns_for(value, version)
        raise LookupError(f"no expected message for kernel {'.'.join(map(str, version))}: "
                          f"add a version range covering it to {list(expected)}")
    if isinstance(expected, (list, tuple)):
        return list(expected)
    if isinstance(expected, (str, re.Pattern)):
        return [expected]
    raise TypeError(f"expected message {expected!r}: give a str, a re.Pattern, a list "
                    "of them, or a dict of version ranges")


def first_missing(log: str, patterns: list[Pattern]) -> Optional[Pattern]:
    """The first pattern not found after the previous one's match, or None if all are."""
    position = 0
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            m = pattern.search(log, position)
            if not m:
                return pattern
            position = m.end()
        else:
            index = log.find(pattern, position)
            if index < 0:
                return pattern
            position = index + len(pattern)
    return None


def describe(pattern: Pattern) -> str:
    return f"re {pattern.pattern!r}" if isinstance(pattern, re.Pattern) else repr(pattern)


def tail(log: str, lines: int = 25) -> str:
    kept = log.rstrip().splitlines()
    skipped = len(kept) - lines
    head = [f"... ({skipped} lines before)"] if skipped > 0 else []
    return "\n".join(head + kept[-lines:])
