"""Tracing programs: the per-uid execve counter through a tracepoint, a kprobe
and a raw tracepoint; bpf_override_return where the kernel allows it."""
from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import time

import pytest

from bpfvm import bpf

UID = 4242


def exec_as(uid: int, times: int) -> None:
    for _ in range(times):
        subprocess.run(["/bin/true"], user=uid, check=True)


@pytest.fixture
def execve(bpf_object):
    return bpf_object("execve_count")


@pytest.mark.parametrize("program,counts", [
    ("execve_tp", "by_tracepoint"), ("execve_kprobe", "by_kprobe"),
    ("execve_raw_tp", "by_raw_tracepoint")])
def test_execve_counted_per_uid(execve, program, counts):
    with execve.program(program).attach():
        exec_as(UID, 3)
        exec_as(UID + 1, 2)
    per_uid = execve.map(counts)
    assert per_uid[UID] == 3 and per_uid[UID + 1] == 2
    exec_as(UID, 1)  # detached: no longer counted
    assert per_uid[UID] == 3


def test_explicit_tracepoint_attach(execve):
    link = execve.program("execve_tp").attach_tracepoint("syscalls", "sys_enter_execve")
    exec_as(UID, 1)
    link.detach()
    assert execve.map("by_tracepoint")[UID] == 1


SYSCALL_SYMBOL = {"x86_64": "__x64_sys_execve", "aarch64": "__arm64_sys_execve"}


@pytest.mark.parametrize("program,counts,attach", [
    ("execve_kprobe", "by_kprobe",
     lambda prog: prog.attach_kprobe(SYSCALL_SYMBOL[platform.machine()])),
    ("execve_raw_tp", "by_raw_tracepoint", lambda prog: prog.attach_raw_tracepoint("sys_enter")),
], ids=["kprobe", "raw_tracepoint"])
def test_explicit_kprobe_and_raw_tracepoint_attach(execve, program, counts, attach):
    link = attach(execve.program(program))
    exec_as(UID, 2)
    link.detach()
    exec_as(UID, 1)
    assert execve.map(counts)[UID] == 2


def test_pin_and_unpin(execve):
    prog, counts = execve.program("execve_tp"), execve.map("by_tracepoint")
    prog_path, map_path = "/sys/fs/bpf/bpfvm_test_prog", "/sys/fs/bpf/bpfvm_test_map"
    prog.pin(prog_path)
    counts.pin(map_path)
    try:
        assert bpf.bpftool("prog", "show", "pinned", prog_path)["id"] == prog.id
        assert bpf.bpftool("map", "show", "pinned", map_path)["id"] == counts.id
    finally:
        prog.unpin(prog_path)
        counts.unpin(map_path)
    assert not os.path.exists(prog_path) and not os.path.exists(map_path)


def program_exists(prog_id: int) -> bool:
    return any(p["id"] == prog_id for p in bpf.bpftool("prog", "show"))


def test_links_detached_when_object_closes(bpf_object):
    """A link holds its program: the program only goes once close() destroyed it."""
    obj = bpf_object("execve_count")
    prog = obj.program("execve_raw_tp")
    prog.attach()
    exec_as(UID, 1)
    assert obj.map("by_raw_tracepoint")[UID] == 1
    prog_id = prog.id
    obj.close()
    assert not obj.attachments
    deadline = time.monotonic() + 5
    while program_exists(prog_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not program_exists(prog_id)


SYS_GETPID = {"x86_64": 39, "aarch64": 172}


@pytest.mark.kconfig("CONFIG_BPF_KPROBE_OVERRIDE")
def test_override_return_fails_getpid(bpf_object):
    obj = bpf_object("override")
    obj.map("target")[0] = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)
    with obj.program("fail_getpid").attach():
        ret = libc.syscall(SYS_GETPID[platform.machine()])
        err = ctypes.get_errno()
    assert (ret, err) == (-1, 12)  # ENOMEM, injected
    assert obj.map("overrides")[0] == 1
    assert libc.syscall(SYS_GETPID[platform.machine()]) == os.getpid()
