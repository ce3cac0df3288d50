"""Consuming records a program emits: ring buffers and perf event arrays."""
from __future__ import annotations

import ctypes
from typing import Any, Optional

from .libbpf import (PERF_LOST_FN, PERF_SAMPLE_FN, RINGBUF_SAMPLE_FN, check, check_ptr, lib)
from .maps import Map, decode


class _Consumer:
    """A libbpf consumer handle freed by close() (also as a context manager)."""

    handle = None

    @staticmethod
    def _free(handle: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.handle:
            self._free(self.handle)
            self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RingBuffer(_Consumer):
    """poll(timeout) returns the records (bytes, or decoded with record_type)."""

    def __init__(self, ringbuf: Map, record_type: Optional[type] = None):
        self.record_type = record_type
        self.records: list[Any] = []
        self._callback = RINGBUF_SAMPLE_FN(self._sample)
        self.handle = check_ptr(lib.ring_buffer__new(ringbuf.fd, self._callback, None, None),
                                f"ring_buffer__new for map {ringbuf.name!r}")

    def _sample(self, _ctx, data: int, size: int) -> int:
        self.records.append(decode(ctypes.string_at(data, size), self.record_type or bytes))
        return 0

    def poll(self, timeout: float = 1.0) -> list[Any]:
        """Records that arrive within timeout seconds (all that are ready, at least)."""
        check(lib.ring_buffer__poll(self.handle, int(timeout * 1000)), "ring_buffer__poll")
        out, self.records = self.records, []
        return out

    @staticmethod
    def _free(handle: int) -> None:
        lib.ring_buffer__free(handle)


class PerfBuffer(_Consumer):
    """A perf event array's per-CPU buffers: poll() gives (cpu, record) pairs."""

    def __init__(self, perf_map: Map, page_count: int = 8, record_type: Optional[type] = None):
        self.record_type = record_type
        self.records: list[tuple[int, Any]] = []
        self.lost = 0
        self._sample_cb = PERF_SAMPLE_FN(self._sample)
        self._lost_cb = PERF_LOST_FN(self._lost)
        self.handle = check_ptr(
            lib.perf_buffer__new(perf_map.fd, page_count, self._sample_cb, self._lost_cb,
                                 None, None),
            f"perf_buffer__new for map {perf_map.name!r}")

    def _sample(self, _ctx, cpu: int, data: int, size: int) -> None:
        self.records.append((cpu, decode(ctypes.string_at(data, size), self.record_type or bytes)))

    def _lost(self, _ctx, _cpu: int, count: int) -> None:
        self.lost += count

    def poll(self, timeout: float = 1.0) -> list[tuple[int, Any]]:
        check(lib.perf_buffer__poll(self.handle, int(timeout * 1000)), "perf_buffer__poll")
        out, self.records = self.records, []
        return out

    @staticmethod
    def _free(handle: int) -> None:
        lib.perf_buffer__free(handle)
