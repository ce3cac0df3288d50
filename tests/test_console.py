from bpfvm.host.vm import console
from bpfvm.protocol import BEGIN, END, boundary

PANIC = """[   12.1] sysrq: Trigger a crash
[   12.2] Kernel panic - not syncing: sysrq triggered crash
[   12.3] CPU: 0 PID: 77 Comm: python3 Not tainted 6.12.107+deb13-amd64 #1
"""
WARN = """[   40.0] ------------[ cut here ]------------
[   40.0] Illegal XDP return value 42, expect packet loss!
[   40.0] WARNING: CPU: 1 PID: 301 at net/core/filter.c:8143 bpf_warn_invalid_xdp_action+0x2f/0x40
[   40.0] Modules linked in: veth
"""
BUG = "[   9.9] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
OOPS = "[   9.9] Oops: 0002 [#1] PREEMPT SMP NOPTI\n"
HUNG = "[  30.1] INFO: task python3:88 blocked for more than 1 seconds.\n"
BENIGN = """[    0.5] ACPI: Warning: something harmless
[    1.0] virtme-ng-init: WARNING: no udev
[    2.0] Debug warnings are disabled
[    3.0] BUGS: none (not a splat)
"""


def test_splats_are_found_with_context():
    assert console.find_splat(PANIC).startswith("[   12.2] Kernel panic - not syncing")
    assert "CPU: 0 PID: 77" in console.find_splat(PANIC)
    assert console.find_splat(WARN).startswith("[   40.0] WARNING: CPU: 1 PID: 301")
    assert console.find_splat(BUG)
    assert console.find_splat(OOPS)
    assert console.find_splat(HUNG)


def test_benign_lines_are_not_splats():
    assert console.find_splat(BENIGN) is None


def test_between_markers_attributes_output_to_one_test():
    text = (f"boot\n{boundary(BEGIN, 1)}\nfirst\n{boundary(END, 1)}\n"
            f"{boundary(BEGIN, 11)}\n{WARN}{boundary(END, 11)}\n")
    assert "first" in console.between(text, 1) and "WARNING" not in console.between(text, 1)
    assert console.find_splat(console.between(text, 11))
    assert console.between(text, 2) is None



def test_kvm_failure_is_qemus_message_or_silence():
    assert console.kvm_failure("Probing EDD\nKVM internal error. Suberror: 1\n", 1.0) == \
        "KVM internal error"
    assert console.kvm_failure("qemu: failed to initialize kvm: Inappropriate ioctl\n", 0.5) == \
        "failed to initialize kvm"
    assert console.kvm_failure("$ vng ...\n", 1.0) is None
    assert console.kvm_failure("$ vng ...\n", console.KVM_FIRST_OUTPUT + 1) == \
        f"the guest printed nothing within {console.KVM_FIRST_OUTPUT:.0f}s"
    assert console.kvm_failure("[ 0.0] Linux version 6.12\n", 100.0) is None
