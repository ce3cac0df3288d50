"""The per-file summary of annotated C files: items, passed, failed, skipped by reason,
and the files that did not compile, as lines a verifier developer can paste.

Every process that collects keeps what it built; xdist workers send the
compile failures to the controller in their workeroutput, where this
plugin prints them with the counts of the reports it saw.
"""
from __future__ import annotations

import collections
import re
from typing import Any, Optional

import pytest

# A skip reason names the kernel first; grouped without it, one reason covers every kernel.
_KERNEL_PREFIX = re.compile(r"^kernel \S+(?: \([^)]*\))?: ")


class SelftestsSummary:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts: dict[str, collections.Counter] = {}
        self.skips: dict[str, collections.Counter] = {}
        self.compile_errors: dict[str, str] = {}  # "file (kernel)" -> the first error line

    def add_compile_errors(self, errors: Optional[dict[str, str]]) -> None:
        if isinstance(errors, dict):
            self.compile_errors.update({str(k): str(v) for k, v in errors.items()})

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.split("::")[0]
        if not name.endswith(".c"):
            return
        name = name.rsplit("/", 1)[-1]
        counts = self.counts.setdefault(name, collections.Counter())
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = "failed" if report.failed else report.outcome
            counts[outcome] += 1
            if report.skipped and isinstance(report.longrepr, tuple):
                reason = _KERNEL_PREFIX.sub("", str(report.longrepr[2]).removeprefix("Skipped: "))
                self.skips.setdefault(name, collections.Counter())[reason] += 1

    def lines(self) -> list[str]:
        from ...annotated import compile_errors

        self.add_compile_errors(compile_errors(self.config))  # this process's own builds
        out = []
        for name in sorted(self.counts):
            c = self.counts[name]
            total = sum(c.values())
            out.append(f"{name}: {total} items, {c['passed']} passed, {c['failed']} failed, "
                       f"{c['skipped']} skipped")
            for reason, n in self.skips.get(name, collections.Counter()).most_common():
                out.append(f"    {n} skipped: {reason}")
        for where, error in sorted(self.compile_errors.items()):
            out.append(f"{where}: did not compile: {error}")
        return out

    def as_dict(self) -> dict[str, Any]:
        self.lines()
        return {"files": {name: {**dict(c), "skipped_by_reason": dict(self.skips.get(name, {}))}
                          for name, c in self.counts.items()},
                "not_compiled": self.compile_errors}

    def totals(self) -> collections.Counter:
        return sum(self.counts.values(), collections.Counter())

    def pytest_terminal_summary(self, terminalreporter) -> None:
        lines = self.lines()
        if not lines:
            return
        terminalreporter.section("annotated programs (per file)")
        for line in lines:
            terminalreporter.write_line(line)
        t = self.totals()
        terminalreporter.write_line(
            f"in all: {sum(t.values())} items in {len(self.counts)} files, {t['passed']} passed, "
            f"{t['failed']} failed, {t['skipped']} skipped; "
            f"{len(self.compile_errors)} file builds did not compile")
