"""TC (clsact) programs on live traffic: verdicts on ingress and egress, and
bpf_redirect() with its pitfalls."""
from __future__ import annotations

import socket
import struct

import pytest

from bpfvm import bpf
from bpfvm.net import wait_until


@pytest.fixture
def tc(bpf_object):
    return bpf_object("tc_count")


@pytest.mark.parametrize("action,delivered", [(bpf.TC_ACT_OK, True), (bpf.TC_ACT_SHOT, False)])
def test_tc_ingress_verdict(pair, tc, action, delivered):
    tc.map("action")[0] = action
    tc.program("tc_count").attach_tc(pair.b.iface, "ingress")
    sock = pair.b.udp_socket(5000, timeout=0.3)
    pair.a.send([pair.a.udp_to(pair.b, 5000, b"tc")])
    wait_until(lambda: tc.map("seen")[0] == 1, what="the ingress program ran")
    if delivered:
        assert sock.recv(16) == b"tc"
    else:
        with pytest.raises(socket.timeout):
            sock.recv(16)


def test_tc_egress_shot_drops_before_the_wire(pair, tc):
    tc.map("action")[0] = bpf.TC_ACT_SHOT
    tc.program("tc_count").attach_tc(pair.a.iface, "egress")
    capture = pair.b.capture()
    with pair.a.udp_socket() as sender:
        sender.sendto(b"tc", (pair.b.ip4, 5000))
    assert tc.map("seen")[1] == 1  # egress runs in the sender's context: no wait
    assert capture.frames(timeout=0.3) == []


# -- bpf_redirect ------------------------------------------------------------------------

@pytest.fixture
def redirect(bpf_object):
    return bpf_object("tc_redirect")


def configure(redirect, net, flags: int = 0, rewrite: bool = True) -> None:
    """Frames entering r on veth0 go to r's veth1, towards b (MACs for b when rewrite)."""
    r, b = net.r, net.b
    out = r.towards(b)
    redirect.map("config")[0] = struct.pack(
        "III6s6s", out.ifindex, flags, int(rewrite), b.iface.mac_bytes, out.mac_bytes)


def test_tc_redirect_to_egress_of_another_device(routed, redirect):
    configure(redirect, routed)
    redirect.program("tc_redirect").attach_tc(routed.r.iface, "ingress")
    sock = routed.b.udp_socket(5000)
    routed.a.send([routed.a.udp_to(routed.b, 5000, b"redirected")])
    assert sock.recvfrom(16) == (b"redirected", (routed.a.ip4, 4000))


def test_tc_redirect_with_ingress_flag_enters_the_device(routed, redirect):
    """BPF_F_INGRESS: the frame is received by the target device (as if it had
    arrived there), not transmitted: b never sees it."""
    r, b = routed.r, routed.b
    configure(redirect, routed, flags=bpf.BPF_F_INGRESS)
    redirect.program("tc_redirect").attach_tc(r.iface, "ingress")
    on_target, at_b = r.capture(r.towards(b)), b.capture()
    frame = routed.a.udp_to(b, 5000, b"ingress")
    routed.a.send([frame])
    got = on_target.packets(count=1)
    assert len(got) == 1 and bytes(got[0].payload) == bytes(frame.payload)
    assert at_b.frames(timeout=0.3) == []


def test_tc_bpf_redirect_needs_tc_act_redirect(routed, redirect):
    """The pitfall: bpf_redirect() only records the target. A program that returns
    TC_ACT_OK afterwards lets the frame go on as usual: here to r's own socket."""
    r, b = routed.r, routed.b
    configure(redirect, routed, rewrite=False)
    redirect.program("tc_redirect_ignored").attach_tc(r.iface, "ingress")
    sock, at_b = r.udp_socket(5000), b.capture()
    routed.a.send([routed.a.udp_to(r, 5000, b"not redirected")])
    assert sock.recv(32) == b"not redirected"
    assert at_b.frames(timeout=0.3) == []


def test_tc_redirect_keeps_the_mac_addresses(routed, redirect):
    """The other pitfall: a redirected frame keeps its Ethernet header. Addressed to
    r's MAC, it reaches b's interface but b's stack drops it as not its own."""
    r, b = routed.r, routed.b
    configure(redirect, routed, rewrite=False)
    redirect.program("tc_redirect").attach_tc(r.iface, "ingress")
    sock, at_b = b.udp_socket(5000, timeout=0.3), b.capture()
    routed.a.send([routed.a.udp_to(b, 5000, b"wrong mac")])
    got = at_b.packets(count=1)
    assert len(got) == 1 and got[0].dst == r.towards(routed.a).mac
    with pytest.raises(socket.timeout):
        sock.recv(16)
