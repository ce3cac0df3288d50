"""Checking one annotated program as the kernel's test_loader.c does (runs in the guest).

The object is opened with only the program under test and the auxiliary
programs of its mode to load; it loads with the annotated log level and
flags (and test_loader's testing flags where the kernel takes them), with
CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_PERFMON and CAP_BPF out of the effective
set for the unprivileged mode (kernel.unprivileged_bpf_disabled set to 0
for it). Then: accepted or rejected as annotated, the messages in the
verifier log, the translated program against __xlated (with the
capabilities back, as test_loader), and __retval through a test run on 64
bytes of zeroes.

A load that fails because the kernel lacks what the program needs (a
kfunc, a BTF type or function, a program or map type, a program flag) is
a skip naming it, read from libbpf's messages, not from a list of tests.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import re
import subprocess
from pathlib import Path
from typing import Iterator, Optional

from ... import vlog
from ...annotations import (PROG_FLAGS, TESTING_FLAGS, UNPRIV, POINTER_VALUE, TEST_DATA_LEN,
                            Spec, first_mismatch, program_flags)
from .. import system
from . import insns as asm
from .libbpf import lib
from .objects import PROG_TYPES, BpfObject, LoadError
from .sections import register_newer

LOG_SIZE = 1 << 21  # test_loader's TEST_LOADER_LOG_BUF_SZ
CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39
UNPRIV_DROPPED = 1 << CAP_SYS_ADMIN | 1 << CAP_NET_ADMIN | 1 << CAP_PERFMON | 1 << CAP_BPF
UNPRIV_SYSCTL = Path("/proc/sys/kernel/unprivileged_bpf_disabled")
JIT_SYSCTL = Path("/proc/sys/net/core/bpf_jit_enable")
BPF_F_ZERO_SEED = 1 << 6
# Map types an unprivileged load may create (test_loader's is_unpriv_capable_map).
UNPRIV_MAPS = {1, 5, 13, 2, 3, 4, 6, 8, 12, 19, 21, 27, 31}  # hash, ..., user ringbuf
HASH_MAPS = {1, 5, 13}
BPF_PROG_TYPE_SYSCALL = 31
# Flags any program type takes where the kernel knows them (so a trivial load probes them).
PROBED_FLAGS = ("BPF_F_STRICT_ALIGNMENT", "BPF_F_ANY_ALIGNMENT", "BPF_F_TEST_RND_HI32",
                "BPF_F_TEST_STATE_FREQ", "BPF_F_TEST_REG_INVARIANTS")
_XLATED_LINE = re.compile(r"^\s*(\d+): \([0-9a-f]{2}\) (.*)$")
_CALL_ID = re.compile(r"^(call \S+)#\d+$")  # test_loader prints "call foo#10" as "call foo"
_CALL_NAME = r"\1"


@dataclasses.dataclass
class Outcome:
    """What the check found: the verdict for the matrix, and a failure or a skip."""
    accepted: bool
    errno: int
    log: str
    messages: list[str]
    failure: str = ""
    skip: str = ""

    @property
    def message(self) -> str:
        return "" if self.accepted else vlog.message(self.log) or errno.errorcode.get(
            self.errno, str(self.errno))


def check(spec: Spec, mode_name: str, data: bytes, name: str, specs: list[Spec],
          arch_name: str, kernel: str) -> Outcome:
    """Load spec's program from the object data in mode_name and compare with its
    annotations; specs are the object's programs', for its auxiliary ones."""
    unpriv = mode_name == UNPRIV
    mode = spec.mode(mode_name)
    skip = not_here(spec, arch_name, kernel) or (unpriv and unpriv_unavailable(kernel))
    if skip:
        return Outcome(False, 0, "", [], skip=skip)
    register_newer()
    autoload = {s.program: s.program == spec.program or (s.auxiliary and mode_name in s.modes)
                for s in specs}
    obj = BpfObject(data, name, log_size=4096, autoload=autoload or None)
    try:
        prog = obj.program(spec.program)
        log_buf = ctypes.create_string_buffer(LOG_SIZE)
        lib.bpf_program__set_log_buf(prog.handle, log_buf, LOG_SIZE)
        lib.bpf_program__set_log_level(prog.handle, spec.log_level)
        flags = lib.bpf_program__flags(prog.handle) | program_flags(spec, testing_flags())
        lib.bpf_program__set_flags(prog.handle, flags)
        if unpriv:
            for handle in obj._map_handles:
                lib.bpf_map__set_autocreate(handle, _unpriv_capable(handle))
        messages: list[str] = []
        try:
            with _capabilities(unpriv, mode.caps):
                obj.load()
            accepted, err = True, 0
        except LoadError as e:
            accepted, err, messages = False, e.errno, e.messages
        outcome = Outcome(accepted, err, log_buf.value.decode(errors="replace"), messages)
        outcome.failure = _compare(spec, mode_name, outcome, prog, kernel)
        if outcome.failure and not accepted:
            outcome.skip = missing_feature(messages + [outcome.log], prog, obj,
                                           spec.flags_set, kernel)
        return outcome
    finally:
        obj.close()


def _compare(spec: Spec, mode_name: str, outcome: Outcome, prog, kernel: str) -> str:
    """Why the outcome does not hold the annotations, or ""."""
    mode = spec.mode(mode_name)
    where = f"on kernel {kernel}"
    if mode.expect_failure and outcome.accepted:
        return f"expected the verifier to reject it {where}, but it was accepted"
    if not mode.expect_failure and not outcome.accepted:
        return f"expected it to load {where}, but it was rejected: {outcome.message}"
    mismatch = first_mismatch(outcome.log, mode.msgs)
    if mismatch:
        return f"verifier log {where}: {mismatch}"
    if not outcome.accepted:
        return ""
    if mode.xlated:
        text = xlated_text(prog.id)
        mismatch = first_mismatch(text, mode.xlated)
        if mismatch:
            return f"translated program {where}: {mismatch}\n--- xlated ---\n{text}"
    if mode.retval is not None:
        retval = test_run(prog)
        if retval != mode.retval and mode.retval != POINTER_VALUE:
            return f"test run {where} returned {retval}, expected {mode.retval}"
    return ""


def not_here(spec: Spec, arch_name: str, kernel: str) -> str:
    """Why the program is not tested on this guest at all: its arch, its JIT mode,
    what bpfvm cannot check."""
    if spec.arches and arch_name not in spec.arches:
        return f"kernel {kernel}: annotated for {', '.join(spec.arches)} only (__arch_*)"
    if spec.load_mode:
        jited = _read_int(JIT_SYSCTL, 0) > 0
        if jited != (spec.load_mode == "jited"):
            return (f"kernel {kernel}: loaded only {'with' if spec.load_mode == 'jited' else 'without'}"
                    f" the JIT, which is {'on' if jited else 'off'} here")
    if spec.priv.jited or spec.unpriv.jited:
        return (f"kernel {kernel}: __jited needs a disassembler of JITed code, which bpfvm "
                f"does not have")
    if spec.btf_path:
        return (f"kernel {kernel}: __btf_path({spec.btf_path}) names a file the selftests' "
                f"build makes, which bpfvm does not")
    return ""


def unpriv_unavailable(kernel: str) -> str:
    """Make unprivileged BPF possible (sysctl 2 -> 0); why not, when it cannot be."""
    value = _read_int(UNPRIV_SYSCTL, 0)
    if value == 2:
        UNPRIV_SYSCTL.write_text("0\n")
        value = _read_int(UNPRIV_SYSCTL, 0)
    if value != 0:
        return (f"kernel {kernel}: kernel.unprivileged_bpf_disabled is {value}, so the "
                f"unprivileged load cannot be tried")
    return ""


def _read_int(path: Path, default: int) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default


@contextlib.contextmanager
def _capabilities(unpriv: bool, keep: int) -> Iterator[None]:
    """With test_loader's unprivileged capabilities while inside (keep added back)."""
    if not unpriv:
        yield
        return
    old = system.effective_caps()
    system.set_effective_caps((old & ~UNPRIV_DROPPED) | (keep & old))
    try:
        yield
    finally:
        system.set_effective_caps(old)


def _unpriv_capable(handle: int) -> bool:
    kind = lib.bpf_map__type(handle)
    if kind in HASH_MAPS:
        return not lib.bpf_map__map_flags(handle) & BPF_F_ZERO_SEED
    return kind in UNPRIV_MAPS


_testing_flags: Optional[int] = None


def testing_flags() -> int:
    """test_loader's testing flags (BPF_F_TEST_RND_HI32, BPF_F_TEST_REG_INVARIANTS)
    that this kernel takes, probed once."""
    global _testing_flags
    if _testing_flags is None:
        _testing_flags = sum(PROG_FLAGS[f] for f in TESTING_FLAGS if flag_supported(PROG_FLAGS[f]))
    return _testing_flags


def flag_supported(flag: int) -> bool:
    from .verify import load_insns

    verdict = load_insns([asm.mov64_imm(asm.R0, 0), asm.exit_insn()], prog_flags=flag,
                         log_level=0)
    return verdict.accepted


def test_run(prog) -> int:
    """The program's return value on TEST_DATA_LEN bytes of zeroes (signed, as test_loader);
    a syscall program runs with empty options, as test_loader runs it."""
    if lib.bpf_program__type(prog.handle) == BPF_PROG_TYPE_SYSCALL:
        run = prog.test_run(b"", data_out_size=0, repeat=0)  # the kernel takes no options
    else:
        run = prog.test_run(bytes(TEST_DATA_LEN), data_out_size=TEST_DATA_LEN << 2)
    return ctypes.c_int32(run.retval).value


def xlated_text(prog_id: int) -> str:
    """The translated program as test_loader prints it: "N: insn" per line (from bpftool)."""
    out = subprocess.run(["bpftool", "prog", "dump", "xlated", "id", str(prog_id)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bpftool prog dump xlated failed: {out.stderr.strip()}")
    lines = [_XLATED_LINE.match(line) for line in out.stdout.splitlines()]
    return "".join(f"{m.group(1)}: {_CALL_ID.sub(_CALL_NAME, m.group(2))}\n" for m in lines if m)


# -- what the kernel lacks ------------------------------------------------------------

_MISSING = (
    (re.compile(r"extern \(func ksym\) '(\w+)': not found in kernel"),
     "the kernel has no kfunc {0}"),
    (re.compile(r"extern \(var ksym\) '(\w+)': not found in kernel"),
     "the kernel has no BTF variable {0}"),
    (re.compile(r"failed to find kernel BTF type ID of '(\w+)'"),
     "the kernel has no function {0} to attach to"),
    (re.compile(r"failed to find BTF for extern '(\w+)'"),
     "the kernel's BTF has no {0}"),
    (re.compile(r"relo #\d+: target candidate search failed for \[\d+\] (\w+ \w+)"),
     "the kernel's BTF has no {0}"),
    (re.compile(r"^(\w+)\(\) is not modifiable$", re.M),
     "{0}() is not modifiable: fmod_ret needs it on the error-injection list, "
     "which needs CONFIG_FUNCTION_ERROR_INJECTION"),
    (re.compile(r"missing BPF prog type, check ELF section name '([^']+)'"),
     "the guest's libbpf does not know section '{0}'"),
)
_CORE_RELO = re.compile(r"relo #\d+: <[\w ]+> \[\d+\] (\w+ \w+)")


def missing_feature(messages: list[str], prog, obj: BpfObject, flags: int, kernel: str) -> str:
    """Why the load failed for want of a kernel feature, or "" when it did not."""
    text = "\n".join(messages)
    for pattern, reason in _MISSING:
        m = pattern.search(text)
        if m:
            return f"kernel {kernel}: {reason.format(*m.groups())}"
    if "no matching targets found" in text:
        m = _CORE_RELO.search(text)
        what = m.group(1) if m else "a type a CO-RE relocation needs"
        return f"kernel {kernel}: the kernel's BTF has no {what}"
    kind = lib.bpf_program__type(prog.handle)
    if lib.libbpf_probe_bpf_prog_type(kind, None) <= 0:  # < 0: too new for this libbpf
        return f"kernel {kernel}: no program type {PROG_TYPES.get(kind, kind)}"
    for handle in obj._map_handles:
        map_kind = lib.bpf_map__type(handle)
        if lib.libbpf_probe_bpf_map_type(map_kind, None) <= 0:
            return f"kernel {kernel}: no map type {map_kind}"
    unknown = [name for name in PROBED_FLAGS
               if flags & PROG_FLAGS[name] and not flag_supported(PROG_FLAGS[name])]
    if unknown:
        return f"kernel {kernel}: the kernel does not take program flag {', '.join(unknown)}"
    return ""
