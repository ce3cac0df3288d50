"""The false-skip guard (ini bpfvm_expected_skips): its file, and a run held against it."""
import json
import os
import platform

import pytest

from bpfvm.host.report.expected_skips import ExpectedSkips, ExpectedSkipsError

pytest_plugins = ["pytester"]

COLUMN = f"host-{ {'aarch64': 'arm64'}.get(platform.machine(), platform.machine()) }"


def test_patterns_match_whole_ids_and_brackets_are_literal(tmp_path):
    path = tmp_path / "skips.toml"
    path.write_text('["6.1-x86_64"]\n"t.py::test_a[native]" = "needs 6.13"\n'
                    '"t.py::test_b_*" = "needs 5.16"\n')
    skips = ExpectedSkips.load(path)
    assert skips.reason("6.1-x86_64", "t.py::test_a[native]") == "needs 6.13"
    assert skips.reason("6.1-x86_64", "t.py::test_an") is None  # not a character class
    assert skips.reason("6.1-x86_64", "t.py::test_b_x[1]") == "needs 5.16"
    assert skips.reason("6.1-x86_64", "other/t.py::test_b_x") is None
    assert skips.covers("6.1-x86_64") and not skips.covers("6.12-x86_64")


@pytest.mark.parametrize("text,said", [
    ("[x\n", "is not valid TOML"),
    ('"t.py::test_a" = "why"\n', "must be a table"),
    ('["6.1-x86_64"]\n"t.py::test_a" = ""\n', "needs a reason"),
])
def test_a_bad_file_is_one_line_saying_what_to_fix(tmp_path, text, said):
    path = tmp_path / "skips.toml"
    path.write_text(text)
    with pytest.raises(ExpectedSkipsError, match=said) as raised:
        ExpectedSkips.load(path)
    assert "\n" not in str(raised.value)


def test_a_missing_file_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\nbpfvm_expected_skips = nowhere.toml\n")
    pytester.makepyfile("import pytest\npytestmark = pytest.mark.vm\ndef test_ok(): pass\n")
    result = pytester.runpytest("--kernel=host", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bpfvm_expected_skips: cannot read *nowhere.toml*"])


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_a_run_fails_unlisted_skips_and_listed_tests_that_run(pytester, tmp_path, xdist):
    if os.geteuid() != 0:
        pytest.skip("host: --kernel host mounts bpffs and tracefs on this machine, "
                    "which needs root")
    pytester.makeini("[pytest]\nbpfvm_expected_skips = skips.toml\n")
    (pytester.path / "skips.toml").write_text(
        f'["{COLUMN}"]\n'
        '"test_c.py::test_listed_skip" = "the option is not built"\n'
        '"test_c.py::test_listed_but_runs[*]" = "stale entry"\n')
    pytester.makepyfile(test_c="""
        import pytest
        pytestmark = pytest.mark.vm
        NO = "CONFIG_BPFVM_NO_SUCH_OPTION"
        @pytest.mark.kconfig(NO)
        def test_listed_skip(): pass
        @pytest.mark.kconfig(NO)
        def test_unlisted_skip(): pass
        def test_skips_itself(): pytest.skip("nothing to do here")
        @pytest.mark.parametrize("n", [1])
        def test_listed_but_runs(n): pass
        def test_ok(): pass
    """)
    base = tmp_path / "compat"
    result = pytester.runpytest("--kernel=host", f"--compat-report={base}",
                                *(xdist or ["-p", "no:xdist"]))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("skipped")) == (1, 1), outcomes
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 3, outcomes
    result.stdout.fnmatch_lines_random([
        "*ERROR at setup of test_unlisted_skip*",
        f"unexpected skip on {COLUMN}: *lacks CONFIG_BPFVM_NO_SUCH_OPTION",
        f"unexpected skip on {COLUMN}: nothing to do here",
        f"expected to skip on {COLUMN} (stale entry), but it ran and passed: remove its entry *",
    ])
    data = json.loads(base.with_suffix(".json").read_text())
    cells = {test: cells[COLUMN]["outcome"] for test, cells in data["tests"].items()}
    assert cells == {"test_c.py::test_listed_skip": "expected-skip",
                     "test_c.py::test_unlisted_skip": "error",
                     "test_c.py::test_skips_itself": "failed",
                     "test_c.py::test_listed_but_runs[1]": "failed",
                     "test_c.py::test_ok": "passed"}
    assert "xskip (" in base.with_suffix(".md").read_text()


def test_columns_the_file_does_not_list_are_not_checked(pytester):
    if os.geteuid() != 0:
        pytest.skip("host: --kernel host mounts bpffs and tracefs on this machine, "
                    "which needs root")
    pytester.makeini("[pytest]\nbpfvm_expected_skips = skips.toml\n")
    (pytester.path / "skips.toml").write_text('["6.1-x86_64"]\n"test_c.py::test_a" = "why"\n')
    pytester.makepyfile(test_c="""
        import pytest
        pytestmark = pytest.mark.vm
        def test_a(): pytest.skip("no")
    """)
    result = pytester.runpytest("--kernel=host", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1)
