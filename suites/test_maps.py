"""Map semantics, from user space and from programs, on each kernel."""
from __future__ import annotations

import ctypes
import os
import struct

import pytest

from conftest import ether_payload
from bpfvm import bpf
from bpfvm.bpf import BPF_ANY, BPF_EXIST, BPF_NOEXIST


@pytest.fixture
def maps(bpf_object):
    return bpf_object("maps")


def run(obj, program: str, data: bytes = ether_payload(b"")) -> int:
    return obj.program(program).test_run(data).retval


# -- hash ---------------------------------------------------------------------

def test_hash_roundtrip_seen_by_program(maps):
    h = maps.map("hash")
    h[1], h[2] = 40, 2
    assert run(maps, "hash_sum") == bpf.XDP_PASS
    assert h[3] == 42 and h[1] == 40 and len(h) == 3


def test_hash_update_flags(maps):
    h = maps.map("hash")
    with pytest.raises(FileNotFoundError):
        h.update(5, 1, BPF_EXIST)
    h.update(5, 1, BPF_NOEXIST)
    with pytest.raises(FileExistsError):
        h.update(5, 2, BPF_NOEXIST)
    h.update(5, 3, BPF_EXIST)
    h.update(5, 4, BPF_ANY)
    h.update(6, 5, BPF_ANY)
    assert (h[5], h[6]) == (4, 5)


def test_hash_full_refuses_new_keys_with_e2big(maps):
    h = maps.map("small_hash")
    for key in range(h.max_entries):
        h[key] = key
    with pytest.raises(OSError) as e:
        h[100] = 1
    assert e.value.errno == 7  # E2BIG
    h[0] = 99  # replacing an existing key still works when full
    assert h[0] == 99 and len(h) == h.max_entries


def test_hash_delete_and_missing_keys(maps):
    h = maps.map("hash")
    h[7] = 1
    del h[7]
    assert 7 not in h and h.get(7) is None
    with pytest.raises(KeyError):
        h[7]
    with pytest.raises(KeyError):
        del h[7]
    with pytest.raises(FileNotFoundError):
        h.delete(7)


def test_hash_iteration_is_complete(maps):
    h = maps.map("hash")
    for key in range(1000):
        h[key * 7919] = key
    keys = list(h.keys())
    assert len(keys) == len(set(keys)) == 1000
    assert dict(h.items()) == {key * 7919: key for key in range(1000)}
    h.clear()
    assert len(h) == 0 and h.next_key() is None


# -- array --------------------------------------------------------------------

def test_array_is_preallocated_and_zeroed(maps):
    a = maps.map("array")
    assert len(a) == a.max_entries == 16
    assert list(a.values()) == [0] * 16


def test_array_iterates_in_index_order(maps):
    a = maps.map("array")
    for i in range(16):
        a[i] = 100 - i
    assert list(a.keys()) == list(range(16))
    assert list(a.values()) == [100 - i for i in range(16)]


def test_array_update_flags(maps):
    a = maps.map("array")
    with pytest.raises(FileExistsError):
        a.update(3, 1, BPF_NOEXIST)  # every index exists
    a.update(3, 1, BPF_EXIST)
    assert a[3] == 1


def test_array_delete_fails_with_einval(maps):
    a = maps.map("array")
    a[2] = 5
    with pytest.raises(OSError) as e:
        a.delete(2)
    assert e.value.errno == 22  # EINVAL
    assert a[2] == 5


def test_array_index_out_of_range(maps):
    a = maps.map("array")
    with pytest.raises(FileNotFoundError):
        a.lookup(16)
    with pytest.raises(OSError) as e:
        a[16] = 1
    assert e.value.errno == 7  # E2BIG


# -- per-CPU ------------------------------------------------------------------

def test_percpu_values_cover_possible_cpus(maps):
    """What user space writes per CPU is what the kernel holds per CPU, as
    bpftool (not bpfvm's own cpulist parsing) dumps it."""
    m = maps.map("percpu_array")
    m[0] = [1000 + cpu for cpu in bpf.possible_cpus()]
    dump = bpf.bpftool("map", "dump", "id", str(m.id))
    values = next(e for e in dump if _int(e.get("key")) == 0)["values"]
    held = {v["cpu"]: _int(v["value"]) for v in values}
    assert held == {cpu: 1000 + cpu for cpu in bpf.possible_cpus()}
    assert len(m[0]) == len(held) >= os.cpu_count()


def _int(field) -> int:
    """A key or value in bpftool's JSON: a list of hex bytes, little-endian (x86, arm64)."""
    return int.from_bytes(bytes(int(b, 16) for b in field), "little")


def test_percpu_array_counts_per_cpu(maps):
    prog, m = maps.program("percpu_count"), maps.map("percpu_array")
    cpus = bpf.online_cpus()
    for cpu in cpus:
        with bpf.on_cpu(cpu):
            prog.test_run(ether_payload(b""), repeat=cpu + 1)
    values = m[0]
    assert [values[cpu] for cpu in cpus] == [cpu + 1 for cpu in cpus]
    assert values.sum() == m.sum(0) == sum(cpu + 1 for cpu in cpus)


def test_percpu_hash_counts_per_cpu(maps):
    prog, m = maps.program("percpu_count"), maps.map("percpu_hash")
    cpus = bpf.online_cpus()
    for cpu in cpus:
        with bpf.on_cpu(cpu):
            prog.test_run(ether_payload(b""), repeat=2 * (cpu + 1))
    values = m[0]
    assert [values[cpu] for cpu in cpus] == [2 * (cpu + 1) for cpu in cpus]


def test_percpu_update_from_user_space(maps):
    m = maps.map("percpu_hash")
    n = bpf.num_possible_cpus()
    m[9] = list(range(10, 10 + n))
    assert m[9] == list(range(10, 10 + n))
    m[10] = 7  # one value for every CPU
    assert m[10] == [7] * n and m.sum(10) == 7 * n
    with pytest.raises(ValueError):
        m[11] = [1] * (n + 1)


# -- structured keys and values -------------------------------------------------

class Flow(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint32), ("port", ctypes.c_uint16), ("proto", ctypes.c_uint16)]


class FlowStats(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


def test_flow_counters_with_struct_keys(maps):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    flows = maps.map("flows").types(key=Flow, value=FlowStats)
    prog = maps.program("flow_count")
    sent = {("10.0.0.1", 1000): 3, ("10.0.0.2", 2000): 5, ("10.0.0.1", 1001): 1}
    for (src, sport), count in sent.items():
        packet = Ether() / IP(src=src, dst="10.0.0.9") / UDP(sport=sport, dport=53) / (b"x" * 10)
        prog.test_run(packet, repeat=count)
    got = {(socket_ntoa(k.addr), k.port, k.proto): (v.packets, v.bytes) for k, v in flows.items()}
    length = len(Ether() / IP() / UDP() / (b"x" * 10))
    assert got == {(src, sport, 17): (count, count * length)
                   for (src, sport), count in sent.items()}
    key = Flow(addr=struct.unpack("I", bytes([10, 0, 0, 2]))[0], port=2000, proto=17)
    assert flows[key].packets == 5


def socket_ntoa(addr: int) -> str:
    return ".".join(str(b) for b in struct.pack("I", addr))


# -- LRU ----------------------------------------------------------------------

@pytest.fixture
def lru(bpf_object):
    obj = bpf_object("lru")
    return obj, obj.map("lru"), obj.program("lru_touch")


def per_cpu_capacity(m) -> int:
    """BPF_F_NO_COMMON_LRU splits max_entries evenly over the possible CPUs."""
    return m.max_entries // bpf.num_possible_cpus()


def test_lru_evicts_least_recently_used(lru):
    """The kernel's LRU is approximate (per-CPU lists, reference bits cleared
    as lists rotate): on 5.10-6.12 a few used keys go in the first shrink.
    So: every unused key goes before most used keys do."""
    _, m, touch = lru
    with bpf.on_cpu(0):
        size = per_cpu_capacity(m)
        old = list(range(size))
        for key in old:
            m[key] = key
        used = old[: size // 2]
        for key in used:
            assert touch.test_run(ether_payload(struct.pack("I", key))).retval == bpf.XDP_PASS
        new = list(range(1000, 1000 + size // 2))
        for key in new:
            m[key] = key
    present = set(m.keys())
    assert set(new) <= present
    assert present.isdisjoint(set(old) - set(used)), "an unused key outlived used ones"
    assert len(present & set(used)) >= len(used) * 3 // 4, "most used keys were evicted"


def test_lru_inserts_never_fail_when_full(lru):
    _, m, _ = lru
    with bpf.on_cpu(0):
        for key in range(4 * m.max_entries):
            m[key] = key
    assert 0 < len(m) <= m.max_entries
    assert 4 * m.max_entries - 1 in m


# -- LPM trie -------------------------------------------------------------------

class LpmKey(ctypes.Structure):
    _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", ctypes.c_uint8 * 4)]


def lpm_key(cidr: str) -> LpmKey:
    addr, _, length = cidr.partition("/")
    return LpmKey(int(length or 32), (ctypes.c_uint8 * 4)(*map(int, addr.split("."))))


def test_lpm_longest_prefix_match_in_program(bpf_object):
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    obj = bpf_object("lpm")
    routes = obj.map("routes")
    routes[lpm_key("10.0.0.0/8")] = 10
    routes[lpm_key("10.1.0.0/16")] = 16
    routes[lpm_key("10.1.2.0/24")] = 24
    routes[lpm_key("10.1.2.3/32")] = 32
    prog = obj.program("lpm_route")
    verdict = {dst: prog.test_run(Ether() / IP(dst=dst)).retval
               for dst in ("10.1.2.3", "10.1.2.4", "10.1.9.9", "10.9.9.9", "192.168.0.1")}
    assert verdict == {"10.1.2.3": 32, "10.1.2.4": 24, "10.1.9.9": 16, "10.9.9.9": 10,
                       "192.168.0.1": bpf.XDP_ABORTED}


def test_lpm_lookup_and_delete_from_user_space(bpf_object):
    routes = bpf_object("lpm").map("routes")
    routes[lpm_key("192.168.0.0/16")] = 1
    routes[lpm_key("192.168.1.0/24")] = 2
    assert routes[lpm_key("192.168.1.77/32")] == 2
    assert routes[lpm_key("192.168.7.7/32")] == 1
    del routes[lpm_key("192.168.1.0/24")]
    assert routes[lpm_key("192.168.1.77/32")] == 1
    with pytest.raises(KeyError):
        routes[lpm_key("172.16.0.1/32")]


# -- queue and stack --------------------------------------------------------------

def push_from_program(maps, values) -> None:
    for value in values:
        assert run(maps, "push_value", ether_payload(struct.pack("I", value))) == bpf.XDP_PASS


def test_queue_is_fifo_and_stack_lifo(maps):
    push_from_program(maps, [1, 2, 3])
    queue, stack = maps.map("queue"), maps.map("stack")
    assert queue.peek() == 1 and stack.peek() == 3
    assert queue.drain() == [1, 2, 3]
    assert stack.drain() == [3, 2, 1]


def test_queue_empty_pop_and_peek_fail_with_enoent(maps):
    queue = maps.map("queue")
    with pytest.raises(FileNotFoundError):
        queue.pop()
    with pytest.raises(FileNotFoundError):
        queue.peek()


def test_queue_full_e2big_unless_exist_flag(maps):
    queue = maps.map("queue")
    for value in range(queue.max_entries):
        queue.push(value)
    with pytest.raises(OSError) as e:
        queue.push(100)
    assert e.value.errno == 7  # E2BIG
    queue.push(100, BPF_EXIST)  # drops the oldest
    assert queue.drain() == list(range(1, queue.max_entries)) + [100]


# -- bloom filter -----------------------------------------------------------------

@pytest.mark.kernel(">=5.16")
def test_bloom_filter_from_program(bpf_object):
    obj = bpf_object("bloom")
    prog = obj.program("bloom_check_add")
    first = [prog.test_run(ether_payload(struct.pack("I", v))).retval for v in (5, 6, 7)]
    again = [prog.test_run(ether_payload(struct.pack("I", v))).retval for v in (5, 6, 7)]
    assert first == [bpf.XDP_PASS] * 3
    assert again == [bpf.XDP_DROP] * 3  # no false negatives
    seen = obj.map("seen")
    assert all(v in seen for v in (5, 6, 7))


@pytest.mark.kernel(">=5.16")
def test_bloom_filter_from_user_space(bpf_object):
    seen = bpf_object("bloom").map("seen")
    for value in range(0, 200, 2):
        seen.push(value)
    assert all(value in seen for value in range(0, 200, 2))
    with pytest.raises(OSError) as e:
        seen.delete(0)
    assert e.value.errno == 95  # EOPNOTSUPP: a bloom filter cannot forget


# -- ring buffer and perf event array -------------------------------------------------

class Record(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint32), ("len", ctypes.c_uint32), ("head", ctypes.c_uint8 * 8)]


def test_ringbuf_records_in_order(bpf_object):
    obj = bpf_object("events")
    prog = obj.program("emit_ringbuf")
    with bpf.RingBuffer(obj.map("rb"), Record) as rb:
        for i in range(5):
            assert prog.test_run(bytes([i]) * 60).retval == bpf.XDP_PASS
        records = rb.poll(timeout=1)
    assert [(r.seq, r.len, r.head[0]) for r in records] == [(i, 60, i) for i in range(5)]


def test_ringbuf_poll_times_out_when_empty(bpf_object):
    obj = bpf_object("events")
    with bpf.RingBuffer(obj.map("rb")) as rb:
        assert rb.poll(timeout=0.2) == []


def test_perf_event_output_per_cpu(bpf_object):
    obj = bpf_object("events")
    prog = obj.program("emit_perf")
    cpus = bpf.online_cpus()
    with bpf.PerfBuffer(obj.map("perf"), record_type=Record) as pb:
        for cpu in cpus:
            with bpf.on_cpu(cpu):
                assert prog.test_run(bytes([cpu + 1]) * 60).retval == bpf.XDP_PASS
        records = []
        for _ in range(10):
            records += pb.poll(timeout=0.5)
            if len(records) >= len(cpus):
                break
    assert sorted((cpu, r.head[0]) for cpu, r in records) == [(cpu, cpu + 1) for cpu in cpus]
    assert pb.lost == 0


# -- maps of maps ----------------------------------------------------------------------

def test_array_of_maps_swaps_inner_map(bpf_object):
    obj = bpf_object("map_in_map")
    outer, inner_a, inner_b = obj.map("outer_array"), obj.map("inner_a"), obj.map("inner_b")
    inner_a[0], inner_b[0] = 11, 22
    prog = obj.program("read_outer_array")
    assert outer[0] == inner_a.id  # user space sees inner map ids
    assert prog.test_run(ether_payload(b"")).retval == 11
    outer[0] = inner_b
    assert prog.test_run(ether_payload(b"")).retval == 22
    del outer[0]
    assert prog.test_run(ether_payload(b"")).retval == bpf.XDP_ABORTED


def test_hash_of_maps(bpf_object):
    obj = bpf_object("map_in_map")
    outer, inner_b = obj.map("outer_hash"), obj.map("inner_b")
    prog = obj.program("read_outer_hash")
    assert prog.test_run(ether_payload(b"")).retval == bpf.XDP_ABORTED
    inner_b[0] = 33
    outer.update(7, inner_b, BPF_NOEXIST)
    assert prog.test_run(ether_payload(b"")).retval == 33
    assert list(outer.keys()) == [7]


# -- pinning and inspection -----------------------------------------------------------

def test_pinned_map_outlives_the_object(bpf_object, bpffs_dir):
    obj = bpf_object("maps")
    h = obj.map("hash")
    h[1] = 123
    path = os.path.join(bpffs_dir, "hash")
    h.pin(path)
    map_id = h.id
    obj.close()
    info = bpf.bpftool("map", "show", "pinned", path)
    assert (info["id"], info["type"], info["name"]) == (map_id, "hash", "hash")
    entry = bpf.bpftool("map", "lookup", "pinned", path, "key", "1", "0", "0", "0")
    assert int.from_bytes(bytes(int(b, 16) for b in entry["value"]), "little") == 123


def test_map_types_as_the_kernel_reports_them(maps):
    expected = {"hash": "hash", "array": "array", "percpu_array": "percpu_array",
                "percpu_hash": "percpu_hash", "queue": "queue", "stack": "stack"}
    for name, kind in expected.items():
        m = maps.map(name)
        assert m.type_name == kind
        assert bpf.bpftool("map", "show", "id", str(m.id))["type"] == kind
