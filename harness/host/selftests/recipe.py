"""How an annotated C file is compiled: as the kernel selftests' Makefile builds
progs/*.c when the file lies in a kernel tree, else as a project's own file.

A tree's flags follow tools/testing/selftests/bpf/Makefile (BPF_CFLAGS and
CLANG_BPF_BUILD_RULE): -g -O2 -D__TARGET_ARCH_<arch>, the selftests
directory, tools/include/uapi and the libbpf headers on the include path,
-DENABLE_ATOMICS_TESTS, -Wno-compare-distinct-pointer-types and the -mcpu
the Makefile names. -Werror is left out: these builds use whichever clang
the host has, whose new warnings are not the program's failures. The
generated headers the tree's build would make (bpf_helper_defs.h from the
tree's scripts/bpf_doc.py, vmlinux.h from the target kernel's BTF) are
made once and cached.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from ...target import Target
from .. import tools
from ..kernels import cache
from . import vmlinux

SELFTESTS = Path("tools/testing/selftests/bpf")
INCLUDE_DIR = Path(__file__).resolve().parents[2] / "include"  # bpfvm/annotations.h
_VMLINUX_H = re.compile(r'^\s*#\s*include\s*[<"]vmlinux\.h[>"]', re.M)
NO_VMLINUX = "'vmlinux.h' file not found"  # clang's words when a header includes it
_MCPU = re.compile(r"define CLANG_BPF_BUILD_RULE\b.*?-mcpu=(v\d)", re.S)
_CLANG_N = re.compile(r"clang-(\d+)")


class RecipeError(RuntimeError):
    """A file's build cannot be prepared (its generated headers); one line."""


def kernel_tree(source: Path) -> Optional[Path]:
    """The kernel tree whose selftests hold source, if any."""
    for parent in source.parents:
        if parent.name == "bpf" and parent.parent.name == "selftests" \
                and parent.parents[2].name == "tools":
            tree = parent.parents[3]
            return tree if (tree / SELFTESTS).is_dir() else None
    return None


def newest_clang() -> str:
    """The clang-N with the largest N on PATH (Debian's versioned clangs), else clang."""
    found = []
    for directory in tools.search_path().split(":"):
        try:
            names = [p.name for p in Path(directory).glob("clang-[0-9]*")]
        except OSError:
            continue
        found += [(int(m.group(1)), n) for n in names if (m := _CLANG_N.fullmatch(n))]
    return max(found)[1] if found else "clang"


def flags(source: Path, target: Target, with_vmlinux: bool = False) -> list[str]:
    """The flags that build source for target, after bpfobjects' own (-target bpf
    -O2 -g, -D__TARGET_ARCH_..., the source's directory and the arch's asm/ headers).

    vmlinux.h is on the include path when the file includes it, or with_vmlinux
    (a header it includes does: the first build said so).
    """
    text = source.read_text(errors="replace")
    needs_vmlinux = with_vmlinux or bool(_VMLINUX_H.search(text))
    gen = generated_dir(source, target if needs_vmlinux else None)
    tree = kernel_tree(source)
    if tree is None:
        includes = [gen, INCLUDE_DIR]
        extra: list[str] = []
    else:
        selftests = tree / SELFTESTS
        includes = [gen, tree / "tools/lib", selftests, tree / "tools/include/uapi"]
        extra = ["-DENABLE_ATOMICS_TESTS", "-Wno-compare-distinct-pointer-types",
                 f"-mcpu={makefile_mcpu(selftests / 'Makefile')}"]
    return [f"-I{d}" for d in includes] + extra


def makefile_mcpu(makefile: Path) -> str:
    try:
        m = _MCPU.search(makefile.read_text(errors="replace"))
    except OSError:
        m = None
    return m.group(1) if m else "v3"


def generated_dir(source: Path, target: Optional[Target]) -> Path:
    """A directory with the tree's bpf_helper_defs.h and, when asked, target's
    vmlinux.h; made once per (tree, kernel) and cached."""
    tree = kernel_tree(source)
    uapi = tree / "tools/include/uapi/linux/bpf.h" if tree else None
    key = (cache.sha256_file(uapi)[:16] if uapi else "own") + (
        "-" + cache.sha256_file(Path(vmlinux.header(target)))[:16] if target else "")
    out = cache.cache_dir() / "selftests" / key
    if out.is_dir():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=out.parent))
    try:
        if tree is not None:
            (stage / "bpf_helper_defs.h").write_bytes(helper_defs(tree))
        if target is not None:
            shutil.copyfile(vmlinux.header(target), stage / "vmlinux.h")
        try:
            stage.rename(out)
        except OSError:  # another process made it first
            pass
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def helper_defs(tree: Path) -> bytes:
    """bpf_helper_defs.h as the tree's tools/lib/bpf/Makefile makes it."""
    script = tree / "scripts/bpf_doc.py"
    proc = subprocess.run(["python3", str(script), "--header", "--file",
                           str(tree / "tools/include/uapi/linux/bpf.h")], capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RecipeError(f"{script} could not make bpf_helper_defs.h: "
                          f"{detail[-1] if detail else proc.returncode}")
    return proc.stdout
