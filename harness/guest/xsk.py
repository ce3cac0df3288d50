"""An AF_XDP socket that receives (copy or zero-copy mode), through the raw socket API.

libxdp's xsk API would not save code here: its ring accessors are inline
functions in headers, out of reach of ctypes. What remains is what the API
requires: register a UMEM, size the fill/completion/RX rings, mmap them,
bind to (ifindex, queue), hand frames to the kernel on the fill ring and
take them back from the RX ring (Documentation/networking/af_xdp.rst).
The socket belongs to the network namespace of its interface (a name: the
caller's; a bpfvm.net Iface: its host's).

    with XskSocket(t.b.iface) as xsk:
        xskmap[0] = xsk.fileno()        # the XDP program redirects into it
        frames = xsk.receive(count=3)
"""
from __future__ import annotations

import ctypes
import mmap
import os
import select
import socket
import struct
import time
from typing import Optional

from .bpf.attach import inside

AF_XDP, SOL_XDP = 44, 283
XDP_MMAP_OFFSETS, XDP_RX_RING, XDP_UMEM_REG = 1, 2, 4
XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_STATISTICS = 5, 6, 7
XDP_PGOFF_RX_RING, XDP_UMEM_PGOFF_FILL_RING = 0, 0x100000000
XDP_COPY, XDP_ZEROCOPY = 1 << 1, 1 << 2
RING_OFFSET = struct.Struct("4Q")  # producer, consumer, desc, flags
DESC = struct.Struct("QII")        # addr, len, options
U32 = struct.Struct("I")

_libc = ctypes.CDLL(None, use_errno=True)


class SockaddrXdp(ctypes.Structure):
    _fields_ = [("family", ctypes.c_uint16), ("flags", ctypes.c_uint16),
                ("ifindex", ctypes.c_uint32), ("queue_id", ctypes.c_uint32),
                ("shared_umem_fd", ctypes.c_uint32)]


class Ring:
    """A single-producer/single-consumer ring shared with the kernel."""

    def __init__(self, area: mmap.mmap, offsets: tuple[int, ...], size: int, entry: struct.Struct):
        self.area, self.size, self.entry = area, size, entry
        self.producer, self.consumer, self.desc = offsets[:3]

    def _get(self, offset: int) -> int:
        return U32.unpack_from(self.area, offset)[0]

    def _set(self, offset: int, value: int) -> None:
        U32.pack_into(self.area, offset, value & 0xffffffff)

    def produce(self, entries: list) -> None:
        head = self._get(self.producer)
        for i, entry in enumerate(entries):
            slot = (head + i) % self.size
            self.entry.pack_into(self.area, self.desc + slot * self.entry.size, *entry)
        self._set(self.producer, head + len(entries))

    def consume(self) -> list[tuple]:
        tail, head = self._get(self.consumer), self._get(self.producer)
        entries = []
        while tail != head:
            slot = tail % self.size
            entries.append(self.entry.unpack_from(self.area, self.desc + slot * self.entry.size))
            tail = (tail + 1) & 0xffffffff
        self._set(self.consumer, tail)
        return entries


class XskSocket:
    """Receives the frames an XDP program redirects to (ifindex, queue) through an XSKMAP."""

    def __init__(self, iface, queue: int = 0, frames: int = 64, frame_size: int = 2048,
                 mode: str = "copy"):
        if mode not in ("copy", "zerocopy"):
            raise ValueError(f"AF_XDP mode {mode!r}: use copy or zerocopy")
        self.frame_size = frame_size
        with inside(iface) as (index, name):
            self.sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
        self._maps: list[mmap.mmap] = []
        try:
            self.umem = mmap.mmap(-1, frames * frame_size)
            self._umem_address = ctypes.c_char.from_buffer(self.umem)
            self.sock.setsockopt(SOL_XDP, XDP_UMEM_REG, struct.pack(
                "QQIIII", ctypes.addressof(self._umem_address), frames * frame_size,
                frame_size, 0, 0, 0))
            for option in (XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING):
                self.sock.setsockopt(SOL_XDP, option, frames)
            raw = self.sock.getsockopt(SOL_XDP, XDP_MMAP_OFFSETS, 4 * RING_OFFSET.size)
            rx, _tx, fill, _completion = (RING_OFFSET.unpack_from(raw, i * RING_OFFSET.size)
                                          for i in range(4))
            self.rx = Ring(self._map(rx[2] + frames * DESC.size, XDP_PGOFF_RX_RING),
                           rx, frames, DESC)
            self.fill = Ring(self._map(fill[2] + frames * 8, XDP_UMEM_PGOFF_FILL_RING),
                             fill, frames, struct.Struct("Q"))
            self.fill.produce([(i * frame_size,) for i in range(frames)])
            address = SockaddrXdp(AF_XDP, XDP_COPY if mode == "copy" else XDP_ZEROCOPY,
                                  index, queue, 0)
            if _libc.bind(self.sock.fileno(), ctypes.byref(address), ctypes.sizeof(address)):
                err = ctypes.get_errno()
                raise OSError(err, f"bind AF_XDP socket to {name} queue {queue} ({mode}): "
                                   f"{os.strerror(err)}")
        except BaseException:
            self.close()
            raise

    def _map(self, length: int, offset: int) -> mmap.mmap:
        area = mmap.mmap(self.sock.fileno(), length, mmap.MAP_SHARED,
                         mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
        self._maps.append(area)
        return area

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self, count: Optional[int] = None, timeout: float = 2.0) -> list[bytes]:
        """Frames received, until count have arrived or timeout seconds have passed."""
        got: list[bytes] = []
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        deadline = time.monotonic() + timeout
        while count is None or len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                break
            descs = self.rx.consume()
            got += [self.umem[addr:addr + length] for addr, length, _ in descs]
            self.fill.produce([(addr - addr % self.frame_size,) for addr, _, _ in descs])
        return got

    def statistics(self) -> dict[str, int]:
        """The kernel's counters for this socket (rx_dropped, rx_invalid_descs, ...)."""
        names = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
                 "rx_fill_ring_empty_descs", "tx_ring_empty_descs")
        raw = self.sock.getsockopt(SOL_XDP, XDP_STATISTICS, 8 * len(names))
        return dict(zip(names, struct.unpack_from(f"{len(raw) // 8}Q", raw)))

    def close(self) -> None:
        for area in self._maps:
            area.close()
        self._maps.clear()
        self.sock.close()
        if hasattr(self, "_umem_address"):
            del self._umem_address
            self.umem.close()

    def __enter__(self) -> "XskSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
