"""The kernel selftests' test annotations as data (plain data, host and guest alike).

progs/bpf_misc.h's macros (``__success``, ``__msg("...")``, ``__retval(0)``,
...) compile into BTF decl tags on the program's FUNC, ``comment:test_...``
(newer trees put a counter in them, ``comment:12:test_...``, because
compilers do not keep their order). The host reads the tags of each program
(host/selftests), turns them into a Spec here and hands the Specs to the
guest, which loads the program as the kernel's test_loader.c does and checks
the log with first_mismatch().
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional

PRIV, UNPRIV = "priv", "unpriv"
POINTER_VALUE = 0xbadcafe  # __retval(POINTER_VALUE): any return value will do
TEST_DATA_LEN = 64  # the bytes of zeroes a test run gets as its packet
# The names __retval() may give (stringified unexpanded, so the loader knows them).
NAMED_RETVALS = {"INT_MIN": -(1 << 31), "_INT_MIN": -(1 << 31),
                 "POINTER_VALUE": POINTER_VALUE, "TEST_DATA_LEN": TEST_DATA_LEN}

# The program flags __flag() may name (include/uapi/linux/bpf.h).
PROG_FLAGS = {
    "BPF_F_STRICT_ALIGNMENT": 1 << 0, "BPF_F_ANY_ALIGNMENT": 1 << 1,
    "BPF_F_TEST_RND_HI32": 1 << 2, "BPF_F_TEST_STATE_FREQ": 1 << 3,
    "BPF_F_SLEEPABLE": 1 << 4, "BPF_F_XDP_HAS_FRAGS": 1 << 5,
    "BPF_F_XDP_DEV_BOUND_ONLY": 1 << 6, "BPF_F_TEST_REG_INVARIANTS": 1 << 7,
}
# What test_loader sets on every program when the kernel takes it (testing_prog_flags()).
TESTING_FLAGS = ("BPF_F_TEST_RND_HI32", "BPF_F_TEST_REG_INVARIANTS")

_TAG = re.compile(r"comment:(?:(\d+):)?(test_[a-z_]+|load_mode)(?:=(.*))?", re.S)
# Tags a tree's macros make unique with a counter after the key, "test_expect_msg=3=text".
_COUNTED = {f"{k}{u}" for k in ("test_expect_msg", "test_expect_not_msg", "test_expect_xlated",
                                 "test_jited") for u in ("", "_unpriv")}
_COUNTED_PREFIX = re.compile(r"\d+=")
_POSIX_CLASSES = {"[:digit:]": "0-9", "[:space:]": r"\s", "[:alpha:]": "A-Za-z",
                  "[:alnum:]": "A-Za-z0-9", "[:xdigit:]": "0-9A-Fa-f", "[:upper:]": "A-Z",
                  "[:lower:]": "a-z", "[:punct:]": r"!-/:-@\[-`{-~"}


class AnnotationError(ValueError):
    """A tag the loader cannot make sense of; the program's item fails with it."""


@dataclasses.dataclass
class Msg:
    """One expected (or, negative, unexpected) text of a log or a disassembly."""
    text: str
    negative: bool = False
    next_line: bool = False  # __xlated/__jited: on the line after the previous match

    @property
    def is_regex(self) -> bool:
        return "{{" in self.text

    def compile(self) -> "re.Pattern[str]":
        return compile_pattern(self.text)

    def describe(self) -> str:
        return f"{'regex' if self.is_regex else 'substring'} {self.text!r}"


@dataclasses.dataclass
class Mode:
    """What is expected of one load: privileged, or with capabilities dropped."""
    expect_failure: bool = False
    msgs: list[Msg] = dataclasses.field(default_factory=list)
    xlated: list[Msg] = dataclasses.field(default_factory=list)
    jited: list[Msg] = dataclasses.field(default_factory=list)
    retval: Optional[int] = None  # run with BPF_PROG_TEST_RUN when set (and it loads)
    caps: int = 0  # capabilities an unprivileged load keeps (__caps_unpriv)


@dataclasses.dataclass
class Spec:
    """A program of an annotated file and what the annotations expect of it."""
    program: str
    section: str
    description: str = ""
    modes: list[str] = dataclasses.field(default_factory=list)
    priv: Mode = dataclasses.field(default_factory=Mode)
    unpriv: Mode = dataclasses.field(default_factory=Mode)
    log_level: int = 0
    flags_set: int = 0
    flags_clear: int = 0
    arches: list[str] = dataclasses.field(default_factory=list)  # X86_64, ARM64: none is all
    load_mode: str = ""  # "jited" or "no_jited" (__load_if_JITed, __load_if_no_JITed)
    auxiliary: bool = False
    btf_path: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)

    def mode(self, name: str) -> Mode:
        return self.unpriv if name == UNPRIV else self.priv

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Spec":
        fields = dict(data)
        for name in (PRIV, UNPRIV):
            mode = dict(fields[name])
            for key in ("msgs", "xlated", "jited"):
                mode[key] = [Msg(**m) for m in mode[key]]
            fields[name] = Mode(**mode)
        return cls(**fields)


def is_annotation(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def ordered(tags: list[str]) -> list[str]:
    """Tags in source order: by their counter where the tree's macros add one
    (test_loader sorts them with strverscmp), else as the compiler emitted them."""
    def counter(tag: str) -> int:
        m = _TAG.fullmatch(tag)
        return int(m.group(1)) if m and m.group(1) else -1
    return sorted(tags, key=counter)


def parse(program: str, section: str, tags: list[str]) -> Spec:
    """The Spec of one program from its decl tags (tags that are no annotation
    are ignored); a tag that cannot be read becomes one of spec.problems."""
    spec = Spec(program, section)
    has_unpriv_result = has_unpriv_retval = False
    jit_arch_seen = False
    for tag in ordered(tags):
        m = _TAG.fullmatch(tag)
        if m is None:
            continue
        key, value = m.group(2), m.group(3)
        if m.group(1) is None and value is not None and key in _COUNTED:
            value = _COUNTED_PREFIX.sub("", value, count=1)
        try:
            if key in ("test_jited", "test_jited_unpriv") and not jit_arch_seen:
                raise AnnotationError("__jited used before __arch_*")
            got = _apply(spec, key, value)
        except AnnotationError as e:
            spec.problems.append(f"{tag!r}: {e}")
            continue
        has_unpriv_result |= key in ("test_expect_failure_unpriv", "test_expect_success_unpriv")
        has_unpriv_retval |= key == "test_retval_unpriv"
        jit_arch_seen |= key == "test_arch"
        if got and got not in spec.modes:
            spec.modes.append(got)
    if not spec.modes:
        spec.modes.append(PRIV)
    spec.modes.sort(key=(PRIV, UNPRIV).index)
    if not has_unpriv_result:
        spec.unpriv.expect_failure = spec.priv.expect_failure
    if not has_unpriv_retval:
        spec.unpriv.retval = spec.priv.retval
    for key in ("msgs", "xlated", "jited"):
        if not getattr(spec.unpriv, key):
            setattr(spec.unpriv, key, [dataclasses.replace(m) for m in getattr(spec.priv, key)])
    return spec


def _apply(spec: Spec, key: str, value: Optional[str]) -> Optional[str]:
    """Record one tag on spec; the mode it names, if it names one."""
    unpriv = key.endswith("_unpriv")
    mode_name = UNPRIV if unpriv else PRIV
    mode = spec.mode(mode_name)
    base = key[:-len("_unpriv")] if unpriv else key
    if base == "test_description":
        spec.description = value or ""
        return None
    if base in ("test_expect_failure", "test_expect_success"):
        mode.expect_failure = base == "test_expect_failure"
        return mode_name
    if base == "test_auxiliary":
        spec.auxiliary = True
        return mode_name
    if base in ("test_expect_msg", "test_expect_not_msg"):
        mode.msgs.append(Msg(_text(value), negative=base == "test_expect_not_msg"))
        return mode_name
    if base in ("test_expect_xlated", "test_jited"):
        _push_disasm(mode.xlated if base == "test_expect_xlated" else mode.jited, _text(value))
        return mode_name
    if base == "test_retval":
        mode.retval = parse_retval(_text(value))
        return mode_name
    if key == "test_log_level":
        spec.log_level = parse_int(_text(value))
    elif key == "test_prog_flags":
        _flag(spec, _text(value))
    elif key == "test_arch":
        spec.arches.append(_text(value).upper() if _text(value) == "s390x" else _text(value))
    elif key == "test_btf_path":
        spec.btf_path = _text(value)
    elif key == "test_caps_unpriv":
        spec.unpriv.caps |= parse_caps(_text(value))
        return UNPRIV
    elif key == "load_mode":
        if value not in ("jited", "no_jited"):
            raise AnnotationError(f"load mode {value!r} is neither jited nor no_jited")
        spec.load_mode = value
    else:
        raise AnnotationError("an annotation bpfvm does not know")
    return None


def _text(value: Optional[str]) -> str:
    if value is None:
        raise AnnotationError("the tag carries no value")
    return value


def _push_disasm(msgs: list[Msg], text: str) -> None:
    """__xlated/__jited lines: each on the line after the previous, until a '...'."""
    if text == "...":
        msgs.append(Msg("...", next_line=False))
        return
    next_line = bool(msgs) and msgs[-1].text != "..."
    msgs.append(Msg(text, next_line=next_line))


def parse_int(text: str) -> int:
    try:
        return int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text, 10)
    except ValueError:
        raise AnnotationError(f"{text!r} is not a number") from None


def parse_retval(text: str) -> int:
    """As test_loader keeps it: a C int, so 0xfffffffe is -2 (a test run's return is too)."""
    value = NAMED_RETVALS[text] if text in NAMED_RETVALS else parse_int(text)
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def parse_caps(text: str) -> int:
    mask = 0
    for token in text.split("|"):
        if token.startswith("CAP_"):
            raise AnnotationError(f"{token} is not defined as a number in the tree's bpf_misc.h")
        cap = parse_int(token.strip())
        if cap <= 0 or cap >= 64:
            raise AnnotationError(f"capability {token!r} is out of range")
        mask |= 1 << cap
    return mask


def _flag(spec: Spec, text: str) -> None:
    clear = text.startswith("!")
    name = text[1:] if clear else text
    value = PROG_FLAGS[name] if name in PROG_FLAGS else parse_int(name)
    if clear:
        spec.flags_clear |= value
        spec.flags_set &= ~value
    else:
        spec.flags_set |= value
        spec.flags_clear &= ~value


def program_flags(spec: Spec, testing: int) -> int:
    """The flags a program is loaded with: test_loader's testing flags the
    kernel takes, with the annotated ones set and cleared."""
    return (testing | spec.flags_set) & ~spec.flags_clear


# -- matching ---------------------------------------------------------------------


def compile_pattern(text: str) -> "re.Pattern[str]":
    """test_loader's patterns: verbatim text with POSIX extended regexes in {{ }}."""
    parts, rest, in_regex = [], text, False
    while rest:
        marker = "}}" if in_regex else "{{"
        head, found, rest = rest.partition(marker)
        if in_regex:
            for posix, python in _POSIX_CLASSES.items():
                head = head.replace(posix, python)
            parts.append(head)
        else:
            parts.append(re.escape(head))
        if not found:
            if in_regex:
                raise AnnotationError(f"{text!r} has an open '{{{{' but no closing '}}}}'")
            break
        in_regex = not in_regex
    try:
        return re.compile("".join(parts), re.M)
    except re.error as e:
        raise AnnotationError(f"{text!r} is not a regex Python can read: {e}") from None


def _find(msg: Msg, log: str, pos: int) -> Optional[tuple[int, int]]:
    if msg.is_regex:
        m = msg.compile().search(log, pos)
        return (m.start(), m.end()) if m else None
    at = log.find(msg.text, pos)
    return (at, at + len(msg.text)) if at >= 0 else None


def first_mismatch(log: str, msgs: list[Msg]) -> Optional[str]:
    """Why log does not hold msgs as test_loader's validate_msgs reads them, or None.

    Positive messages match in order, each after the previous match; a
    negative one may not appear between the positive ones around it; a
    next_line one must be on the line after the previous match. '...'
    entries only end a run of next_line lines.
    """
    msgs = [m for m in msgs if m.text != "..."]
    positions: list[Optional[tuple[int, int]]] = [None] * len(msgs)
    pos = 0
    for i, msg in enumerate(msgs):
        if msg.negative:
            continue
        found = _find(msg, log, pos)
        if found is not None:
            positions[i], pos = found, found[1]
    prev: Optional[tuple[int, int]] = None
    start = 0
    for i, msg in enumerate(msgs):
        if msg.negative:
            after = next((positions[j] for j in range(i + 1, len(msgs))
                          if not msgs[j].negative), None)
            end = after[0] if after else len(log)
            found = _find(msg, log, start)
            if found is not None and found[1] <= end:
                return f"unexpected {msg.describe()} (__not_msg) found"
            continue
        found = positions[i]
        if found is None:
            return f"expected {msg.describe()} not found" + (
                f" after {msgs[i - 1].describe()}" if i else "")
        if msg.next_line and prev is not None:
            expected_line = log.count("\n", 0, prev[0]) + 1
            actual = log.count("\n", 0, found[0])
            if actual != expected_line:
                return (f"{msg.describe()} is on line {actual + 1}, expected on line "
                        f"{expected_line + 1} (right after the previous match)")
        prev, start = found, found[1]
    return None
