"""Everything bpfvm knows about a guest architecture, in one table (plain data).

A name here (x86_64, arm64) is what --arch takes and what test ids carry;
each tool and file format has its own name for the same arch.
"""
from __future__ import annotations

import dataclasses
import platform


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str           # bpfvm's: --arch, test ids, the cache's entry names
    debian: str         # Debian's architecture (apt, debootstrap)
    kernel: str         # the kernel's ARCH= for make
    triplet: str        # the multiarch triplet: /usr/include/TRIPLET, the cross compiler's prefix
    image: str          # the boot image in a built kernel tree
    qemu: str           # the qemu-system binary that runs it
    qemu_user: str      # the qemu-user binary that runs its programs elsewhere (rootfs builds)
    virtio_serial: str  # the virtio-serial device the host-guest channel uses on its machine
    bpf_target: str     # __TARGET_ARCH_x for BPF programs (libbpf's bpf_tracing.h)
    selftests: str      # the arch of the selftests' __arch_* annotations (test_arch=)

    @property
    def image_name(self) -> str:
        return self.image.rsplit("/", 1)[-1]


ARCH = {
    "x86_64": Arch("x86_64", "amd64", "x86_64", "x86_64-linux-gnu", "arch/x86/boot/bzImage",
                   "qemu-system-x86_64", "qemu-x86_64", "virtio-serial-pci", "x86",
                   "X86_64"),
    "arm64": Arch("arm64", "arm64", "arm64", "aarch64-linux-gnu", "arch/arm64/boot/Image",
                  "qemu-system-aarch64", "qemu-aarch64", "virtio-serial-device", "arm64",
                  "ARM64"),
}
NAMES = tuple(ARCH)


def host_arch() -> str:
    """This machine's arch, by bpfvm's name."""
    machine = platform.machine()
    return {"aarch64": "arm64", "amd64": "x86_64"}.get(machine, machine)
