"""BPF object builds with the real clang: cache keys, diagnostics, lookup."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bpfvm.host.run import bpfobjects

PROGRAM = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "verdict.h"
SEC("xdp") int prog(struct xdp_md *ctx) { return VERDICT; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def source(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("BPFVM_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "verdict.h").write_text("#define VERDICT 2\n")
    path = src / "prog.c"
    path.write_text(PROGRAM)
    return path


def test_second_build_is_a_cache_hit(source):
    first = bpfobjects.build(source, "x86_64")
    mtime = first.stat().st_mtime_ns
    assert bpfobjects.build(source, "x86_64") == first
    assert first.stat().st_mtime_ns == mtime
    assert first.read_bytes()[:4] == b"\x7fELF"


def test_header_flags_and_arch_change_the_key(source):
    base = bpfobjects.build(source, "x86_64")
    assert bpfobjects.build(source, "x86_64", ["-DEXTRA=1"]) != base
    assert bpfobjects.build(source, "arm64") != base
    (source.parent / "verdict.h").write_text("#define VERDICT 1\n")
    assert bpfobjects.build(source, "x86_64") != base


def test_target_arch_macro_is_set(source):
    assert "-D__TARGET_ARCH_arm64" in bpfobjects.command(source, "arm64", [])
    assert "-D__TARGET_ARCH_x86" in bpfobjects.command(source, "x86_64", [])
    with pytest.raises(bpfobjects.CompileError, match="arch 'mips'"):
        bpfobjects.command(source, "mips", [])


def test_compile_error_carries_clang_diagnostics(source):
    source.write_text(PROGRAM.replace("return VERDICT;", "return undeclared_thing;"))
    with pytest.raises(bpfobjects.CompileError) as e:
        bpfobjects.build(source, "x86_64")
    assert "prog.c:5" in str(e.value) and "undeclared_thing" in str(e.value)
    assert not list(bpfobjects.objects_dir().glob(".*"))  # no temporary left


def test_missing_include_is_a_build_error(source):
    (source.parent / "verdict.h").unlink()
    with pytest.raises(bpfobjects.CompileError, match="verdict.h' file not found"):
        bpfobjects.build(source, "x86_64")


def test_find_source_by_name_and_by_path(source, tmp_path):
    assert bpfobjects.find_source("prog", [tmp_path, source.parent]) == source
    assert bpfobjects.find_source(str(source), []) == source
    with pytest.raises(bpfobjects.CompileError, match=r"no BPF source nope\.c in .*add it there"):
        bpfobjects.find_source("nope", [source.parent])
    with pytest.raises(bpfobjects.CompileError, match="does not exist"):
        bpfobjects.find_source(str(tmp_path / "x.c"), [])


def test_serve_answers_with_bytes_or_the_error(source):
    reply = bpfobjects.serve({"source": "prog"}, [source.parent], "x86_64")
    assert reply["ok"] and reply["name"] == "prog"
    assert base64.b64decode(reply["object"]) == Path(reply["path"]).read_bytes()
    reply = bpfobjects.serve({"source": "prog", "cflags": ["-Werror", "-DVERDICT=3"]}, [source.parent],
                           "x86_64")
    assert not reply["ok"] and "clang failed" in reply["error"]


def test_prebuild_builds_all_and_returns_errors(source):
    (source.parent / "broken.c").write_text("int x = ;\n")
    errors = bpfobjects.prebuild([source.parent], ["x86_64"])
    assert len(errors) == 1 and "broken.c" in errors[0]
    assert len(list(bpfobjects.objects_dir().glob("prog-x86_64-*.o"))) == 1
