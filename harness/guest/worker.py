"""The long-lived worker inside a guest: runs pytest items the host sends.

Started by virtme-ng as the guest's command:
    python -m bpfvm.guest.worker /path/to/guest.json
It prepares the guest (bpffs), opens the bpfvm virtio-serial port, and runs
an ordinary pytest session whose run loop takes node ids from the host
instead of running everything it collected. Reports travel back
serialized by pytest's own hooks, as pytest-xdist does it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .. import protocol
from ..protocol import Ev, Op
from . import session, system


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


def main(argv: list[str]) -> int:
    spec = protocol.GuestSpec.from_json(Path(argv[0]).read_text())
    fd = os.open(find_port(protocol.PORT_NAME), os.O_RDWR)
    link = session.Channel(fd)
    hello = link.receive()
    if hello.get("op") != Op.HELLO:
        raise RuntimeError(f"unexpected first message {hello}")
    try:
        system.prepare()
    except Exception as e:  # report any setup failure to the host, then stop
        link.send({"ev": Ev.ERROR, "error": f"guest setup failed: {e}"})
        return 1
    os.environ.update(spec.env)
    os.chdir(spec.rootdir)
    import pytest

    return int(pytest.main(spec.args, plugins=[session.GuestSession(link, spec)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
