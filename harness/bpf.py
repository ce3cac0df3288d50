"""The BPF toolkit for test authors (runs in the guest, on the kernel under test).

    from bpfvm import bpf

    def test_drop(bpf_object):
        obj = bpf_object("xdp_drop")                 # bpf/xdp_drop.c, built on the host
        run = obj.program("xdp_drop").test_run(packet)
        assert run.retval == bpf.XDP_DROP
        assert obj.map("counts")[0] == 1

Everything goes through the distribution's libbpf (libbpf.so.1) with ctypes.
"""
from .guest.bpf.attach import (Attachment, Link, TcAttachment, XdpAttachment, XdpState,
                               ifindex, xdp_detach, xdp_prog_id, xdp_query)
from .guest.bpf.events import PerfBuffer, RingBuffer
from .guest.bpf.libbpf import (BPF_ANY, BPF_EXIST, BPF_F_TEST_RUN_ON_CPU, BPF_NOEXIST,
                               XDP_FLAGS_REPLACE, XDP_FLAGS_UPDATE_IF_NOEXIST,
                               num_possible_cpus)
from .guest.bpf.libbpf import version as libbpf_version
from .guest.bpf.maps import (BloomFilter, Map, MapOfMaps, PerCpuMap, PerCpuValues, ProgArray,
                             QueueMap)
from .guest.bpf.objects import BpfObject, LoadError, Program, TestRun, load
from .guest.bpf.tcfilter import TcFilter
from .guest.bpf.bpftool import bpftool
from .guest.bpf.cpus import on_cpu, online_cpus, possible_cpus
from .guest.compiled import BuildError, compiled, load_object

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
BPF_F_INGRESS = 1

__all__ = [
    "Attachment", "Link", "TcAttachment", "TcFilter", "XdpAttachment", "XdpState", "ifindex",
    "xdp_detach", "xdp_prog_id", "xdp_query",
    "PerfBuffer", "RingBuffer", "BPF_ANY", "BPF_EXIST", "BPF_NOEXIST", "BPF_F_TEST_RUN_ON_CPU",
    "XDP_FLAGS_REPLACE", "XDP_FLAGS_UPDATE_IF_NOEXIST", "num_possible_cpus", "libbpf_version",
    "BloomFilter", "Map", "MapOfMaps", "PerCpuMap", "PerCpuValues", "ProgArray", "QueueMap",
    "BpfObject", "LoadError", "Program", "TestRun", "load", "BuildError", "compiled",
    "load_object", "bpftool", "on_cpu", "online_cpus", "possible_cpus", "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT",
    "TC_ACT_OK", "TC_ACT_SHOT", "TC_ACT_REDIRECT", "BPF_F_INGRESS",
]
