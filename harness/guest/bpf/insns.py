"""BPF instructions by hand, for programs a compiler will not emit.

The names follow the kernel's own macros (include/linux/filter.h,
tools/include/linux/filter.h), lower-cased:

    from bpfvm.verifier import asm
    prog = [asm.mov64_imm(asm.R0, 0), asm.exit_insn()]

A program is a list of instructions; ld_imm64 and ld_map_fd give two, and
nested lists are flattened by encode().
"""
from __future__ import annotations

import struct
from typing import Iterable, NamedTuple, Union

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

# instruction classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
# sizes and modes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, MEM = 0x00, 0x60
K, X = 0x00, 0x08
# ALU operations
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0)
# jumps
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE, JSLT, JSLE = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0)
PSEUDO_MAP_FD = 1

# helper ids (enum bpf_func_id)
FN = {"map_lookup_elem": 1, "map_update_elem": 2, "map_delete_elem": 3, "probe_read": 4,
      "ktime_get_ns": 5, "trace_printk": 6, "get_prandom_u32": 7, "get_smp_processor_id": 8,
      "tail_call": 12, "get_current_pid_tgid": 14, "xdp_adjust_head": 44,
      "sk_lookup_tcp": 84, "sk_release": 86, "probe_read_kernel": 113}


class Insn(NamedTuple):
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        return struct.pack("<BBhi", self.code, (self.src << 4) | (self.dst & 0xf),
                           self.off, self.imm)


Program = Iterable[Union[Insn, list]]


def flatten(program: Program) -> list[Insn]:
    out: list[Insn] = []
    for item in program:
        out.extend(flatten(item) if isinstance(item, list) else [item])
    return out


def encode(program: Program) -> bytes:
    return b"".join(insn.encode() for insn in flatten(program))


def raw(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> Insn:
    return Insn(code, dst, src, off, imm)


def alu64_imm(op: int, dst: int, imm: int) -> Insn:
    return Insn(ALU64 | op | K, dst, 0, 0, imm)


def alu64_reg(op: int, dst: int, src: int) -> Insn:
    return Insn(ALU64 | op | X, dst, src)


def mov64_imm(dst: int, imm: int) -> Insn:
    return alu64_imm(MOV, dst, imm)


def mov64_reg(dst: int, src: int) -> Insn:
    return alu64_reg(MOV, dst, src)


def ld_imm64(dst: int, imm: int, src: int = 0) -> list[Insn]:
    return [Insn(LD | DW | IMM, dst, src, 0, imm & 0xffffffff),
            Insn(0, 0, 0, 0, (imm >> 32) & 0xffffffff)]


def ld_map_fd(dst: int, fd: int) -> list[Insn]:
    return ld_imm64(dst, fd, PSEUDO_MAP_FD)


def ldx_mem(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(LDX | size | MEM, dst, src, off)


def stx_mem(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(STX | size | MEM, dst, src, off)


def st_mem(size: int, dst: int, off: int, imm: int) -> Insn:
    return Insn(ST | size | MEM, dst, 0, off, imm)


def jmp_imm(op: int, dst: int, imm: int, off: int) -> Insn:
    return Insn(JMP | op | K, dst, 0, off, imm)


def jmp_reg(op: int, dst: int, src: int, off: int) -> Insn:
    return Insn(JMP | op | X, dst, src, off)


def ja(off: int) -> Insn:
    return Insn(JMP | JA, 0, 0, off)


def call(helper: Union[int, str]) -> Insn:
    return Insn(JMP | CALL, 0, 0, 0, FN[helper] if isinstance(helper, str) else helper)


def exit_insn() -> Insn:
    return Insn(JMP | EXIT)
