"""What installing bpfvm costs a project without VM tests.

Two virtualenvs with the same packages, one also with bpfvm's wheel; a
one-test project is run with pytest in each, alternately, plain and with
-n 2. Prints the median wall times and the ratio with/without.

Usage: python bench/plugin_cost.py [--runs 15]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from wheelenv import build_wheel, make_venv, user_env  # noqa: E402


def timed(bin_dir: Path, project: Path, *args: str) -> float:
    started = time.monotonic()
    subprocess.run([str(bin_dir / "pytest"), "-q", "-p", "no:cacheprovider", *args], cwd=project,
                   check=True, stdout=subprocess.DEVNULL, env=user_env(bin_dir))
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with_bpfvm = make_venv(work / "with", str(build_wheel(work)))
        frozen = subprocess.run([str(with_bpfvm / "pip"), "freeze", "--exclude", "bpfvm"],
                                check=True, capture_output=True, text=True).stdout.split()
        without = make_venv(work / "without", *frozen)
        project = work / "project"
        project.mkdir()
        (project / "test_one.py").write_text("def test_one():\n    assert True\n")
        print(f"plugin cost: a one-test project, median of {args.runs} runs each")
        for label, extra in (("pytest", ()), ("pytest -n 2", ("-n", "2"))):
            times: dict[str, list[float]] = {"with": [], "without": []}
            for _ in range(args.runs):
                times["without"].append(timed(without, project, *extra))
                times["with"].append(timed(with_bpfvm, project, *extra))
            a, b = statistics.median(times["with"]), statistics.median(times["without"])
            print(f"  {label:12} without bpfvm {b:.3f}s  with bpfvm {a:.3f}s  "
                  f"ratio {a / b:.3f} ({(a - b) * 1000:+.0f} ms)")


if __name__ == "__main__":
    main()
