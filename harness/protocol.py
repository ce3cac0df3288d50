"""How host and guest worker talk, shared by both.

Messages: length-prefixed JSON over a virtio-serial port (a unix socket on
the host side); each is a 4-byte big-endian length followed by that many
bytes of UTF-8 JSON. Test boundaries: lines the worker writes to the
kernel log, so the host can tell which console output a test caused.
"""
from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any, Callable

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 64 << 20
PORT_NAME = "bpfvm.0"
BEGIN = "bpfvm-begin"
END = "bpfvm-end"


class Op:
    """What the host asks, in a message's "op" field."""
    SESSION = "session"  # start a run's pytest ("spec": a GuestSpec); answered by Ev.READY
    RUN = "run"          # run one node id ("nodeid", "next", "seq")
    REPLY = "reply"      # the answer to an Ev.CALL
    END = "end"          # end the session, keep the VM; answered by Ev.ENDED
    EXIT = "exit"        # end the session (if any) and power off


class Ev:
    """What the guest says, in a message's "ev" field."""
    READY = "ready"      # a session is up: "release", "boot_id", "collected", "errors"
    ERROR = "error"      # the worker could not start a session, or its pytest died: "error"
    REPORT = "report"    # one serialized test report: "data"
    CALL = "call"        # a test needs the host (a BPF build); answered by Op.REPLY
    MISSING = "missing"  # the node id was not collected in the guest: "errors"
    DONE = "done"        # the item's runtest protocol finished: "seq"
    ENDED = "ended"      # the session ended: "leftovers", what it left outside its namespaces


@dataclasses.dataclass
class GuestSpec:
    """What the host tells the guest worker to start a session's pytest with (Op.SESSION)."""
    rootdir: str                 # the project root: the worker's working directory
    args: list[str]              # the guest pytest's arguments: test files or their dirs, -p, ...
    options: dict[str, Any]      # option values set on the guest's config (host/run/options.py)
    env: dict[str, str]          # environment for the guest's pytest (BPFVM_GUEST, ...)
    files: list[str] = dataclasses.field(default_factory=list)  # the test files asked for
    annotated: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    #                            annotated C files: path -> its programs' Specs (annotations.py)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GuestSpec":
        return cls(**data)


@dataclasses.dataclass
class BootSpec:
    """What the guest's long-lived parent is started with (guest.json)."""
    preload: list[str]           # modules to import before the first session (pytest, scapy, ...)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "BootSpec":
        return cls(**json.loads(text))


def boundary(kind: str, seq: int) -> str:
    """The console line that marks where test number seq begins or ends."""
    return f"{kind} {seq}"


class ChannelClosed(EOFError):
    """The other side went away."""


class ProtocolError(ValueError):
    """A message that is not one the protocol has: too big, not JSON, or not a
    known event with its fields. The host fails the test in flight with it."""


EXCERPT = 200


def excerpt(data: Any) -> str:
    """What arrived, for a message: its first EXCERPT characters."""
    text = data if isinstance(data, str) else repr(data)
    return text if len(text) <= EXCERPT else f"{text[:EXCERPT]}... ({len(text)} characters)"


# The fields each guest event must carry, and their types.
EVENT_FIELDS: dict[str, dict[str, type]] = {
    Ev.READY: {"release": str},
    Ev.ERROR: {"error": str},
    Ev.REPORT: {"data": dict},
    Ev.CALL: {},
    Ev.MISSING: {"errors": list},
    Ev.DONE: {"seq": int},
    Ev.ENDED: {"leftovers": list},
}


def check_event(message: Any) -> dict[str, Any]:
    """message, when it is a known guest event with the fields it needs; else ProtocolError."""
    if not isinstance(message, dict) or not isinstance(message.get("ev"), str):
        raise ProtocolError(f"a message without an event: {excerpt(message)}")
    fields = EVENT_FIELDS.get(message["ev"])
    if fields is None:
        raise ProtocolError(f"an unknown event {excerpt(message['ev'])!s}: {excerpt(message)}")
    for name, kind in fields.items():
        if not isinstance(message.get(name), kind):
            raise ProtocolError(f"a {message['ev']!r} event without {kind.__name__} {name!r}: "
                                f"{excerpt(message)}")
    return message


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


class Decoder:
    """Incremental decoder: feed bytes, take whole messages."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        messages = []
        while len(self._buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf)
            if size > MAX_MESSAGE:
                raise ProtocolError(f"a message of {size} bytes, which exceeds the "
                                    f"{MAX_MESSAGE} byte limit")
            if len(self._buf) < _HEADER.size + size:
                break
            body = bytes(self._buf[_HEADER.size:_HEADER.size + size])
            del self._buf[:_HEADER.size + size]
            try:
                messages.append(json.loads(body))
            except ValueError:
                raise ProtocolError(f"a message that is not JSON: "
                                    f"{excerpt(body.decode(errors='replace'))}") from None
        return messages


def read_message(read: Callable[[int], bytes]) -> dict[str, Any]:
    """Blocking read of one message with a read(n) function (guest side)."""
    header = _read_exact(read, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    return json.loads(_read_exact(read, size))


def _read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        data = read(size - len(chunks))
        if not data:
            raise ChannelClosed("channel closed")
        chunks += data
    return bytes(chunks)
