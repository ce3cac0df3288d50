"""ctypes declarations for the distribution's libbpf (libbpf.so.1).

Only what the toolkit uses is declared. Struct layouts follow libbpf 1.1's
headers; every opts struct carries its own size (sz), so newer libbpf
versions accept them unchanged. Failures come back as OSError with the
errno libbpf reported, so EEXIST/ENOENT surface as FileExistsError /
FileNotFoundError.
"""
from __future__ import annotations

import ctypes
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_int, c_size_t,
                    c_uint32, c_uint64, c_void_p)
from typing import Optional

LIBRARY = "libbpf.so.1"

# bpf(2) map update flags
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
# XDP attach flags (include/uapi/linux/if_link.h)
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4
# enum bpf_tc_attach_point
BPF_TC_INGRESS, BPF_TC_EGRESS = 1 << 0, 1 << 1
BPF_F_TEST_RUN_ON_CPU = 1 << 0
# bpf(2) program load flag: an XDP program bound to a device without being offloaded (6.3)
BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6


class ObjectOpenOpts(Structure):
    _fields_ = [("sz", c_size_t), ("object_name", c_char_p), ("relaxed_maps", c_bool),
                ("pin_root_path", c_char_p), ("_attach_prog_fd", c_uint32),
                ("kconfig", c_char_p), ("btf_custom_path", c_char_p),
                ("kernel_log_buf", c_char_p), ("kernel_log_size", c_size_t),
                ("kernel_log_level", c_uint32)]


class TestRunOpts(Structure):
    _fields_ = [("sz", c_size_t), ("data_in", c_void_p), ("data_out", c_void_p),
                ("data_size_in", c_uint32), ("data_size_out", c_uint32),
                ("ctx_in", c_void_p), ("ctx_out", c_void_p),
                ("ctx_size_in", c_uint32), ("ctx_size_out", c_uint32),
                ("retval", c_uint32), ("repeat", c_int), ("duration", c_uint32),
                ("flags", c_uint32), ("cpu", c_uint32), ("batch_size", c_uint32)]


class XdpAttachOpts(Structure):
    _fields_ = [("sz", c_size_t), ("old_prog_fd", c_int)]


class XdpQueryOpts(Structure):
    """struct bpf_xdp_query_opts up to attach_mode (libbpf 1.0)."""
    _fields_ = [("sz", c_size_t), ("prog_id", c_uint32), ("drv_prog_id", c_uint32),
                ("hw_prog_id", c_uint32), ("skb_prog_id", c_uint32), ("attach_mode", ctypes.c_uint8)]


class TcHook(Structure):
    _fields_ = [("sz", c_size_t), ("ifindex", c_int), ("attach_point", c_int),
                ("parent", c_uint32)]


class TcOpts(Structure):
    _fields_ = [("sz", c_size_t), ("prog_fd", c_int), ("flags", c_uint32),
                ("prog_id", c_uint32), ("handle", c_uint32), ("priority", c_uint32)]


class ProgLoadOpts(Structure):
    _fields_ = [("sz", c_size_t), ("attempts", c_int), ("expected_attach_type", c_uint32),
                ("prog_btf_fd", c_uint32), ("prog_flags", c_uint32), ("prog_ifindex", c_uint32),
                ("kern_version", c_uint32), ("attach_btf_id", c_uint32),
                ("attach_prog_fd", c_uint32), ("attach_btf_obj_fd", c_uint32),
                ("fd_array", c_void_p), ("func_info", c_void_p), ("func_info_cnt", c_uint32),
                ("func_info_rec_size", c_uint32), ("line_info", c_void_p),
                ("line_info_cnt", c_uint32), ("line_info_rec_size", c_uint32),
                ("log_level", c_uint32), ("log_size", c_uint32), ("log_buf", c_void_p)]


class InfoHead(Structure):
    """The first fields of bpf_prog_info / bpf_map_info (type, id); the
    kernel fills only as much of an info struct as it is given."""
    _fields_ = [("type", c_uint32), ("id", c_uint32)]


class ProgInfo(Structure):
    """struct bpf_prog_info up to verified_insns (5.16); older kernels fill less of it."""
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", c_uint32), ("xlated_prog_len", c_uint32),
                ("jited_prog_insns", c_uint64), ("xlated_prog_insns", c_uint64),
                ("load_time", c_uint64), ("created_by_uid", c_uint32), ("nr_map_ids", c_uint32),
                ("map_ids", c_uint64), ("name", ctypes.c_char * 16), ("ifindex", c_uint32),
                ("gpl_compatible", c_uint32), ("netns_dev", c_uint64), ("netns_ino", c_uint64),
                ("nr_jited_ksyms", c_uint32), ("nr_jited_func_lens", c_uint32),
                ("jited_ksyms", c_uint64), ("jited_func_lens", c_uint64), ("btf_id", c_uint32),
                ("func_info_rec_size", c_uint32), ("func_info", c_uint64),
                ("nr_func_info", c_uint32), ("nr_line_info", c_uint32), ("line_info", c_uint64),
                ("jited_line_info", c_uint64), ("nr_jited_line_info", c_uint32),
                ("line_info_rec_size", c_uint32), ("jited_line_info_rec_size", c_uint32),
                ("nr_prog_tags", c_uint32), ("prog_tags", c_uint64), ("run_time_ns", c_uint64),
                ("run_cnt", c_uint64), ("recursion_misses", c_uint64),
                ("verified_insns", c_uint32), ("attach_btf_obj_id", c_uint32)]


class BtfType(Structure):
    """struct btf_type; a BTF_KIND_DECL_TAG's is followed by its component_idx (s32)."""
    _fields_ = [("name_off", c_uint32), ("info", c_uint32), ("type", c_uint32)]


BTF_KIND_FUNC, BTF_KIND_DECL_TAG = 12, 17


def sized(struct_type, **fields):
    """An opts struct with sz set, as libbpf's LIBBPF_OPTS() makes them."""
    return struct_type(sz=ctypes.sizeof(struct_type), **fields)


PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
RINGBUF_SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)
PERF_SAMPLE_FN = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_uint32)
PERF_LOST_FN = CFUNCTYPE(None, c_void_p, c_int, c_uint64)

_P = c_void_p
_PROTOTYPES = {
    "libbpf_set_print": (PRINT_FN, [PRINT_FN]),
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_major_version": (c_uint32, []),
    "libbpf_minor_version": (c_uint32, []),
    "bpf_object__open_mem": (_P, [c_void_p, c_size_t, POINTER(ObjectOpenOpts)]),
    "bpf_object__load": (c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_object__btf": (_P, [_P]),
    "btf__type_cnt": (c_uint32, [_P]),
    "btf__type_by_id": (_P, [_P, c_uint32]),
    "btf__str_by_offset": (c_char_p, [_P, c_uint32]),
    "btf__find_by_name_kind": (c_int, [_P, c_char_p, c_uint32]),
    "bpf_program__name": (c_char_p, [_P]),
    "bpf_program__section_name": (c_char_p, [_P]),
    "bpf_program__fd": (c_int, [_P]),
    "bpf_program__type": (c_int, [_P]),
    "bpf_program__set_autoload": (c_int, [_P, c_bool]),
    "bpf_program__set_log_level": (c_int, [_P, c_uint32]),
    "bpf_program__set_log_buf": (c_int, [_P, c_void_p, c_size_t]),
    "bpf_program__set_ifindex": (None, [_P, c_uint32]),
    "bpf_program__flags": (c_uint32, [_P]),
    "bpf_program__set_flags": (c_int, [_P, c_uint32]),
    "bpf_program__pin": (c_int, [_P, c_char_p]),
    "bpf_program__unpin": (c_int, [_P, c_char_p]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_program__attach_kprobe": (_P, [_P, c_bool, c_char_p]),
    "bpf_program__attach_tracepoint": (_P, [_P, c_char_p, c_char_p]),
    "bpf_program__attach_raw_tracepoint": (_P, [_P, c_char_p]),
    "bpf_link__destroy": (c_int, [_P]),
    "bpf_map__name": (c_char_p, [_P]),
    "bpf_map__fd": (c_int, [_P]),
    "bpf_map__type": (c_int, [_P]),
    "bpf_map__key_size": (c_uint32, [_P]),
    "bpf_map__value_size": (c_uint32, [_P]),
    "bpf_map__max_entries": (c_uint32, [_P]),
    "bpf_map__set_ifindex": (c_int, [_P, c_uint32]),
    "bpf_map__set_autocreate": (c_int, [_P, c_bool]),
    "bpf_map__map_flags": (c_uint32, [_P]),
    "libbpf_probe_bpf_prog_type": (c_int, [c_int, c_void_p]),
    "libbpf_probe_bpf_map_type": (c_int, [c_int, c_void_p]),
    "libbpf_register_prog_handler": (c_int, [c_char_p, c_int, c_int, c_void_p]),
    "bpf_map__pin": (c_int, [_P, c_char_p]),
    "bpf_map__unpin": (c_int, [_P, c_char_p]),
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64]),
    "bpf_map_delete_elem": (c_int, [c_int, c_void_p]),
    "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_lookup_and_delete_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_obj_pin": (c_int, [c_int, c_char_p]),
    "bpf_obj_get": (c_int, [c_char_p]),
    "bpf_prog_get_next_id": (c_int, [c_uint32, POINTER(c_uint32)]),
    "bpf_map_get_next_id": (c_int, [c_uint32, POINTER(c_uint32)]),
    "bpf_link_get_next_id": (c_int, [c_uint32, POINTER(c_uint32)]),
    "bpf_obj_get_info_by_fd": (c_int, [c_int, c_void_p, POINTER(c_uint32)]),
    "bpf_prog_test_run_opts": (c_int, [c_int, POINTER(TestRunOpts)]),
    "bpf_prog_load": (c_int, [c_int, c_char_p, c_char_p, c_void_p, c_size_t,
                              POINTER(ProgLoadOpts)]),
    "bpf_xdp_attach": (c_int, [c_int, c_int, c_uint32, POINTER(XdpAttachOpts)]),
    "bpf_xdp_detach": (c_int, [c_int, c_uint32, POINTER(XdpAttachOpts)]),
    "bpf_xdp_query_id": (c_int, [c_int, c_int, POINTER(c_uint32)]),
    "bpf_xdp_query": (c_int, [c_int, c_int, POINTER(XdpQueryOpts)]),
    "bpf_tc_hook_create": (c_int, [POINTER(TcHook)]),
    "bpf_tc_hook_destroy": (c_int, [POINTER(TcHook)]),
    "bpf_tc_attach": (c_int, [POINTER(TcHook), POINTER(TcOpts)]),
    "bpf_tc_detach": (c_int, [POINTER(TcHook), POINTER(TcOpts)]),
    "ring_buffer__new": (_P, [c_int, RINGBUF_SAMPLE_FN, c_void_p, c_void_p]),
    "ring_buffer__poll": (c_int, [_P, c_int]),
    "ring_buffer__free": (None, [_P]),
    "perf_buffer__new": (_P, [c_int, c_size_t, PERF_SAMPLE_FN, PERF_LOST_FN, c_void_p, c_void_p]),
    "perf_buffer__poll": (c_int, [_P, c_int]),
    "perf_buffer__free": (None, [_P]),
}


class _Lib:
    """libbpf with prototypes, loaded on first use (the host never needs it)."""

    def __init__(self) -> None:
        self._dll: Optional[ctypes.CDLL] = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        if self._dll is None:
            with self._lock:
                if self._dll is None:
                    self._dll = _load()
        return getattr(self._dll, name)


def _load() -> ctypes.CDLL:
    try:
        dll = ctypes.CDLL(LIBRARY, use_errno=True)
    except OSError as e:
        raise OSError(f"cannot load {LIBRARY} ({e}); install Debian's libbpf1") from None
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(dll, name)
        fn.restype, fn.argtypes = restype, argtypes
    _install_print(dll)
    return dll


lib = _Lib()

# -- libbpf's own messages ---------------------------------------------------

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2
_log = threading.local()
_libc = ctypes.CDLL(None, use_errno=True)
_libc.vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]
_libc.vsnprintf.restype = c_int


@PRINT_FN
def _print(level: int, fmt: bytes, args: int) -> int:
    lines = getattr(_log, "lines", None)
    if lines is None or level > LIBBPF_INFO:
        return 0
    buf = ctypes.create_string_buffer(4096)
    _libc.vsnprintf(buf, len(buf), fmt, args)
    lines.append(buf.value.decode(errors="replace"))
    return 0


def _install_print(dll: ctypes.CDLL) -> None:
    dll.libbpf_set_print(_print)


class captured_messages:
    """Collect libbpf's warnings and info lines printed inside the block."""

    def __enter__(self) -> list[str]:
        self.outer = getattr(_log, "lines", None)
        _log.lines = []
        return _log.lines

    def __exit__(self, *exc) -> None:
        _log.lines = self.outer


# -- error checking ----------------------------------------------------------

def os_error(err: int, what: str) -> OSError:
    err = abs(err)
    return OSError(err, f"{what}: {os.strerror(err)}")


def check(ret: int, what: str) -> int:
    """ret from a libbpf call returning 0/fd or -errno."""
    if ret < 0:
        raise os_error(-ret, what)
    return ret


def check_ptr(ptr: Optional[int], what: str) -> int:
    """A pointer from libbpf: NULL means failure, errno says why."""
    if not ptr:
        raise os_error(ctypes.get_errno() or 22, what)
    return ptr


def object_id(fd: int) -> int:
    """The kernel's id of the program or map behind fd."""
    info = InfoHead()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    check(lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
          "bpf_obj_get_info_by_fd")
    return info.id


def verified_insns(fd: int) -> Optional[int]:
    """bpf_prog_info.verified_insns of the program behind fd; None on kernels before 5.16."""
    info = ProgInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    check(lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
          "bpf_obj_get_info_by_fd")
    return info.verified_insns if size.value >= ProgInfo.attach_btf_obj_id.offset else None


def num_possible_cpus() -> int:
    return check(lib.libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


def version() -> tuple[int, int]:
    return lib.libbpf_major_version(), lib.libbpf_minor_version()


def object_ids(kind: str) -> set[int]:
    """The ids of every BPF object of kind ("prog", "map" or "link") in the kernel."""
    next_id = getattr(lib, f"bpf_{kind}_get_next_id")
    ids, current = set(), ctypes.c_uint32(0)
    while next_id(current.value, ctypes.byref(current)) == 0:
        ids.add(current.value)
    return ids
