"""The long-lived worker inside a guest: a parent that forks one pytest session per run.

Started by virtme-ng as the guest's command:
    python -m bpfvm.guest.worker /path/to/guest.json
The parent prepares the guest (bpffs, /dev/kmsg), imports what sessions
need (pytest, the plugin, the heavy libraries the host's tests imported),
records the VM's state as booted, and opens the bpfvm virtio-serial port.
Each Op.SESSION forks a child that enters fresh namespaces (fresh.py) and
runs an ordinary pytest session whose run loop takes node ids from the
host (session.py). When a session ends with Op.END, the parent checks
what it left outside its namespaces (leftovers.py), says so in Ev.ENDED,
and waits for the next session: a kept VM's next run is a fork away.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from .. import protocol
from ..protocol import Ev, Op
from . import fresh, leftovers, system

# A session child's exit status: what its host asked for last, or that it
# failed and has told the host why.
POWER_OFF, KEEP, FAILED = 100, 101, 102

# What every session imports beyond pytest's plugins (found by listing a session
# child's sys.modules against its parent's): pytest's capture plugin imports
# readline and its debugging plugin pdb at each start, the plugin its plain-data
# modules while it configures. Imported in the parent, a kept VM's session
# skips them; a cold run imports them once either way.
SESSION_MODULES = ("readline", "pdb", "faulthandler", "gzip", "_pytest._argcomplete",
                   "bpfvm.items", "bpfvm.annotated", "bpfvm.kconfig", "bpfvm.target",
                   "bpfvm.requirements", "bpfvm.properties", "bpfvm.vlog")

# Of these libraries, what a session imported the parent imports once the
# session has ended, so that a kept VM's next run starts with it: tests that
# import scapy's layers inside a test function (the host never imports
# them) paid seconds for them at every run under TCG. Only these: their
# imports do not depend on where the test imported them (a namespace, a
# fixture's environment), and bpfvm's guest side is bpfvm's own.
LEARNED = ("scapy", "pyroute2", "bpfvm")


def find_port(name: str, timeout: float = 30.0) -> str:
    """/dev/vportNpM of the virtio-serial port called name."""
    deadline = time.monotonic() + timeout
    loaded = False
    while True:
        for entry in Path("/sys/class/virtio-ports").glob("*"):
            try:
                if (entry / "name").read_text().strip() == name:
                    return f"/dev/{entry.name}"
            except OSError:
                continue
        if not loaded:
            subprocess.run(["modprobe", "-q", "virtio_console"], check=False)
            loaded = True
        if time.monotonic() > deadline:
            raise RuntimeError(f"virtio-serial port {name} not found")
        time.sleep(0.1)


def preload(modules: list[str]) -> None:
    """Import what the sessions will (each fork inherits it); speed only, so failures pass.

    pytest's built-in plugins are among them: a session imports them while
    it configures, and imported here they cost a kept VM's sessions nothing.
    """
    for name in ["pytest", "bpfvm.plugin", "bpfvm.guest.session", *builtin_plugins(),
                 *SESSION_MODULES, *modules]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the session imports it again and reports
            pass


def builtin_plugins() -> list[str]:
    try:
        from _pytest.config import default_plugins
    except ImportError:
        return []
    return [f"_pytest.{name}" for name in default_plugins]


def main(argv: list[str]) -> int:
    boot = protocol.BootSpec.from_json(Path(argv[0]).read_text())
    from .session import Channel

    link = Channel(os.open(find_port(protocol.PORT_NAME), os.O_RDWR))
    try:
        system.become_subreaper()
        system.prepare()
        baseline = leftovers.snapshot()
    except Exception as e:  # noqa: BLE001 - told to the host at its first session
        failure = f"guest setup failed: {e}"
    else:
        failure = ""
        preload(boot.preload)
    while True:
        message = link.receive_waiting()
        if message.get("op") == Op.EXIT:
            return 0
        if message.get("op") != Op.SESSION:
            continue
        if failure:
            link.send({"ev": Ev.ERROR, "error": failure})
            return 1
        status, imported = run_session(link, protocol.GuestSpec.from_dict(message["spec"]))
        if status == POWER_OFF:
            return 0
        if status == FAILED:
            return 1
        if status != KEEP:
            link.send({"ev": Ev.ERROR, "error": f"the guest's pytest ended abnormally ({status})"})
            return 1
        link.send({"ev": Ev.ENDED, "leftovers": leftovers.check(baseline)})
        preload(imported)  # while the VM waits for its next run


def run_session(link, spec: protocol.GuestSpec) -> tuple[object, list[str]]:
    """Run one session in a child: its exit status (POWER_OFF, KEEP) or how it
    died, and the modules of LEARNED it imported (told on a memfd: no mount a
    test made hides it, and nothing the test started can hold it open)."""
    told = os.memfd_create("bpfvm-session-imports")
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(_child(link, spec, told))
        _, status = os.waitpid(pid, 0)
        imported = os.pread(told, 1 << 20, 0).decode(errors="replace").split()
    finally:
        os.close(told)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), imported
    how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {status}"
    return how, []


def _tell_imports(fd: int) -> None:
    names = [name for name in sys.modules if name.split(".")[0] in LEARNED]
    os.pwrite(fd, "\n".join(names).encode(), 0)


def _child(link, spec: protocol.GuestSpec, told: int) -> int:
    from .session import GuestSession

    try:
        fresh.enter()
        os.environ.update(spec.env)
        os.chdir(spec.rootdir)
        import pytest

        guest = GuestSession(link, spec)
        code = pytest.main(spec.args, plugins=[guest])
        sys.stdout.flush()
        sys.stderr.flush()
        if guest.ending is None:
            link.send({"ev": Ev.ERROR, "error": f"the guest's pytest exited ({code!s}) before "
                                                f"running tests; its output is on the console"})
            return FAILED
        if guest.ending == Op.END:
            _tell_imports(told)
            return KEEP
        return POWER_OFF
    except BaseException:  # noqa: BLE001 - the host is told, whatever it was
        link.send({"ev": Ev.ERROR, "error": f"guest session failed: {traceback.format_exc()}"})
        return FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
