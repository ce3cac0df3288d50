"""BPF hardware offload for test authors: netdevsim devices (runs in the guest).

    def test_offload(netdevsim, bpf_object):
        port = netdevsim().ports[0]
        obj = bpf_object("offload", offload=port)      # programs and maps bound to the device
        prog = obj.program("xdp_pass")
        prog.attach_xdp(port, mode="offload")
        assert port.xdp().offload == prog.id == port.knobs["bpf_offloaded_id"]

The ``netdevsim`` fixture makes devices and removes them after the test;
tests using it skip on kernels without CONFIG_NETDEVSIM. TC offload goes
through ``Program.attach_tc_filter(port, skip_sw=True)`` (iproute2's tc).
"""
from .guest.bpf.attach import XdpState, xdp_query
from .guest.bpf.tcfilter import TcFilter, filters as tc_filters
from .guest.netdevsim import NO_NETDEVSIM, XDP_MAX_MTU, NetdevSim, NsimPort, available, connect

__all__ = ["XdpState", "xdp_query", "TcFilter", "tc_filters", "NO_NETDEVSIM", "XDP_MAX_MTU",
           "NetdevSim", "NsimPort", "available", "connect"]
