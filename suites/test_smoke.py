"""Smoke suite: the guest is what was asked for, and BPF works in it."""
import os

import pytest

from bpfvm.bpf import bpftool


def test_runs_requested_kernel(kernel):
    assert os.uname().release == kernel.release


def test_is_not_the_host(kernel, host_boot_id):
    if kernel.kind == "host":
        pytest.skip("kernel host: runs on the host by request, so it is the host")
    with open("/proc/sys/kernel/random/boot_id") as f:
        assert f.read().strip() != host_boot_id


def test_bpffs_is_mounted():
    with open("/proc/self/mounts") as f:
        mounts = {fields[1]: fields[2] for fields in (line.split() for line in f)}
    assert mounts.get("/sys/fs/bpf") == "bpf"


def test_bpf_map_roundtrip(kernel):
    pin = f"/sys/fs/bpf/bpfvm_smoke_{os.getpid()}"
    bpftool("map", "create", pin, "type", "hash", "key", "4", "value", "8",
            "entries", "8", "name", "bpfvm_smoke")
    try:
        info = bpftool("map", "show", "pinned", pin)
        assert info["type"] == "hash" and info["bytes_key"] == 4 and info["bytes_value"] == 8
        bpftool("map", "update", "pinned", pin, "key", "1", "0", "0", "0",
                "value", "42", "0", "0", "0", "0", "0", "0", "0")
        entry = bpftool("map", "lookup", "pinned", pin, "key", "1", "0", "0", "0")
        assert [int(b, 16) for b in entry["value"]] == [42, 0, 0, 0, 0, 0, 0, 0]
    finally:
        os.unlink(pin)
