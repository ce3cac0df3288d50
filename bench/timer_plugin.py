"""pytest plugin used by the benches: when each test's result arrived on the host."""
import json
import os
import time

_records: dict = {}


def pytest_runtest_logstart(nodeid, location):
    _records.setdefault(nodeid, {"nodeid": nodeid, "start": time.time()})


def pytest_runtest_logfinish(nodeid, location):
    _records[nodeid]["finish"] = time.time()


def pytest_unconfigure(config):
    path = os.environ.get("BPFVM_BENCH_TIMES")
    if path and not hasattr(config, "workerinput"):
        with open(path, "w") as f:
            json.dump(sorted(_records.values(), key=lambda r: r["finish"]), f)
