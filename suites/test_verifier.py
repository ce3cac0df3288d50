"""The verifier's answers, per kernel: programs that must be rejected with the
message users rely on, and accepted programs whose statistics and logs are golden.

Where a message changed, the version ranges are bracketed by the kernels this
suite runs on (5.10, 6.1, 6.12, 7.x): "<6.12" means "seen on 6.1, changed by 6.12".
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from bpfvm import vlog
from bpfvm.verifier import LOG_STATS, asm

R0, R1, R2, R3, R10 = asm.R0, asm.R1, asm.R2, asm.R3, asm.R10
DW, W = asm.DW, asm.W
CORPUS = "verifier_corpus"
ACCEPTED = "(accepted on this kernel)"
PACKET = "invalid access to packet, off=0 size=1, R1(id=0,off=0,r=0)"


class Case(NamedTuple):
    source: object            # instructions, or the bpf/ source holding the program
    match: object             # str, regex, list (in order), or {version range: ...}
    options: dict = {}


def ret(value: int = 0) -> list:
    return [asm.mov64_imm(R0, value), asm.exit_insn()]


REJECTIONS = {
    # -- hand-written instructions: what a compiler will not emit -----------------------
    "no_return_value": Case([asm.exit_insn()], "R0 !read_ok"),
    "uninitialized_register": Case([asm.mov64_reg(R0, R2), asm.exit_insn()], "R2 !read_ok"),
    "unreachable_insn": Case(ret(0) + ret(1), "unreachable insn 2"),
    "infinite_loop": Case([asm.mov64_imm(R0, 0), asm.jmp_imm(asm.JEQ, R0, 0, -1),
                           asm.exit_insn()], "infinite loop detected at insn 1"),
    "jump_out_of_range": Case([asm.mov64_imm(R0, 0), asm.ja(5), asm.exit_insn()],
                              "jump out of range from insn 1 to 7"),
    "invalid_register": Case([asm.mov64_imm(11, 0)] + ret(), "R11 is invalid"),
    "frame_pointer_write": Case([asm.mov64_imm(R10, 0)] + ret(), "frame pointer is read only"),
    "last_insn_not_exit": Case([asm.mov64_imm(R0, 0)], "last insn is not an exit or jmp"),
    "unknown_opcode": Case([asm.raw(0xff)] + ret(), "unknown opcode ff"),
    "ld_imm64_missing_half": Case([asm.ld_imm64(R0, 1)[0], asm.exit_insn()],
                                  "invalid bpf_ld_imm64 insn"),
    "jump_into_ld_imm64": Case(
        [asm.mov64_imm(R0, 0), asm.jmp_imm(asm.JEQ, R0, 0, 1), asm.ld_imm64(R0, 1),
         asm.exit_insn()],
        {"<6.1": "invalid BPF_LD_IMM insn", ">=6.1": "jump into the middle of ldimm64 insn 2"}),
    "scalar_dereference": Case(
        [asm.mov64_imm(R0, 0), asm.ldx_mem(DW, R0, R0, 0), asm.exit_insn()],
        {"<5.18": "R0 invalid mem access 'inv'", ">=5.18": "R0 invalid mem access 'scalar'"}),
    "stack_out_of_bounds": Case([asm.st_mem(DW, R10, -520, 0)] + ret(),
                                "invalid write to stack R10 off=-520 size=8"),
    "invalid_spill_size": Case([asm.stx_mem(W, R10, R1, -8)] + ret(),
                               "invalid size of register spill"),
    "misaligned_stack_access": Case(
        [asm.st_mem(W, R10, -6, 0)] + ret(),
        {"<6.12": "misaligned stack access off (0x0; 0x0)+0+-6 size 4",
         ">=6.12,<7.0": "misaligned stack access off 0+0+-6 size 4",
         ">=7.0": "misaligned stack access off 0+-6 size 4"},
        {"prog_flags": 1}),  # BPF_F_STRICT_ALIGNMENT
    "modified_ctx_dereference": Case(
        [asm.alu64_imm(asm.ADD, R1, 4), asm.ldx_mem(W, R0, R1, 0), asm.exit_insn()],
        "dereference of modified ctx ptr R1 off=4 disallowed"),
    "write_to_read_only_ctx": Case(
        [asm.st_mem(W, R1, 0, 0)] + ret(2),
        {"<6.12": "BPF_ST stores into R1 ctx is not allowed",
         ">=6.12": "invalid bpf_context access off=0 size=4"},
        {"prog_type": "xdp"}),
    "unknown_helper": Case([asm.call(10000), asm.exit_insn()], "invalid func unknown#10000"),
    "helper_not_for_program_type": Case(
        [asm.call("xdp_adjust_head"), asm.exit_insn()],
        {"<6.12": "unknown func bpf_xdp_adjust_head#44",
         ">=6.12": "program of this type cannot use helper bpf_xdp_adjust_head#44"}),
    "helper_argument_type": Case(
        [asm.mov64_imm(R1, 0), asm.mov64_imm(R2, 0), asm.call("map_lookup_elem")] + ret(),
        {"<5.18": "R1 type=inv expected=map_ptr", ">=5.18": "R1 type=scalar expected=map_ptr"}),
    "gpl_only_helper": Case(
        [asm.mov64_reg(R1, R10), asm.alu64_imm(asm.ADD, R1, -8), asm.mov64_imm(R2, 8),
         asm.mov64_imm(R3, 0), asm.call("probe_read_kernel")] + ret(),
        "cannot call GPL-restricted function from non-GPL compatible program",
        {"prog_type": "kprobe", "license": "Proprietary"}),
    # log level 4 (errors and stats): at level 1, 5.10 logs each of the million insns
    "too_complex": Case(
        [asm.mov64_imm(R0, 0), asm.alu64_imm(asm.ADD, R0, 1),
         asm.jmp_imm(asm.JLT, R0, 2_000_000, -2), asm.exit_insn()],
        "BPF program is too large. Processed 1000001 insn", {"log_level": LOG_STATS}),
    # -- from C, bpf/verifier_corpus.c ------------------------------------------------
    "lookup_without_null_check": Case(CORPUS, "R0 invalid mem access 'map_value_or_null'"),
    "packet_without_bounds_check": Case(CORPUS, {
        "<7.0": [PACKET, "R1 offset is outside of the packet"],
        ">=7.0": [PACKET, "R1 min value is outside of the allowed memory range"]}),
    "map_value_out_of_bounds": Case(CORPUS, [
        "invalid access to map value, value_size=8 off=8 size=8",
        "R0 min value is outside of the allowed memory range"]),
    # privileged programs may read uninitialized stack on newer kernels
    "uninitialized_stack_to_helper": Case(CORPUS, {
        "<6.12": "invalid indirect read from stack R2 off -4+0 size 4", ">=6.12": ACCEPTED}),
    "ctx_cb_by_index": Case(CORPUS, "dereference of modified ctx ptr R4 off=48 disallowed"),
    "socket_reference_leaked": Case(CORPUS, "Unreleased reference id=2 alloc_insn=11"),
    "tail_call_with_deep_stack": Case(CORPUS, {  # frames were rounded up to 32 bytes, now 16
        "<6.12": "tail_calls are not allowed when call stack of previous frames is 320 bytes. "
                 "Too large",
        ">=6.12": "tail_calls are not allowed when call stack of previous frames is 304 bytes. "
                  "Too large"}),
}


@pytest.mark.parametrize("name", list(REJECTIONS))
def test_verifier_rejects(verifier, kernel, name):
    case = REJECTIONS[name]  # a hand-written program is named like its case, as is a C one
    if vlog.patterns_for(case.match, kernel.version_tuple()) == [ACCEPTED]:
        verifier.expect_accept(case.source, name, **case.options)
    else:
        verifier.expect_reject(case.source, name, match=case.match, **case.options)


@pytest.fixture
def unprivileged_bpf(kernel):
    """kernel.unprivileged_bpf_disabled = 0 for the test (it is 2 on Debian), restored after."""
    path = Path("/proc/sys/kernel/unprivileged_bpf_disabled")
    before = path.read_text().strip()
    if before == "1":
        pytest.skip(f"kernel {kernel.describe()}: unprivileged BPF is off until reboot "
                    "(kernel.unprivileged_bpf_disabled=1)")
    path.write_text("0\n")
    yield
    path.write_text(f"{before}\n")


def test_verifier_rejects_pointer_leak_when_unprivileged(verifier, unprivileged_bpf):
    """Returning the frame pointer: fine for root, a leak for anyone else."""
    leak = [asm.mov64_reg(R0, R10), asm.exit_insn()]
    verifier.expect_accept(leak, "pointer_leak")
    verifier.expect_reject(leak, "pointer_leak_unprivileged", match="R0 leaks addr as return value",
                           unprivileged=True)


# -- accepted programs: statistics and logs against golden files -------------------------

ACCEPTS = [("xdp_count", "xdp_count"), ("xdp_proto_count", "xdp_proto_count"),
           ("xdp_live", "xdp_flows"), ("xdp_rewrite", "xdp_nat"),
           ("xdp_rewrite", "xdp_tcpopt_strip"), ("tc_redirect", "tc_redirect")]


def bounded_loop(iterations: int) -> list:
    return [asm.mov64_imm(R0, 0), asm.alu64_imm(asm.ADD, R0, 1),
            asm.jmp_imm(asm.JLT, R0, iterations, -2), asm.exit_insn()]


@pytest.mark.parametrize("source,program", ACCEPTS, ids=[f"{s}.{p}" for s, p in ACCEPTS])
def test_verifier_stats_within_golden(verifier, source, program):
    verdict = verifier.expect_accept(source, program)
    verifier.golden_stats(f"{source}.{program}", verdict)


def test_verifier_log_of_a_bounded_loop_is_golden(verifier):
    verdict = verifier.expect_accept(bounded_loop(3), "bounded_loop", log_level=2)
    verifier.golden_log("bounded_loop", verdict)


def test_verifier_log_of_a_rejection_is_golden(verifier):
    verdict = verifier.expect_reject(CORPUS, "ctx_cb_by_index",
                                     match="dereference of modified ctx ptr")
    verifier.golden_log("ctx_cb_by_index", verdict)


def test_verifier_log_levels(verifier):
    """1: what led to a rejection (and, on older kernels, each insn), 2: every insn
    with its register state, 4: statistics only."""
    stats_only = verifier.expect_accept(bounded_loop(3), "loop", log_level=LOG_STATS)
    assert stats_only.stats.processed_insns > 0
    assert "r0 += 1" not in stats_only.log and "verification time" in stats_only.log
    full = verifier.expect_accept(bounded_loop(3), "loop", log_level=2)
    assert full.log.count("(07) r0 += 1") >= 3


def test_verifier_log_buffer_grows(verifier):
    """A level-2 log far beyond the first 1 MiB buffer comes back whole."""
    verdict = verifier.expect_accept(bounded_loop(20_000), "long_loop", log_level=2)
    assert len(verdict.log) > 1 << 20
    assert verdict.log.count("(07) r0 += 1") >= 20_000
    assert verdict.stats.processed_insns > 40_000


def test_verifier_stats_agree_with_prog_info(verifier, kernel):
    """bpf_prog_info.verified_insns (5.16+) is the log's processed insns."""
    verdict = verifier.expect_accept("xdp_count", "xdp_count")
    if kernel.version_tuple() >= (5, 16, 0):
        assert verdict.stats.verified_insns == verdict.stats.processed_insns
    else:
        assert verdict.stats.verified_insns is None
