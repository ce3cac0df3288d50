"""The XDP program's behaviour and one verifier expectation, on each selected kernel."""
import pytest

from bpfvm import bpf

PACKETS = {"udp": 17, "tcp": 6, "icmp": 1}


def packet(name: str):
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether

    return Ether() / IP() / {"udp": UDP, "tcp": TCP, "icmp": ICMP}[name]()


@pytest.mark.parametrize("name", PACKETS)
def test_counts_one_protocol(bpf_object, name):
    obj = bpf_object("xdp_proto_count")
    for _ in range(3):
        assert obj.program("xdp_proto_count").test_run(packet(name)).retval == bpf.XDP_PASS
    rxcnt = obj.map("rxcnt")
    assert rxcnt.sum(PACKETS[name]) == 3
    assert sum(sum(per_cpu) for per_cpu in rxcnt.values()) == 3


def test_non_ip_frames_are_not_counted(bpf_object):
    from scapy.layers.l2 import ARP, Ether

    obj = bpf_object("xdp_proto_count")
    assert obj.program("xdp_proto_count").test_run(Ether() / ARP()).retval == bpf.XDP_PASS
    assert sum(sum(per_cpu) for per_cpu in obj.map("rxcnt").values()) == 0


def test_unchecked_packet_access_is_rejected(verifier):
    verifier.expect_reject("xdp_unchecked", "xdp_unchecked", match="invalid access to packet")
