"""The README's examples: bpf/xdp_count.c and its test; an XDP drop on live traffic;
XDP offload to netdevsim."""
import errno

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpfvm import bpf, net
from bpfvm.expect import refused


def test_xdp_count_drops_discard_port(bpf_object):
    obj = bpf_object("xdp_count")            # bpf/xdp_count.c, compiled on the host
    prog, counts = obj.program("xdp_count"), obj.map("counts")

    assert prog.test_run(Ether() / IP() / UDP(dport=9)).retval == bpf.XDP_DROP
    assert prog.test_run(Ether() / IP() / UDP(dport=53), repeat=10).retval == bpf.XDP_PASS
    assert counts[bpf.XDP_DROP] == 1 and counts[bpf.XDP_PASS] == 10


def test_xdp_drop_on_the_wire(topology, bpf_object):
    t = topology("pair")                          # namespaces a and b, one veth pair
    obj = bpf_object("xdp_verdicts")
    obj.program("xdp_drop").attach_xdp(t.b.iface, mode="native")  # b's veth0, in b
    capture = t.b.capture()                       # what b's stack receives, from now on
    t.a.send([t.a.udp_to(t.b, 5000, b"x")] * 3)   # Ether/IP/UDP from a to b, sent raw
    net.wait_until(lambda: obj.map("runs")[1] == 3)   # the program has seen all three
    assert capture.frames(timeout=0.3) == []


def test_offload_example(netdevsim, bpf_object):  # skipped on kernels without netdevsim
    port = netdevsim().ports[0]
    obj = bpf_object("offload", offload=port)          # programs and maps bound to the device
    prog = obj.program("xdp_pass")
    prog.attach_xdp(port, mode="offload")
    assert port.xdp().offload == prog.id == port.knobs["bpf_offloaded_id"]  # kernel and device
    port.set_feature("hw-tc-offload", True)
    with refused(errno.EBUSY, "netdevsim: driver and netdev offload states mismatch"):
        obj.program("tc_pass").attach_tc_filter(port, skip_sw=True)  # XDP holds the offload
