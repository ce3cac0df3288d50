"""The compatibility matrix: each test x kernel-arch -> passed / failed / skipped.

Reports of VM tests carry their kernel in user_properties (see
``kernel_properties``), so the matrix is built wherever the reports end
up: the host, or the xdist controller. It is printed at the end of a run,
written as Markdown and JSON (``--compat-report BASE``), and the JSON of
several runs (the cells of a CI matrix) merges into one table with
``bpfvm report merge``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

from ... import properties as P
from ...target import Target, kernel_order

# "expected-skip": a skip the project's expected-skips file lists (expected_skips).
SHORT = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip",
         "expected-skip": "xskip", "xfailed": "xfail", "xpassed": "XPASS"}
# When phases disagree, the worse one names the cell.
RANK = {"passed": 0, "xfailed": 1, "expected-skip": 2, "skipped": 2, "xpassed": 3, "failed": 4,
        "error": 5}


class ReportError(ValueError):
    """A file given to merge that is not a compatibility report."""


def kernel_properties(target: Target, accel: str) -> list[tuple[str, str]]:
    """What a VM test's report (and so its JUnit record) says about where it ran."""
    return [(P.KERNEL, target.name), (P.ARCH, target.arch),
            (P.KERNEL_VERSION, target.version), (P.KERNEL_RELEASE, target.release),
            (P.ACCEL, accel), (P.KERNEL_ID, target.id)]


def column_of(name: str, arch: str) -> str:
    """The matrix column: kernel and arch, so cells of several arches never collide."""
    return f"{name}-{arch}"


def row_of(nodeid: str, kernel_id: str) -> str:
    """The node id without the kernel's part of the parameter id."""
    for suffix in (f"[{kernel_id}]", f"-{kernel_id}]"):
        if nodeid.endswith(suffix):
            return nodeid[:-len(suffix)] + ("]" if suffix.startswith("-") else "")
    return nodeid


def phase_outcome(report: Any) -> Optional[tuple[str, str]]:
    """(outcome, reason) one phase's report says about its test, or None."""
    if report.when in ("setup", "teardown") and report.failed:
        return "error", _first_line(report.longreprtext)
    if hasattr(report, "wasxfail"):
        return ("xfailed", report.wasxfail) if report.skipped else ("xpassed", report.wasxfail)
    if report.skipped:
        expected = any(key == P.EXPECTED_SKIP for key, _ in report.user_properties)
        return "expected-skip" if expected else "skipped", skip_reason(report)
    if report.when == "call":
        return ("failed", _first_line(report.longreprtext)) if report.failed else ("passed", "")
    return None


def skip_reason(report: Any) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def _first_line(text: str) -> str:
    """The first of pytest's 'E ' lines of a failure, else its last line."""
    lines = text.strip().splitlines()
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return errors[0] if errors else (lines[-1] if lines else "")


class Matrix:
    """tests x columns -> {"outcome", "reason"}; columns carry where they ran."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[str, dict[str, str]]] = {}
        self.columns: dict[str, dict[str, Any]] = {}

    def add(self, test: str, column: str, outcome: str, reason: str = "",
            meta: Optional[dict[str, Any]] = None) -> None:
        if meta is not None:
            self.columns.setdefault(column, meta)
        self.columns.setdefault(column, {})
        cell = self.cells.setdefault(test, {}).get(column)
        if cell is None or RANK[outcome] > RANK[cell["outcome"]]:
            self.cells[test][column] = {"outcome": outcome, "reason": reason}

    def merge(self, other: "Matrix") -> None:
        for column, meta in other.columns.items():
            self.columns.setdefault(column, meta)
        for test, cells in other.cells.items():
            for column, cell in cells.items():
                self.add(test, column, cell["outcome"], cell["reason"])

    def ordered_columns(self) -> list[str]:
        return sorted(self.columns, key=lambda c: (kernel_order(self.columns[c].get("name", c)),
                                                   self.columns[c].get("arch", "")))

    def uniform(self, test: str) -> bool:
        """Whether the test passed on every column."""
        cells = self.cells[test]
        return len(cells) == len(self.columns) and all(
            c["outcome"] == "passed" for c in cells.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """column -> outcome -> number of tests."""
        counts: dict[str, dict[str, int]] = {c: {} for c in self.columns}
        for cells in self.cells.values():
            for column, cell in cells.items():
                counts[column][cell["outcome"]] = counts[column].get(cell["outcome"], 0) + 1
        return counts

    def render_text(self, every_row: bool = False, reasons: bool = False) -> list[str]:
        """The terminal table: by default only tests that did not pass everywhere."""
        columns = self.ordered_columns()
        rows = sorted(t for t in self.cells if every_row or not self.uniform(t))
        width = max([len(t) for t in rows] + [4]) + 2
        widths = [max(len(c), 5) + 2 for c in columns]
        lines = ["".ljust(width) + "".join(c.ljust(w) for c, w in zip(columns, widths))]
        for test in rows:
            cells = [SHORT.get(self.cells[test].get(c, {}).get("outcome", ""), "-")
                     for c in columns]
            lines.append(test.ljust(width) + "".join(s.ljust(w) for s, w in zip(cells, widths)))
        hidden = len(self.cells) - len(rows)
        if hidden:
            lines.append(f"({hidden} more passed on all {len(columns)} kernels)")
        totals = self.counts()
        lines.append("".ljust(width) + "".join(
            f"{totals[c].get('passed', 0)}/{sum(totals[c].values())}".ljust(w)
            for c, w in zip(columns, widths)) + "passed")
        if reasons:
            lines += self.reason_lines()
        return lines

    def reason_lines(self) -> list[str]:
        """Each distinct (kernel, reason) of skips and failures, with how many tests."""
        seen: dict[tuple[str, str, str], int] = {}
        for cells in self.cells.values():
            for column, cell in cells.items():
                if cell["outcome"] != "passed" and cell["reason"]:
                    key = (column, cell["outcome"], cell["reason"])
                    seen[key] = seen.get(key, 0) + 1
        return [f"  {column} {SHORT[outcome]} x{count}: {reason}"
                for (column, outcome, reason), count in sorted(seen.items())]

    def render_markdown(self) -> str:
        columns = self.ordered_columns()
        lines = ["| test | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for test in sorted(self.cells):
            cells = []
            for column in columns:
                cell = self.cells[test].get(column)
                text = SHORT[cell["outcome"]] if cell else "-"
                if cell and cell["outcome"] != "passed" and cell["reason"]:
                    text += f" ({cell['reason']})"
                cells.append(text.replace("|", "\\|"))
            lines.append(f"| `{test}` | " + " | ".join(cells) + " |")
        totals = self.counts()
        lines.append("| **passed** | " + " | ".join(
            f"**{totals[c].get('passed', 0)}/{sum(totals[c].values())}**" for c in columns) + " |")
        if any(totals[c].get("expected-skip") for c in columns):
            lines += ["", "xskip: a skip the project's expected-skips file lists for that kernel; "
                          "skip: one it does not check there."]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"bpfvm_compat": 1, "columns": self.columns, "tests": self.cells}

    @classmethod
    def from_json(cls, data: Any, source: str = "report") -> "Matrix":
        if not isinstance(data, dict) or data.get("bpfvm_compat") != 1:
            raise ReportError(f"{source}: not a bpfvm compatibility report "
                              "(write one with pytest --compat-report BASE)")
        matrix = cls()
        matrix.columns = dict(data["columns"])
        matrix.cells = {t: dict(c) for t, c in data["tests"].items()}
        return matrix

    def write(self, base: str) -> tuple[Path, Path]:
        md, js = Path(f"{base}.md"), Path(f"{base}.json")
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(self.render_markdown())
        js.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")
        return md, js


def merge_files(paths: Iterable[str]) -> Matrix:
    """One matrix from several reports' JSON."""
    merged = Matrix()
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as e:
            raise ReportError(f"{path}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise ReportError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
        merged.merge(Matrix.from_json(data, path))
    return merged


class CompatReport:
    """The plugin on the host (or xdist controller) that fills and prints the matrix."""

    def __init__(self, config: Any):
        self.matrix = Matrix()
        self.table = config.getoption("compat_table")
        self.reasons = config.getoption("compat_reasons")
        self.base: Optional[str] = config.getoption("compat_report")

    def pytest_runtest_logreport(self, report: Any) -> None:
        props = dict(report.user_properties)
        found = phase_outcome(report) if P.KERNEL_ID in props else None
        if found:
            meta = {"name": props[P.KERNEL], "arch": props[P.ARCH], "accel": props[P.ACCEL],
                    "version": props[P.KERNEL_VERSION], "release": props[P.KERNEL_RELEASE]}
            self.matrix.add(row_of(report.nodeid, props[P.KERNEL_ID]),
                            column_of(props[P.KERNEL], props[P.ARCH]), *found, meta=meta)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.matrix.cells:
            return
        if self.table != "none":
            terminalreporter.section("compatibility (test x kernel)")
            for line in self.matrix.render_text(self.table == "all", self.reasons):
                terminalreporter.write_line(line)
        if self.base:
            md, js = self.matrix.write(self.base)
            terminalreporter.write_line(f"bpfvm: compatibility table written to {md} and {js}")
