"""Making a freshly booted guest ready for BPF tests."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

MOUNTS = (
    ("bpf", "/sys/fs/bpf"),
    ("tracefs", "/sys/kernel/tracing"),
    ("debugfs", "/sys/kernel/debug"),
)


def mount_table() -> list[tuple[str, str, str]]:
    """(source, mount point, type) of this process's mounts, in mount order."""
    with open("/proc/self/mounts") as f:
        return [tuple(line.split()[:3]) for line in f]  # type: ignore[misc]


def mounted(path: str, fstype: str) -> bool:
    """Whether the topmost mount at path is of fstype."""
    tops = [kind for _, point, kind in mount_table() if point == path]
    return bool(tops) and tops[-1] == fstype


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
        try:
            mount(fstype, path)
        except OSError as e:
            if fstype == "bpf":
                raise RuntimeError(f"cannot mount bpffs: {e}") from None


_libc = ctypes.CDLL(None, use_errno=True)


def libc_call(ret: int, what: str) -> None:
    """OSError naming what failed, when a libc call returned non-zero."""
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(fstype: str, target: str, flags: int = 0) -> None:
    """mount(2) of a pseudo filesystem (no exec of mount(8): seconds add up under TCG)."""
    libc_call(_libc.mount(fstype.encode(), target.encode(), fstype.encode(),
                          ctypes.c_ulong(flags), None), f"mount {fstype} on {target}")


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of this process's descendants become its children (so it can reap them)."""
    libc_call(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def kmsg(text: str) -> None:
    """A line in the kernel log (and so on the console the host reads)."""
    with open("/dev/kmsg", "w") as f:
        f.write(f"<5>{text}\n")


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522


def effective_caps() -> int:
    """This thread's effective capability set, as a 64-bit mask."""
    header, data = _CapHeader(_CAP_V3, 0), (_CapData * 2)()
    libc_call(_libc.capget(ctypes.byref(header), data), "capget")
    return data[0].effective | data[1].effective << 32


def set_effective_caps(mask: int) -> None:
    """Set this thread's effective capabilities (within its permitted set)."""
    header, data = _CapHeader(_CAP_V3, 0), (_CapData * 2)()
    libc_call(_libc.capget(ctypes.byref(header), data), "capget")
    data[0].effective, data[1].effective = mask & 0xffffffff, mask >> 32
    libc_call(_libc.capset(ctypes.byref(header), data), "capset")
