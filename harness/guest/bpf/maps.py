"""BPF maps as Python objects: dict-like maps, per-CPU values, queues and stacks,
program arrays and maps of maps.

Keys and values are given as ints, bytes or ctypes instances; they come back
as ints (for 1, 2, 4 and 8-byte fields), bytes, or instances of the ctypes
types a test declares with ``Map.types(key=..., value=...)``.
"""
from __future__ import annotations

import ctypes
import errno
import os
import sys
from typing import Any, Iterator, Optional

from .libbpf import BPF_ANY, BPF_EXIST, BPF_NOEXIST, check, lib, num_possible_cpus, object_id

__all__ = ["Map", "PerCpuMap", "QueueMap", "BloomFilter", "ProgArray", "MapOfMaps",
           "PerCpuValues", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "MAP_TYPES", "open_map"]

# enum bpf_map_type (include/uapi/linux/bpf.h)
MAP_TYPES = {
    1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
    6: "percpu_array", 7: "stack_trace", 8: "cgroup_array", 9: "lru_hash",
    10: "lru_percpu_hash", 11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps",
    14: "devmap", 15: "sockmap", 16: "cpumap", 17: "xskmap", 18: "sockhash",
    19: "cgroup_storage", 20: "reuseport_sockarray", 21: "percpu_cgroup_storage",
    22: "queue", 23: "stack", 24: "sk_storage", 25: "devmap_hash", 26: "struct_ops",
    27: "ringbuf", 28: "inode_storage", 29: "task_storage", 30: "bloom_filter",
}
Codec = Optional[type]
_CTYPES = (ctypes.Structure, ctypes.Union, ctypes.Array, ctypes._SimpleCData)


def encode(value: Any, size: int, what: str) -> bytes:
    """value as the size bytes the kernel expects."""
    if hasattr(value, "fd") and isinstance(getattr(value, "fd"), int):
        value = value.fd
    if isinstance(value, _CTYPES):
        value = bytes(value)
    elif isinstance(value, bool) or not isinstance(value, (int, bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be an int, bytes or a ctypes instance, not "
                        f"{type(value).__name__}")
    if isinstance(value, int):
        return value.to_bytes(size, sys.byteorder, signed=value < 0)
    value = bytes(value)
    if len(value) != size:
        raise ValueError(f"{what} is {len(value)} bytes; the map's {what} size is {size}")
    return value


def decode(raw: bytes, codec: Codec) -> Any:
    if codec is None:
        return int.from_bytes(raw, sys.byteorder) if len(raw) in (1, 2, 4, 8) else raw
    if codec is bytes:
        return raw
    if codec is int:
        return int.from_bytes(raw, sys.byteorder)
    return codec.from_buffer_copy(raw)


class Map:
    """A BPF map by fd. Dict-like for hash, array, LRU and LPM maps."""

    def __init__(self, fd: int, name: str, map_type: int, key_size: int, value_size: int,
                 max_entries: int, handle: Optional[int] = None):
        self.fd, self.name, self.map_type = fd, name, map_type
        self.key_size, self.value_size, self.max_entries = key_size, value_size, max_entries
        self.handle = handle
        self.key_type: Codec = None
        self.value_type: Codec = None

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} {self.type_name} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries}>")

    @property
    def type_name(self) -> str:
        return MAP_TYPES.get(self.map_type, str(self.map_type))

    @property
    def id(self) -> int:
        return object_id(self.fd)

    def types(self, key: Codec = None, value: Codec = None) -> "Map":
        """Declare how keys and values decode (a ctypes type, int or bytes)."""
        self.key_type, self.value_type = key, value
        return self

    # -- raw operations ------------------------------------------------------

    def _key(self, key: Any) -> Optional[ctypes.Array]:
        if self.key_size == 0:
            return None
        return ctypes.create_string_buffer(encode(key, self.key_size, "key"), self.key_size)

    def _value_buffer(self) -> ctypes.Array:
        return ctypes.create_string_buffer(self._value_bytes())

    def _value_bytes(self) -> int:
        return self.value_size

    def _encode_value(self, value: Any) -> bytes:
        return encode(value, self.value_size, "value")

    def _decode_value(self, raw: bytes) -> Any:
        return decode(raw, self.value_type)

    def lookup(self, key: Any) -> Any:
        """The value at key; FileNotFoundError (ENOENT) when there is none."""
        buf = self._value_buffer()
        check(lib.bpf_map_lookup_elem(self.fd, self._key(key), buf), f"lookup in map {self.name!r}")
        return self._decode_value(buf.raw)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """Set key to value; BPF_NOEXIST raises FileExistsError, BPF_EXIST FileNotFoundError."""
        buf = ctypes.create_string_buffer(self._encode_value(value), self._value_bytes())
        check(lib.bpf_map_update_elem(self.fd, self._key(key), buf, flags),
              f"update of map {self.name!r}")

    def delete(self, key: Any) -> None:
        check(lib.bpf_map_delete_elem(self.fd, self._key(key)), f"delete in map {self.name!r}")

    def next_key(self, key: Any = None) -> Optional[Any]:
        """The key after key (the first key when None); None at the end."""
        out = ctypes.create_string_buffer(self.key_size)
        current = None if key is None else self._key(key)
        ret = lib.bpf_map_get_next_key(self.fd, current, out)
        if ret == -errno.ENOENT:
            return None
        check(ret, f"get_next_key in map {self.name!r}")
        return decode(out.raw, self.key_type)

    # -- the mapping protocol ------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.lookup(key)
        except FileNotFoundError:
            raise KeyError(key) from None

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        try:
            self.delete(key)
        except FileNotFoundError:
            raise KeyError(key) from None

    def __contains__(self, key: Any) -> bool:
        try:
            self.lookup(key)
        except FileNotFoundError:
            return False
        return True

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self.lookup(key)
        except FileNotFoundError:
            return default

    def keys(self) -> Iterator[Any]:
        key = self.next_key()
        while key is not None:
            yield key
            key = self.next_key(key)

    __iter__ = keys

    def values(self) -> Iterator[Any]:
        return (value for _, value in self.items())

    def items(self) -> Iterator[tuple[Any, Any]]:
        for key in self.keys():
            try:
                yield key, self.lookup(key)
            except FileNotFoundError:
                continue  # deleted since get_next_key returned it

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def clear(self) -> None:
        for key in list(self.keys()):
            self.delete(key)

    # -- pinning ---------------------------------------------------------------

    def pin(self, path: str) -> None:
        if self.handle:
            check(lib.bpf_map__pin(self.handle, path.encode()), f"pin map {self.name!r} at {path}")
        else:
            check(lib.bpf_obj_pin(self.fd, path.encode()), f"pin map {self.name!r} at {path}")

    def unpin(self, path: str) -> None:
        if self.handle:
            check(lib.bpf_map__unpin(self.handle, path.encode()), f"unpin map {self.name!r}")
        else:
            os.unlink(path)


class PerCpuValues(list):
    """One value per possible CPU."""

    def sum(self) -> Any:
        return sum(self)


class PerCpuMap(Map):
    """percpu_hash, percpu_array, lru_percpu_hash: values are per possible CPU."""

    @property
    def ncpus(self) -> int:
        return num_possible_cpus()

    @property
    def _slot(self) -> int:
        return (self.value_size + 7) // 8 * 8

    def _value_bytes(self) -> int:
        return self._slot * self.ncpus

    def _encode_value(self, value: Any) -> bytes:
        values = list(value) if isinstance(value, (list, tuple)) else [value] * self.ncpus
        if len(values) != self.ncpus:
            raise ValueError(f"map {self.name!r} needs {self.ncpus} per-CPU values "
                             f"(libbpf_num_possible_cpus), got {len(values)}")
        return b"".join(encode(v, self.value_size, "value").ljust(self._slot, b"\0")
                        for v in values)

    def _decode_value(self, raw: bytes) -> PerCpuValues:
        return PerCpuValues(decode(raw[i:i + self.value_size], self.value_type)
                            for i in range(0, len(raw), self._slot))

    def sum(self, key: Any) -> Any:
        return self.lookup(key).sum()


class QueueMap(Map):
    """queue (FIFO) and stack (LIFO): keyless push, pop and peek."""

    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        """BPF_EXIST makes a full queue drop its oldest entry instead of E2BIG."""
        self.update(None, value, flags)

    def pop(self) -> Any:
        """The next value; FileNotFoundError (ENOENT) when empty."""
        buf = self._value_buffer()
        check(lib.bpf_map_lookup_and_delete_elem(self.fd, None, buf), f"pop from {self.name!r}")
        return self._decode_value(buf.raw)

    def peek(self) -> Any:
        return self.lookup(None)

    def drain(self) -> list[Any]:
        out = []
        while True:
            try:
                out.append(self.pop())
            except FileNotFoundError:
                return out


class BloomFilter(Map):
    """bloom_filter: push values; ``value in bloom`` asks whether it may be there."""

    def push(self, value: Any) -> None:
        self.update(None, value, BPF_ANY)

    def __contains__(self, value: Any) -> bool:
        buf = ctypes.create_string_buffer(encode(value, self.value_size, "value"))
        ret = lib.bpf_map_lookup_elem(self.fd, None, buf)
        if ret == -errno.ENOENT:
            return False
        check(ret, f"lookup in bloom filter {self.name!r}")
        return True


class FdMap(Map):
    """Maps whose values are fds going in and ids coming out. Array-backed
    ones iterate every index; only the filled slots are keys here."""

    def keys(self) -> Iterator[Any]:
        return (key for key in super().keys() if key in self)

    __iter__ = keys


class ProgArray(FdMap):
    """prog_array: ``array[slot] = program`` installs it, ``del array[slot]`` clears."""


class MapOfMaps(FdMap):
    """array_of_maps, hash_of_maps: set with an inner Map (or fd); lookups give its id."""


_CLASSES = {
    "percpu_hash": PerCpuMap, "percpu_array": PerCpuMap, "lru_percpu_hash": PerCpuMap,
    "queue": QueueMap, "stack": QueueMap, "bloom_filter": BloomFilter,
    "prog_array": ProgArray, "array_of_maps": MapOfMaps, "hash_of_maps": MapOfMaps,
}


def open_map(handle: int) -> Map:
    """The Map for a libbpf struct bpf_map pointer of a loaded object."""
    map_type = lib.bpf_map__type(handle)
    cls = _CLASSES.get(MAP_TYPES.get(map_type, ""), Map)
    return cls(lib.bpf_map__fd(handle), lib.bpf_map__name(handle).decode(), map_type,
               lib.bpf_map__key_size(handle), lib.bpf_map__value_size(handle),
               lib.bpf_map__max_entries(handle), handle)
