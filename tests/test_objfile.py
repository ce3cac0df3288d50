import struct
import sys

from bpfvm.guest.bpf import objfile


def elf(machine: int, order: str = "little") -> bytes:
    data = bytearray(64)
    data[:4] = b"\x7fELF"
    data[4], data[5] = 2, 1 if order == "little" else 2
    struct.pack_into("<H" if order == "little" else ">H", data, 18, machine)
    return bytes(data)


def test_host_arch_object_is_named():
    line = objfile.wrong_target(objfile.LIBBPF_ERRNO_FORMAT, elf(62))
    assert line == ("an object built for x86-64, not BPF: build it with clang -target bpf "
                    "(bpf_object() does that for a .c source)")
    assert "aarch64" in objfile.wrong_target(objfile.LIBBPF_ERRNO_FORMAT, elf(183))


def test_other_byte_order_bpf_object():
    other = "big" if sys.byteorder == "little" else "little"
    line = objfile.wrong_target(objfile.LIBBPF_ERRNO_ENDIAN, elf(objfile.EM_BPF, other))
    assert line.startswith(f"a {other}-endian BPF object, and this kernel is {sys.byteorder}")


def test_not_elf_and_unrelated_errors():
    assert objfile.wrong_target(objfile.LIBBPF_ERRNO_FORMAT, b"hello").startswith(
        "not an ELF object file")
    assert objfile.wrong_target(22, elf(62)) is None
    assert objfile.wrong_target(objfile.LIBBPF_ERRNO_FORMAT, elf(objfile.EM_BPF)) is None
