"""Annotated BPF C files as test items, on two real kernels: every annotation bpfvm
checks, holding and not holding (tests/annotated/bpfvm_annotations.c)."""
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
KERNELS = ("6.1", "6.12")
SOURCE = Path(__file__).parent / "annotated" / "bpfvm_annotations.c"
MISSING = Path(__file__).parent / "annotated" / "bpfvm_missing_kfunc.c"

PASS = ["retval_holds", "failure_holds", "msg_regex_holds", "log_level_holds", "not_msg_holds",
        "unpriv_holds", "unpriv_holds@unpriv", "unpriv_wrong", "retval_unpriv_holds",
        "retval_unpriv_holds@unpriv", "flag_holds", "xlated_holds", "arch_x86_64_only",
        "jited_only", "newer_section_holds", "syscall_retval_holds"]
FAIL = {
    "retval_wrong": "test run on kernel {k} returned 3, expected 4",
    "success_wrong": "expected it to load on kernel {k}, but it was rejected: R0 !read_ok",
    "failure_wrong": "expected the verifier to reject it on kernel {k}, but it was accepted",
    "msg_wrong": "expected substring 'a message no verifier prints' not found",
    "msg_regex_wrong": "expected regex 'R{{{{[a-z]+}}}} !read_ok' not found",
    "msg_order_wrong": "expected substring '(b7) r0 = 1' not found after substring '(95) exit'",
    "log_level_wrong": "expected substring '(b7) r0 = 1' not found",
    "not_msg_wrong": "unexpected substring 'R0 !read_ok' (__not_msg) found",
    "unpriv_wrong@unpriv": "but it was rejected: R0 leaks addr",
    "flag_wrong": "but it was accepted",
    "xlated_wrong": "translated program on kernel {k}: expected substring '0: r0 = 4' not found",
}
SKIP = {"arch_arm64_only": "annotated for ARM64 only (__arch_*)",
        "jited_text": "__jited needs a disassembler of JITed code"}
MISSING_SKIP = {"kfunc_missing": "the kernel has no kfunc bpfvm_no_such_kfunc"}


@pytest.mark.skipif(shutil.which("clang-19") is None and shutil.which("clang") is None,
                    reason="host: no clang")
def test_every_annotation_holds_and_fails_where_it_should_on_two_kernels(vm_runner):
    (vm_runner.base / "pytest.ini").write_text("[pytest]\n")
    own = vm_runner.base / "own"
    own.mkdir()
    shutil.copy(SOURCE, own)
    shutil.copy(MISSING, own)
    (own / "plain.c").write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                                 'SEC("socket") int plain(void *ctx) { return 0; }\n')
    stray = vm_runner.base / "stray"
    stray.mkdir()
    shutil.copy(SOURCE, stray)
    run = vm_runner.run("own/bpfvm_annotations.c", "own/bpfvm_missing_kfunc.c", "own/plain.c",
                        "-v", kernel=",".join(KERNELS))
    names = {name.split("[")[0] for name in run.outcomes}
    assert names == {*PASS, *FAIL, *SKIP, *MISSING_SKIP}, run.output  # no auxiliary, plain, stray
    for k in KERNELS:
        for name in PASS:
            assert run.outcome(f"{name}[{k}]") == "passed", (name, k, run.message(f"{name}[{k}]"))
        for name, needle in FAIL.items():
            assert run.outcome(f"{name}[{k}]") == "failed", (name, k)
            assert needle.format(k=k) in run.message(f"{name}[{k}]"), (name, k)
        for name, reason in {**SKIP, **MISSING_SKIP}.items():
            assert run.outcome(f"{name}[{k}]") == "skipped", (name, k)
            assert f"kernel {k}: {reason}" in run.message(f"{name}[{k}]")
    failed = next(run.message(f"retval_wrong[{k}]") for k in KERNELS)
    assert "--- verifier log ---" in failed
    items = len(PASS) + len(FAIL) + len(SKIP)
    counts = (f"bpfvm_annotations.c: {items * 2} items, {len(PASS) * 2} passed, "
              f"{len(FAIL) * 2} failed, {len(SKIP) * 2} skipped")
    assert counts in run.output, run.output
    assert run.returncode == 1
    assert not vm_runner.leftovers()
