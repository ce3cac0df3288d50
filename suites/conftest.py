"""Helpers shared by the suites (they run inside the guest)."""
from __future__ import annotations

import os
import uuid

import pytest


def ether_payload(payload: bytes) -> bytes:
    """A minimal frame: zeroed Ethernet header (14 bytes) then payload, padded to 60."""
    return (bytes(14) + payload).ljust(60, b"\0")


@pytest.fixture
def bpffs_dir():
    """A fresh directory in /sys/fs/bpf, removed with whatever is pinned in it."""
    path = f"/sys/fs/bpf/bpfvm-{uuid.uuid4().hex[:12]}"
    os.mkdir(path)
    yield path
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


# -- live traffic -----------------------------------------------------------------------

@pytest.fixture(params=["generic", "native"])
def xdp_mode(request) -> str:
    """Each test using it runs with XDP attached in generic, then in native mode."""
    return request.param


@pytest.fixture
def pair(topology):
    """Namespaces a and b over one veth pair."""
    return topology("pair")


@pytest.fixture
def routed(topology):
    """a - r - b: frames from a enter r on veth0, leave towards b on veth1."""
    return topology("router")
