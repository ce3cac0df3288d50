import datetime
import re

import pytest

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


def warn(t: float, where: str = "fake") -> str:
    return f"[{t:9.6f}] WARNING: CPU: 0 PID: 1 at {where}\n[{t:9.6f}] Modules linked in:\n"


def marker(kind: str, seq: int, t: float) -> str:
    return f"[{t:9.6f}] {boundary(kind, seq)}\n"


LOC = ("test_x.py", 1, "test_a")


def test_a_test_owns_its_window_and_the_grace_after_it():
    watch = console.Watch()
    text = "boot\n" + marker(BEGIN, 1, 10) + "first\n" + marker(END, 1, 11)
    assert watch.booted("boot\n") == []
    splat, earlier, note = watch.test_ended(text, 1, "t::a", LOC)
    assert (splat, earlier, note) == (None, [], None)
    text += warn(11.5, "late") + marker(BEGIN, 2, 12) + warn(12.5, "own") + marker(END, 2, 13)
    splat, earlier, note = watch.test_ended(text, 2, "t::b", LOC)
    assert "at own" in splat and note is None
    assert "came 1.5s after t::a ended" in splat  # in b's window, so b's, with a hint
    (late,) = earlier
    assert late.test == ("t::a", LOC) and "0.5s after this test ended" in late.where
    assert "at late" in late.excerpt and "at own" not in late.excerpt


def test_beyond_the_grace_boot_and_shutdown_are_the_kernels_own():
    watch = console.Watch()
    (boot,) = watch.booted("[ 1.0] booting\n" + warn(1.5, "boot"))
    assert (boot.kind, boot.test) == ("boot", None) and "at boot" in boot.excerpt
    text = "[ 1.0] booting\n" + warn(1.5, "boot") + marker(BEGIN, 1, 10) + marker(END, 1, 11)
    assert watch.test_ended(text, 1, "t::a", LOC)[:2] == (None, [])
    text += warn(11 + console.GRACE + 1, "idle") + marker(BEGIN, 2, 20) + marker(END, 2, 21)
    _, (idle,), _ = watch.test_ended(text, 2, "t::b", LOC)
    assert (idle.kind, idle.test) == ("between-tests", None) and "after t::a" in idle.where
    text += warn(21.5, "late") + warn(40, "poweroff")
    late, down = watch.ended(text)
    assert late.test == ("t::b", LOC) and "at late" in late.excerpt
    assert (down.kind, down.test) == ("shutdown", None) and "at poweroff" in down.excerpt
    assert watch.ended(text) == []  # each problem reported once


def test_a_missing_end_marker_is_checked_anyway_and_said():
    watch = console.Watch()
    watch.booted("")
    splat, _, note = watch.test_ended(marker(BEGIN, 1, 1) + warn(2), 1, "t::a", LOC)
    assert splat and "end marker did not reach the console" in note


def test_allowed_splats_until_they_expire():
    entry = console.Allowed.parse(r"at drivers/fake\.c ; seen under TCG only ; 2027-01-31")
    text = warn(1, "drivers/fake.c:12")
    assert console.find_splat(text, [entry], today=datetime.date(2027, 1, 31)) is None
    expired = console.find_splat(text, [entry], today=datetime.date(2027, 2, 1))
    assert "allowed until 2027-01-31, now past: seen under TCG only" in expired
    assert console.find_splat(warn(1, "other.c"), [entry], today=datetime.date(2027, 1, 1))


@pytest.mark.parametrize("line, said", [
    ("at x ; reason", "is not 'REGEX ; REASON ; YYYY-MM-DD'"),
    ("at ( ; reason ; 2027-01-01", "is not a regular expression"),
    ("at x ; reason ; soon", "'soon' is not a date"),
])
def test_a_bad_allowlist_entry_says_what_is_wrong(line, said):
    with pytest.raises(ValueError, match=re.escape(said)):
        console.Allowed.parse(line)


def test_kvm_failure_is_qemus_message_or_silence():
    assert console.kvm_failure("Probing EDD\nKVM internal error. Suberror: 1\n", 1.0) == \
        "KVM internal error"
    assert console.kvm_failure("qemu: failed to initialize kvm: Inappropriate ioctl\n", 0.5) == \
        "failed to initialize kvm"
    assert console.kvm_failure(
        "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: "
        "../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed.\n", 0.5) == \
        "failed to set MSR"
    assert console.kvm_failure("$ vng ...\n", 1.0) is None
    assert console.kvm_failure("$ vng ...\n", console.KVM_FIRST_OUTPUT + 1) == \
        f"the guest printed nothing within {console.KVM_FIRST_OUTPUT:.0f}s"
    assert console.kvm_failure("[ 0.0] Linux version 6.12\n", 100.0) is None
