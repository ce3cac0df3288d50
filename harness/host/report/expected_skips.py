"""The false-skip guard: which tests may skip on which kernel, and why.

A project lists them in a TOML file (ini ``bpfvm_expected_skips``): one
table per column of the compatibility table (``"6.1-x86_64"``), each key a
test id without its kernel part (``*`` matches any text), each value the
reason it skips there::

    ["6.1-x86_64"]
    "suites/test_offload.py::*" = "Debian's kernels lack CONFIG_NETDEVSIM"

On a column the file has a table for, a skip it does not list fails its
test, and a listed test that runs fails too, so the list stays true. A
listed skip shows as ``xskip`` in the compatibility table. Columns the file
has no table for are not checked.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import pytest

from ... import properties as P
from ..kernels.catalog import tomllib
from .compat import column_of, row_of, skip_reason


class ExpectedSkipsError(ValueError):
    """The expected-skips file is missing or malformed."""


class ExpectedSkips:
    """column -> [(pattern, reason)], read from one file."""

    def __init__(self, path: Path, tables: dict[str, list[tuple[re.Pattern, str]]]):
        self.path = path
        self.tables = tables

    @classmethod
    def load(cls, path: Path) -> "ExpectedSkips":
        try:
            data = tomllib.loads(path.read_text())
        except OSError as e:
            raise ExpectedSkipsError(f"bpfvm_expected_skips: cannot read {path}: {e.strerror}; "
                                     "fix the ini option or create the file") from None
        except tomllib.TOMLDecodeError as e:
            raise ExpectedSkipsError(f"bpfvm_expected_skips: {path} is not valid TOML: {e}") \
                from None
        tables: dict[str, list[tuple[re.Pattern, str]]] = {}
        for column, entries in data.items():
            if not isinstance(entries, dict):
                raise ExpectedSkipsError(
                    f"bpfvm_expected_skips: {path}: {column!r} must be a table of "
                    '"test id" = "reason" (e.g. ["6.1-x86_64"])')
            for test, reason in entries.items():
                if not isinstance(reason, str) or not reason.strip():
                    raise ExpectedSkipsError(
                        f"bpfvm_expected_skips: {path}: [{column}] {test!r} needs a reason "
                        "(a non-empty string saying why it skips there)")
            tables[column] = [(_pattern(test), reason) for test, reason in entries.items()]
        return cls(path, tables)

    def covers(self, column: str) -> bool:
        return column in self.tables

    def reason(self, column: str, test: str) -> Optional[str]:
        """Why test is expected to skip on column, or None when it is not listed."""
        return next((why for pattern, why in self.tables.get(column, ())
                     if pattern.fullmatch(test)), None)


def _pattern(test: str) -> re.Pattern:
    """A test id with '*' as the only wildcard (ids hold [ and ] of their own)."""
    return re.compile(".*".join(re.escape(part) for part in test.split("*")))


class SkipGuard:
    """The plugin that holds each VM test's report against the list.

    It acts before the report is shown, written to JUnit or sent on by an
    xdist worker, and only on reports it has not acted on: a skip it passed
    carries ``P.EXPECTED_SKIP``, a report it failed is failed.
    """

    def __init__(self, skips: ExpectedSkips):
        self.skips = skips

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: Any) -> None:
        props = dict(report.user_properties)
        if P.KERNEL_ID not in props or P.EXPECTED_SKIP in props or report.failed:
            return
        column = column_of(props[P.KERNEL], props[P.ARCH])
        if not self.skips.covers(column):
            return
        test = row_of(report.nodeid, props[P.KERNEL_ID])
        reason = self.skips.reason(column, test)
        if report.skipped and not hasattr(report, "wasxfail"):
            if reason is None:
                _fail(report, f"unexpected skip on {column}: {skip_reason(report)}\n"
                              f"{self.skips.path} does not list this test for {column}: make "
                              "it run there, or add it with the reason it cannot")
            else:
                report.user_properties = [*report.user_properties, (P.EXPECTED_SKIP, reason)]
        elif reason is not None and report.when == "call" and report.passed:
            _fail(report, f"expected to skip on {column} ({reason}), but it ran and passed: "
                          f"remove its entry from [{column}] in {self.skips.path}")


def _fail(report: Any, message: str) -> None:
    report.outcome = "failed"
    report.longrepr = message
