"""The requirement markers: kernel(">=5.15"), kconfig("CONFIG_X"), arch("x86_64").

Parsing is strict (a malformed argument is an error for the test author),
and evaluation answers with a reason naming what is missing, or None when
the requirement holds. Shared by host (decides from the manifest) and
guest (decides from the running kernel).
"""
from __future__ import annotations

import operator
import re
from typing import Iterable, Optional

from .target import ARCHES, Target, parse_version

MARKERS = ("kernel", "kconfig", "arch")

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq,
        "!=": operator.ne, ">": operator.gt, "<": operator.lt}
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+\.\d+(?:\.\d+)?)\s*$")
_KCONFIG = re.compile(r"^(CONFIG_[A-Z0-9_]+)(?:=(y|m|n|\S+))?$")


class Hint(str):
    """Where to get what a marker asks for (its ``hint=``), said after a skip reason."""


class RequirementError(ValueError):
    """A marker argument that cannot be understood."""


class Undecided(Exception):
    """The facts needed (e.g. the kernel config) are not known here."""


def parse_kernel_spec(spec: str) -> list[tuple[str, tuple[int, int, int]]]:
    """'>=5.15,<6.2' -> [('>=', (5, 15, 0)), ('<', (6, 2, 0))]."""
    if not isinstance(spec, str) or not spec.strip():
        raise RequirementError(f"kernel marker needs a version spec like '>=5.15', got {spec!r}")
    clauses = []
    for part in spec.split(","):
        m = _CLAUSE.match(part)
        if not m:
            raise RequirementError(
                f"kernel marker: cannot parse {part.strip()!r} in {spec!r}; "
                "use comparisons like '>=5.15' or '>=5.15,<6.2'")
        clauses.append((m.group(1) or "==", parse_version(m.group(2))))
    return clauses


def version_matches(version: tuple[int, int, int], spec: str) -> bool:
    """Whether version satisfies every clause of spec ('>=5.15,<6.2')."""
    return all(_OPS[op](version, wanted) for op, wanted in parse_kernel_spec(spec))


def parse_kconfig(option: str) -> tuple[str, Optional[str]]:
    """'CONFIG_X' -> ('CONFIG_X', None) meaning y or m; 'CONFIG_X=y' -> exact."""
    m = _KCONFIG.match(option) if isinstance(option, str) else None
    if not m:
        raise RequirementError(
            f"kconfig marker: {option!r} is not an option name like 'CONFIG_NETDEVSIM' "
            "or 'CONFIG_NETDEVSIM=y'")
    return m.group(1), m.group(2)


def parse_arch(arch: str) -> str:
    if arch not in ARCHES:
        raise RequirementError(f"arch marker: unknown arch {arch!r}; known: {', '.join(ARCHES)}")
    return arch


def validate(name: str, args: Iterable) -> None:
    """Raise RequirementError for a malformed marker."""
    args = list(args)
    if not args:
        raise RequirementError(f"{name} marker needs at least one argument")
    parser = {"kernel": parse_kernel_spec, "kconfig": parse_kconfig, "arch": parse_arch}[name]
    for arg in args:
        parser(arg)


def check_kernel(target: Target, specs: Iterable[str]) -> Optional[str]:
    version = target.version_tuple()
    if version is None:
        raise Undecided
    for spec in specs:
        if not version_matches(version, spec):
            return f"kernel {target.describe()}: needs kernel {spec}"
    return None


def check_kconfig(target: Target, options: Iterable[str],
                  config: Optional[dict[str, str]]) -> Optional[str]:
    """Options may end with a Hint: 'kernel X: kernel lacks CONFIG_Y (HINT)'."""
    if config is None:
        raise Undecided
    options = list(options)
    hints = [o for o in options if isinstance(o, Hint)]
    missing = []
    for option in options:
        if isinstance(option, Hint):
            continue
        key, want = parse_kconfig(option)
        have = config.get(key, "n")
        ok = have in ("y", "m") if want is None else have == want
        if not ok:
            missing.append(option if have == "n" else f"{option} (is {key}={have})")
    if missing:
        hint = "".join(f" ({h})" for h in hints)
        return f"kernel {target.describe()}: kernel lacks {', '.join(missing)}{hint}"
    return None


def check_arch(target: Target, arches: Iterable[str]) -> Optional[str]:
    arches = [parse_arch(a) for a in arches]
    if target.arch not in arches:
        return f"kernel {target.describe()}: needs arch {' or '.join(arches)}, runs {target.arch}"
    return None


def evaluate(target: Target, marks: dict[str, list[list]],
             config: Optional[dict[str, str]]) -> Optional[str]:
    """First unmet requirement as a skip reason, or None.

    marks maps a marker name to the argument lists of each of its uses.
    Raises Undecided when a requirement cannot be decided from what is known.
    """
    checks = {"arch": lambda args: check_arch(target, args),
              "kernel": lambda args: check_kernel(target, args),
              "kconfig": lambda args: check_kconfig(target, args, config)}
    # A missing option says more than a version; without the config the version may decide.
    order = ("arch", "kconfig", "kernel") if config is not None else ("arch", "kernel", "kconfig")
    for name in order:
        for args in marks.get(name, []):
            reason = checks[name](args)
            if reason:
                return reason
    return None
