"""Kernels named by path boot like catalog ones (real VM)."""
import pytest

from conftest import VM_KERNEL
from bpfvm.host.kernels import catalog, resolve
from bpfvm.target import host_arch

pytestmark = pytest.mark.slow


def test_kernel_image_path_boots_that_image(vm_runner):
    entries = catalog.load()
    cached = resolve.parse(VM_KERNEL, host_arch(), entries)
    resolve.materialize(cached, entries, progress=lambda _: None)
    vm_runner.write("""
        import os
        def test_release(kernel, kernel_config):
            assert kernel.kind == "path"
            assert os.uname().release == kernel.release
            assert kernel_config["CONFIG_BPF_SYSCALL"] == "y"
    """)
    run = vm_runner.run("-v", kernel=cached.vmlinuz)
    assert f"test_release[{cached.release}] PASSED" in run.output, run.output
