"""Making a freshly booted guest ready for BPF tests."""
from __future__ import annotations

import subprocess
from pathlib import Path

MOUNTS = (
    ("bpf", "/sys/fs/bpf"),
    ("tracefs", "/sys/kernel/tracing"),
    ("debugfs", "/sys/kernel/debug"),
)


def mounted(path: str, fstype: str) -> bool:
    """Whether the topmost mount at path is of fstype."""
    top = None
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path:
                top = fields[2]
    return top == fstype


def prepare() -> None:
    """Make a freshly booted guest ready: filesystems, and an unlimited /dev/kmsg.

    The worker marks where each test begins and ends through /dev/kmsg,
    whose writers are rate-limited by default.
    """
    Path("/proc/sys/kernel/printk_devkmsg").write_text("on\n")
    mount_filesystems()


def mount_filesystems() -> None:
    """Mount bpffs (and tracefs/debugfs where the kernel has them) if not mounted."""
    for fstype, path in MOUNTS:
        if mounted(path, fstype):
            continue
        Path(path).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", fstype, fstype, path],
                              capture_output=True, text=True)
        if proc.returncode != 0 and fstype == "bpf":
            raise RuntimeError(f"cannot mount bpffs: {proc.stderr.strip()}")


def kmsg(text: str) -> None:
    """A line in the kernel log (and so on the console the host reads)."""
    with open("/dev/kmsg", "w") as f:
        f.write(f"<5>{text}\n")


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
