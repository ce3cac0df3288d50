"""The host's side of the verifier checks: golden files written, the end-of-run matrix.

Guest tests record what they found in their reports' user_properties
(``bpfvm_verdict``, ``bpfvm_golden``, ``bpfvm_golden_used``, ``bpfvm_note``),
which travel with the reports; this plugin, on the host (the xdist
controller when there is one), writes golden updates and prints the matrix.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from ... import properties as P
from ...target import kernel_order

CELL = 46


class VerifierReport:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.update = config.getoption("update_golden")
        self.report_base: Optional[str] = config.getoption("verifier_report")
        self.matrix: dict[str, dict[str, dict[str, Any]]] = {}  # program -> kernel -> verdict
        self.kernels: list[str] = []
        self.used: set[Path] = set()
        self.written: list[Path] = []
        self.notes: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == P.VERDICT:
                self.matrix.setdefault(value["program"], {})[value["kernel"]] = value
                if value["kernel"] not in self.kernels:
                    self.kernels = sorted(self.kernels + [value["kernel"]], key=kernel_order)
            elif name == P.GOLDEN_USED:
                self.used.add(Path(value))
            elif name == P.GOLDEN and self.update:
                path = Path(value["path"])
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists() or path.read_text() != value["text"]:
                    path.write_text(value["text"])
                    self.written.append(path)
            elif name == P.NOTE and value not in self.notes:
                self.notes.append(value)

    def unused(self) -> list[Path]:
        """Golden files in the kernel directories this run used that no test read."""
        dirs = {p.parent for p in self.used}
        return sorted(f for d in dirs if d.is_dir() for f in d.iterdir() if f not in self.used)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        write = terminalreporter.write_line
        if self.matrix:
            terminalreporter.section("verifier verdicts (program x kernel)")
            for line in render_text(self.matrix, self.kernels):
                write(line)
        for note in self.notes:
            write(f"bpfvm: {note}")
        if self.written:
            write(f"bpfvm: --update-golden wrote {len(self.written)} golden file(s): "
                  + ", ".join(str(p) for p in self.written[:5])
                  + (" ..." if len(self.written) > 5 else ""))
        unused = self.unused()
        if unused:
            write(f"bpfvm: {len(unused)} golden file(s) no test of this run used: "
                  + ", ".join(str(p) for p in unused))
        if self.report_base and self.matrix:
            base = Path(self.report_base)
            base.with_suffix(".md").write_text(render_markdown(self.matrix, self.kernels))
            base.with_suffix(".json").write_text(json.dumps(
                {"kernels": self.kernels, "programs": self.matrix}, indent=1) + "\n")
            write(f"bpfvm: verifier matrix written to {base.with_suffix('.md')} and .json")


def _cell(verdict: Optional[dict[str, Any]]) -> str:
    if verdict is None:
        return "-"
    return "accepted" if verdict["accepted"] else f"rejected: {verdict['message']}"


def render_text(matrix: dict, kernels: list[str]) -> list[str]:
    width = max(len(p) for p in matrix) + 2
    lines = ["".ljust(width) + "".join(k.ljust(CELL) for k in kernels)]
    for program in sorted(matrix):
        cells = [_cell(matrix[program].get(k)) for k in kernels]
        lines.append(program.ljust(width) + "".join(
            (c if len(c) < CELL - 1 else c[:CELL - 4] + "...").ljust(CELL) for c in cells))
    return lines


def render_markdown(matrix: dict, kernels: list[str]) -> str:
    lines = ["| program | " + " | ".join(kernels) + " |", "|---" * (len(kernels) + 1) + "|"]
    for program in sorted(matrix):
        cells = [_cell(matrix[program].get(k)).replace("|", "\\|") for k in kernels]
        lines.append(f"| `{program}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
