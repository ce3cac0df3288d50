"""The GitHub Action (action.yml, merge/action.yml) and the README's workflow that uses it.

The VM test runs the README's workflow for one cell through the action's own steps, as
GitHub would (tests/actionrun.py), against the example project with an empty cache.
"""
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from actionrun import STEP_OUTPUT, ActionRun, load

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "xdp-proto-count"
ACTIONS = [ROOT, ROOT / "merge"]


def readme_workflow_text() -> str:
    blocks = re.findall(r"```yaml\n(# \.github/workflows/bpfvm\.yml\n.*?)```",
                        (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "README.md: one ```yaml block starting '# .github/workflows/bpfvm.yml'"
    return blocks[0]


def readme_workflow() -> dict:
    return yaml.safe_load(readme_workflow_text())


def uses_step(workflow: dict, action: str) -> tuple[dict, dict]:
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").split("@")[0] == action:
                return job, step
    raise AssertionError(f"no step uses {action}")


def scripts(action_dir: Path) -> str:
    return "\n".join((action_dir / m).read_text() for m in re.findall(
        r"\$GITHUB_ACTION_PATH/([\w./-]+)", (action_dir / "action.yml").read_text()))


@pytest.mark.parametrize("action_dir", ACTIONS, ids=["action", "merge"])
def test_every_input_is_used_and_every_output_is_written(action_dir):
    meta = load(action_dir)
    text = yaml.safe_dump(meta["runs"])
    used = set(re.findall(r"inputs\.([\w-]+)", text))
    assert used == set(meta.get("inputs", {})), "inputs declared but unused, or used undeclared"
    ids = {step.get("id") for step in meta["runs"]["steps"]}
    written = set(re.findall(r'echo "([\w-]+)=', scripts(action_dir)))
    for expr in re.findall(r"steps\.[\w-]+\.outputs\.[\w-]+", text + yaml.safe_dump(meta["outputs"])):
        step, name = STEP_OUTPUT.fullmatch(expr).groups()
        assert step in ids and name in written, f"{expr}: no step with that id writes it"
    for name, spec in meta["outputs"].items():
        assert spec.get("description") and STEP_OUTPUT.search(spec["value"]), name


def test_readme_workflow_uses_the_actions_as_documented():
    workflow = readme_workflow()
    job, step = uses_step(workflow, "OWNER/bpfvm")
    assert job["container"]["image"].startswith("debian:")
    assert "--privileged" in job["container"]["options"]
    assert set(step["with"]) <= set(load(ROOT)["inputs"])
    uses_step(workflow, "OWNER/bpfvm/merge")
    own = yaml.safe_load((ROOT / ".github/workflows/kernels.yml").read_text())
    uses_step(own, "./")
    uses_step(own, "./merge")


def test_a_job_outside_debian_without_a_mirror_is_one_line(tmp_path):
    if Path("/etc/os-release").read_text().find("ID=debian") < 0:
        pytest.skip("this host is not Debian: the check under test passes here only with a mirror")
    fake = tmp_path / "os-release"
    fake.write_text('ID=ubuntu\nPRETTY_NAME="Ubuntu 24.04 LTS"\n')
    script = (ROOT / "ci/gha/setup.sh").read_text().replace("/etc/os-release", str(fake))
    (tmp_path / "setup.sh").write_text(script)
    run = ActionRun(ROOT, tmp_path, tmp_path, {}, dict(os.environ))
    run.meta["runs"]["steps"][0]["run"] = f'bash "{tmp_path}/setup.sh"'
    assert not run.run(timeout=60)
    lines = [line for line in run.logs[0][2].splitlines() if line]
    assert len(lines) == 1 and "Ubuntu 24.04 LTS" in lines[0] and "mirror" in lines[0], lines


def run_merge(tmp_path: Path, cells: list[Path]) -> ActionRun:
    temp = tmp_path / "merge-runner"
    for cell in cells:
        shutil.copytree(cell, temp / "bpfvm-cells" / cell.name)  # as download-artifact does
    run = ActionRun(ROOT / "merge", tmp_path, temp, {}, dict(os.environ))
    assert run.run(timeout=600), run.log()
    return run


def test_merge_action_puts_one_table_in_the_summary(tmp_path):
    from bpfvm.host.report.compat import Matrix

    cells = []
    for column, name, arch in (("6.1-x86_64", "6.1", "x86_64"), ("6.1-arm64", "6.1", "arm64")):
        cell = Matrix()
        cell.add("suites/test_a.py::test_a", column, "passed", meta={"name": name, "arch": arch})
        cell.write(str(tmp_path / f"bpfvm-{column}" / "compat"))
        cells.append(tmp_path / f"bpfvm-{column}")
    run = run_merge(tmp_path, cells)
    assert "## Compatibility: 2 cells" in run.summary()
    assert "| `suites/test_a.py::test_a` | pass | pass |" in run.summary()
    assert Path(run.output("table") + ".json").exists()


def test_readme_workflow_passes_on_the_example_project_with_an_empty_cache(tmp_path):
    """One cell of the README's matrix (6.12 x86_64), its step's inputs as GitHub maps them."""
    workflow = readme_workflow()
    job, step = uses_step(workflow, "OWNER/bpfvm")
    matrix = job["strategy"]["matrix"]
    assert "6.12" in matrix["kernel"] and "x86_64" in matrix["arch"]
    cell = {"kernel": "6.12", "arch": "x86_64"}
    inputs = {name: re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: cell[m[1]], str(value))
              for name, value in step["with"].items()}
    project, temp, home = tmp_path / "project", tmp_path / "runner", tmp_path / "home"
    shutil.copytree(EXAMPLE, project)
    temp.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BPFVM_", "PYTEST_", "VIRTUAL_ENV", "CCACHE_", "XDG_CACHE_HOME"))}
    env.update(HOME=str(home), PATH=os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT))))
    run = ActionRun(ROOT, project, temp, inputs, env)
    assert run.run(timeout=1800), run.log()
    assert run.skipped_uses == ["actions/cache/restore@v5", "actions/cache/save@v5",
                                "actions/upload-artifact@v6"]

    assert run.output("exit-code") == "0"
    junit = Path(run.output("junit")).read_text()
    assert 'failures="0"' in junit and "test_counts_one_protocol[udp-6.12]" in junit
    assert any(Path(run.output("console")).iterdir())
    assert run.output("accel") in ("kvm", "tcg")
    assert (home / ".cache/bpfvm/kernels/6.12-x86_64/manifest.json").exists()
    assert re.fullmatch(r"[0-9a-f]{16}", run.step_outputs["run"]["cache-key"])
    summary = run.summary()
    assert "### bpfvm: 6.12 on x86_64: passed" in summary
    assert "6.12-x86_64 (" in summary and ("KVM" in summary or "TCG" in summary)
    assert "`tests/test_xdp_proto_count.py::test_non_ip_frames_are_not_counted` |" in summary

    out = Path(run.step_outputs["setup"]["out"])
    artifact = tmp_path / run.step_outputs["setup"]["artifact"]
    shutil.copytree(out, artifact)
    merged = run_merge(tmp_path, [artifact]).summary()
    assert "## Compatibility: 1 cells" in merged and "6.12" in merged
