"""Verifier expectations for test authors (runs in the guest).

    from bpfvm.verifier import asm

    def test_no_return_value(verifier):
        verifier.expect_reject([asm.exit_insn()], match="R0 !read_ok")

    def test_scalar_dereference(verifier):
        prog = [asm.mov64_imm(asm.R0, 0), asm.ldx_mem(asm.DW, asm.R0, asm.R0, 0),
                asm.exit_insn()]
        verifier.expect_reject(prog, "deref", match={
            "<5.18": "R0 invalid mem access 'inv'", ">=5.18": "R0 invalid mem access 'scalar'"})

    def test_stats(verifier):
        v = verifier.expect_accept("xdp_count")
        verifier.golden_stats("xdp_count", v)      # suites/golden/<kernel>/xdp_count.stats.json

A program is a BPF C source name (or path) and the program in it, or a list
of instructions. ``match`` is a substring, a compiled regex, a list of them
(all must appear, in that order), or a dict from kernel version ranges to
any of those. The ``verifier`` fixture records every verdict for the
end-of-run matrix and keeps golden files; the module-level expect_reject /
expect_accept do the same checks without either.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from . import golden
from . import properties as P
from . import vlog
from .guest.bpf import insns as asm
from .guest.bpf.verify import LOG_STATS, Source, Verdict, load_insns, load_source, verify

__all__ = ["asm", "LOG_STATS", "Verdict", "verify", "load_insns", "load_source",
           "check_reject", "check_accept", "expect_reject", "expect_accept", "Checker",
           "compare_stats"]

STATS_KEYS = ("processed_insns", "max_states_per_insn", "total_states", "peak_states",
              "stack_depth", "verified_insns")


def _kernel_version() -> tuple[int, int, int]:
    from .target import parse_version

    return parse_version(os.uname().release)


def _where(verdict: Verdict) -> str:
    return f"program {verdict.program!r} on kernel {os.uname().release}"


def check_reject(verdict: Verdict, match: vlog.Expected = (),
                 version: Optional[tuple[int, int, int]] = None) -> Verdict:
    """Fail unless the verifier refused it with every expected pattern in its log."""
    __tracebackhide__ = True
    patterns = vlog.patterns_for(match, version or _kernel_version()) if match else []
    if verdict.accepted:
        raise AssertionError(f"{_where(verdict)} was accepted; expected a rejection matching "
                             f"{', '.join(map(vlog.describe, patterns)) or 'anything'}\n"
                             f"--- verifier log ---\n{vlog.tail(verdict.log)}")
    missing = vlog.first_missing(verdict.log, patterns)
    if missing is not None:
        raise AssertionError(f"{_where(verdict)} was rejected ({verdict.message!r}), but its log "
                             f"lacks {vlog.describe(missing)}\n"
                             f"--- verifier log ---\n{vlog.tail(verdict.log)}")
    return verdict


def check_accept(verdict: Verdict) -> Verdict:
    """Fail with the log's tail unless the verifier accepted it."""
    __tracebackhide__ = True
    if not verdict.accepted:
        raise AssertionError(f"{_where(verdict)} was rejected: {verdict.message}\n"
                             f"--- verifier log ---\n{vlog.tail(verdict.log)}")
    return verdict


def expect_reject(source: Source, program: Optional[str] = None, match: vlog.Expected = (),
                  version: Optional[tuple[int, int, int]] = None, **options: Any) -> Verdict:
    """Load it; fail unless rejected with every pattern of match in the log, in order."""
    return check_reject(verify(source, program, **options), match, version)


def expect_accept(source: Source, program: Optional[str] = None, **options: Any) -> Verdict:
    """Load it (log level 1 + stats by default); fail unless accepted."""
    options.setdefault("log_level", 1 | LOG_STATS)
    return check_accept(verify(source, program, **options))


class Checker:
    """The ``verifier`` fixture: expectations, golden files, and the run's matrix.

    Golden files live in ``golden/<kernel id>/`` beside the test file;
    ``--update-golden`` rewrites them: the guest sends the kernel id, the file
    name and the text, and the host writes them once the test has passed.
    """

    def __init__(self, node: Any, kernel_id: str, test_file: Path, update: Any,
                 tolerance: float = 0.05, base: Optional[Path] = None):
        self.node, self.kernel_id = node, kernel_id
        self.golden_dir = golden.directory(test_file.parent, kernel_id)
        self.update, self.tolerance, self.base = bool(update), tolerance, base

    def _record(self, name: str, value: Any) -> None:
        self.node.user_properties.append((name, value))

    def verify(self, source: Source, program: Optional[str] = None, **options: Any) -> Verdict:
        """verify(), the verdict recorded for the end-of-run matrix."""
        if not isinstance(source, list) and self.base is not None:
            options.setdefault("base", self.base)
        verdict = verify(source, program, **options)
        label = verdict.program if isinstance(source, list) else \
            f"{Path(str(source)).stem}:{verdict.program}"
        self._record(P.VERDICT, {"program": label, "kernel": self.kernel_id,
                                 "accepted": verdict.accepted, "message": verdict.message})
        return verdict

    def expect_reject(self, source: Source, program: Optional[str] = None,
                      match: vlog.Expected = (), **options: Any) -> Verdict:
        __tracebackhide__ = True
        return check_reject(self.verify(source, program, **options), match)

    def expect_accept(self, source: Source, program: Optional[str] = None,
                      **options: Any) -> Verdict:
        __tracebackhide__ = True
        options.setdefault("log_level", 1 | LOG_STATS)
        return check_accept(self.verify(source, program, **options))

    # -- golden files ------------------------------------------------------------------

    def _golden(self, filename: str, text: str) -> Optional[str]:
        """The stored text, or None when this run updates it; records the use.

        A kernel with no golden directory skips the check: goldens are made on
        purpose (--update-golden on that kernel, reviewed), not on a first run.
        """
        __tracebackhide__ = True
        problem = golden.bad_name(filename)
        if problem:
            raise ValueError(problem)
        self._record(P.GOLDEN_USED, {"kernel": self.kernel_id, "name": filename})
        if self.update:
            self._record(P.GOLDEN, {"kernel": self.kernel_id, "name": filename, "text": text})
            return None
        path = self.golden_dir / filename
        if not self.golden_dir.is_dir():
            import pytest

            pytest.skip(f"kernel {self.kernel_id} has no golden files ({self.golden_dir}); "
                        f"to check {filename} there, create them deliberately: "
                        f"pytest --kernel {self.kernel_id} --update-golden, and review the diff")
        if not path.exists():
            raise AssertionError(f"no golden file {path}: create it with "
                                 f"--update-golden on {self.kernel_id}, and review it")
        return path.read_text()

    def golden_log(self, name: str, log: Any) -> None:
        """The normalized verifier log (a Verdict's or a str) equals golden/<kernel>/<name>.log."""
        __tracebackhide__ = True
        import difflib

        text = vlog.normalize(log.log if isinstance(log, Verdict) else log)
        stored = self._golden(f"{name}.log", text)
        if stored is None or stored == text:
            return
        diff = "".join(difflib.unified_diff(stored.splitlines(True), text.splitlines(True),
                                            f"golden/{self.kernel_id}/{name}.log", "this run"))
        raise AssertionError(f"verifier log of {name!r} on {self.kernel_id} differs from its "
                             f"golden file (--update-golden to accept):\n{diff}")

    def golden_stats(self, name: str, verdict: Verdict, tolerance: Optional[float] = None) -> None:
        """Processed insns, total and peak states may not rise more than tolerance
        over the golden figures; a fall is reported at the end of the run."""
        __tracebackhide__ = True
        if verdict.stats is None:
            raise AssertionError(f"no statistics in the log of {name!r}: load with log_level "
                                 f"including {LOG_STATS} (expect_accept does)")
        stats = {k: v for k, v in verdict.stats.as_dict().items() if k in STATS_KEYS}
        filename = f"{name}.stats.json"
        stored = self._golden(filename, json.dumps(stats, indent=1) + "\n")
        if stored is None:
            return
        tolerance = self.tolerance if tolerance is None else tolerance
        try:
            rises, falls = compare_stats(json.loads(stored), stats, tolerance)
        except ValueError as e:
            raise AssertionError(f"golden file {self.golden_dir / filename}: {e}") from None
        if rises:
            raise AssertionError(f"{name!r} on {self.kernel_id} rose beyond the "
                                 f"{tolerance:.0%} tolerance: {', '.join(rises)}")
        if falls:
            self._record(P.NOTE, f"{name} on {self.kernel_id}: {', '.join(falls)}; "
                                 f"--update-golden to keep")


COMPARED_STATS = ("processed_insns", "total_states", "peak_states")


def compare_stats(golden_stats: dict[str, Any], stats: dict[str, Any],
                  tolerance: float) -> tuple[list[str], list[str]]:
    """(rises beyond tolerance, falls) of COMPARED_STATS, each "key was -> now (+x%)".

    A golden figure that is missing or not a positive count is a ValueError:
    a 0 would make every rise infinite, or, divided around, no rise at all.
    """
    if not isinstance(golden_stats, dict):
        raise ValueError(f"not a JSON object of statistics: {golden_stats!r:.80}")
    rises, falls = [], []
    for key in COMPARED_STATS:
        was, now = golden_stats.get(key), stats.get(key)
        if isinstance(was, bool) or not isinstance(was, int) or was <= 0:
            raise ValueError(f"{key} is {was!r}, not a positive count; regenerate it with "
                             f"--update-golden and review it")
        if now is None:
            raise ValueError(f"this kernel's log has no {key} to compare with the golden {was}")
        change = (now - was) / was
        line = f"{key} {was} -> {now} ({change:+.1%})"
        if change > tolerance:
            rises.append(line)
        elif now < was:
            falls.append(line)
    return rises, falls
