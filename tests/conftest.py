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
from typing import Optional

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

    def start(self, *args: str, kernel: str = VM_KERNEL) -> subprocess.Popen:
        env = dict(os.environ, TMPDIR=str(self.tmp))
        return subprocess.Popen(self.command(*args, kernel=kernel), cwd=self.base, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=_sigint_as_in_a_terminal)

    def finish(self, proc: subprocess.Popen, timeout: float = 900) -> InnerRun:
        output, _ = proc.communicate(timeout=timeout)
        return InnerRun(proc.returncode, output, parse_junit(self.base / "junit.xml"), self.logdir)

    def run(self, *args: str, kernel: str = VM_KERNEL) -> InnerRun:
        return self.finish(self.start(*args, kernel=kernel))

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


def _sigint_as_in_a_terminal() -> None:
    """Let the inner pytest take Ctrl-C like a foreground process: a shell starting
    the outer run in the background (cmd &) hands it SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
    from harness.host import builds, catalog

    def get(line: str, flavour: str = "test", arch: str = "x86_64") -> Path:
        fl = catalog.load_flavours()[flavour]
        found = builds.cached(line, fl, arch)
        if found:
            return found
        if not _build_selected(request.config):
            pytest.skip(f"kernel {line}-{flavour} for {arch} is not built yet; "
                        f"run: pytest tests -m build (or bpfvm kernels build {line} "
                        f"--flavour {flavour} --arch {arch})")
        entry = catalog.lookup(catalog.load(), line, arch)
        return builds.build(entry, fl, progress=lambda _: None, refresh=False)

    return get


@pytest.fixture
def foreign_root(request: pytest.FixtureRequest):
    """The arm64 guest root, under the same rule as `built`."""
    from harness.host import rootfs

    def get(arch: str = "arm64") -> Path:
        found = rootfs.cached(arch)
        if found:
            return found
        if not _build_selected(request.config):
            pytest.skip(f"the {arch} guest root is not built yet; run: pytest tests -m build "
                        f"(or bpfvm rootfs build --arch {arch})")
        return rootfs.ensure(arch, progress=lambda _: None)

    return get
