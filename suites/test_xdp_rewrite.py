"""XDP programs that rewrite packets in flight: addresses and ports with incremental
checksum updates, and TCP options removed and put back (the packet shrinks and
grows). The receiver gets byte-exact frames whose checksums scapy recomputes."""
from __future__ import annotations

import socket
import struct

import pytest

OPTIONS = [("NOP", None), ("NOP", None), ("Timestamp", (111, 222)), ("MSS", 1460)]


@pytest.fixture
def rewrite(bpf_object):
    obj = bpf_object("xdp_rewrite")
    obj.map("config")[0] = struct.pack("4sHH", socket.inet_aton("10.0.1.100"),
                                       socket.htons(7000), socket.htons(8000))
    return obj


def with_checksums(packet):
    """The same packet with lengths and checksums computed afresh by scapy."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    packet = packet.copy()
    del packet[IP].len, packet[IP].chksum
    for layer in (TCP, UDP):
        if layer in packet:
            del packet[layer].chksum
            if layer is UDP:
                del packet[UDP].len
    return Ether(bytes(packet))


def tcp_segment(src, dst, options):
    from scapy.layers.inet import TCP

    return src.ether_to(dst) / TCP(sport=4000, dport=7000, flags="PA", seq=1000, ack=1,
                                   options=options) / b"payload"


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_xdp_nat_rewrites_source_address_and_port(topology, rewrite, xdp_mode, proto):
    from scapy.layers.inet import IP, TCP, UDP

    net = topology("pair")
    a, b = net.a, net.b
    sent = a.udp_to(b, 7000, b"nat me") if proto == "udp" else tcp_segment(a, b, [])
    expected = sent.copy()
    expected[IP].src = "10.0.1.100"
    expected[UDP if proto == "udp" else TCP].dport = 8000
    rewrite.program("xdp_nat").attach_xdp(b.iface, mode=xdp_mode)
    capture = b.capture()
    sock = b.udp_socket(8000) if proto == "udp" else None
    a.send([sent])
    got = capture.frames(count=1)
    assert got == [bytes(with_checksums(expected))]
    assert rewrite.map("done")[0] == 1
    if sock:  # the stack checked the checksums and delivered it
        assert sock.recvfrom(16) == (b"nat me", ("10.0.1.100", 4000))


def test_xdp_tcp_option_stripped(topology, rewrite, xdp_mode):
    net = topology("pair")
    a, b = net.a, net.b
    rewrite.program("xdp_tcpopt_strip").attach_xdp(b.iface, mode=xdp_mode)
    capture = b.capture()
    a.send([tcp_segment(a, b, OPTIONS)])
    got = capture.frames(count=1)
    expected = with_checksums(tcp_segment(a, b, OPTIONS[3:]))
    assert got == [bytes(expected)]
    assert rewrite.map("done")[1] == 1


def test_xdp_tcp_option_stripped_and_restored_across_a_router(topology, rewrite, xdp_mode):
    """r strips the timestamp option on the way in, b puts it back from the stash:
    b receives the segment a sent, forwarded (TTL one less, r's MACs)."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    net = topology("router")
    a, r, b = net.a, net.r, net.b
    rewrite.program("xdp_tcpopt_strip").attach_xdp(r.iface, mode=xdp_mode)
    rewrite.program("xdp_tcpopt_restore").attach_xdp(b.iface, mode=xdp_mode)
    capture = b.capture()
    sent = tcp_segment(a, b, OPTIONS)
    a.send([sent])
    got = capture.frames(count=1)
    out = r.towards(b)
    expected = Ether(src=out.mac, dst=b.mac) / sent[IP].copy()
    expected[IP].ttl -= 1
    assert got == [bytes(with_checksums(expected))]
    assert (rewrite.map("done")[1], rewrite.map("done")[2]) == (1, 1)
