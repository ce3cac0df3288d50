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
    confine = bpfobjects.Confinement(source.parent, [source.parent])
    reply = bpfobjects.serve({"source": "prog"}, [source.parent], "x86_64", confine)
    assert reply["ok"] and reply["name"] == "prog"
    assert base64.b64decode(reply["object"]) == Path(reply["path"]).read_bytes()
    reply = bpfobjects.serve({"source": "prog", "cflags": ["-Werror", "-DVERDICT=3"]},
                             [source.parent], "x86_64", confine)
    assert not reply["ok"] and "clang failed" in reply["error"]


ALLOWED = ["-DVERDICT=3", "-DX", "-UY", "-O2", "-Os", "-g", "-Wall", "-Werror",
           "-Wno-unused-variable", "-Wframe-larger-than=512", "-mcpu=v3", "-malu32",
           "-std=gnu11"]
REFUSED = ["-o", "/tmp/x", "-MF/tmp/x", "-MD", "-fplugin=/lib/x.so", "-Xclang", "-load",
           "-include", "/etc/passwd", "@/etc/passwd", "-Wp,-MD,/tmp/x", "-Wl,-T,/etc/x",
           "--config=/etc/x", "-B/tmp", "-mcpu=native", "-D", "-I", "-isystem/etc", 3]


def test_only_the_flags_a_bpf_build_needs_are_allowed(tmp_path):
    confine = bpfobjects.Confinement(tmp_path, [tmp_path])
    assert confine.flags(ALLOWED) == ALLOWED
    with pytest.raises(bpfobjects.CompileError) as e:
        confine.flags(ALLOWED + REFUSED)
    lines = str(e.value).splitlines()
    assert len(lines) == len(REFUSED) and all(line.startswith("refused cflag ") for line in lines)
    assert [line.split()[2] for line in lines] == [repr(f) + ":" for f in REFUSED]
    with pytest.raises(bpfobjects.CompileError, match="cflags must be a list"):
        confine.flags("-DX")


def test_include_dirs_must_be_inside_the_project(tmp_path):
    (tmp_path / "include").mkdir()
    confine = bpfobjects.Confinement(tmp_path, [tmp_path])
    assert confine.flags(["-Iinclude"]) == [f"-I{tmp_path.resolve() / 'include'}"]
    for outside in ("-I/usr/include", "-I../", f"-I{tmp_path}/include/../.."):
        with pytest.raises(bpfobjects.CompileError, match="must be inside the project"):
            confine.flags([outside])


def test_sources_outside_the_roots_are_refused_unseen(source, tmp_path):
    confine = bpfobjects.Confinement(tmp_path, [source.parent])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.c").write_text("int x;\n")
    for name in (str(elsewhere / "x.c"), "/etc/passwd", "/nonexistent/y.c",
                 str(source.parent / ".." / "elsewhere" / "x.c")):
        reply = bpfobjects.serve({"source": name}, [source.parent], "x86_64", confine)
        assert not reply["ok"] and reply["error"].startswith("refused BPF source "), name
    reply = bpfobjects.serve({"source": ["prog"]}, [source.parent], "x86_64", confine)
    assert "names its source as a string" in reply["error"]


def test_a_build_past_its_time_is_killed(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFVM_CACHE", str(tmp_path / "cache"))
    slow = tmp_path / "slow.c"  # 2^24 nested includes of itself: minutes of preprocessing
    slow.write_text('#if __INCLUDE_LEVEL__ < 24\n#include "slow.c"\n#include "slow.c"\n#endif\n')
    with pytest.raises(bpfobjects.CompileError, match=r"did not finish .*slow.c within 2s"):
        bpfobjects.build(slow, "x86_64", timeout=2)


def test_prebuild_builds_all_and_returns_errors(source):
    (source.parent / "broken.c").write_text("int x = ;\n")
    errors = bpfobjects.prebuild([source.parent], ["x86_64"])
    assert len(errors) == 1 and "broken.c" in errors[0]
    assert len(list(bpfobjects.objects_dir().glob("prog-x86_64-*.o"))) == 1
