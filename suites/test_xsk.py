"""AF_XDP: an XDP program sends matching frames through an XSKMAP to an AF_XDP
socket bound to the veth's queue 0 in copy mode; the rest reach the stack."""
from __future__ import annotations

import pytest

from bpfvm.net import XskSocket

pytestmark = pytest.mark.kconfig("CONFIG_XDP_SOCKETS")


@pytest.mark.parametrize("mode", ["generic", "native"])
def test_xsk_receives_exactly_the_matching_frames(topology, bpf_object, mode):
    net = topology("pair")
    a, b = net.a, net.b
    obj = bpf_object("xdp_xsk")
    obj.map("config")[0] = 7777
    obj.program("xdp_to_xsk").attach_xdp(b.iface, mode=mode)
    with XskSocket(b.iface, queue=0, mode="copy") as xsk:
        obj.map("xsks")[0] = xsk.fileno()
        stack = b.udp_socket(7778)
        wanted = [a.udp_to(b, 7777, b"xsk %d" % i) for i in range(3)]
        a.send(wanted[:2] + [a.udp_to(b, 7778, b"stack")] + wanted[2:])
        assert xsk.receive(count=3) == [bytes(f) for f in wanted]
        assert stack.recv(16) == b"stack"
        assert xsk.statistics()["rx_dropped"] == 0
    assert (obj.map("seen")[0], obj.map("seen")[1]) == (3, 1)
