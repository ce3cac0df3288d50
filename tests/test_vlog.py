"""Verifier log handling (harness/vlog.py) and `bpfvm verifier-stats`: pure logic, on the host."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bpfvm import vlog
from bpfvm.host import cli
from bpfvm.host.report import verifier_stats

REJECTED = """\
0: (b7) r0 = 0
1: (79) r0 = *(u64 *)(r0 +0)
R0 invalid mem access 'scalar'
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

ACCEPTED = """\
func#0 @0
processed 12 insns (limit 1000000) max_states_per_insn 1 total_states 3 peak_states 3 mark_read 1
verification time 57 usec
stack depth 8+16
"""


def test_stats_parsed_from_the_log():
    stats = vlog.parse_stats(ACCEPTED)
    assert (stats.processed_insns, stats.max_states_per_insn, stats.total_states,
            stats.peak_states, stats.mark_read) == (12, 1, 3, 3, 1)
    assert (stats.verification_usec, stats.stack_depth) == (57, [8, 16])
    assert vlog.parse_stats("no statistics here") is None


def test_rejection_message_is_the_line_that_says_why():
    assert vlog.message(REJECTED) == "R0 invalid mem access 'scalar'"
    loop = ("1: (15) if r0 == 0x0 goto pc-1\ninfinite loop detected at insn 1\n"
            "cur state: R0=0 R1=ctx() R10=fp0\nold state: R0_rw=P0 R1=ctx() R10=fp0\n"
            "processed 9 insns (limit 1000000) max_states_per_insn 0 total_states 1 "
            "peak_states 1 mark_read 1\n")
    assert vlog.message(loop) == "infinite loop detected at insn 1"


def test_normalize_removes_only_what_varies():
    log = ("0: (18) r1 = 0xffff8881036c5000\nverification time 57 usec\n"
           "R1=map_ptr(map_id=12) prog_id=4 R2=fp-8   \n")
    assert vlog.normalize(log) == ("0: (18) r1 = 0xADDR\nverification time N usec\n"
                                   "R1=map_ptr(map_id=N) prog_id=N R2=fp-8\n")
    assert vlog.normalize("r0 = 0x10\n") == "r0 = 0x10\n"  # small constants stay


def test_patterns_per_kernel_version():
    expected = {"<5.18": "access 'inv'", ">=5.18": re.compile(r"access '(scalar)'")}
    assert vlog.patterns_for(expected, (5, 10, 223)) == ["access 'inv'"]
    assert vlog.patterns_for(expected, (6, 12, 0)) == [expected[">=5.18"]]
    with pytest.raises(LookupError, match="no expected message for kernel 4.19.0"):
        vlog.patterns_for({">=5.10": "x"}, (4, 19, 0))
    assert vlog.patterns_for(["a", "b"], None) == ["a", "b"]


def test_patterns_must_appear_in_order():
    assert vlog.first_missing(REJECTED, ["r0 = 0", re.compile(r"access '\w+'")]) is None
    assert vlog.first_missing(REJECTED, ["invalid mem access", "r0 = 0"]) == "r0 = 0"
    assert vlog.first_missing(REJECTED, ["'inv'"]) == "'inv'"


def write_stats(root, kernel, program, processed):
    (root / kernel).mkdir(parents=True, exist_ok=True)
    (root / kernel / f"{program}.stats.json").write_text(json.dumps({"processed_insns": processed}))


def test_verifier_stats_table(tmp_path, capsys):
    write_stats(tmp_path, "6.12", "xdp_count", 30)
    write_stats(tmp_path, "5.10", "xdp_count", 20)
    write_stats(tmp_path, "latest", "xdp_count", 25)
    write_stats(tmp_path, "5.10", "only_old", 7)
    assert verifier_stats.kernel_dirs(tmp_path) == ["5.10", "6.12", "latest"]
    assert cli.main(["verifier-stats", "--golden", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "processed_insns per kernel (5.10 -> latest)"
    assert out[2].split() == ["only_old", "7", "-", "-", "-", "-"]
    assert out[3].split() == ["xdp_count", "20", "30", "25", "+5", "+25.0%"]


def test_verifier_stats_needs_two_kernels(tmp_path, capsys):
    write_stats(tmp_path, "6.12", "xdp_count", 30)
    assert cli.main(["verifier-stats", "--golden", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bpfvm: need statistics of two kernels or more") and "--update-golden" in err


def test_verifier_stats_finds_the_projects_golden_directory(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    (project / "tests" / "unit").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    write_stats(project / "tests" / "golden", "5.10", "xdp_count", 20)
    write_stats(project / "tests" / "golden", "6.12", "xdp_count", 30)
    (project / ".venv" / "golden" / "6.1").mkdir(parents=True)  # hidden dirs are not searched
    monkeypatch.chdir(project / "tests" / "unit")
    assert verifier_stats.project_root(Path.cwd()) == project
    assert cli.main(["verifier-stats"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split() == ["xdp_count", "20", "30", "+10",
                                                               "+50.0%"]
    write_stats(project / "suites" / "golden", "6.12", "other", 1)
    assert cli.main(["verifier-stats"]) == 1
    assert "several golden directories" in capsys.readouterr().err


def test_verifier_stats_without_a_golden_directory_says_where_it_looked(tmp_path, monkeypatch,
                                                                        capsys):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verifier-stats"]) == 1
    assert f"no golden statistics in the project at {tmp_path}" in capsys.readouterr().err
