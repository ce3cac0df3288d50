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
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence

import pytest

VM_KERNEL = os.environ.get("BPFVM_TEST_KERNEL", "6.12")


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
        self.qemu_before = qemu_pids()

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
        env = dict(os.environ, TMPDIR=str(self.tmp))
        return subprocess.Popen(hiding(hide) + self.command(*args, kernel=kernel), cwd=self.base,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, preexec_fn=_sigint_as_in_a_terminal)

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
# counts what they could leave behind -- QEMU processes anywhere, mounts,
# bpfvm run directories -- before and after, and records it; the test records
# what the run said (fault_outcome). `pytest tests -m fault` ends with the table.

def mounts() -> set[str]:
    return set(Path("/proc/self/mounts").read_text().splitlines())


def run_dirs(test_tmp: Path) -> set[str]:
    """VM run directories (mkdtemp bpfvm-*) in the system's temp dir and anywhere
    under the test's own (an inner run's TMPDIR)."""
    found = list(Path(tempfile.gettempdir()).glob("bpfvm-*")) + list(test_tmp.rglob("bpfvm-*"))
    return {str(p) for p in found if p.is_dir() and p.name != "bpfvm-logs"}


def leftovers_since(qemu: set[int], mount_set: set[str], dirs: set[str], test_tmp: Path,
                    settle: float = 10) -> list[str]:
    """What appeared since the counts were taken and is still there after settle seconds."""
    deadline = time.monotonic() + settle
    while True:
        left = [f"QEMU pid {p}" for p in qemu_pids() - qemu]
        left += [f"mount {m.split()[1]}" for m in mounts() - mount_set]
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
    request.node.user_properties.append(("fault", mark.args[0]))
    test_tmp = request.getfixturevalue("tmp_path")
    qemu, mount_set, dirs = qemu_pids(), mounts(), run_dirs(test_tmp)
    yield
    left = leftovers_since(qemu, mount_set, dirs, test_tmp)
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
    assert qemu_pids() <= runner.qemu_before, "QEMU processes outlived the inner run"


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
