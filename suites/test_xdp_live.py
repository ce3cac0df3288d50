"""XDP on live traffic between network namespaces over veth, in generic and native mode."""
from __future__ import annotations

import ctypes
import errno
import socket
import struct

import pytest

from bpfvm import bpf
from bpfvm.net import wait_until

@pytest.fixture
def verdicts(bpf_object):
    return bpf_object("xdp_verdicts")


@pytest.fixture
def live(bpf_object):
    return bpf_object("xdp_live")


def counter(counters, slot: int, expect: int):
    """Wait until counters[slot] reaches expect: the program has decided on the frames."""
    return wait_until(lambda: counters[slot] >= expect, what=f"counter {slot} = {expect}")


def fwd(ifindex: int = 0, cpu: int = 0, dst=None, src=None) -> bytes:
    """struct fwd of xdp_live.c: where to redirect, and the MACs (Ifaces) to write."""
    return struct.pack("II6s6s", ifindex, cpu, dst.mac_bytes if dst else bytes(6),
                       src.mac_bytes if src else bytes(6))


# -- verdicts ------------------------------------------------------------------------

def test_xdp_live_pass_reaches_the_socket(pair, verdicts, xdp_mode):
    verdicts.program("xdp_pass").attach_xdp(pair.b.iface, mode=xdp_mode)
    sock = pair.b.udp_socket(5000)
    pair.a.send([pair.a.udp_to(pair.b, 5000, b"pass")])
    assert sock.recvfrom(16) == (b"pass", (pair.a.ip4, 4000))
    assert verdicts.map("runs")[2] == 1


def test_xdp_live_drop_is_counted_and_not_received(pair, verdicts, xdp_mode):
    verdicts.program("xdp_drop").attach_xdp(pair.b.iface, mode=xdp_mode)
    capture = pair.b.capture()
    pair.a.send([pair.a.udp_to(pair.b, 5000, b"drop")] * 3)
    counter(verdicts.map("runs"), 1, 3)
    assert capture.frames(timeout=0.3) == []


def test_xdp_live_tx_reflects_to_the_sender(pair, live, verdicts, xdp_mode):
    """Native XDP_TX on veth lands on the peer only if the peer can take XDP frames:
    it needs an XDP program of its own (or, since 5.13, GRO on)."""
    if xdp_mode == "native":
        verdicts.program("xdp_pass").attach_xdp(pair.a.iface, mode=xdp_mode)
    live.program("xdp_reflect").attach_xdp(pair.b.iface, mode=xdp_mode)
    sock = pair.a.udp_socket(4000)
    pair.a.send([pair.a.udp_to(pair.b, 5000, b"echo", sport=4000)])
    assert sock.recvfrom(16) == (b"echo", (pair.b.ip4, 5000))
    assert live.map("verdicts")[bpf.XDP_TX] == 1


class XdpException(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint32), ("act", ctypes.c_uint32)]


@pytest.mark.parametrize("program,action", [("xdp_aborted", bpf.XDP_ABORTED),
                                            ("xdp_out_of_range", 99)])
def test_xdp_live_aborted_fires_the_exception_tracepoint(pair, verdicts, live, xdp_mode,
                                                         program, action):
    """XDP_ABORTED, and a return value that is no action, drop the frame and fire
    xdp:xdp_exception with the value returned."""
    live.program("count_xdp_exception").attach_tracepoint("xdp", "xdp_exception")
    verdicts.program(program).attach_xdp(pair.b.iface, mode=xdp_mode)
    capture = pair.b.capture()
    pair.a.send([pair.a.udp_to(pair.b, 5000, b"abort")] * 2)
    exceptions = live.map("exceptions").types(value=XdpException)
    wait_until(lambda: exceptions[0].count == 2, what="two xdp_exception events")
    assert exceptions[0].act == action
    assert capture.frames(timeout=0.3) == []


# -- redirects -----------------------------------------------------------------------

def redirect_setup(net, live, verdicts, xdp_mode, program):
    r, b = net.r, net.b
    out = r.towards(b)
    live.map("config")[0] = fwd(out.ifindex, dst=b.iface, src=out)
    with r:  # a devmap resolves the ifindex in the updater's namespace
        live.map("devices")[0] = out.ifindex
    if xdp_mode == "native":  # the receiving end of the redirect must take XDP frames
        verdicts.program("xdp_pass").attach_xdp(b.iface, mode=xdp_mode)
    live.program(program).attach_xdp(r.iface, mode=xdp_mode)


@pytest.mark.parametrize("program", ["xdp_redirect_devmap", "xdp_redirect_ifindex"])
def test_xdp_redirect_to_another_interface(routed, live, verdicts, xdp_mode, program):
    redirect_setup(routed, live, verdicts, xdp_mode, program)
    sock = routed.b.udp_socket(5000)
    frame = routed.a.udp_to(routed.b, 5000, b"redirected")
    routed.a.send([frame])
    data, source = sock.recvfrom(32)
    assert (data, source) == (b"redirected", (routed.a.ip4, 4000))
    assert live.map("verdicts")[bpf.XDP_REDIRECT] == 1


def test_xdp_native_redirect_into_veth_without_xdp_on_the_peer_is_lost(routed, live,
                                                                       verdicts):
    """The classic veth pitfall: the target's peer has no XDP program (and GRO is
    off), so the redirected frame is dropped, though the program returned
    XDP_REDIRECT."""
    r, b = routed.r, routed.b
    out = r.towards(b)
    live.map("config")[0] = fwd(out.ifindex, dst=b.iface, src=out)
    with r:
        live.map("devices")[0] = out.ifindex
    live.program("xdp_redirect_devmap").attach_xdp(r.iface, mode="native")
    capture = b.capture()
    routed.a.send([routed.a.udp_to(b, 5000, b"lost")])
    counter(live.map("verdicts"), bpf.XDP_REDIRECT, 1)
    assert capture.frames(timeout=0.3) == []


def test_xdp_redirect_to_another_cpu(pair, live, xdp_mode, kernel):
    """A cpumap entry with a program: the frame goes up the stack on CPU 1, where
    the entry's program runs first. Generic XDP learnt cpumaps in 5.15; before, a
    program using a cpumap that can hold programs is refused in generic mode."""
    if len(bpf.online_cpus()) < 2:
        pytest.skip(f"kernel {kernel.describe()}: needs 2 online CPUs")
    cpumap_prog = live.program("xdp_on_target_cpu")
    live.map("cpus")[1] = struct.pack("Ii", 192, cpumap_prog.fd)
    live.map("config")[0] = fwd(cpu=1)
    if xdp_mode == "generic" and kernel.version_tuple() < (5, 15, 0):
        with pytest.raises(OSError) as e:
            live.program("xdp_redirect_cpu").attach_xdp(pair.b.iface, mode=xdp_mode)
        assert e.value.errno == errno.EINVAL
        return
    live.program("xdp_redirect_cpu").attach_xdp(pair.b.iface, mode=xdp_mode)
    sock = pair.b.udp_socket(5000)
    with bpf.on_cpu(0):
        pair.a.send([pair.a.udp_to(pair.b, 5000, b"cpu")])
    assert sock.recvfrom(16) == (b"cpu", (pair.a.ip4, 4000))
    where = live.map("where")
    assert where[1] == 1 + 1  # the cpumap program ran on CPU 1


# -- flows ---------------------------------------------------------------------------

class Flow(ctypes.Structure):
    _fields_ = [("saddr", ctypes.c_uint8 * 4), ("daddr", ctypes.c_uint8 * 4),
                ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16),
                ("protocol", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3)]


class FlowStats(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


def test_xdp_per_flow_counters(pair, live, xdp_mode):
    from scapy.layers.inet import TCP

    a, b = pair.a, pair.b
    frames = [a.udp_to(b, 5000, b"x" * 10, sport=1000)] * 3 + \
        [a.udp_to(b, 5001, b"y" * 100, sport=1001)] * 2 + \
        [a.ether_to(b) / TCP(sport=1002, dport=80, flags="S")]
    live.program("xdp_flows").attach_xdp(b.iface, mode=xdp_mode)
    capture = b.capture()
    a.send(frames)
    assert len(capture.frames(count=6)) == 6
    flows = live.map("flows").types(key=Flow, value=FlowStats)
    got = {(socket.inet_ntoa(bytes(k.saddr)), socket.inet_ntoa(bytes(k.daddr)),
            socket.ntohs(k.sport), socket.ntohs(k.dport), k.protocol): (v.packets, v.bytes)
           for k, v in flows.items()}
    frame_len = [len(bytes(f)) for f in frames]
    assert got == {
        (a.ip4, b.ip4, 1000, 5000, socket.IPPROTO_UDP): (3, 3 * frame_len[0]),
        (a.ip4, b.ip4, 1001, 5001, socket.IPPROTO_UDP): (2, 2 * frame_len[3]),
        (a.ip4, b.ip4, 1002, 80, socket.IPPROTO_TCP): (1, frame_len[5]),
    }
