"""Run a composite action's steps the way GitHub's runner does, for tests.

Inputs become the values of `${{ inputs.NAME }}` (defaults from action.yml), each
step's `env:` is evaluated, `run:` goes to `bash --noprofile --norc -eo pipefail`, and
GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY are files the steps
write and later steps see. After a failed step only `if: always()` steps run. Steps that
`uses:` another action (GitHub's cache and artifact actions) are recorded, not run: the
cache starts empty and the artifact is the out directory.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
STEP_OUTPUT = re.compile(r"steps\.([\w-]+)\.outputs\.([\w-]+)")


def load(action_dir: Path) -> dict:
    return yaml.safe_load((action_dir / "action.yml").read_text())


def key_values(path: Path) -> dict[str, str]:
    """NAME=VALUE lines, as in GITHUB_OUTPUT and GITHUB_ENV (no heredoc form)."""
    found = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        assert "<<" not in line.split("=", 1)[0], f"heredoc form not supported: {line}"
        name, _, value = line.partition("=")
        found[name] = value
    return found


class ActionRun:
    def __init__(self, action_dir: Path, workspace: Path, temp: Path, inputs: dict[str, str],
                 env: dict[str, str]):
        self.action_dir, self.workspace, self.temp = action_dir, workspace, temp
        self.meta = load(action_dir)
        declared = self.meta.get("inputs", {})
        unknown = set(inputs) - set(declared)
        assert not unknown, f"inputs {action_dir}/action.yml does not declare: {unknown}"
        self.inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()}
        self.inputs.update({k: str(v) for k, v in inputs.items()})
        self.base_env = env
        self.files = {name: temp / f"_{name.lower()}" for name in
                      ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")}
        self.step_outputs: dict[str, dict[str, str]] = {}
        self.skipped_uses: list[str] = []
        self.logs: list[tuple[str, int, str]] = []

    def value(self, expr: str) -> str:
        if expr.startswith("inputs."):
            return self.inputs[expr[len("inputs."):]]
        m = STEP_OUTPUT.fullmatch(expr)
        if m:
            return self.step_outputs.get(m[1], {}).get(m[2], "")
        known = {"runner.temp": str(self.temp), "github.action_path": str(self.action_dir),
                 "github.workspace": str(self.workspace)}
        assert expr in known, f"an expression this runner does not evaluate: {expr}"
        return known[expr]

    def expand(self, text: str) -> str:
        return EXPR.sub(lambda m: self.value(m[1]), text)

    def env(self, step: dict, output: Path) -> dict[str, str]:
        added = [p for p in self.files["GITHUB_PATH"].read_text().splitlines()
                 if p] if self.files["GITHUB_PATH"].exists() else []
        env = {**self.base_env, **key_values(self.files["GITHUB_ENV"])}
        env["PATH"] = os.pathsep.join([*reversed(added), env["PATH"]])
        env.update({name: str(path) for name, path in self.files.items()})
        env.update(GITHUB_OUTPUT=str(output), GITHUB_ACTION_PATH=str(self.action_dir),
                   GITHUB_WORKSPACE=str(self.workspace), RUNNER_TEMP=str(self.temp),
                   GITHUB_ACTIONS="true", CI="true")
        env.update({k: self.expand(str(v)) for k, v in step.get("env", {}).items()})
        return env

    def run(self, timeout: float) -> bool:
        """Every step in order; True when none failed."""
        ok = True
        for i, step in enumerate(self.meta["runs"]["steps"]):
            if "uses" in step:
                self.skipped_uses.append(step["uses"])
                continue
            assert step.get("if") in (None, "always()"), f"condition not evaluated: {step['if']}"
            if not ok and step.get("if") != "always()":
                continue
            assert step.get("shell") == "bash"
            output = self.temp / f"_output_{i}"
            output.touch()
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                                   self.expand(step["run"])], cwd=self.workspace,
                                  env=self.env(step, output), capture_output=True, text=True,
                                  timeout=timeout)
            self.logs.append((step.get("name", step.get("id", str(i))), proc.returncode,
                              proc.stdout + proc.stderr))
            self.step_outputs[step.get("id", str(i))] = key_values(output)
            ok = ok and proc.returncode == 0
        return ok

    def log(self) -> str:
        return "\n".join(f"== {name}: exit {rc}\n{text[-6000:]}" for name, rc, text in self.logs)

    def output(self, name: str) -> str:
        return self.expand(self.meta["outputs"][name]["value"])

    def summary(self) -> str:
        path = self.files["GITHUB_STEP_SUMMARY"]
        return path.read_text() if path.exists() else ""
