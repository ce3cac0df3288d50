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


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: it comes with the test extras (pip install -e '.[test]')"
    return found


def as_workflow(action_dir: Path) -> dict:
    """A composite action's steps as a reusable workflow's job, so actionlint (and the
    shellcheck it runs on each script) checks them as it checks a workflow's."""
    meta = yaml.safe_load((action_dir / "action.yml").read_text())
    inputs = {name: {"type": "string", "default": str(spec.get("default", ""))}
              for name, spec in meta.get("inputs", {}).items()}
    return {"name": meta["name"], "on": {"workflow_call": {"inputs": inputs}},
            "jobs": {"action": {"runs-on": "ubuntu-24.04", "steps": meta["runs"]["steps"]}}}


def test_actionlint_finds_nothing_in_workflows_actions_and_the_readme(tmp_path):
    from test_action import ACTIONS, readme_workflow_text

    files = list(map(str, WORKFLOWS))
    for i, action_dir in enumerate(ACTIONS):
        files.append(str(tmp_path / f"action{i}.yml"))
        Path(files[-1]).write_text(yaml.safe_dump(as_workflow(action_dir), sort_keys=False))
    files.append(str(tmp_path / "readme.yml"))
    Path(files[-1]).write_text(readme_workflow_text())
    env = dict(os.environ, PATH=f"{Path(tool('shellcheck')).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([tool("actionlint"), "-no-color", *files], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_finds_nothing_in_the_ci_scripts():
    scripts = sorted(map(str, (ROOT / "ci").rglob("*.sh")))
    proc = subprocess.run([tool("shellcheck"), *scripts], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
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
