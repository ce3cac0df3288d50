"""pytest plugin used by bench/startup.py: when each test's result arrived on the host."""
import json
import os
import time

_records = []


def pytest_runtest_logstart(nodeid, location):
    _records.append({"nodeid": nodeid, "start": time.time()})


def pytest_runtest_logfinish(nodeid, location):
    _records[-1]["finish"] = time.time()


def pytest_unconfigure(config):
    path = os.environ.get("BPFVM_BENCH_TIMES")
    if path:
        with open(path, "w") as f:
            json.dump(_records, f)
