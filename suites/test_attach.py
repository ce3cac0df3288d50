"""Attaching XDP and TC programs to interfaces, as the kernel reports them."""
from __future__ import annotations

import socket

import pytest

from bpfvm import bpf

LO = "lo"


def net_show(dev: str) -> dict:
    return bpf.bpftool("net", "show", "dev", dev)[0]


@pytest.fixture
def xdp(bpf_object):
    return bpf_object("xdp_verdicts").program("xdp_pass")


@pytest.fixture
def veth():
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("add", ifname="bpfvm-a", kind="veth", peer="bpfvm-b")
        try:
            for name in ("bpfvm-a", "bpfvm-b"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
            yield "bpfvm-a"
        finally:
            ipr.link("del", index=ipr.link_lookup(ifname="bpfvm-a")[0])


def test_xdp_generic_attach_and_detach(xdp):
    with xdp.attach_xdp(LO, mode="generic") as attachment:
        assert bpf.xdp_prog_id(LO, "generic") == xdp.id
        assert net_show(LO)["xdp"] == [{"devname": LO, "ifindex": 1, "mode": "generic",
                                        "id": xdp.id}]
        assert attachment.attached
    assert bpf.xdp_prog_id(LO, "generic") == 0
    assert net_show(LO)["xdp"] == []


def test_xdp_native_attach_on_veth(xdp, veth):
    with xdp.attach_xdp(veth, mode="native"):
        assert bpf.xdp_prog_id(veth, "native") == xdp.id
        assert net_show(veth)["xdp"][0]["mode"] == "driver"
    assert bpf.xdp_prog_id(veth) == 0


def test_xdp_native_attach_refused_by_loopback(xdp):
    """lo has no driver XDP support: EOPNOTSUPP."""
    with pytest.raises(OSError) as e:
        xdp.attach_xdp(LO, mode="native")
    assert e.value.errno == 95
    assert bpf.xdp_prog_id(LO) == 0


def test_xdp_attach_to_missing_interface(xdp):
    with pytest.raises(OSError) as e:
        xdp.attach_xdp("bpfvm-none", mode="generic")
    assert e.value.errno == 19  # ENODEV


def test_xdp_attachment_removed_when_object_closes(bpf_object):
    obj = bpf_object("xdp_verdicts")
    obj.program("xdp_drop").attach_xdp(LO, mode="generic")
    assert bpf.xdp_prog_id(LO, "generic") == obj.program("xdp_drop").id
    obj.close()
    assert bpf.xdp_prog_id(LO, "generic") == 0


@pytest.fixture
def tc(bpf_object):
    return bpf_object("tc_count")


def send_udp_to_self(count: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        for _ in range(count):
            tx.sendto(b"ping", rx.getsockname())
            rx.recv(16)


def test_tc_ingress_and_egress_on_loopback(tc):
    prog = tc.program("tc_count")
    with prog.attach_tc(LO, "ingress") as ingress, prog.attach_tc(LO, "egress"):
        assert ingress.prog_id == prog.id
        kinds = sorted(f["kind"] for f in net_show(LO)["tc"] if f["id"] == prog.id)
        assert kinds == ["clsact/egress", "clsact/ingress"]
        send_udp_to_self(3)
    seen = tc.map("seen")
    assert (seen[0], seen[1]) == (3, 3)  # ingress, egress
    assert net_show(LO)["tc"] == []


def test_tc_shot_drops_on_ingress(tc):
    tc.map("action")[0] = bpf.TC_ACT_SHOT
    with tc.program("tc_count").attach_tc(LO, "ingress"):
        with pytest.raises(socket.timeout):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                rx.bind(("127.0.0.1", 0))
                rx.settimeout(0.5)
                tx.sendto(b"ping", rx.getsockname())
                rx.recv(16)
    assert tc.map("seen")[0] == 1


def test_tc_test_run_verdicts(tc):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    packet = Ether() / IP() / UDP()
    prog = tc.program("tc_count")
    assert prog.test_run(packet).retval == bpf.TC_ACT_OK
    tc.map("action")[0] = bpf.TC_ACT_SHOT
    assert prog.test_run(packet).retval == bpf.TC_ACT_SHOT
