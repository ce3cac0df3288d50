"""bpfvm as a user gets it: a wheel built from this tree, in a virtualenv of its own.

Shared by tests/test_wheel.py and bench/plugin_cost.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                      "__pycache__", ".pytest_cache")


def build_wheel(out: Path) -> Path:
    """bpfvm's wheel, built by pip (with build isolation) from a copy of this tree,
    so that the build leaves nothing in the checkout."""
    source = out / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SHIPPED)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--disable-pip-version-check", "-w", str(out), str(source)],
                   check=True, capture_output=True, text=True)
    shutil.rmtree(source)
    wheels = sorted(out.glob("bpfvm-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(path: Path, *requirements: str) -> Path:
    """A fresh virtualenv (not sharing this one's packages) with requirements
    pip-installed; returns its bin directory."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    if requirements:
        subprocess.run([str(path / "bin/pip"), "install", "-q", "--disable-pip-version-check",
                        *requirements], check=True, capture_output=True, text=True)
    return path / "bin"


def user_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a user of that virtualenv has: its bin first on PATH,
    and nothing of this run's pytest, virtualenv or import path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "BPFVM_GUEST")) and k not in ("PYTHONPATH",
                                                                          "VIRTUAL_ENV")}
    ours = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != ours]
    env.update(PATH=os.pathsep.join([str(bin_dir), *path]), VIRTUAL_ENV=str(bin_dir.parent),
               **extra)
    return env
