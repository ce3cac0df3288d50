"""The GitHub Actions workflows: actionlint's checks, and a matrix that is the catalog's."""
import shutil
import os
import subprocess
import sys
from pathlib import Path

import yaml

from bpfvm.host.kernels import catalog

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_actionlint_finds_nothing():
    beside = Path(sys.executable).parent / "actionlint"
    tool = str(beside) if beside.exists() else shutil.which("actionlint")
    assert tool, "actionlint is missing: it comes with the test extras (pip install -e '.[test]')"
    proc = subprocess.run([tool, "-no-color", *map(str, WORKFLOWS)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_matrix_is_every_kernel_line_and_flavour_of_the_catalog():
    workflow = yaml.safe_load((ROOT / ".github/workflows/kernels.yml").read_text())
    matrix = workflow["jobs"]["cell"]["strategy"]["matrix"]
    cells = {(kernel, arch) for kernel in matrix["kernel"] for arch in matrix["arch"]}
    entries = catalog.load()
    wanted = {(e.name, e.arch) for e in entries}
    wanted |= {(f"{e.name}-{flavour}", e.arch) for flavour in catalog.load_flavours()
               for e in entries}
    assert all(isinstance(kernel, str) for kernel in matrix["kernel"])
    assert cells == wanted


def test_cells_run_the_scripts_that_exist():
    text = (ROOT / ".github/workflows/kernels.yml").read_text()
    for script in ("ci/gha/cell.sh", "ci/gha/merge.sh"):
        assert f"bash {script}" in text and (ROOT / script).is_file()


def test_merge_script_puts_one_table_in_the_summary(tmp_path):
    from bpfvm.host.report.compat import Matrix

    for column, name, arch in (("6.1-x86_64", "6.1", "x86_64"), ("6.1-arm64", "6.1", "arm64")):
        cell = Matrix()
        cell.add("suites/test_a.py::test_a", column, "passed", meta={"name": name, "arch": arch})
        cell.write(str(tmp_path / "cells" / f"cell-{column}" / "compat"))
    summary = tmp_path / "summary.md"
    proc = subprocess.run(["bash", "ci/gha/merge.sh", str(tmp_path / "cells"),
                           str(tmp_path / "merged")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)},
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = summary.read_text()
    assert "## Compatibility: 2 cells" in text
    assert "| `suites/test_a.py::test_a` | pass | pass |" in text
    assert (tmp_path / "merged.json").exists()
