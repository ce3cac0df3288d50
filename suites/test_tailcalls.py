"""Tail calls: an opcode dispatcher, slot changes at run time, the chain limit."""
from __future__ import annotations

import pytest

from conftest import ether_payload
from bpfvm import bpf

FELL_THROUGH = 0xFF


@pytest.fixture
def dispatcher(bpf_object):
    obj = bpf_object("tailcall_dispatch")
    table = obj.map("jmp_table")
    for slot, name in enumerate(("op_drop", "op_tx", "op_pass")):
        table[slot] = obj.program(name)

    def send(opcode: int) -> tuple[int, int]:
        """(verdict, which handler ran)"""
        verdict = obj.program("dispatch").test_run(ether_payload(bytes([opcode]))).retval
        return verdict, obj.map("ran")[0]
    return obj, table, send


@pytest.mark.parametrize("opcode,verdict,handler", [
    (0, bpf.XDP_DROP, 1), (1, bpf.XDP_TX, 2), (2, bpf.XDP_PASS, 3)])
def test_tail_call_dispatches_by_opcode(dispatcher, opcode, verdict, handler):
    _, _, send = dispatcher
    assert send(opcode) == (verdict, handler)


def test_tail_call_empty_slot_falls_through(dispatcher):
    _, _, send = dispatcher
    assert send(5) == (bpf.XDP_PASS, FELL_THROUGH)


def test_tail_call_index_out_of_range_falls_through(dispatcher):
    _, table, send = dispatcher
    assert send(200) == (bpf.XDP_PASS, FELL_THROUGH)
    with pytest.raises(OSError) as e:
        table[200] = dispatcher[0].program("op_drop")
    assert e.value.errno == 7  # E2BIG


def test_tail_call_slot_replaced_at_run_time(dispatcher):
    obj, table, send = dispatcher
    assert send(0) == (bpf.XDP_DROP, 1)
    table[0] = obj.program("op_replacement")
    assert send(0) == (bpf.XDP_DROP, 4)


def test_tail_call_slot_cleared(dispatcher):
    _, table, send = dispatcher
    del table[1]
    assert send(1) == (bpf.XDP_PASS, FELL_THROUGH)
    with pytest.raises(KeyError):
        del table[1]


def test_prog_array_refuses_other_program_types(dispatcher):
    obj, table, _ = dispatcher
    with pytest.raises(OSError) as e:
        table[6] = obj.program("not_xdp")
    assert e.value.errno == 22  # EINVAL


def test_prog_array_lookup_gives_program_ids(dispatcher):
    obj, table, _ = dispatcher
    assert table[0] == obj.program("op_drop").id
    assert sorted(table.keys()) == [0, 1, 2]


def expected_runs(kernel) -> int:
    """1 + the number of tail calls the kernel allows in one chain.

    MAX_TAIL_CALL_CNT was 32 until Linux 5.17 (commit ebf7f6f0a6cd) made it 33,
    but the x86-64 and arm64 JITs already allowed 33 before that: measured
    here, Debian's 5.10 runs a self-tail-calling program 34 times on both
    arches, like 6.1, 6.12 and 7.x. The pre-5.17 interpreter stopped at 32.
    """
    with open("/proc/sys/net/core/bpf_jit_enable") as f:
        jited = f.read().strip() != "0"
    if jited or kernel.version_tuple() >= (5, 17, 0):
        return 1 + 33
    return 1 + 32


def mixes_tail_and_bpf2bpf_calls(kernel) -> bool:
    """Whether the JIT allows tail calls in programs with bpf-to-bpf calls.

    x86-64 since 5.10; arm64 since 6.0 (measured: Debian's 5.10 arm64 rejects
    it, 6.1 accepts).
    """
    return kernel.arch == "x86_64" or kernel.version_tuple() >= (6, 0, 0)


@pytest.fixture
def chain(bpf_object, kernel):
    mixes = mixes_tail_and_bpf2bpf_calls(kernel)
    obj = bpf_object("tailcall_chain", autoload={"chain_subprog": mixes})
    table = obj.map("chain_table")
    table[0] = obj.program("chain")
    if mixes:
        table[1] = obj.program("chain_subprog")
    return obj


def test_tail_call_chain_limit(chain, kernel):
    assert chain.program("chain").test_run(ether_payload(b"")).retval == bpf.XDP_PASS
    assert chain.map("runs")[0] == expected_runs(kernel)


def test_tail_call_chain_limit_from_bpf_to_bpf_call(bpf_object, kernel):
    """Tail calls from subprograms carry the count over where the JIT allows them."""
    if not mixes_tail_and_bpf2bpf_calls(kernel):
        with pytest.raises(bpf.LoadError, match="tail_calls are not allowed in non-JITed "
                                                "programs with bpf-to-bpf calls"):
            bpf_object("tailcall_chain")
        return
    chain = bpf_object("tailcall_chain")
    chain.map("chain_table")[1] = chain.program("chain_subprog")
    assert chain.program("chain_subprog").test_run(ether_payload(b"")).retval == bpf.XDP_PASS
    assert chain.map("runs")[1] == expected_runs(kernel)
