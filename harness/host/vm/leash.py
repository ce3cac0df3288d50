"""Keeps a VM on a leash: it dies, and its files go, when its owner does.

Usage: python -m bpfvm.host.vm.leash FD RUNDIR LOG -- COMMAND...
(or, from the owner, Leash(COMMAND, RUNDIR, LOG, env)).

Runs COMMAND (virtme-ng, which runs QEMU) in a process group of its own,
with TMPDIR inside RUNDIR, and waits for it. Its output is copied to LOG
through a pipe: QEMU reopens its stderr (/proc/self/fd/2) for the kernel
console, and with a plain file that reopening would truncate the file and
interleave two write offsets; through a pipe both streams arrive whole. FD is the read end of a pipe
whose write end only the owning pytest process holds. When that pipe
reads EOF (the owner exited, however abruptly: SIGKILL, an xdist worker
crash) or this process gets SIGTERM/SIGINT/SIGHUP, the command's whole
process group is killed and RUNDIR removed.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
import time
from typing import Optional, Sequence

from . import kept

KEEP = b"keep\n"
CHECK_EVERY = 1.0  # seconds between a kept VM's checks


class Leash:
    """The owner's end: COMMAND started on a leash, and the means to pull it."""

    def __init__(self, command: Sequence[str], rundir: Path, log_path: Path,
                 env: dict[str, str], cwd: Optional[str] = None):
        leash_r, self._fd = os.pipe()
        # Not the owner's output: a kept VM's leash outlives the owner, and would
        # hold open a pipe the owner's caller is reading to its end.
        log = open(log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bpfvm.host.vm.leash", str(leash_r), str(rundir),
                 str(log_path), "--", *command],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                pass_fds=(leash_r,), start_new_session=True, env=env, cwd=cwd)
        finally:
            os.close(leash_r)
            log.close()

    @classmethod
    def adopt(cls, pid: int) -> "Leash":
        """The leash of a kept VM another run started (kill it by signals only)."""
        leash = cls.__new__(cls)
        leash.proc = _Adopted(pid)
        leash._fd = None
        return leash

    def keep(self) -> None:
        """Hand the VM to the registry: the leash no longer ends it with this process."""
        if self._fd is not None:
            os.write(self._fd, KEEP)
            os.close(self._fd)
            self._fd = None

    def pull(self, grace: float = 15.0) -> None:
        """End the command: SIGTERM to the leash, which kills the command's group
        and removes its run directory; if the leash does not exit within grace
        seconds (stopped, stuck), the command's group and the leash are SIGKILLed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                for child in _children(self.proc.pid):
                    _kill_group(child)  # the leash starts each command in a group of its own
                self.proc.kill()
                self.proc.wait()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Adopted:
    """What Leash needs of a Popen, for a process this one did not start (a pidfd)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: Optional[int] = None
        try:
            self._pidfd: Optional[int] = os.pidfd_open(pid)
        except OSError:
            self._pidfd, self.returncode = None, -1

    def poll(self) -> Optional[int]:
        if self.returncode is None and self._pidfd is not None:
            if select.select([self._pidfd], [], [], 0)[0]:
                self._exited()
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None and self._pidfd is not None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            self._exited()
        return self.returncode

    def _exited(self) -> None:
        self.returncode = -1  # not this process's child: its status is not ours to read
        os.close(self._pidfd)
        self._pidfd = None

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main(argv: list[str]) -> int:
    fd, rundir, log_path = int(argv[0]), argv[1], argv[2]
    command = argv[argv.index("--") + 1:]
    tmp = os.path.join(rundir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    out_r, out_w = os.pipe()
    child = subprocess.Popen(command, start_new_session=True, stdout=out_w, stderr=out_w,
                             env=dict(os.environ, TMPDIR=tmp))
    os.close(out_w)
    Path(rundir, kept.GROUP).write_text(str(child.pid))
    copier = threading.Thread(target=_copy, args=(out_r, log_path), daemon=True)
    copier.start()
    cut, keeping = threading.Event(), threading.Event()

    def pull(*_args) -> None:
        """Kill the command; the main thread, woken from wait(), cleans up.

        Runs from a signal handler or the watcher thread, so it takes no locks.
        """
        cut.set()
        _kill_group(child.pid)

    def watch() -> None:
        said = b""
        while True:
            data = os.read(fd, 4096)
            if not data:
                break
            said += data
        if said.endswith(KEEP):
            keeping.set()
        else:
            pull()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, pull)
    threading.Thread(target=watch, daemon=True).start()
    while True:
        try:
            code = child.wait(CHECK_EVERY)
            break
        except subprocess.TimeoutExpired:
            if keeping.is_set() and _expired(Path(rundir)):
                pull()
    _kill_group(child.pid)  # anything QEMU's helpers left running in the group
    copier.join(5)
    if keeping.is_set() and not cut.is_set():
        _ended_while_kept(Path(rundir), code)
    elif cut.is_set() or keeping.is_set():
        shutil.rmtree(rundir, ignore_errors=True)
    return 1 if cut.is_set() else code


def _ended_while_kept(rundir: Path, code: int) -> None:
    """The command exited by itself after the owner let go: a run stopping it
    cleans up after itself; an idle VM killed from outside leaves only its
    record, saying so, for the next run to report and remove."""
    record = kept.Record.load(rundir)
    if record is None or record.state != "idle":
        shutil.rmtree(rundir, ignore_errors=True)
        return
    how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
    record.state, record.gone = "gone", f"its QEMU {how} while it was idle"
    record.save(rundir)
    for entry in rundir.iterdir():
        if entry.name != kept.RECORD:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()


def _expired(rundir: Path) -> bool:
    """Whether a kept VM should end: idle too long, or busy with no run holding it."""
    claim = kept.Claim.take(rundir)
    if claim is None:
        return False  # a run has it
    try:
        record = kept.Record.load(rundir)
        return (record is None or record.state != "idle"
                or time.time() - record.since > record.idle)
    finally:
        claim.release()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _copy(fd: int, log_path: str) -> None:
    with open(log_path, "ab", buffering=0) as log:
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            log.write(data)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
