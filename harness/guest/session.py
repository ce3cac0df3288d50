"""The guest's pytest session: collect once, then run what the host asks.

This mirrors pytest-xdist's worker (xdist/remote.py): the run loop waits
for commands, runs pytest's normal runtest protocol for each node id, and
every report is turned into plain data by pytest_report_to_serializable.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from .. import protocol
from ..protocol import Ev, Op
from . import compiled, system


class Channel:
    """The guest end of the channel (a virtio-serial character device)."""

    def __init__(self, fd: int):
        self.fd = fd

    def receive(self) -> dict[str, Any]:
        return protocol.read_message(lambda n: os.read(self.fd, n))

    def receive_waiting(self, poll: float = 0.05) -> dict[str, Any]:
        """The next message, waiting while no host is connected (between the
        runs a kept VM serves, and while a VM booted early waits for its
        host to finish collecting, reads see the port closed); each poll
        is a host's wait for its session, so it is short."""
        while True:
            try:
                return self.receive()
            except protocol.ChannelClosed:
                time.sleep(poll)

    def send(self, message: dict[str, Any]) -> None:
        data = protocol.encode(message)
        while data:
            data = data[os.write(self.fd, data):]

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Ask the host something in the middle of a test; its reply comes next."""
        self.send({"ev": Ev.CALL, **request})
        reply = self.receive()
        if reply.get("op") != Op.REPLY:
            raise protocol.ChannelClosed(f"expected the host's reply, got {reply.get('op')!r}")
        return reply


class GuestSession:
    def __init__(self, link: Channel, spec: protocol.GuestSpec):
        self.link = link
        self.spec = spec
        self.ending: Optional[str] = None  # Op.END or Op.EXIT, once the host said which
        self.config: Optional[pytest.Config] = None
        self.collect_errors: list[str] = []
        compiled.set_compiler(link.call)
        self.wanted = {str(p) for f in spec.files for p in (Path(f), *Path(f).parents)}

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config
        from ..annotated import GUEST_SPECS

        config.stash[GUEST_SPECS] = self.spec.annotated
        for name, value in self.spec.options.items():
            setattr(config.option, name, value)

    @pytest.hookimpl(tryfirst=True)
    def pytest_ignore_collect(self, collection_path: Path) -> Optional[bool]:
        """Only the files the host asked for, and the directories they are in."""
        if not self.wanted or str(collection_path) in self.wanted:
            return None
        return True

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self.link.send({"ev": Ev.REPORT, "data": data})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        items = {item.nodeid: item for item in session.items}
        self.link.send({"ev": Ev.READY, "release": os.uname().release,
                        "boot_id": system.boot_id(), "collected": len(items),
                        "errors": self.collect_errors})
        while True:
            message = self.link.receive()
            if message["op"] in (Op.END, Op.EXIT):
                self.ending = message["op"]
                return True
            if message["op"] != Op.RUN:
                continue
            item = items.get(message["nodeid"])
            if item is None:
                self.link.send({"ev": Ev.MISSING, "nodeid": message["nodeid"],
                                "errors": self.collect_errors})
                continue
            seq = message["seq"]
            system.kmsg(protocol.boundary(protocol.BEGIN, seq))
            item.config.hook.pytest_runtest_protocol(
                item=item, nextitem=items.get(message.get("next")))
            system.kmsg(protocol.boundary(protocol.END, seq))
            self.link.send({"ev": Ev.DONE, "seq": seq})
