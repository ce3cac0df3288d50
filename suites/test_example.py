"""The README's worked example: bpf/xdp_count.c and its test."""
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness import bpf


def test_xdp_count_drops_discard_port(bpf_object):
    obj = bpf_object("xdp_count")            # bpf/xdp_count.c, compiled on the host
    prog, counts = obj.program("xdp_count"), obj.map("counts")

    assert prog.test_run(Ether() / IP() / UDP(dport=9)).retval == bpf.XDP_DROP
    assert prog.test_run(Ether() / IP() / UDP(dport=53), repeat=10).retval == bpf.XDP_PASS
    assert counts[bpf.XDP_DROP] == 1 and counts[bpf.XDP_PASS] == 10
