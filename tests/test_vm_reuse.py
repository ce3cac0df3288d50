"""--bpfvm-reuse with real guests: a second run attaches, what is and is not kept,
what a session's namespaces take with them, and how kept VMs end."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import VM_KERNEL, qemu_pids

BOOT_ID = """
        from pathlib import Path
        def boot_id():
            print("BOOT", Path("/proc/sys/kernel/random/boot_id").read_text().strip())
"""
XDP_PASS = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
char _license[] SEC("license") = "GPL";
"""
KEPT = f"bpfvm: kept {VM_KERNEL} for the next run"


def boot_ids(run) -> set[str]:
    return set(re.findall(r"^BOOT (\S+)$", run.output, re.M))


def bpfvm_cli(runner, *args: str) -> str:
    """The `bpfvm` command, as a user runs it, against the inner runs' run directory."""
    tool = Path(sys.executable).with_name("bpfvm")
    proc = subprocess.run([str(tool), *args], env=runner.env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def registered(runner) -> list[dict]:
    vms = runner.tmp / "run" / "vms"
    return [json.loads(p.read_text()) for p in sorted(vms.glob("*/vm.json"))] if vms.exists() else []


@pytest.fixture
def reuse(vm_runner):
    """vm_runner, whose kept VMs are stopped at the end (so that it can count leaks)."""
    yield vm_runner
    bpfvm_cli(vm_runner, "vms", "stop", "--all")


def test_a_second_run_attaches_and_runs_the_files_as_they_are_now(reuse):
    reuse.write(BOOT_ID + """
        def test_one():
            boot_id()
    """)
    first = reuse.run("--bpfvm-reuse")
    assert first.returncode == 0 and KEPT in first.output.splitlines()[-1], first.output
    reuse.write(BOOT_ID + """
        def test_two():
            boot_id()
    """)
    second = reuse.run("--bpfvm-reuse")
    assert second.returncode == 0, second.output
    assert list(second.outcomes) == [f"test_two[{VM_KERNEL}]"]
    assert len(boot_ids(first)) == 1 and boot_ids(second) == boot_ids(first), "booted anew"
    [record] = registered(reuse)
    assert record["runs"] == 2 and record["state"] == "idle"
    listing = bpfvm_cli(reuse, "vms")
    assert re.search(rf"^{re.escape(VM_KERNEL)}\s+\S+\s+.*\s2\s+1G\s", listing, re.M), listing


def test_what_a_run_imported_of_scapy_the_next_run_has_imported_already(reuse):
    reuse.write(BOOT_ID + """
        import sys
        def test_imports_scapy_inside_the_test():
            boot_id()
            print("HAD", "scapy.layers.inet" in sys.modules)
            import scapy.layers.inet
    """)
    first = reuse.run("--bpfvm-reuse")
    assert first.returncode == 0 and KEPT in first.output.splitlines()[-1], first.output
    second = reuse.run("--bpfvm-reuse")
    assert second.returncode == 0 and boot_ids(second) == boot_ids(first), second.output
    assert re.findall(r"^HAD (\S+)$", first.output + second.output, re.M) == ["False", "True"]


def test_what_a_session_leaves_in_its_own_namespaces_goes_with_it(reuse):
    reuse.write(BOOT_ID + """
        import subprocess
        def test_leaves_a_netns_a_mount_and_a_process():
            boot_id()
            subprocess.run("ip netns add leak && ip -n leak link add d0 type dummy", shell=True,
                           check=True)
            subprocess.run(["mount", "-t", "tmpfs", "leak", "/mnt"], check=True)
            subprocess.Popen(["ip", "netns", "exec", "leak", "sleep", "1000"])
    """)
    first = reuse.run("--bpfvm-reuse")
    assert first.returncode == 0 and KEPT in first.output, first.output
    reuse.write(BOOT_ID + """
        import os, subprocess
        def test_nothing_of_it_is_left():
            boot_id()
            assert not os.path.exists("/run/netns/leak")
            assert subprocess.run(["ip", "netns", "list"], capture_output=True,
                                  text=True).stdout == ""
            assert "/mnt " not in open("/proc/self/mounts").read()
            assert b"sleep" not in subprocess.run(["ps", "-eo", "comm"],
                                                  capture_output=True).stdout
    """)
    second = reuse.run("--bpfvm-reuse")
    assert second.returncode == 0, second.output
    assert boot_ids(second) == boot_ids(first), "the VM was not kept"


def test_a_program_left_attached_in_the_initial_namespace_is_not_kept(reuse):
    (reuse.base / "bpf").mkdir()
    (reuse.base / "bpf" / "xdp_pass.c").write_text(XDP_PASS)
    reuse.write("""
        import subprocess
        def test_leaves_xdp_on_lo(bpf_object):
            obj = bpf_object("xdp_pass")
            obj.program("xdp_pass").pin("/sys/fs/bpf/leak")
            subprocess.run(["bpftool", "net", "attach", "xdpgeneric", "pinned",
                            "/sys/fs/bpf/leak", "dev", "lo"], check=True)
    """)
    run = reuse.run("--bpfvm-reuse")
    assert run.returncode == 0, run.output
    last = run.output.splitlines()[-1]
    assert last.startswith(f"bpfvm: not kept: {VM_KERNEL} (its run left state outside the "
                           f"session's namespaces: BPF program "), last
    assert registered(reuse) == []


@pytest.mark.build
def test_a_netdevsim_device_left_in_the_initial_namespace_is_not_kept(reuse, built):
    built("6.12")
    reuse.write("""
        from pathlib import Path
        def test_leaves_a_netdevsim_device():
            Path("/sys/bus/netdevsim/new_device").write_text("77 1")
    """)
    run = reuse.run("--bpfvm-reuse", kernel="6.12-test")
    assert run.returncode == 0, run.output
    last = run.output.splitlines()[-1]
    assert last.startswith("bpfvm: not kept: 6.12-test (its run left state outside the "
                           "session's namespaces: netdevsim device netdevsim77"), last
    assert registered(reuse) == []


def test_the_idle_timeout_ends_a_kept_vm_and_leaves_nothing(reuse):
    reuse.write("""
        def test_one():
            pass
    """)
    (reuse.base / "pytest.ini").write_text("[pytest]\nbpfvm_reuse_idle = 0.05\n")
    run = reuse.run("--bpfvm-reuse")
    assert run.returncode == 0 and "up to 0.05 min idle" in run.output, run.output
    deadline = time.monotonic() + 60
    while (qemu_pids(str(reuse.tmp)) or registered(reuse)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not qemu_pids(str(reuse.tmp)) and registered(reuse) == []
    assert reuse.leftovers() == []


def test_bpfvm_vms_stop_ends_a_kept_vm_and_leaves_nothing(reuse):
    reuse.write("""
        def test_one():
            pass
    """)
    assert reuse.run("--bpfvm-reuse").returncode == 0
    assert qemu_pids(str(reuse.tmp)) and len(registered(reuse)) == 1
    assert bpfvm_cli(reuse, "vms", "stop", VM_KERNEL) == f"{VM_KERNEL}: stopped\n"
    assert not qemu_pids(str(reuse.tmp)) and registered(reuse) == []
    assert reuse.leftovers() == []


def test_a_vm_killed_while_idle_is_replaced_with_one_line(reuse):
    reuse.write(BOOT_ID + """
        def test_one():
            boot_id()
    """)
    first = reuse.run("--bpfvm-reuse")
    [qemu] = qemu_pids(str(reuse.tmp))
    subprocess.run(["kill", "-KILL", str(qemu)], check=True)
    deadline = time.monotonic() + 30
    while [r["state"] for r in registered(reuse)] != ["gone"] and time.monotonic() < deadline:
        time.sleep(0.2)
    second = reuse.run("--bpfvm-reuse")
    assert second.returncode == 0, second.output
    gone = [line for line in second.output.splitlines() if "is gone" in line]
    assert len(gone) == 1 and "its QEMU" in gone[0] and "booting a new one" in gone[0], gone
    assert boot_ids(second) != boot_ids(first)
    assert KEPT in second.output and [r["state"] for r in registered(reuse)] == ["idle"]


def test_two_concurrent_runs_do_not_share_a_vm(reuse):
    reuse.write(BOOT_ID + """
        import time
        def test_one():
            boot_id()
            time.sleep(5)
    """)
    kept = reuse.run("--bpfvm-reuse")
    assert kept.returncode == 0, kept.output
    runs = [reuse.start("--bpfvm-reuse"), reuse.start("--bpfvm-reuse")]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    ids = [set(re.findall(r"^BOOT (\S+)$", out, re.M)) for out in outputs]
    assert all(len(i) == 1 for i in ids), outputs
    assert ids[0] != ids[1], "both runs used one VM"
    assert boot_ids(kept) in ids, "neither run attached to the kept VM"
    assert len(registered(reuse)) == 2
