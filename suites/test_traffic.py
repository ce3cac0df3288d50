"""The topology fixtures themselves: namespaces, veth pairs, addresses, routes,
neighbours, quiet links, final checksums, cleanup."""
from __future__ import annotations

import os

import pytest

from bpfvm import net


def test_traffic_pair_delivers_a_raw_frame_to_the_peer_socket(topology):
    t = topology("pair")
    sock = t.b.udp_socket(5000)
    t.a.send([t.a.udp_to(t.b, 5000, b"hello")])
    assert sock.recvfrom(16) == (b"hello", ("10.0.1.1", 4000))


def test_traffic_router_forwards_between_subnets(topology):
    from scapy.layers.inet import IP

    t = topology("router")
    assert (t.a.ip4, t.b.ip4) == ("10.0.1.1", "10.0.2.2")
    capture = t.b.capture()
    with t.a.udp_socket() as sender:
        sender.sendto(b"routed", (t.b.ip4, 5000))
    got = capture.packets(count=1)
    assert len(got) == 1
    assert (got[0].src, got[0].dst) == (t.r.towards(t.b).mac, t.b.mac)
    assert got[0][IP].ttl == 63 and bytes(got[0][IP].payload.payload) == b"routed"


def test_traffic_fanout_reaches_every_receiver(topology):
    t = topology("fanout", 3)
    receivers = [t[f"r{i}"] for i in range(3)]
    sockets = [r.udp_socket(5000) for r in receivers]
    for r in receivers:
        t.s.send([t.s.udp_to(r, 5000, r.name.encode())], iface=t.s.towards(r))
    assert [s.recv(16) for s in sockets] == [b"r0", b"r1", b"r2"]


def test_traffic_links_are_quiet_without_ipv6(topology):
    """No router solicitation, DAD, MLD or ARP: a capture sees only what a test sends."""
    t = topology("pair")
    assert t.b.capture().frames(timeout=1.0) == []


def test_traffic_ipv6_on_request_is_usable_at_once(topology):
    """Addresses without DAD: a socket can bind and send right after setup."""
    t = topology("router", ipv6=True)
    sock = t.b.udp_socket(5000, ipv6=True)
    with t.a.udp_socket(ipv6=True) as sender:
        sender.sendto(b"v6", (t.b.ip6, 5000))
    data, source = sock.recvfrom(16)
    assert (data, source[0]) == (b"v6", t.a.ip6)


def test_traffic_checksums_are_final_on_the_wire(topology):
    """Transmit checksum offload is off: a frame the stack sends carries the UDP
    checksum scapy computes, not a partial one."""
    from scapy.layers.inet import UDP

    t = topology("pair")
    capture = t.b.capture()
    with t.a.udp_socket() as sender:
        sender.sendto(b"sum me", (t.b.ip4, 5000))
    got = capture.packets(count=1)[0]
    sent_sum = got[UDP].chksum
    del got[UDP].chksum
    assert sent_sum == type(got)(bytes(got))[UDP].chksum


def test_traffic_topology_close_releases_everything():
    """Namespaces are held by file descriptors only (theirs, their netlink sockets',
    the sockets and captures handed out): closing leaves none of them open, so the
    kernel frees them."""
    before = set(os.listdir("/proc/self/fd"))
    with net.pair() as t:
        assert t.b.iface.ifindex > 1
        sock, capture = t.b.udp_socket(5000), t.b.capture()
        assert len(set(os.listdir("/proc/self/fd")) - before) >= 4
    assert set(os.listdir("/proc/self/fd")) == before
    assert sock.fileno() == capture.sock.fileno() == -1
    with pytest.raises(OSError):
        t.a.ns.__enter__()


def test_traffic_unknown_shape_is_one_clear_error(topology):
    with pytest.raises(pytest.UsageError, match="no such shape; use one of pair, router, fanout"):
        topology("ring")
