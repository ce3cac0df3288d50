"""The selftests' annotations read from decl tags, and test_loader's log matching (pure logic)."""
import pytest

from bpfvm.annotations import (PRIV, UNPRIV, AnnotationError, Msg, Spec, compile_pattern,
                               first_mismatch, parse, program_flags)


def test_tag_forms_of_three_kernel_generations_read_the_same():
    old = ["comment:test_expect_failure", "comment:test_expect_msg=R0 !read_ok"]
    counted = ["comment:test_expect_failure", "comment:test_expect_msg=7=R0 !read_ok"]
    newest = ["comment:3:test_expect_failure", "comment:4:test_expect_msg=R0 !read_ok"]
    specs = [parse("p", "socket", tags) for tags in (old, counted, newest)]
    assert all(s.priv.expect_failure and [m.text for m in s.priv.msgs] == ["R0 !read_ok"]
               for s in specs)


def test_counters_put_messages_in_source_order():
    spec = parse("p", "socket", ["comment:9:test_expect_msg=second",
                                 "comment:2:test_expect_msg=first"])
    assert [m.text for m in spec.priv.msgs] == ["first", "second"]


def test_unpriv_mode_inherits_what_it_does_not_say():
    spec = parse("p", "socket", ["comment:test_expect_failure", "comment:test_retval=3",
                                 "comment:test_expect_msg=x", "comment:test_expect_success_unpriv"])
    assert spec.modes == [PRIV, UNPRIV]
    assert spec.priv.expect_failure and not spec.unpriv.expect_failure
    assert spec.unpriv.retval == 3 and [m.text for m in spec.unpriv.msgs] == ["x"]


def test_a_program_without_annotations_is_a_privileged_success_test():
    spec = parse("p", "socket", ["some_other_tag"])
    assert spec.modes == [PRIV] and not spec.priv.expect_failure and not spec.problems


def test_named_retvals_flags_and_caps():
    spec = parse("p", "socket", ["comment:test_retval=POINTER_VALUE",
                                 "comment:test_retval_unpriv=_INT_MIN",
                                 "comment:test_prog_flags=BPF_F_STRICT_ALIGNMENT",
                                 "comment:test_prog_flags=!BPF_F_TEST_REG_INVARIANTS",
                                 "comment:test_caps_unpriv=12|39"])
    assert spec.priv.retval == 0xbadcafe and spec.unpriv.retval == -(1 << 31)
    assert program_flags(spec, testing=(1 << 2) | (1 << 7)) == (1 << 0) | (1 << 2)
    assert spec.unpriv.caps == (1 << 12) | (1 << 39)


def test_retvals_are_c_ints_as_test_loader_keeps_them():
    assert parse("p", "socket", ["comment:test_retval=4294967294"]).priv.retval == -2
    assert parse("p", "socket", ["comment:test_retval=0xfffffffe"]).priv.retval == -2
    assert parse("p", "socket", ["comment:test_retval=-2"]).priv.retval == -2


def test_unreadable_tags_become_problems_not_exceptions():
    spec = parse("p", "socket", ["comment:test_retval=EINVAL", "comment:test_caps_unpriv=CAP_BPF",
                                 "comment:test_jited=movl", "comment:test_expect_stderr=x"])
    assert len(spec.problems) == 4
    assert "not a number" in spec.problems[0] and "__arch_*" in spec.problems[2]


def test_spec_survives_json():
    spec = parse("p", "tc", ["comment:test_expect_msg=a{{[0-9]}}", "comment:test_xlated=x",
                             "comment:test_description=d"])
    assert Spec.from_dict(spec.to_dict()) == spec


def test_patterns_are_verbatim_outside_braces():
    assert compile_pattern("r1 = *(u64 *)(r10 -8)").search("r1 = *(u64 *)(r10 -8)")
    assert compile_pattern("R{{[[:digit:]]+}} !read_ok").search("R0 !read_ok")
    with pytest.raises(AnnotationError, match="no closing"):
        compile_pattern("a{{b")


LOG = "0: (b7) r0 = 1\n1: (95) exit\nprocessed 2 insns\n"


@pytest.mark.parametrize("msgs, problem", [
    ([Msg("r0 = 1"), Msg("exit")], None),
    ([Msg("exit"), Msg("r0 = 1")], "expected substring 'r0 = 1' not found after"),
    ([Msg("r0 = {{[0-9]}}"), Msg("processed")], None),
    ([Msg("nothing like it")], "expected substring 'nothing like it' not found"),
    ([Msg("r0 = 1"), Msg("exit", negative=True), Msg("processed")], "unexpected substring 'exit' (__not_msg)"),
    ([Msg("exit"), Msg("r0 = 1", negative=True), Msg("processed")], None),
])
def test_messages_match_as_test_loader_validates_them(msgs, problem):
    found = first_mismatch(LOG, msgs)
    assert found == problem if problem is None else problem in found


def test_disassembly_lines_must_follow_each_other_until_an_ellipsis():
    text = "0: r1 = 1\n1: r2 = 2\n2: r3 = 3\n3: exit\n"
    spec = parse("p", "socket", ["comment:1:test_expect_xlated=0: r1 = 1",
                                 "comment:2:test_expect_xlated=2: r3 = 3"])
    assert "expected on line 2" in first_mismatch(text, spec.priv.xlated)
    spec = parse("p", "socket", ["comment:1:test_expect_xlated=0: r1 = 1",
                                 "comment:2:test_expect_xlated=...",
                                 "comment:3:test_expect_xlated=3: exit"])
    assert first_mismatch(text, spec.priv.xlated) is None
