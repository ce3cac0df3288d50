"""Which of the host's option values the guest's pytest is given.

The guest loads the same conftest files and the same installed plugins (but
xdist), so it knows the same options; what it must not get is the host's
values of options that only mean something on the host (xdist's, JUnit's,
a log file, -x, another plugin's report or coverage options): a denylist
let each new one through. So the values handed over are an allowlist:

- the project's own options, those its conftest files add (a test body may
  read them: `--runslow`);
- bpfvm's options that guest-side code reads;
- the core options that shape how a failure is told (the guest formats the
  tracebacks and assertion diffs the host prints).

pytest-xdist does the same for its workers in its own way: they parse the
invocation arguments again and override a short list; a VM guest does not
load xdist, so its options could not be parsed there.
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Iterable

import pytest

BPFVM = ("update_golden",)
CORE = ("tbstyle", "showlocals", "verbose", "runxfail", "importmode")


class _Recorder:
    """Stands in for pytest's Parser to learn the dests a conftest's pytest_addoption adds."""

    def __init__(self) -> None:
        self.dests: list[str] = []

    def getgroup(self, *args: Any, **kwargs: Any) -> "_Recorder":
        return self

    def addoption(self, *names: str, **attrs: Any) -> None:
        long = next((n for n in names if n.startswith("--")), names[0] if names else "")
        self.dests.append(attrs.get("dest") or long.lstrip("-").replace("-", "_"))

    _addoption = addoption

    def addini(self, *args: Any, **kwargs: Any) -> None:
        pass


def conftest_dests(plugins: Iterable[object], pluginmanager: Any) -> list[str]:
    """The dests of the options the given conftest modules add."""
    recorder = _Recorder()
    for plugin in plugins:
        hook = getattr(plugin, "pytest_addoption", None)
        if not callable(hook):
            continue
        accepted = inspect.signature(hook).parameters
        kwargs = {"parser": recorder, "pluginmanager": pluginmanager}
        try:
            hook(**{k: v for k, v in kwargs.items() if k in accepted})
        except Exception:  # noqa: BLE001 - a conftest we cannot replay forwards nothing
            continue
    return recorder.dests


def conftests(config: pytest.Config) -> list[object]:
    return [p for p in config.pluginmanager.get_plugins()
            if str(getattr(p, "__file__", "") or "").endswith("conftest.py")]


def forwarded(config: pytest.Config) -> dict[str, Any]:
    """The option values the guest's pytest gets: name -> value (JSON-safe ones only)."""
    names = [*BPFVM, *CORE, *conftest_dests(conftests(config), config.pluginmanager)]
    options = {}
    for name in dict.fromkeys(names):
        if not hasattr(config.option, name):
            continue
        value = getattr(config.option, name)
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        options[name] = value
    return options
