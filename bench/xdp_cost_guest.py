"""Guest side of bench/xdp_cost.py: what one XDP program run costs on this kernel.

Each test records figures with record_property (they reach the host's JUnit
XML); nothing here asserts a time.
"""
from __future__ import annotations

import statistics
import struct

import pytest


pytestmark = pytest.mark.vm

REPEAT = 20000
ROUNDS = 5
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
PROGRAMS = {  # name in the table: (object, program)
    "xdp_pass (empty)": ("xdp_verdicts", "xdp_pass"),
    "xdp_drop + counter": ("xdp_verdicts", "xdp_drop"),
    "xdp_flows (hash map)": ("xdp_live", "xdp_flows"),
    "xdp_nat (rewrite)": ("xdp_rewrite", "xdp_nat"),
}


def frame() -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02") /
                 IP(src="10.0.1.1", dst="10.0.1.2") / UDP(sport=4000, dport=7000) / bytes(18))


def median_ns(prog, **options) -> float:
    return statistics.median(prog.test_run(frame(), repeat=REPEAT, **options).duration
                             for _ in range(ROUNDS))


@pytest.mark.parametrize("label", list(PROGRAMS))
def test_xdp_cost(bpf_object, record_property, label, kernel):
    source, name = PROGRAMS[label]
    obj = bpf_object(source)
    if source == "xdp_rewrite":
        obj.map("config")[0] = struct.pack("4sHH", bytes([10, 0, 1, 100]), 0x581b, 0x401f)
    prog = obj.program(name)
    record_property("label", label)
    record_property("test_run_ns", median_ns(prog))
    if kernel.version_tuple() >= (5, 18, 0):  # BPF_F_TEST_XDP_LIVE_FRAMES arrived in 5.18
        record_property("live_ns", median_ns(prog, flags=BPF_F_TEST_XDP_LIVE_FRAMES,
                                             data_out_size=0))
