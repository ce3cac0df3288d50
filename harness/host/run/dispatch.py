"""Running one pytest item in a VM and turning the outcome into reports."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

import pytest
from pytest import TestReport

from ...plugin import target_of
from ...protocol import END, Ev, Op, boundary
from ...protocol import excerpt as protocol_excerpt
from ...target import Target
from ..vm import console
from ..vm.vm import Vm, VmBadMessage, VmError, VmTimeout

PHASES = ("setup", "call", "teardown")
SKIP_ON_HOST = pytest.StashKey[bool]()  # an item whose skip the host decided: never sent


def deserialize(config: pytest.Config, message: dict[str, Any], nodeid: str) -> TestReport:
    """The report in a report event, if it is one of the test in flight; else VmBadMessage."""
    try:
        report = config.hook.pytest_report_from_serializable(config=config, data=message["data"])
    except Exception as e:  # noqa: BLE001 - any malformed report is the guest's fault
        raise VmBadMessage(f"the guest sent a report pytest cannot read ({type(e).__name__}: "
                           f"{e}): {protocol_excerpt(message)}") from None
    if not isinstance(report, TestReport) or report.nodeid != nodeid:
        raise VmBadMessage(f"the guest sent a report that is not of {nodeid}: "
                           f"{protocol_excerpt(message)}")
    if isinstance(report.longrepr, list):  # a skip's (path, lineno, reason), a list in JSON
        report.longrepr = tuple(report.longrepr)
    return report


def next_in_guest(target: Target, nextitem: Optional[pytest.Item]) -> Optional[str]:
    """The node id the guest will run next, when known, so it keeps the
    fixtures they share; None makes it tear everything down. An item the
    host skips never reaches the guest, so it is not a next item there."""
    if nextitem is None or nextitem.stash.get(SKIP_ON_HOST, False):
        return None
    next_target = target_of(nextitem)
    return nextitem.nodeid if next_target is not None and next_target.id == target.id else None


def synthesize(item: pytest.Item, got: list[TestReport], message: str) -> list[TestReport]:
    """The reports of a test whose guest never finished it: got, then the rest.

    The phase that was running fails with message; a teardown report follows
    so that reporters (junit among them) see the test end.
    """
    done = {r.when for r in got}
    phase = next((p for p in PHASES if p not in done), "teardown")
    reports = got + [TestReport(item.nodeid, item.location, {}, "failed", message, phase)]
    if phase != "teardown":
        reports.append(TestReport(item.nodeid, item.location, {}, "passed", None, "teardown"))
    return reports


def blame_splat(reports: list[TestReport], excerpt: str, log_path: str) -> None:
    """Fail a test whose run put a kernel oops/BUG/WARNING on the console."""
    message = (f"the kernel reported a problem on the console during this test "
               f"(console log: {log_path}):\n{excerpt}")
    target = next((r for r in reports if r.when == "call"), reports[-1] if reports else None)
    if target is None:
        return
    if target.passed or target.skipped:
        target.outcome = "failed"
        target.longrepr = message
    else:
        target.sections.append(("kernel console", message))


Serve = Callable[[dict[str, Any], float], dict[str, Any]]
REPLY_MARGIN = 5.0  # seconds of a test's time kept for the reply and its reports


def answer(serve: Serve, request: dict[str, Any], deadline: float) -> dict[str, Any]:
    """serve's reply, given the test's time left but REPLY_MARGIN; a host-side
    failure becomes an error reply, so the guest's test fails with it instead
    of waiting for a reply that never comes."""
    try:
        return serve(request, max(1.0, deadline - time.monotonic() - REPLY_MARGIN))
    except Exception as e:  # noqa: BLE001 -- any failure must reach the guest
        return {"ok": False, "error": f"the host failed to answer {request.get('call')!r}: {e!r}"}


def run(vm: Vm, item: pytest.Item, nextid: Optional[str], seq: int, timeout: float,
        serve: Serve) -> tuple[list[TestReport], Optional[VmError], list[console.Problem]]:
    """Run item in vm; (reports, the VM error that ended it if any, kernel
    problems on the console since the last test that are not this test's).

    serve answers the guest's calls made during the test (BPF builds) in the
    time the test has left.
    """
    config = item.config
    reports: list[TestReport] = []
    deadline = time.monotonic() + timeout
    try:
        vm.send({"op": Op.RUN, "nodeid": item.nodeid, "next": nextid, "seq": seq})
        while True:
            message = vm.receive(deadline, what=item.nodeid)
            if message["ev"] == Ev.REPORT:
                reports.append(deserialize(config, message, item.nodeid))
            elif message["ev"] == Ev.MISSING:
                errors = "\n".join(message["errors"]) or "(no collection errors)"
                return synthesize(item, reports,
                                  f"the guest did not collect {item.nodeid}:\n{errors}"), None, []
            elif message["ev"] == Ev.CALL:
                vm.send({"op": Op.REPLY, **answer(serve, message, deadline)})
            elif message["ev"] == Ev.DONE:
                break
            elif message["ev"] == Ev.ERROR:
                raise VmError(f"{message['error']} (console log: {vm.log_path})")
    except VmTimeout as e:
        head = f"timed out after {timeout:.0f}s (bpfvm_timeout); the VM was killed"
        return synthesize(item, reports, f"{head}: {e}"), e, []
    except VmBadMessage as e:
        return synthesize(item, reports, f"{e}; the VM was killed and is booted anew"), e, []
    except VmError as e:
        return synthesize(item, reports, f"the guest VM died: {e}"), e, []
    text = vm.wait_console(boundary(END, seq) + "\n")
    splat, problems, note = vm.watch.test_ended(text, seq, item.nodeid, item.location)
    if splat:
        blame_splat(reports, splat, str(vm.log_path))
    if note and reports:
        reports[-1].sections.append(("kernel console", note))
    return reports, None, problems


def console_reports(target: Target, problem: console.Problem, log_path: str) -> list[TestReport]:
    """A kernel problem no test window holds, as reports: an error of the test it
    came just after (within the grace period), else a failure of its own,
    bpfvm-console::KIND[kernel], like a collection error."""
    message = (f"the kernel {target.describe()} reported a problem on the console "
               f"{problem.where} (console log: {log_path}):\n{problem.excerpt}")
    if problem.test is not None:
        nodeid, location = problem.test
        return [TestReport(nodeid, location, {}, "failed", message, "teardown")]
    nodeid = f"bpfvm-console::{problem.kind}[{target.id}]"
    location = ("bpfvm-console", None, f"{problem.kind}[{target.id}]")
    return [TestReport(nodeid, location, {}, "failed", message, "setup"),
            TestReport(nodeid, location, {}, "passed", None, "teardown")]
