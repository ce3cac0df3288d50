"""The cls_bpf request bpfvm.guest.bpf.tcfilter builds, as bytes (pure, on the host)."""
import struct

from pyroute2.netlink.rtnl import RTM_NEWTFILTER
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from bpfvm.guest.bpf import tcfilter

TCM_SIZE = 20  # struct tcmsg after the 16-byte netlink header
TCA_OPTIONS, TCA_CHAIN = 2, 11
TCA_BPF_FD, TCA_BPF_FLAGS_GEN = 6, 9


def attributes(data: bytes) -> dict[int, bytes]:
    found, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        found[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def test_filter_request_carries_chain_and_generic_flags_after_tcmsg_was_used():
    tcmsg()  # an earlier qdisc dump compiles pyroute2's tcmsg: the request must not follow it
    msg = tcfilter.message(RTM_NEWTFILTER, 0, 7, tcfilter.PARENTS["ingress"], 1 << 16, "bpf",
                           [["TCA_BPF_FD", 5], ["TCA_BPF_FLAGS_GEN",
                                                tcfilter.TCA_CLS_FLAGS_SKIP_SW]], chain=3)
    msg.encode()
    top = attributes(bytes(msg.data)[16 + TCM_SIZE:])
    assert struct.unpack("=I", top[TCA_CHAIN]) == (3,)
    options = attributes(top[TCA_OPTIONS])
    assert struct.unpack("=I", options[TCA_BPF_FD]) == (5,)
    assert struct.unpack("=I", options[TCA_BPF_FLAGS_GEN]) == (tcfilter.TCA_CLS_FLAGS_SKIP_SW,)
