"""Golden files: what a guest may name, what the host writes, and the stats comparison.

The host-side rules are pure logic; the VM tests show them against a real
guest: a test asking for a name with '..' or an absolute path, a guest
handing the host crafted properties, a symlink out of the golden
directory, a test that fails after its golden call.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import VM_KERNEL
from bpfvm.host.report.verdicts import GoldenRefused, golden_path
from bpfvm.verifier import compare_stats

pytest_plugins = ["pytester"]
ID = f"[{VM_KERNEL}]"


def test_golden_path_is_beside_the_test_file(tmp_path):
    path = golden_path(tmp_path, "sub/test_x.py::test_a[6.12]", {"kernel": "6.12", "name": "a.log"})
    assert path == tmp_path.resolve() / "sub" / "golden" / "6.12" / "a.log"


@pytest.mark.parametrize("value", [
    {"kernel": "6.12", "name": "../a.log"}, {"kernel": "6.12", "name": "/etc/passwd"},
    {"kernel": "..", "name": "a.log"}, {"kernel": "6.12", "name": ".hidden"},
    {"kernel": "6.12", "name": ""}, {"kernel": 6, "name": "a.log"}, "/etc/passwd",
])
def test_golden_path_refuses_names_that_are_not_one_file_name(tmp_path, value):
    with pytest.raises(GoldenRefused, match="not a golden file name|named by kernel and name"):
        golden_path(tmp_path, "test_x.py::test_a", value)


def test_golden_path_refuses_a_symlink_out(tmp_path):
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "6.12").symlink_to(tmp_path.parent)
    with pytest.raises(GoldenRefused, match="leads out of"):
        golden_path(tmp_path, "test_x.py::test_a", {"kernel": "6.12", "name": "a.log"})


STATS = {"processed_insns": 100, "total_states": 10, "peak_states": 8}


def test_compare_stats_fails_a_rise_of_states_and_reports_falls():
    rises, falls = compare_stats(STATS, dict(STATS, total_states=11, peak_states=7), 0.05)
    assert rises == ["total_states 10 -> 11 (+10.0%)"]
    assert falls == ["peak_states 8 -> 7 (-12.5%)"]
    assert compare_stats(STATS, dict(STATS, processed_insns=105), 0.05) == ([], [])


@pytest.mark.parametrize("bad", [0, None, -3, "12", True])
def test_compare_stats_refuses_a_golden_that_is_not_a_positive_count(bad):
    with pytest.raises(ValueError, match="not a positive count"):
        compare_stats(dict(STATS, peak_states=bad), STATS, 0.05)


def test_compare_stats_refuses_a_golden_that_is_not_an_object():
    with pytest.raises(ValueError, match="not a JSON object"):
        compare_stats([100, 10, 8], STATS, 0.05)


def test_update_golden_is_refused_where_ci_is_set(pytester, monkeypatch):
    pytester.makepyfile(test_a="def test_a(): pass\n")
    monkeypatch.setenv("CI", "true")
    refused = pytester.runpytest("--update-golden")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert "--update-golden refused: CI is set" in refused.stderr.str()
    assert "--update-golden=force" in refused.stderr.str()
    assert pytester.runpytest("--update-golden=force").ret == 0
    monkeypatch.delenv("CI")
    assert pytester.runpytest("--update-golden").ret == 0


# -- in a guest ----------------------------------------------------------------------

INNER = """
    from bpfvm import properties as P
    from bpfvm.verifier import asm

    LOOP = [asm.mov64_imm(asm.R0, 0), asm.alu64_imm(asm.ADD, asm.R0, 1),
            asm.jmp_imm(asm.JLT, asm.R0, 20, -2), asm.exit_insn()]

    def test_writes(verifier):
        verdict = verifier.expect_accept(LOOP, "loop")
        verifier.golden_stats("loop", verdict)
        verifier.golden_log("loop", verdict)

    def test_zero(verifier):
        verifier.golden_stats("zero", verifier.expect_accept(LOOP, "loop"))

    def test_dotdot(verifier):
        verifier.golden_log("../escaped", "pwned")

    def test_absolute(verifier):
        verifier.golden_log("/tmp/escaped", "pwned")

    def test_crafted(request):
        request.node.user_properties.append(
            (P.GOLDEN, {"kernel": "..", "name": "escaped.log", "text": "pwned"}))
        request.node.user_properties.append(
            (P.GOLDEN, {"kernel": "KERNEL", "name": "../../escaped.log", "text": "pwned"}))

    def test_symlink_out(verifier):
        verifier.golden_log("link", "pwned")

    def test_fails_after(verifier):
        verifier.golden_log("fails_after", "text")
        assert False, "a later check failed"

    def test_after():
        pass
"""

ELSEWHERE = """
    from bpfvm.verifier import asm

    def test_no_goldens_here(verifier):
        verdict = verifier.expect_accept([asm.mov64_imm(asm.R0, 0), asm.exit_insn()], "ret")
        verifier.golden_stats("ret", verdict)
"""


@pytest.mark.slow
@pytest.mark.fault("a guest names golden files outside its golden directory")
def test_golden_writes_are_confined_and_checked(vm_runner, fault_outcome):
    base = vm_runner.base
    vm_runner.write(INNER.replace("KERNEL", VM_KERNEL))
    (base / "sub").mkdir()
    vm_runner.write(ELSEWHERE, name="sub/test_elsewhere.py")
    golden_dir = base / "golden" / VM_KERNEL
    golden_dir.mkdir(parents=True)
    outside = base.parent / "outside.log"
    outside.write_text("untouched\n")
    (golden_dir / "link.log").symlink_to(outside)

    run = vm_runner.run("-v", "--update-golden=force", "test_inner.py")
    assert run.outcome(f"test_writes{ID}") == "passed", run.output
    for test in ("test_dotdot", "test_absolute"):
        assert "is not a golden file name" in run.message(f"{test}{ID}"), run.output
    crafted = run.message(f"test_crafted{ID}")
    assert "refused to write a golden file: '..' is not" in crafted, crafted
    assert "refused to write a golden file: '../../escaped.log' is not" in crafted
    symlink = run.message(f"test_symlink_out{ID}")
    assert "leads out of" in symlink
    assert run.outcome(f"test_fails_after{ID}") == "failed"
    assert run.outcome(f"test_after{ID}") == "passed"
    assert outside.read_text() == "untouched\n"
    assert not list(base.parent.rglob("escaped*")) and not Path("/tmp/escaped.log").exists()
    assert sorted(p.name for p in golden_dir.iterdir()) == [
        "link.log", "loop.log", "loop.stats.json", "zero.stats.json"]
    assert "changed 3 golden file(s)" in run.output

    stats = json.loads((golden_dir / "loop.stats.json").read_text())
    assert stats["total_states"] >= 2, stats  # so that 1 is a fall the kernel cannot make
    (golden_dir / "loop.stats.json").write_text(json.dumps(dict(stats, total_states=1)))
    (golden_dir / "zero.stats.json").write_text(json.dumps(dict(stats, processed_insns=0)))
    run = vm_runner.run("-v", "-k", "writes or zero or no_goldens")
    rise = run.message(f"test_writes{ID}")
    assert f"total_states 1 -> {stats['total_states']}" in rise, run.output
    assert "processed_insns is 0, not a positive count" in run.message(f"test_zero{ID}")
    no_goldens = run.message(f"test_no_goldens_here{ID}")
    assert run.outcome(f"test_no_goldens_here{ID}") == "skipped"
    assert f"kernel {VM_KERNEL} has no golden files" in no_goldens
    assert "--update-golden, and review the diff" in no_goldens
    fault_outcome(crafted + "\n" + symlink, also=["leads out of"])
