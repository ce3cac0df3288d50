"""Kernels built from source and arm64 guests, booted for real.

Builds and the arm64 root take many minutes: these tests run when the
cache already holds what they need, or when selected with `-m build`
(which builds it first).
"""
import json
import subprocess
import sys

import pytest

from bpfvm.host.kernels import cache
from bpfvm.target import host_arch

pytestmark = [pytest.mark.slow, pytest.mark.build]

ARCH_PROBE = r"""
#include <linux/bpf.h>
#include <asm/unistd.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nr SEC(".maps");

/* Stores the execve syscall number this object was compiled with: it
 * differs per arch, so it tells whose headers the build used. */
SEC("xdp")
int probe(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 value = __NR_execve;

	bpf_map_update_elem(&nr, &key, &value, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_test_flavour_boots_with_netdevsim_and_error_injection(vm_runner, built, foreign_root,
                                                                arch):
    built("6.12", arch=arch)
    if arch != host_arch():
        foreign_root(arch)
    vm_runner.write("""
        import os
        def test_flavour(kernel, kernel_config):
            assert kernel.kind == "built"
            assert kernel.release.endswith("-bpfvm-test")
            assert os.uname().release == kernel.release
            assert os.path.isdir("/sys/bus/netdevsim")
            assert kernel_config["CONFIG_BPF_KPROBE_OVERRIDE"] == "y"
    """)
    run = vm_runner.run("-v", f"--arch={arch}", kernel="6.12-test")
    name = "6.12-test" if arch == host_arch() else f"6.12-test-{arch}"
    assert run.outcome(f"test_flavour[{name}]") == "passed", run.output


def test_one_run_covers_both_arches_with_their_own_objects(vm_runner, foreign_root):
    foreign_root("arm64")
    (vm_runner.base / "probe.c").write_text(ARCH_PROBE)
    vm_runner.write("""
        import platform
        from bpfvm import bpf

        def test_arch(kernel, bpf_object):
            assert platform.machine() == {"x86_64": "x86_64", "arm64": "aarch64"}[kernel.arch]
            obj = bpf_object("probe.c")
            obj.program("probe").test_run(b"\\0" * 64)
            assert obj.map("nr")[0] == {"x86_64": 59, "arm64": 221}[kernel.arch]
    """)
    run = vm_runner.run("-v", "--arch=x86_64,arm64", kernel="6.12")
    assert run.outcome("test_arch[6.12]") == "passed", run.output
    assert run.outcome("test_arch[6.12-arm64]") == "passed", run.output


def test_a_second_build_with_nothing_changed_is_a_cache_hit(built):
    entry = built("6.12")
    before = (entry / cache.MANIFEST).stat().st_mtime_ns
    proc = subprocess.run([sys.executable, "-m", "bpfvm.host.cli", "kernels", "build", "6.12",
                           "--flavour", "test"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "is already built" in proc.stdout
    assert (entry / cache.MANIFEST).stat().st_mtime_ns == before
    manifest = json.loads((entry / cache.MANIFEST).read_text())
    assert manifest["fragments"] == ["base", "bpf", "netdevsim", "error-injection", "x86_64"]
