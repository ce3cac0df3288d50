"""Network namespaces held by a file descriptor: no name, no mount, nothing to leak.

A namespace lives while something holds it: our descriptor, a socket made in
it, an attachment that still has to detach there. Closing the descriptor is
the whole cleanup; the kernel destroys its interfaces (and veth peers) when
the last holder goes. Entering one switches only the calling thread
(setns(2)); sockets, netlink handles and child processes created inside stay
in it.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def current() -> int:
    """A new descriptor for the calling thread's network namespace (caller closes it)."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def inode(fd: int) -> int:
    return os.fstat(fd).st_ino


@contextmanager
def entered(fd: int) -> Iterator[None]:
    """The calling thread in namespace fd for the block, then back where it was."""
    home = current()
    try:
        if inode(home) == inode(fd):
            yield
            return
        _check(_libc.setns(fd, CLONE_NEWNET), "setns")
        try:
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
    finally:
        os.close(home)


def entered_for(thing: Any):
    """entered() the namespace of thing (anything with a netns_fd, such as a
    topology's Iface), or a no-op for plain names and indexes."""
    fd = getattr(thing, "netns_fd", None)
    return entered(fd) if fd is not None else nullcontext()


class Namespace:
    """A fresh network namespace (only lo, down until brought up).

        ns = Namespace("a")
        with ns:                      # this thread inside
            sock = socket.socket()    # a socket of ns
        ns.run(["ip", "-j", "link"])  # a command inside
        ns.close()                    # gone once nothing else holds it
    """

    def __init__(self, name: str):
        self.name = name
        self._homes: list[int] = []
        home = current()
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            self.fd = current()
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
        finally:
            os.close(home)
        self._ipr = None

    def __repr__(self) -> str:
        return f"<Namespace {self.name}>"

    def __enter__(self) -> "Namespace":
        home = current()
        _check(_libc.setns(self.fd, CLONE_NEWNET), f"enter namespace {self.name}")
        self._homes.append(home)
        return self

    def __exit__(self, *exc) -> None:
        home = self._homes.pop()
        try:
            _check(_libc.setns(home, CLONE_NEWNET), f"leave namespace {self.name}")
        finally:
            os.close(home)

    @property
    def ipr(self):
        """A pyroute2 IPRoute whose netlink socket lives in this namespace."""
        if self._ipr is None:
            from pyroute2 import IPRoute

            with self:
                self._ipr = IPRoute()
        return self._ipr

    def run(self, cmd: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
        """A command inside, output captured as text; a failure raises with its stderr."""
        with self:
            proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} in namespace {self.name}: "
                               f"exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def sysctl(self, key: str, value: Any) -> None:
        """Set net.* sysctl key (dotted) in this namespace."""
        with self, open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(f"{value}\n")

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
