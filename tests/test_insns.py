"""bpfvm.verifier.asm: instructions encode as the kernel's BPF_* macros do (pure, on the host).

Expected bytes are written out from the instruction set (code, dst | src << 4,
off, imm, little-endian), not computed by the code under test.
"""
from bpfvm.verifier import asm


def test_register_jump_and_its_neighbours_encode_as_the_isa_says():
    assert asm.jmp_reg(asm.JEQ, asm.R1, asm.R2, 1).encode() == bytes.fromhex("1d21010000000000")
    assert asm.jmp_imm(asm.JLT, asm.R0, 3, -2).encode() == bytes.fromhex("a500feff03000000")
    assert asm.mov64_imm(asm.R0, 0).encode() == bytes.fromhex("b700000000000000")
    assert asm.exit_insn().encode() == bytes.fromhex("9500000000000000")
