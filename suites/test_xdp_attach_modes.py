"""What the kernel answers when XDP programs are attached, replaced and detached
in the wrong mode (on a veth, which supports generic and native)."""
from __future__ import annotations

import pytest

from bpfvm import bpf


@pytest.fixture
def veth(pair):
    return pair.b.iface


@pytest.fixture
def progs(bpf_object):
    obj = bpf_object("xdp_verdicts")
    return obj.program("xdp_pass"), obj.program("xdp_drop")


@pytest.mark.parametrize("first,second", [("generic", "native"), ("native", "generic")])
def test_xdp_generic_and_native_at_once_refused(veth, progs, first, second):
    progs[0].attach_xdp(veth, mode=first)
    with pytest.raises(OSError) as e:
        progs[1].attach_xdp(veth, mode=second)
    assert e.value.errno == 17  # EEXIST
    assert e.value.extack == "Native and generic XDP can't be active at the same time"
    assert bpf.xdp_prog_id(veth, first) == progs[0].id


def test_xdp_detach_in_the_wrong_mode_leaves_the_program(veth, progs):
    progs[0].attach_xdp(veth, mode="native")
    bpf.xdp_detach(veth, "generic")  # accepted: there is no generic program to remove
    assert bpf.xdp_prog_id(veth, "native") == progs[0].id
    bpf.xdp_detach(veth, "native")
    assert bpf.xdp_prog_id(veth) == 0


def test_xdp_replace(veth, progs):
    first, second = progs
    first.attach_xdp(veth, mode="native")
    second.attach_xdp(veth, mode="native")  # no flags: replaced
    assert bpf.xdp_prog_id(veth, "native") == second.id
    with pytest.raises(OSError) as e:
        first.attach_xdp(veth, mode="native", flags=bpf.XDP_FLAGS_UPDATE_IF_NOEXIST)
    assert e.value.errno == 16  # EBUSY
    assert e.value.extack == "XDP program already attached"
    with pytest.raises(OSError) as e:  # expected first to be there; second is
        second.attach_xdp(veth, mode="native", flags=bpf.XDP_FLAGS_REPLACE, replace=first)
    assert e.value.errno == 17  # EEXIST
    assert e.value.extack == "Active program does not match expected"
    first.attach_xdp(veth, mode="native", flags=bpf.XDP_FLAGS_REPLACE, replace=second)
    assert bpf.xdp_prog_id(veth, "native") == first.id
