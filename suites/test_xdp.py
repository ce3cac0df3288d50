"""XDP programs through BPF_PROG_TEST_RUN: verdicts, packet surgery, context."""
from __future__ import annotations

import ctypes
import struct

import pytest

from conftest import ether_payload
from bpfvm import bpf


def udp_packet(payload: bytes = b"hello"):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / \
        IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=4000, dport=5000) / payload


@pytest.fixture
def verdicts(bpf_object):
    return bpf_object("xdp_verdicts")


@pytest.mark.parametrize("program,verdict", [
    ("xdp_pass", bpf.XDP_PASS), ("xdp_drop", bpf.XDP_DROP),
    ("xdp_tx", bpf.XDP_TX), ("xdp_aborted", bpf.XDP_ABORTED)])
def test_xdp_verdict(verdicts, program, verdict):
    packet = bytes(udp_packet())
    result = verdicts.program(program).test_run(packet)
    assert result.retval == verdict
    assert result.data == packet  # the program did not touch it


def test_xdp_out_of_range_return_code_is_returned_as_is(verdicts):
    """Test runs do not interpret the return value (live traffic would treat it as aborted)."""
    assert verdicts.program("xdp_out_of_range").test_run(udp_packet()).retval == 99


def test_xdp_verdict_read_from_packet(verdicts):
    prog = verdicts.program("xdp_verdict_in_packet")
    got = [prog.test_run(ether_payload(bytes([v]))).retval for v in range(4)]
    assert got == [bpf.XDP_ABORTED, bpf.XDP_DROP, bpf.XDP_PASS, bpf.XDP_TX]


def test_xdp_repeat_runs_the_program_n_times(verdicts):
    result = verdicts.program("xdp_drop").test_run(udp_packet(), repeat=1000)
    assert result.retval == bpf.XDP_DROP
    assert verdicts.map("runs")[1] == 1000
    assert result.duration > 0


# -- context in (struct xdp_md) ----------------------------------------------------

def xdp_md(data_end: int, ingress_ifindex: int) -> bytes:
    """struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    egress_ifindex."""
    return struct.pack("6I", 0, data_end, 0, ingress_ifindex, 0, 0)


def test_xdp_ctx_in(verdicts, kernel):
    """Linux 5.15 added struct xdp_md input to XDP test runs; before, EINVAL."""
    packet = bytes(udp_packet())
    prog = verdicts.program("xdp_ifindex")
    if kernel.version_tuple() < (5, 15, 0):
        with pytest.raises(OSError) as e:
            prog.test_run(packet, ctx=xdp_md(len(packet), 1))
        assert e.value.errno == 22
        return
    result = prog.test_run(packet, ctx=xdp_md(len(packet), 1))
    assert result.retval == 1  # lo
    assert len(result.ctx) == 24
    with pytest.raises(OSError) as e:  # an ifindex that does not exist
        prog.test_run(packet, ctx=xdp_md(len(packet), 9999))
    assert e.value.errno == 19  # ENODEV


# -- growing and shrinking -----------------------------------------------------------

@pytest.fixture
def adjust(bpf_object):
    obj = bpf_object("xdp_adjust")

    def run(program: str, delta: int, packet: bytes, **options):
        obj.map("params")[0] = delta
        result = obj.program(program).test_run(packet, **options)
        helper = obj.map("result").types(value=ctypes.c_int64)[0]
        return result, helper
    return run


def test_xdp_adjust_head_grows_front(adjust):
    packet = bytes(udp_packet())
    result, helper = adjust("xdp_head", 14, packet)
    assert (result.retval, helper.value) == (bpf.XDP_PASS, 0)
    assert result.data == b"\xab" * 14 + packet


def test_xdp_adjust_head_shrinks_front(adjust):
    packet = bytes(udp_packet())
    result, helper = adjust("xdp_head", -14, packet)
    assert (result.retval, helper.value) == (bpf.XDP_PASS, 0)
    assert result.data == packet[14:]


def test_xdp_adjust_head_beyond_headroom_fails(adjust):
    packet = bytes(udp_packet())
    result, helper = adjust("xdp_head", 4096, packet)
    assert (result.retval, helper.value) == (bpf.XDP_ABORTED, -22)  # -EINVAL
    assert result.data == packet


def test_xdp_adjust_tail_grows(adjust):
    packet = bytes(udp_packet())
    result, helper = adjust("xdp_tail", 20, packet)
    assert (result.retval, helper.value) == (bpf.XDP_PASS, 0)
    assert result.data == packet + b"\xab" * 20


def test_xdp_adjust_tail_shrinks(adjust):
    packet = bytes(udp_packet(b"x" * 40))
    result, helper = adjust("xdp_tail", -30, packet)
    assert (result.retval, helper.value) == (bpf.XDP_PASS, 0)
    assert result.data == packet[:-30]


def test_xdp_output_buffer_too_small(adjust):
    """The kernel copies what fits and fails the run with ENOSPC."""
    packet = bytes(udp_packet())
    with pytest.raises(OSError) as e:
        adjust("xdp_tail", 20, packet, data_out_size=len(packet))
    assert e.value.errno == 28  # ENOSPC


# -- the samples/bpf xdp1 protocol counter ---------------------------------------------

def test_xdp_protocol_counter(bpf_object):
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Dot1Q, Ether

    obj = bpf_object("xdp_proto_count")
    prog = obj.program("xdp_proto_count")
    sent = [(Ether() / IP() / UDP(), 3), (Ether() / IP() / TCP(), 2), (Ether() / IP() / ICMP(), 1),
            (Ether() / IPv6() / ICMPv6EchoRequest(), 4), (Ether() / Dot1Q(vlan=5) / IP() / UDP(), 2)]
    for packet, count in sent:
        for _ in range(count):
            assert prog.test_run(packet).retval == bpf.XDP_DROP
    rxcnt = obj.map("rxcnt")
    counts = {proto: rxcnt.sum(proto) for proto in (1, 6, 17, 58)}
    assert counts == {1: 1, 6: 2, 17: 5, 58: 4}
    assert sum(sum(values) for values in rxcnt.values()) == 12


# -- the verifier --------------------------------------------------------------------------

def test_verifier_log_is_in_the_load_error(bpf_object):
    with pytest.raises(bpf.LoadError) as e:
        bpf_object("xdp_unchecked")
    assert e.value.program == "xdp_unchecked"
    assert e.value.errno == 13  # EACCES
    assert "invalid access to packet" in e.value.log
    assert "invalid access to packet" in str(e.value)
