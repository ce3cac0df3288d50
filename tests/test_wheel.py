"""bpfvm installed from its wheel into a throwaway virtualenv, used from elsewhere.

What a user meets: the package imports as `bpfvm` (and nothing as
`harness`), the command works, an unrelated project runs exactly as without
bpfvm (no bpfvm code beyond the plugin's hooks returning, no bpfvm module
beyond the plugin, nothing written to the cache), and the example project
passes in a VM from a directory outside this repository.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from wheelenv import REPO, build_wheel, make_venv, user_env

EXAMPLE = REPO / "examples" / "xdp-proto-count"

# The plugin's hooks that may run in a project without VM tests, each
# returning at once; anything else of bpfvm running there is a bug.
INERT_CALLS = {"<module>", "pytest_addoption", "pytest_configure", "pytest_generate_tests",
               "is_vm_test", "pytest_collection_modifyitems", "target_of", "_host_run",
               "pytest_runtest_setup", "pytest_runtest_makereport", "pytest_runtest_protocol",
               "pytest_sessionfinish", "pytest_unconfigure", "pytest_xdist_make_scheduler",
               "_configures_bpfvm", "pytest_xdist_node_collection_finished", "_in_guest",
               "_may_have_vm_tests", "pytest_testnodedown", "pytest_collect_file",
               "pytest_collection",
               "guest_target", "<genexpr>", "<listcomp>"}

# A plugin of the test's own (given with -p, so xdist workers load it too):
# records which bpfvm functions ran and which bpfvm modules were imported.
PROBE = '''
import json, os, sys
_calls = set()
def _profile(frame, event, arg):
    if event == "call" and "/bpfvm/" in frame.f_code.co_filename.replace("/harness/", "/bpfvm/"):
        _calls.add(frame.f_code.co_name)
sys.setprofile(_profile)
def pytest_unconfigure(config):
    sys.setprofile(None)
    out = os.path.join(os.environ["PROBE_OUT"], f"{os.getpid()}.json")
    with open(out, "w") as f:
        json.dump({"modules": sorted(m for m in sys.modules if m.split(".")[0] == "bpfvm"),
                   "calls": sorted(_calls),
                   "worker": hasattr(config, "workerinput")}, f)
'''


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work)
    return make_venv(work / "venv", str(wheel))


def run(venv: Path, cwd: Path, *args: str, timeout: float = 600, **env: str):
    return subprocess.run([str(venv / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=user_env(venv, **env))


def test_the_package_is_bpfvm_and_nothing_else(venv, tmp_path):
    assert run(venv, tmp_path, "python", "-c", "import harness").returncode == 1
    ok = run(venv, tmp_path, "python", "-c",
             "from bpfvm import bpf, net, offload, verifier; import bpfvm.plugin, bpfvm; "
             "print(bpfvm.__file__)")
    assert ok.returncode == 0, ok.stderr
    assert "site-packages/bpfvm/__init__.py" in ok.stdout
    data = run(venv, tmp_path, "python", "-c",
               "from importlib import resources; "
               "print((resources.files('bpfvm.kernels') / 'fragments/bpf.config').is_file())")
    assert data.stdout == "True\n", data.stderr


def test_the_command_works_from_anywhere(venv, tmp_path):
    version = run(venv, tmp_path, "bpfvm", "--version")
    assert version.returncode == 0 and version.stdout.startswith("bpfvm ")
    listed = run(venv, tmp_path, "bpfvm", "kernels", "list")
    assert listed.returncode == 0, listed.stderr
    assert [row.split()[:2] for row in listed.stdout.splitlines()[1:3]] == \
        [["5.10", "x86_64"], ["5.10", "arm64"]]
    doctor = run(venv, tmp_path, "bpfvm", "doctor")
    lines = doctor.stdout.splitlines()
    assert lines[0].startswith("ok    catalog") and "site-packages/bpfvm/kernels" in lines[0]
    assert doctor.returncode == (1 if any(line.startswith("FAIL") for line in lines) else 0)


def plain_project(root: Path) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\nmarkers = ['arch: mine']\n")
    (root / "test_plain.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.arch("whatever: a marker of the project's own")
        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_param(n):
            assert n > 0

        def test_plain(tmp_path):
            assert tmp_path.is_dir()
    """))
    return root


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_a_project_without_vm_tests_runs_as_without_bpfvm(venv, tmp_path, xdist):
    project = plain_project(tmp_path / "project")
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "bpfvm_probe.py").write_text(PROBE)
    (tmp_path / "out").mkdir()
    cache = tmp_path / "cache"
    env = dict(PYTHONPATH=str(tmp_path / "probe"), PROBE_OUT=str(tmp_path / "out"),
               BPFVM_CACHE=str(cache))
    args = ["pytest", "-p", "bpfvm_probe", "-p", "no:cacheprovider", "-rA", *xdist]
    with_bpfvm = run(venv, project, *args, **env)
    without = run(venv, project, *args, "-p", "no:bpfvm", **env)
    assert with_bpfvm.returncode == without.returncode == 0, with_bpfvm.stdout + with_bpfvm.stderr
    assert outcomes(with_bpfvm.stdout) == outcomes(without.stdout) and \
        len(outcomes(without.stdout)) == 4
    assert with_bpfvm.stderr == without.stderr == ""
    assert not cache.exists()
    probes = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    loaded = [p for p in probes if p["modules"]]
    assert len(loaded) == (3 if xdist else 1)  # the xdist controller and both workers
    assert [p["worker"] for p in loaded].count(True) == (2 if xdist else 0)
    for probe in loaded:
        assert probe["modules"] == ["bpfvm", "bpfvm.plugin"]
        assert set(probe["calls"]) <= INERT_CALLS, set(probe["calls"]) - INERT_CALLS
    fixtures = run(venv, project, "pytest", "--fixtures-per-test", "-p", "no:cacheprovider",
                   **env)
    assert fixtures.returncode == 0 and "tmp_path" in fixtures.stdout
    assert "bpfvm_target" not in fixtures.stdout and "bpfvm/" not in fixtures.stdout


def outcomes(stdout: str) -> list[str]:
    """The -rA summary lines (PASSED test_plain.py::test_param[1], ...), sorted."""
    return sorted(line for line in stdout.splitlines()
                  if line.startswith(("PASSED ", "FAILED ", "ERROR ", "SKIPPED ")))


@pytest.mark.slow
def test_the_example_project_passes_outside_the_repository(venv, tmp_path):
    project = tmp_path / "xdp-proto-count"
    shutil.copytree(EXAMPLE, project)
    done = run(venv, project, "pytest", "-v", "-p", "no:cacheprovider", "--kernel", "6.12",
               timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = sorted(line.split()[0] for line in done.stdout.splitlines() if " PASSED" in line)
    assert passed == [
        "tests/test_xdp_proto_count.py::test_counts_one_protocol[icmp-6.12]",
        "tests/test_xdp_proto_count.py::test_counts_one_protocol[tcp-6.12]",
        "tests/test_xdp_proto_count.py::test_counts_one_protocol[udp-6.12]",
        "tests/test_xdp_proto_count.py::test_non_ip_frames_are_not_counted[6.12]",
        "tests/test_xdp_proto_count.py::test_unchecked_packet_access_is_rejected[6.12]",
    ]
