import time

from pytest import TestReport

from bpfvm.host.run import dispatch


class Item:
    nodeid, location = "t.py::test_x[6.12]", ("t.py", 1, "test_x[6.12]")


def report(when, outcome="passed", longrepr=None):
    return TestReport(Item.nodeid, Item.location, {}, outcome, longrepr, when)


def test_reports_of_an_unfinished_test_keep_what_arrived():
    reports = dispatch.synthesize(Item(), [report("setup")], "the guest VM died")
    assert [(r.when, r.outcome) for r in reports] == [
        ("setup", "passed"), ("call", "failed"), ("teardown", "passed")]
    assert reports[1].longrepr == "the guest VM died"


def test_nothing_arrived_fails_the_setup():
    reports = dispatch.synthesize(Item(), [], "cannot boot")
    assert [(r.when, r.outcome) for r in reports] == [("setup", "failed"), ("teardown", "passed")]


def test_a_splat_fails_a_passing_call_and_annotates_a_failing_one():
    passing = [report("setup"), report("call"), report("teardown")]
    dispatch.blame_splat(passing, "WARNING: CPU: 0 PID: 1", "/logs/c.log")
    assert passing[1].failed and "console log: /logs/c.log" in passing[1].longrepr
    failing = [report("setup"), report("call", "failed", "assert 0"), report("teardown")]
    dispatch.blame_splat(failing, "BUG: x", "/logs/c.log")
    assert failing[1].longrepr == "assert 0"
    assert failing[1].sections[-1][0] == "kernel console"


def test_a_failing_host_call_becomes_an_error_reply():
    def serve(request, left):
        raise OSError(5, "disk gone")

    deadline = time.monotonic() + 100
    reply = dispatch.answer(serve, {"call": "build"}, deadline)
    assert reply["ok"] is False and "disk gone" in reply["error"] and "'build'" in reply["error"]
    assert dispatch.answer(lambda r, left: {"ok": True}, {"call": "build"}, deadline) == {"ok": True}
    given = []
    dispatch.answer(lambda r, left: given.append(left) or {}, {}, deadline)
    assert 90 < given[0] <= 100 - dispatch.REPLY_MARGIN  # the test's time left, less the margin
