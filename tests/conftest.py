"""Helpers for the harness's own tests.

VM integration tests run an inner pytest (a real subprocess, booting real
guests) on small generated test files and read its JUnit XML. Every inner
run gets a TMPDIR of its own, so that what it leaves behind -- QEMU
processes, bpfvm run directories -- can be counted afterwards.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence

import pytest

# Imported here, once for every test module: pytester's in-process runs drop
# the modules each run imported, and a host module imported anew by a later
# run raises exception classes an older module's except clause does not name.
import bpfvm.host.run.runner  # noqa: F401

VM_KERNEL = os.environ.get("BPFVM_TEST_KERNEL", "6.12")
# Wrong on purpose, half of it: test_vm_annotated runs it in a project of its own.
collect_ignore = ["annotated"]


def qemu_pids(tag: Optional[str] = None) -> set[int]:
    """QEMU processes, optionally only those whose command line contains tag."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cmdline.startswith("/usr/bin/qemu-system") or cmdline.startswith("qemu-system"):
            if tag is None or tag in cmdline:
                pids.add(int(proc.name))
    return pids


@dataclasses.dataclass
class InnerRun:
    returncode: int
    output: str
    outcomes: dict[str, tuple[str, str]]
    logdir: Path

    def outcome(self, name: str) -> str:
        return self.outcomes[name][0]

    def message(self, name: str) -> str:
        return self.outcomes[name][1]

    def assert_blamed(self, test: str, *needles: str, kernel: str = VM_KERNEL) -> str:
        """test failed with every needle in its message, and test_after then passed."""
        name = f"{test}[{kernel}]"
        assert self.outcome(name) == "failed", self.output
        message = self.message(name)
        for needle in needles:
            assert needle in message
        assert self.outcome(f"test_after[{kernel}]") == "passed", "the VM did not recover"
        return message


def parse_junit(path: Path) -> dict[str, tuple[str, str]]:
    outcomes = {}
    if not path.exists():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome = "failed" if kind in ("failure", "error") else "skipped"
                message = (node.get("message") or "") + "\n" + (node.text or "")
                break
        outcomes[case.get("name")] = (outcome, message)
    return outcomes


class VmRunner:
    """Writes an inner test file and runs pytest on it against a real kernel."""

    def __init__(self, base: Path):
        self.base = base
        self.tmp = base / "tmp"
        self.tmp.mkdir()
        self.logdir = base / "logs"

    def write(self, source: str, name: str = "test_inner.py") -> Path:
        (self.base / "pytest.ini").write_text("[pytest]\n")
        path = self.base / name
        path.write_text("import pytest\npytestmark = pytest.mark.vm\n"
                        + textwrap.dedent(source))
        return path

    def command(self, *args: str, kernel: str = VM_KERNEL) -> list[str]:
        return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
                f"--kernel={kernel}", "--accel=tcg", f"--bpfvm-logdir={self.logdir}",
                f"--junitxml={self.base / 'junit.xml'}", *args]

    def start(self, *args: str, kernel: str = VM_KERNEL,
              hide: Sequence[str] = ()) -> subprocess.Popen:
        """hide: files the inner run must not be able to use (see hiding())."""
        return subprocess.Popen(hiding(hide) + self.command(*args, kernel=kernel), cwd=self.base,
                                env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, preexec_fn=_sigint_as_in_a_terminal)

    def env(self) -> dict[str, str]:
        """The inner run's environment: its TMPDIR, and a bpfvm run directory (kept VMs) in it."""
        return dict(os.environ, TMPDIR=str(self.tmp), BPFVM_RUNDIR=str(self.tmp / "run"))

    def finish(self, proc: subprocess.Popen, timeout: float = 900) -> InnerRun:
        output, _ = proc.communicate(timeout=timeout)
        return InnerRun(proc.returncode, output, parse_junit(self.base / "junit.xml"), self.logdir)

    def run(self, *args: str, kernel: str = VM_KERNEL, hide: Sequence[str] = ()) -> InnerRun:
        return self.finish(self.start(*args, kernel=kernel, hide=hide))

    def wait_for_console(self, needle: str, timeout: float = 600) -> None:
        """Block until some VM console log of this run shows needle."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for log in self.logdir.glob("*.log"):
                if needle in log.read_text(errors="replace"):
                    return
            time.sleep(0.5)
        raise AssertionError(f"{needle!r} never appeared in {self.logdir}")

    def leftovers(self) -> list[str]:
        """What the inner run left that it should not have."""
        left = [f"QEMU pid {p}" for p in qemu_pids(str(self.tmp))]
        left += [str(p) for p in self.tmp.glob("bpfvm-*")]
        return left


def hiding(paths: Sequence[str]) -> list[str]:
    """A command prefix running the command in a mount namespace of its own where
    each of paths is /dev/null: a tool there is no longer found on PATH (not
    executable), /dev/kvm opens but is no KVM. Needs root; the host is untouched."""
    if not paths:
        return []
    for path in paths:
        if not os.path.exists(path):
            pytest.skip(f"host: {path} does not exist here, so it cannot be taken away")
    if os.geteuid() != 0:
        pytest.skip("host: hiding a file in a private mount namespace needs root")
    script = 'for p in $BPFVM_TEST_HIDE; do mount --bind /dev/null "$p" || exit 99; done; exec "$@"'
    return ["env", f"BPFVM_TEST_HIDE={' '.join(paths)}", "unshare", "--mount",
            "--propagation", "private", "sh", "-c", script, "sh"]


def _sigint_as_in_a_terminal() -> None:
    """Let the inner pytest take Ctrl-C like a foreground process: a shell starting
    the outer run in the background (cmd &) hands it SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# -- the fault table ---------------------------------------------------------
#
# Tests marked fault("what happens") inject a real fault. An autouse fixture
# counts what the run under test could leave behind, before and after, and
# records it; the test records what the run said (fault_outcome). `pytest
# tests -m fault` ends with the table.
#
# Only what belongs to the run under test is counted, so that another bpfvm
# run on the machine neither fails a fault test nor hides a leak: the fixture
# gives the test's processes a mark in their environment (inherited by the
# inner pytest, its xdist workers, leashes, vng and QEMU) and a TMPDIR of
# its own (where VM run directories go), and counts marked processes, run
# directories under the test's tmp_path and mounts under it or the cache.

FAULT_MARK = "BPFVM_FAULT_RUN"


def marked_processes(mark: str) -> dict[int, str]:
    """pid -> what it is, for processes other than this one whose environment holds mark."""
    needle = f"{FAULT_MARK}={mark}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        found[int(proc.name)] = _what(argv)
    return found


def _what(argv: list[bytes]) -> str:
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "process"
    if os.path.basename(words[0]).startswith("qemu-system"):
        return "QEMU"
    if "bpfvm.host.vm.leash" in words:
        return "leash"
    if any(os.path.basename(w) in ("vng", "virtme-run") for w in words[:2]):
        return "vng"
    return os.path.basename(words[0])


def mounts(under: Sequence[Path]) -> set[str]:
    """Mounts whose mount point lies under one of the given directories."""
    prefixes = tuple(f"{p}/" for p in under)
    return {line for line in Path("/proc/self/mounts").read_text().splitlines()
            if f"{line.split()[1]}/".startswith(prefixes)}


def run_dirs(test_tmp: Path) -> set[str]:
    """VM run directories (mkdtemp bpfvm-*) under the test's own tmp_path."""
    return {str(p) for p in test_tmp.rglob("bpfvm-*") if p.is_dir() and p.name != "bpfvm-logs"}


def leftovers_since(mark: str, mount_set: set[str], dirs: set[str], test_tmp: Path,
                    watched: Sequence[Path], settle: float = 10) -> list[str]:
    """What the marked run left that is still there after settle seconds."""
    deadline = time.monotonic() + settle
    while True:
        left = [f"{what} pid {pid}" for pid, what in sorted(marked_processes(mark).items())]
        left += [f"mount {m.split()[1]}" for m in mounts(watched) - mount_set]
        left += sorted(run_dirs(test_tmp) - dirs)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def _fault_leaks(request: pytest.FixtureRequest):
    mark = request.node.get_closest_marker("fault")
    if mark is None:
        yield
        return
    from bpfvm.host.kernels import cache

    request.node.user_properties.append(("fault", mark.args[0]))
    test_tmp = request.getfixturevalue("tmp_path")
    monkeypatch = request.getfixturevalue("monkeypatch")
    tag = f"{os.getpid()}-{id(request.node)}"
    monkeypatch.setenv(FAULT_MARK, tag)
    (test_tmp / "run-tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(test_tmp / "run-tmp"))
    watched = [test_tmp, cache.cache_dir()]
    mount_set, dirs = mounts(watched), run_dirs(test_tmp)
    yield
    left = leftovers_since(tag, mount_set, dirs, test_tmp, watched)
    request.node.user_properties.append(("leaked", ", ".join(left) or "nothing"))
    assert left == [], "the fault left these behind"


@pytest.fixture
def fault_outcome(request: pytest.FixtureRequest):
    """Record, for the fault table, what the run reported: the first line of
    text, and the first line containing each of also."""
    def record(text: str, also: Sequence[str] = ()) -> None:
        lines = text.strip().splitlines()
        said = [lines[0]] + [next(line.strip(" !=") for line in lines if needle in line)
                             for needle in also]
        request.node.user_properties.append(("outcome", " / ".join(said)))
    return record


_FAULTS: dict[str, dict[str, str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    if "fault" not in props:
        return
    row = _FAULTS.setdefault(report.nodeid, {"result": "survived"})
    row.update(props)
    if report.failed:
        row["result"] = f"FAILED ({report.when})"
    elif report.skipped:
        row["result"] = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else "skipped"


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FAULTS:
        return
    terminalreporter.section("fault table")
    terminalreporter.write_line("| fault | what the run reported | left behind | result |")
    terminalreporter.write_line("|---|---|---|---|")
    for row in _FAULTS.values():
        outcome = row.get("outcome", "(not recorded)").replace("|", "\\|")
        terminalreporter.write_line(f"| {row['fault']} | {outcome} | "
                                    f"{row.get('leaked', '(not counted)')} | {row['result']} |")


@pytest.fixture
def vm_runner(tmp_path: Path):
    runner = VmRunner(tmp_path)
    yield runner
    deadline = time.monotonic() + 10
    while runner.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runner.leftovers() == [], "the inner run leaked"


def children_of(pid: int) -> list[int]:
    kids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(proc.name))
    return kids


def _build_selected(config: pytest.Config) -> bool:
    return "build" in (config.getoption("markexpr") or "")


@pytest.fixture
def built(request: pytest.FixtureRequest):
    """Returns a function (line, flavour, arch) -> the cached build's directory.

    Kernel builds take many minutes, so a test that needs one skips unless
    the cache holds it already or the run selected `-m build` (then it builds).
    """
    from bpfvm.host.kernels import buildcache, catalog

    def get(line: str, flavour: str = "test", arch: str = "x86_64") -> Path:
        fl = catalog.load_flavours()[flavour]
        found = buildcache.cached(line, fl, arch)
        if found:
            return found
        if not _build_selected(request.config):
            pytest.skip(f"kernel {line}-{flavour} for {arch} is not built yet; "
                        f"run: pytest tests -m build (or bpfvm kernels build {line} "
                        f"--flavour {flavour} --arch {arch})")
        entry = catalog.lookup(catalog.load(), line, arch)
        return buildcache.build(entry, fl, progress=lambda _: None, refresh=False)

    return get


@pytest.fixture
def foreign_root(request: pytest.FixtureRequest):
    """The arm64 guest root, under the same rule as `built`."""
    from bpfvm.host.vm import rootfs

    def get(arch: str = "arm64") -> Path:
        found = rootfs.cached(arch)
        if found:
            return found
        if not _build_selected(request.config):
            pytest.skip(f"the {arch} guest root is not built yet; run: pytest tests -m build "
                        f"(or bpfvm rootfs build --arch {arch})")
        return rootfs.ensure(arch, progress=lambda _: None)

    return get
