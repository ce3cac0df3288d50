"""BPF objects built on the host and loaded in a real guest; item ordering
across modules when the host skips an item."""
import pytest

from conftest import VM_KERNEL

pytestmark = pytest.mark.slow
ID = f"[{VM_KERNEL}]"


def test_builds_compile_errors_and_own_sources(vm_runner):
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
        from harness import bpf

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
