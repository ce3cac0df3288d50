"""The host's side of the verifier checks: golden files written, the end-of-run matrix.

Guest tests record what they found in their reports' user_properties
(``bpfvm_verdict``, ``bpfvm_golden``, ``bpfvm_golden_used``, ``bpfvm_note``),
which travel with the reports; this plugin, on the host (the xdist
controller when there is one), writes golden updates and prints the matrix.

What a guest sends is untrusted: a golden file is written only inside the
golden directory beside the test file the node id names, only when the test
passed (its call and its teardown), and a request naming anything else
fails that test with one line per refusal.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from ... import golden
from ... import properties as P
from ...target import kernel_order


class GoldenRefused(ValueError):
    """A golden file a guest named that the host will not write."""


def golden_path(rootpath: Path, nodeid: str, value: Any) -> Path:
    """Where the golden file value names ({"kernel", "name"}) lives for the test nodeid."""
    if not isinstance(value, dict):
        raise GoldenRefused(f"a golden file must be named by kernel and name, not {value!r:.80}")
    for part in (value.get("kernel"), value.get("name")):
        problem = golden.bad_name(part)
        if problem:
            raise GoldenRefused(problem)
    test_dir = (rootpath / nodeid.split("::")[0]).parent.resolve()
    path = golden.directory(test_dir, value["kernel"]) / value["name"]
    if not path.resolve().is_relative_to(test_dir / golden.DIR):
        raise GoldenRefused(f"{path} leads out of {test_dir / golden.DIR} (a symlink)")
    return path

CELL = 46


class VerifierReport:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.update = config.getoption("update_golden")
        self.report_base: Optional[str] = config.getoption("verifier_report")
        self.matrix: dict[str, dict[str, dict[str, Any]]] = {}  # program -> kernel -> verdict
        self.kernels: list[str] = []
        self.used: set[Path] = set()
        self.pending: dict[str, list[tuple[Path, str]]] = {}  # nodeid -> goldens to write
        self.written: list[Path] = []
        self.notes: list[str] = []

    @pytest.hookimpl(tryfirst=True)  # a refusal must fail the report before others see it
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self._take(report)
        elif report.when == "teardown":
            self._write(report)
        for name, value in report.user_properties:
            if name == P.VERDICT and isinstance(value, dict):
                kernel = str(value.get("kernel"))
                self.matrix.setdefault(str(value.get("program")), {})[kernel] = value
                if kernel not in self.kernels:
                    self.kernels = sorted(self.kernels + [kernel], key=kernel_order)
            elif name == P.NOTE and isinstance(value, str) and value not in self.notes:
                self.notes.append(value)

    def _take(self, report: pytest.TestReport) -> None:
        """The goldens the test asks to write and those it read, each checked;
        a refused one fails the test and nothing of it is written."""
        wanted, refused = [], []
        for name, value in report.user_properties:
            if name not in (P.GOLDEN, P.GOLDEN_USED) or (name == P.GOLDEN and not self.update):
                continue
            try:
                path = golden_path(self.config.rootpath, report.nodeid, value)
                if name == P.GOLDEN_USED:
                    self.used.add(path)
                elif not isinstance(value.get("text"), str):
                    raise GoldenRefused(f"the text of {path} is not a string")
                else:
                    wanted.append((path, value["text"]))
            except GoldenRefused as e:
                refused.append(f"bpfvm: refused to write a golden file: {e}")
        if refused:
            if report.passed:
                report.outcome, report.longrepr = "failed", "\n".join(refused)
            else:
                report.sections.append(("bpfvm golden files", "\n".join(refused)))
        elif wanted and report.passed:
            self.pending[report.nodeid] = wanted

    def _write(self, report: pytest.TestReport) -> None:
        wanted = self.pending.pop(report.nodeid, [])
        if not report.passed:
            return
        for path, text in wanted:
            if path.exists() and path.read_text() == text:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            self.written.append(path)

    def unused(self) -> list[Path]:
        """Golden files in the kernel directories this run used that no test read."""
        dirs = {p.parent for p in self.used}
        return sorted(f for d in dirs if d.is_dir() for f in d.iterdir() if f not in self.used)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        write = terminalreporter.write_line
        if self.matrix:
            shown, same = shown_programs(self.matrix, self.kernels)
            terminalreporter.section("verifier verdicts (program x kernel)")
            for line in render_text(shown, self.kernels) if shown else []:
                write(line)
            if same:
                write(f"({same} more programs with one verdict on every kernel: "
                      f"--verifier-report writes them all)")
        for note in self.notes:
            write(f"bpfvm: {note}")
        if self.update:
            write(f"bpfvm: --update-golden changed {len(self.written)} golden file(s)"
                  + (":" if self.written else ""))
            for path in self.written:
                write(f"  {path}")
        unused = self.unused()
        if unused:
            write(f"bpfvm: {len(unused)} golden file(s) no test of this run used: "
                  + ", ".join(str(p) for p in unused))
        files = self.config.pluginmanager.get_plugin("bpfvm-selftests")
        per_file = files.lines() if files is not None else []
        if self.report_base and (self.matrix or per_file):
            base = Path(self.report_base)
            text = render_markdown(self.matrix, self.kernels) if self.matrix else ""
            if per_file:
                text += "\n## Annotated programs per file\n\n```\n" + "\n".join(per_file) + "\n```\n"
            base.with_suffix(".md").write_text(text)
            base.with_suffix(".json").write_text(json.dumps(
                {"kernels": self.kernels, "programs": self.matrix,
                 **(files.as_dict() if files is not None else {})}, indent=1) + "\n")
            write(f"bpfvm: verifier matrix written to {base.with_suffix('.md')} and .json")


TERMINAL_ROWS = 40  # above this, the terminal shows only programs whose verdict changes


def shown_programs(matrix: dict, kernels: list[str]) -> tuple[dict, int]:
    """The rows the terminal shows, and how many it leaves out: all when few,
    else only those with different verdicts on different kernels."""
    if len(matrix) <= TERMINAL_ROWS:
        return matrix, 0
    changing = {p: v for p, v in matrix.items()
                if len({_cell(v.get(k)) for k in kernels}) > 1}
    return changing, len(matrix) - len(changing)


def _cell(verdict: Optional[dict[str, Any]]) -> str:
    if verdict is None:
        return "-"
    return "accepted" if verdict.get("accepted") is True else f"rejected: {verdict.get('message')}"


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
