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
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence


class Leash:
    """The owner's end: COMMAND started on a leash, and the means to pull it."""

    def __init__(self, command: Sequence[str], rundir: Path, log_path: Path,
                 env: dict[str, str], cwd: Optional[str] = None):
        leash_r, self._fd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bpfvm.host.vm.leash", str(leash_r), str(rundir),
                 str(log_path), "--", *command],
                stdin=subprocess.DEVNULL, pass_fds=(leash_r,), start_new_session=True,
                env=env, cwd=cwd)
        finally:
            os.close(leash_r)

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
    copier = threading.Thread(target=_copy, args=(out_r, log_path), daemon=True)
    copier.start()
    cut = threading.Event()

    def pull(*_args) -> None:
        """Kill the command; the main thread, woken from wait(), cleans up.

        Runs from a signal handler or the watcher thread, so it takes no locks.
        """
        cut.set()
        _kill_group(child.pid)

    def watch() -> None:
        while os.read(fd, 4096):
            pass
        pull()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, pull)
    threading.Thread(target=watch, daemon=True).start()
    code = child.wait()
    _kill_group(child.pid)  # anything QEMU's helpers left running in the group
    copier.join(5)
    if cut.is_set():
        shutil.rmtree(rundir, ignore_errors=True)
        return 1
    return code


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
