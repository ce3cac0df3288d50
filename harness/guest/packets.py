"""Frames on the wire: raw sends, captures with a bounded wait, waiting for a condition.

AF_PACKET sockets, bound to one interface of the namespace they were made in;
scapy is imported only to decode (``Capture.packets``), and only its Ethernet
layer, which pulls in IP/TCP/UDP: its full import is slow under emulation.
"""
from __future__ import annotations

import socket
import time
from typing import Any, Callable, Iterable, Optional

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def _frame(packet: Any) -> bytes:
    return packet if isinstance(packet, (bytes, bytearray)) else bytes(packet)


def send(iface: str, packets: Iterable[Any]) -> int:
    """Put each frame (bytes or a scapy packet) on iface's transmit path, as-is."""
    count = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind((iface, 0))
        for packet in packets:
            sock.send(_frame(packet))
            count += 1
    return count


class Capture:
    """Frames arriving on iface (what the stack receives after XDP and TC ingress).

    Open it before sending: it sees frames from the moment it is bound.
    Frames the namespace itself sends on iface are left out.
    """

    def __init__(self, iface: str):
        self.iface = iface
        # Protocol 0 until bound: no frame of another interface slips in before bind().
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.bind((iface, ETH_P_ALL))

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def frames(self, count: Optional[int] = None, timeout: float = 2.0) -> list[bytes]:
        """Frames received, until count have arrived or timeout seconds have passed."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while count is None or len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                data, address = self.sock.recvfrom(65536)
            except socket.timeout:
                break
            if address[2] != PACKET_OUTGOING:
                got.append(data)
        return got

    def packets(self, count: Optional[int] = None, timeout: float = 2.0) -> list[Any]:
        """Like frames(), decoded as scapy Ether packets."""
        from scapy.layers.l2 import Ether

        return [Ether(f) for f in self.frames(count, timeout)]


def wait_until(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
               interval: float = 0.01) -> Any:
    """condition()'s first true value, polled until timeout; TimeoutError names what."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


def operational(ipr: Any, index: int) -> bool:
    """Whether link index (of pyroute2 IPRoute ipr) is up with carrier and its real qdisc.

    Drivers that never report an operational state (netdevsim) stay UNKNOWN.
    """
    link = ipr.get_links(index)[0]
    qdiscs = [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index=index)]
    return (link.get_attr("IFLA_OPERSTATE") in ("UP", "UNKNOWN")
            and link.get_attr("IFLA_CARRIER") == 1 and bool(qdiscs) and "noop" not in qdiscs)


def wait_operational(ipr: Any, index: int, name: str, timeout: float = 10.0) -> None:
    """Until link index can carry frames.

    Carrier comes on when both ends are up, but the kernel's linkwatch work
    attaches the qdisc later (up to a second under emulation); until then the
    noop qdisc silently drops whatever is sent.
    """
    wait_until(lambda: operational(ipr, index), timeout, f"{name} operational")
