"""Network topologies and traffic for test authors (runs in the guest).

    from bpfvm import net

    def test_udp_reaches_b(topology):
        t = topology("pair")                      # namespaces a and b, one veth pair
        sock = t.b.udp_socket(5000)
        t.a.send([t.a.udp_to(t.b, 5000, b"hi")])  # a scapy frame, sent raw from a
        assert sock.recv(16) == b"hi"

``with net.pair() as t:`` does the same outside the fixture. Everything is
in namespaces of its own: the guest's own interfaces are never touched.
"""
from .guest.netns import Namespace, entered
from .guest.packets import Capture, send, wait_until
from .guest.topology import SHAPES, Host, Iface, Topology, fanout, pair, router
from .guest.xsk import XskSocket

__all__ = ["Namespace", "entered", "Capture", "send", "wait_until", "SHAPES", "Host", "Iface",
           "Topology", "fanout", "pair", "router", "XskSocket"]
