"""Annotated BPF C files as pytest items: one per program, mode and kernel.

``pytest progs/verifier_and.c --kernel 6.1,6.12`` collects
``verifier_and.c::invalid_and_of_negative_number[6.12]`` (and
``...@unpriv[6.12]`` for a program with unprivileged expectations). On the
host the file is compiled for each kernel and its annotations read from the
object's BTF (host/selftests); the guest gets the Specs in its session and
asks the host for the object when an item runs, like any BPF build.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from . import properties as P
from . import vlog
from .annotations import UNPRIV, Spec
from .plugin import _start_host_run, _targets, guest_target

BUILT = pytest.StashKey[dict]()        # host: (path, kernel id) -> host.selftests.collect.Built
GUEST_SPECS = pytest.StashKey[dict]()  # guest: path -> [Spec dicts], from the session


class AnnotationFailure(AssertionError):
    """An expectation that did not hold; its text is the whole report."""


def item_name(spec: Spec, mode: str) -> str:
    return spec.program + ("@unpriv" if mode == UNPRIV else "")


class AnnotatedFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        if guest_target() is not None:
            per_kernel = [(guest_target(), [Spec.from_dict(d) for d in
                                            self.config.stash.get(GUEST_SPECS, {})
                                            .get(str(self.path), [])])]
        else:
            per_kernel = [(t, self._host_specs(t)) for t in _targets(self.config) or []]
        for target, specs in per_kernel:
            for spec in specs:
                if spec.auxiliary:
                    continue
                for mode in spec.modes:
                    yield AnnotatedProgram.from_parent(
                        self, name=f"{item_name(spec, mode)}[{target.id}]", spec=spec,
                        mode=mode, target=target, specs=specs)

    def _host_specs(self, target: Any) -> list[Spec]:
        from .host.selftests import collect

        built = self.config.stash.setdefault(BUILT, {})
        key = (str(self.path), target.id)
        if key not in built:
            _start_host_run(self.config).materialize(target)
            built[key] = collect.build(self.path, target, clang(self.config))
        return built[key].specs


def compile_errors(config: pytest.Config) -> dict[str, str]:
    """"file (kernel)" -> why it did not compile, for the files this process built."""
    return {f"{Path(path).name} ({kernel})": built.error
            for (path, kernel), built in config.stash.get(BUILT, {}).items() if built.error}


def clang(config: pytest.Config) -> str:
    """The compiler of annotated files: ini bpfvm_selftests_clang, else the newest clang-N."""
    from .host.selftests import recipe

    return config.getini("bpfvm_selftests_clang") or recipe.newest_clang()


class AnnotatedProgram(pytest.Item):
    def __init__(self, *, spec: Spec, mode: str, target: Any, specs: list[Spec],
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.spec, self.mode, self.target, self.specs = spec, mode, target, specs
        self.annotated_target = target  # what plugin.target_of reads
        if spec.description:
            self.user_properties.append(("description", spec.description))

    def reportinfo(self) -> tuple[Path, Optional[int], str]:
        return self.path, None, self.name

    def runtest(self) -> None:
        from .arches import ARCH
        from .guest import compiled
        from .guest.bpf.annotated import check

        reply = compiled.call({"call": "annotated", "source": str(self.path)})
        data = base64.b64decode(reply["object"])
        outcome = check(self.spec, self.mode, data, self.path.stem, self.specs,
                        ARCH[self.target.arch].selftests, self.target.id)
        if outcome.skip:
            pytest.skip(outcome.skip)
        self.user_properties.append((P.VERDICT, {
            "program": f"{self.path.stem}:{item_name(self.spec, self.mode)}",
            "kernel": self.target.id, "accepted": outcome.accepted,
            "message": outcome.message}))
        if outcome.failure:
            about = f" ({self.spec.description})" if self.spec.description else ""
            raise AnnotationFailure(
                f"{self.path.name}::{item_name(self.spec, self.mode)}{about}: {outcome.failure}\n"
                f"kernel's message: {outcome.message or '(accepted)'}\n"
                f"--- verifier log ---\n{vlog.tail(outcome.log) or '(empty)'}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
        if isinstance(excinfo.value, AnnotationFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


def candidate(config: pytest.Config, path: Path) -> bool:
    """Whether a .c file is one to collect: named on the command line, or under a
    directory named there or an ini bpfvm_selftests path and annotated-looking."""
    if guest_target() is not None:
        return str(path) in config.stash.get(GUEST_SPECS, {})
    named, roots = _selected(config)
    if str(path) in named:
        return True
    if not any(str(path).startswith(root) for root in roots):
        return False
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return any(word in text for word in LOOKS_ANNOTATED)


SELECTED = pytest.StashKey[tuple[frozenset, tuple]]()


def _selected(config: pytest.Config) -> tuple[frozenset, tuple]:
    """(the paths named on the command line, the directories whose annotated files
    are collected, each ending in /), worked out once: pytest asks about every
    file of a directory once per argument in it."""
    if SELECTED not in config.stash:
        given = []
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            given = [Path(config.invocation_params.dir, a.split("::")[0]) for a in config.args]
        given += config.getini("bpfvm_selftests")
        paths = [p for g in given for p in (g.absolute(), g.resolve())]
        dirs = [p for p in paths if p.is_dir()]
        config.stash[SELECTED] = (frozenset(map(str, paths)),
                                  tuple(dict.fromkeys(os.path.join(d, "") for d in dirs)))
    return config.stash[SELECTED]


LOOKS_ANNOTATED = ("__success", "__failure", "__msg(", "__retval(", "__description(",
                   "test_expect_")
