"""VMs kept booted between runs (--bpfvm-reuse): where they are registered, and claiming one.

Each kept VM has a directory under RUN_DIR/vms holding its QEMU channel
socket, console log, `lock` and `vm.json` (a Record). A run using the VM
holds an exclusive flock on `lock` for as long as it does, and the record
says "busy"; when the run ends it writes "idle" and the time, and lets go.
The VM's leash (leash.py, in keep mode) ends the VM when it has been idle
too long, or when it finds the lock free while the record says busy (the
run that had it died). A second run finds the lock held and boots its own.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

RECORD, LOCK, GROUP = "vm.json", "lock", "group"
IDLE_DEFAULT = 600.0


GUEST_PRIVATE = ("/run", "/dev", "/proc", "/sys")  # a guest mounts its own there


class RunDirError(ValueError):
    pass


def run_dir() -> Path:
    """bpfvm's run directory: BPFVM_RUNDIR, else $TMPDIR/bpfvm-UID; only its
    owner may enter it. The guest reads its start-up files from there through
    the shared root, so it may not be where a guest has its own filesystems
    (XDG_RUNTIME_DIR, under /run, is one)."""
    explicit = os.environ.get("BPFVM_RUNDIR")
    path = Path(os.path.abspath(explicit)) if explicit else \
        Path(tempfile.gettempdir()) / f"bpfvm-{os.getuid()}"
    if any(path == Path(p) or Path(p) in path.parents for p in GUEST_PRIVATE):
        raise RunDirError(f"bpfvm's run directory {path} (BPFVM_RUNDIR or TMPDIR) is under "
                          f"{', '.join(GUEST_PRIVATE)}, which a guest does not share with the "
                          f"host: set BPFVM_RUNDIR to a directory elsewhere")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def vms_dir() -> Path:
    path = run_dir() / "vms"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


_TYPES = {"str": str, "int": int, "float": (int, float)}  # Record's field types, as JSON has them


@dataclasses.dataclass
class Record:
    """A kept VM, as its vm.json says."""
    key: str            # what must match to reuse it (Vm.reuse_key)
    target: str         # the target id (6.12, 6.12-arm64, ...)
    release: str
    leash: int          # the leash's pid
    cpus: int
    memory: str
    accel: str
    booted: float       # time.time() at boot
    boot_id: str
    idle: float         # seconds it may wait for the next run
    state: str = "busy"  # "busy" while a run has it, "idle", or "gone" (ended while idle)
    since: float = 0.0  # when it went idle
    runs: int = 0       # runs served
    console_at: int = 0  # characters of console log the last run checked
    gone: str = ""      # how it ended, when state is "gone"

    @classmethod
    def load(cls, directory: Path) -> Optional["Record"]:
        """The record in directory, None when missing or malformed."""
        try:
            data = json.loads((directory / RECORD).read_text())
            types = {f.name: _TYPES[f.type] for f in dataclasses.fields(cls)}
            values = {k: v for k, v in data.items() if k in types}
            if not all(isinstance(v, types[k]) and not isinstance(v, bool)
                       for k, v in values.items()):
                return None
            return cls(**values)
        except (OSError, ValueError, TypeError, AttributeError):
            return None

    def save(self, directory: Path) -> None:
        tmp = directory / f".{RECORD}.{os.getpid()}"
        tmp.write_text(json.dumps(dataclasses.asdict(self)))
        os.replace(tmp, directory / RECORD)


class Claim:
    """An exclusive hold on one VM directory (its flock), for one run."""

    def __init__(self, directory: Path, fd: int):
        self.directory = directory
        self.fd: Optional[int] = fd

    @classmethod
    def take(cls, directory: Path, wait: float = 0.0) -> Optional["Claim"]:
        """The claim, or None if another run holds it for longer than wait seconds."""
        try:
            fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return cls(directory, fd)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.1)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def entries() -> list[tuple[Path, Optional[Record]]]:
    """Every registered VM directory with its record (None if it has none yet)."""
    return [(d, Record.load(d)) for d in sorted(vms_dir().iterdir()) if d.is_dir()]


def unclaimed(key: str) -> bool:
    """Whether a VM of this reuse key is registered and no run has it: idle, or
    gone while idle (which attaching reports). A look: nothing is claimed."""
    return any(record is not None and record.key == key and record.state != "busy"
               for _, record in entries())


def leash_alive(directory: Path, pid: int) -> bool:
    """Whether pid is still the leash of the VM in directory (not a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"bpfvm.host.vm.leash" in argv and os.fsencode(directory) in argv


def remove(directory: Path) -> None:
    """End whatever is left of a kept VM whose leash is gone, and remove its directory."""
    try:
        group = int((directory / GROUP).read_text())
        os.killpg(group, signal.SIGKILL)
    except (OSError, ValueError):
        pass
    shutil.rmtree(directory, ignore_errors=True)


def describe_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def summary(record: Record, now: Optional[float] = None) -> dict[str, Any]:
    """What `bpfvm vms` shows of a kept VM."""
    now = time.time() if now is None else now
    return {"kernel": record.target, "release": record.release,
            "age": describe_age(now - record.booted),
            "idle": describe_age(now - record.since) if record.state == "idle" else "in use",
            "runs": record.runs, "memory": record.memory, "cpus": record.cpus,
            "accel": record.accel}


def stop(directory: Path, record: Optional[Record], wait: float = 5.0) -> str:
    """End a kept VM and remove everything of it; what happened, in a few words.

    A VM a run is using (its lock held) is left alone."""
    claim = Claim.take(directory, wait)
    if claim is None:
        return "in use by a run: left running"
    try:
        if record is not None and leash_alive(directory, record.leash):
            from .leash import Leash  # the leash kills the VM's group and removes the directory

            Leash.adopt(record.leash).pull()
        remove(directory)
        return "stopped"
    finally:
        claim.release()
