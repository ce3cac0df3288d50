"""BPF objects built on the host and loaded in a real guest; item ordering
across modules when the host skips an item."""
import subprocess
from pathlib import Path

import pytest

from conftest import VM_KERNEL
from bpfvm.target import host_arch

pytestmark = pytest.mark.slow
ID = f"[{VM_KERNEL}]"


@pytest.mark.fault("a C compile error; a missing BPF source")
def test_builds_compile_errors_and_own_sources(vm_runner, fault_outcome):
    progs = vm_runner.base / "progs"
    progs.mkdir()
    (progs / "mine.c").write_text("""
        #include <linux/bpf.h>
        #include <bpf/bpf_helpers.h>
        #ifndef VERDICT
        #error pass -DVERDICT=n
        #endif
        SEC("xdp") int mine(struct xdp_md *ctx) { return VERDICT; }
        char LICENSE[] SEC("license") = "GPL";
    """)
    bpf_dir = vm_runner.base / "bpf"
    bpf_dir.mkdir()
    (bpf_dir / "broken.c").write_text("int broken(void) { return missing_symbol; }\n")
    vm_runner.write("""
        from bpfvm import bpf

        def test_own_source_with_flags(bpf_object):
            obj = bpf_object("progs/mine.c", cflags=["-DVERDICT=3"])
            assert obj.program("mine").test_run(bytes(64)).retval == 3

        def test_compile_error(bpf_object):
            bpf_object("broken")

        def test_missing_source(bpf_object):
            bpf_object("absent")

        def test_without_flag(bpf_object):
            bpf_object("progs/mine.c")

        def test_after(bpf_object):
            assert bpf_object("progs/mine.c", cflags=["-DVERDICT=1"]).programs
    """)
    run = vm_runner.run("-v")
    assert run.outcome(f"test_own_source_with_flags{ID}") == "passed", run.output
    error = run.message(f"test_compile_error{ID}")
    assert "BuildError" in error and "broken.c:1" in error and "missing_symbol" in error
    assert "no BPF source absent.c in" in run.message(f"test_missing_source{ID}")
    assert "pass -DVERDICT=n" in run.message(f"test_without_flag{ID}")
    assert run.outcome(f"test_after{ID}") == "passed"
    diagnostic = next(line for line in error.splitlines() if "error:" in line)
    fault_outcome(f"{diagnostic.strip()} / {run.message(f'test_missing_source{ID}')}")


def test_item_skipped_on_host_between_modules(vm_runner):
    """The guest must not keep module one's fixtures for an item it never runs."""
    vm_runner.write("""
        @pytest.fixture(scope="module")
        def resource():
            yield "one"

        def test_a(resource):
            assert resource == "one"

        @pytest.mark.kernel("<3.0")
        def test_b_skipped_on_host():
            pass
    """, name="test_one.py")
    vm_runner.write("""
        def test_c():
            pass
    """, name="test_two.py")
    run = vm_runner.run("-v")
    assert run.outcome(f"test_a{ID}") == "passed"
    assert "needs kernel <3.0" in run.message(f"test_b_skipped_on_host{ID}")
    assert run.outcome(f"test_c{ID}") == "passed", run.output


PASS_XDP = """
__attribute__((section("xdp"), used)) int pass(void *ctx) { return 2; }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
"""


@pytest.mark.fault("an object built for the wrong target (host arch, big-endian BPF)")
def test_prebuilt_objects_load_and_wrong_targets_say_so(vm_runner, fault_outcome):
    source = vm_runner.base / "pass.c"
    source.write_text(PASS_XDP)
    for out, target in (("good.o", ["-target", "bpf"]), ("native.o", []),
                        ("bigendian.o", ["-target", "bpfeb"])):
        subprocess.run(["clang", *target, "-O2", "-c", str(source), "-o",
                        str(vm_runner.base / out)], check=True)
    vm_runner.write("""
        def test_good(bpf_object):
            assert bpf_object("good.o").program("pass").test_run(bytes(64)).retval == 2
        def test_native(bpf_object):
            bpf_object("native.o")
        def test_bigendian(bpf_object):
            bpf_object("bigendian.o")
        def test_absent(bpf_object):
            bpf_object("absent.o")
        def test_after(bpf_object):
            assert bpf_object("good.o").programs
    """)
    run = vm_runner.run("-v")
    assert run.outcome(f"test_good{ID}") == "passed", run.output
    native = run.message(f"test_native{ID}")
    machine = {"x86_64": "x86-64", "arm64": "aarch64"}[host_arch()]
    assert f"loading native.o: an object built for {machine}, not BPF: build it with clang " \
           "-target bpf" in native
    assert "loading bigendian.o: a big-endian BPF object, and this kernel is " \
           "little-endian" in run.message(f"test_bigendian{ID}")
    assert "no BPF object" in run.message(f"test_absent{ID}")
    assert run.outcome(f"test_after{ID}") == "passed"
    fault_outcome(native)


HOSTILE_FLAGS = {"output": ["-o", "/tmp/bpfvm-pwned.o"], "depfile": ["-MF/tmp/bpfvm-pwned.d"],
                 "plugin": ["-fplugin=/tmp/x.so"], "load": ["-Xclang", "-load", "-Xclang", "/x.so"],
                 "include": ["-include", "/etc/passwd"], "response": ["@/etc/passwd"],
                 "incdir": ["-I/etc"]}


@pytest.mark.fault("a guest's build request: hostile clang flags, a host file, minutes of work")
def test_hostile_build_requests_are_refused(vm_runner, fault_outcome):
    progs = vm_runner.base / "progs"
    progs.mkdir()
    (progs / "mine.c").write_text(PASS_XDP)
    (progs / "slow.c").write_text(  # 2^24 nested includes of itself: minutes for clang
        '#if __INCLUDE_LEVEL__ < 24\n#include "slow.c"\n#include "slow.c"\n#endif\n')
    outside = vm_runner.base.parent / "outside.c"
    outside.write_text(PASS_XDP)
    vm_runner.write(f"""
        FLAGS = {HOSTILE_FLAGS!r}

        @pytest.mark.parametrize("flags", FLAGS.values(), ids=FLAGS.keys())
        def test_flags(bpf_object, flags):
            bpf_object("progs/mine.c", cflags=flags)

        def test_outside(bpf_object):
            bpf_object({str(outside)!r})

        def test_host_file(bpf_object):
            bpf_object("/etc/passwd")

        def test_slow(bpf_object):
            bpf_object("progs/slow.c")

        def test_after(bpf_object):
            obj = bpf_object("progs/mine.c", cflags=["-DN=1", "-O2", "-Wall", "-mcpu=v3", "-Iprogs"])
            assert obj.program("pass").test_run(bytes(64)).retval == 2
    """)
    run = vm_runner.run("-v", "--bpfvm-timeout=60")
    for name, flags in HOSTILE_FLAGS.items():
        message = run.message(f"test_flags[{name}-{VM_KERNEL}]")
        assert "BuildError" in message, run.output
        assert f"refused cflag {flags[0]!r}" in message
        assert "root:" not in message
    assert not list(Path("/tmp").glob("bpfvm-pwned*"))
    assert f"refused BPF source {outside}" in run.message(f"test_outside{ID}")
    host_file = run.message(f"test_host_file{ID}")
    assert "refused BPF source /etc/passwd" in host_file and "root:" not in host_file
    slow = run.message(f"test_slow{ID}")
    assert "clang did not finish" in slow and "the time the test had left" in slow, run.output
    assert run.outcome(f"test_after{ID}") == "passed", "the VM did not survive"
    fault_outcome(run.message(f"test_flags[output-{VM_KERNEL}]") + "\n" + slow,
                  also=["did not finish"])
