"""The compatibility table: pure logic, the end of a real pytest run, and merging."""
import json
import os
import xml.etree.ElementTree as ET
import subprocess
import sys

import pytest

from bpfvm.host.report import compat
from bpfvm.host.report.compat import Matrix

pytest_plugins = ["pytester"]


def test_rows_drop_only_the_kernel_from_the_parameter_id():
    assert compat.row_of("t.py::test_a[6.12]", "6.12") == "t.py::test_a"
    assert compat.row_of("t.py::test_a[generic-6.12-test]", "6.12-test") == "t.py::test_a[generic]"
    assert compat.row_of("t.py::test_a[6.12-arm64]", "6.12-arm64") == "t.py::test_a"


def _matrix() -> Matrix:
    m = Matrix()
    for column, name, arch in (("6.1-x86_64", "6.1", "x86_64"), ("5.10-x86_64", "5.10", "x86_64"),
                               ("6.12-arm64", "6.12", "arm64")):
        meta = {"name": name, "arch": arch}
        m.add("t.py::test_same", column, "passed", meta=meta)
        m.add("t.py::test_new", column, "skipped" if name == "5.10" else "passed",
              "kernel 5.10: needs kernel >=5.15" if name == "5.10" else "", meta=meta)
    m.add("t.py::test_new", "6.12-arm64", "failed", "assert 1 == 2")
    m.add("t.py::test_new", "6.12-arm64", "passed")  # a later phase cannot hide the failure
    return m


def test_terminal_table_shows_what_differs_in_kernel_order():
    lines = _matrix().render_text(reasons=True)
    assert lines[0].split() == ["5.10-x86_64", "6.1-x86_64", "6.12-arm64"]
    assert lines[1].split() == ["t.py::test_new", "skip", "pass", "FAIL"]
    assert lines[2] == "(1 more passed on all 3 kernels)"
    assert lines[3].split() == ["1/2", "2/2", "1/2", "passed"]
    assert "  5.10-x86_64 skip x1: kernel 5.10: needs kernel >=5.15" in lines
    assert "  6.12-arm64 FAIL x1: assert 1 == 2" in lines
    assert len(_matrix().render_text(every_row=True)) == 4


def test_markdown_and_json_round_trip(tmp_path):
    md, js = _matrix().write(str(tmp_path / "out" / "compat"))
    assert "| `t.py::test_new` | skip (kernel 5.10: needs kernel >=5.15) | pass | FAIL " \
           "(assert 1 == 2) |" in md.read_text()
    again = Matrix.from_json(json.loads(js.read_text()))
    assert again.cells == _matrix().cells and again.ordered_columns() == _matrix().ordered_columns()


def bpfvm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpfvm.host.cli", *args],
                          capture_output=True, text=True, timeout=60)


def test_merge_joins_the_cells_of_several_runs(tmp_path):
    one, two = Matrix(), Matrix()
    one.add("t.py::test_a", "6.1-x86_64", "passed", meta={"name": "6.1", "arch": "x86_64"})
    two.add("t.py::test_a", "6.1-arm64", "skipped", "no arm64", meta={"name": "6.1", "arch": "arm64"})
    two.add("t.py::test_b", "6.1-arm64", "passed", meta={"name": "6.1", "arch": "arm64"})
    one.write(str(tmp_path / "one"))
    two.write(str(tmp_path / "two"))
    proc = bpfvm("report", "merge", str(tmp_path / "one.json"), str(tmp_path / "two.json"),
                 "-o", str(tmp_path / "all"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:4] == [
        "| test | 6.1-arm64 | 6.1-x86_64 |", "|---|---|---|",
        "| `t.py::test_a` | skip (no arm64) | pass |", "| `t.py::test_b` | pass | - |"]
    merged = json.loads((tmp_path / "all.json").read_text())
    assert sorted(merged["columns"]) == ["6.1-arm64", "6.1-x86_64"]


@pytest.mark.parametrize("content,said", [
    ("{", "not JSON"), ('{"kernels": []}', "not a bpfvm compatibility report")])
def test_merge_refuses_what_is_not_a_report_in_one_line(tmp_path, content, said):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    proc = bpfvm("report", "merge", str(bad))
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1 and said in proc.stderr


def test_a_run_ends_with_the_table_and_writes_it(pytester, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("host: --kernel host mounts bpffs and tracefs on this machine, "
                    "which needs root")
    pytester.makepyfile(test_c="""
        import pytest
        pytestmark = pytest.mark.vm
        def test_ok(): pass
        @pytest.mark.kconfig("CONFIG_BPFVM_NO_SUCH_OPTION", hint="build it")
        def test_needs_option(): pass
        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n): assert n == 1
    """)
    base, junit = tmp_path / "compat", tmp_path / "junit.xml"
    result = pytester.runpytest("--kernel=host", f"--compat-report={base}", "-p", "no:xdist",
                                f"--junitxml={junit}")
    result.stdout.fnmatch_lines([
        "*compatibility (test x kernel)*",
        "*host-*",
        "test_c.py::test_needs_option*skip*",
        "test_c.py::test_param?2?*FAIL*",
        "(2 more passed on all 1 kernels)",
        f"bpfvm: compatibility table written to {base}.md and {base}.json",
    ])
    data = json.loads(base.with_suffix(".json").read_text())
    (column,) = data["columns"]
    cell = data["tests"]["test_c.py::test_needs_option"][column]
    assert cell == {"outcome": "skipped",
                    "reason": cell["reason"]} and "lacks CONFIG_BPFVM_NO_SUCH_OPTION (build it)" \
        in cell["reason"]
    assert data["columns"][column]["accel"] == "none"

    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(cases) == 4
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert {"kernel", "arch", "kernel_version", "accel"} <= set(props), case.get("name")
        assert (props["kernel"], props["accel"]) == ("host", "none")
