"""Building kernels: configure from fragments, make with a progress line, install.

Every make runs out of tree (O=) with the arch's variables from make_vars(),
its output going to a log file whose path is printed when a step fails.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ...arches import ARCH, host_arch
from ..progress import Progress
from . import fragments

RECIPE = "1"  # bump when the steps below change what a build produces
_STEP = re.compile(r"^\s{2}([A-Z][A-Z0-9_]{1,8})\s+(\S+)")


class KernelBuildError(RuntimeError):
    pass


def cross_prefix(arch: str, host: Optional[str] = None) -> str:
    """CROSS_COMPILE for building arch on host ('' when native)."""
    return "" if arch == (host or host_arch()) else f"{ARCH[arch].triplet}-"


def make_vars(arch: str, host: Optional[str] = None,
              ccache: Optional[str] = None) -> list[str]:
    """The variables every make of an arch gets: ARCH, CROSS_COMPILE, CC through ccache.

    Spelled in one place because a misspelt one (CROSS_COMPILER=, ARCH=aarch64)
    silently builds for the host or fails deep into the build.
    """
    prefix = cross_prefix(arch, host)
    out = [f"ARCH={ARCH[arch].kernel}"]
    if prefix:
        out.append(f"CROSS_COMPILE={prefix}")
    if ccache:
        out.append(f"CC={ccache} {prefix}gcc")
    return out


def compiler(arch: str) -> str:
    """The first line of the compiler's --version; a clear error when it is missing."""
    gcc = f"{cross_prefix(arch)}gcc"
    if shutil.which(gcc) is None:
        raise KernelBuildError(f"{gcc} is not installed, needed to build {arch} kernels: "
                         "run bpfvm setup --build")
    out = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].strip()


def build_key(source_label: str, options: dict[str, fragments.Option], arch: str,
              compiler_version: str) -> str:
    """What a built kernel is keyed by: source, merged fragments, arch, compiler, recipe."""
    doc = {"source": source_label, "config": fragments.render(options), "arch": arch,
           "compiler": compiler_version, "recipe": RECIPE}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def missing_tools() -> list[str]:
    """Host tools a kernel build needs, as the Debian packages to install."""
    need = {"make": "make", "flex": "flex", "bison": "bison", "bc": "bc",
            "pahole": "dwarves", "perl": "perl", "depmod": "kmod"}
    missing = [pkg for tool, pkg in need.items()
               if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if not Path("/usr/include/libelf.h").exists():
        missing.append("libelf-dev")
    if not Path("/usr/include/openssl/opensslv.h").exists():
        missing.append("libssl-dev")
    return missing


class Make:
    """make in one source tree and output dir, logging to one file."""

    def __init__(self, tree: Path, out: Path, arch: str, log: Path,
                 ccache: Optional[str] = None):
        self.tree, self.out, self.arch, self.log = tree, out, arch, log
        self.vars = make_vars(arch, ccache=ccache)
        out.mkdir(parents=True, exist_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)

    def command(self, *targets: str, jobs: int = 1) -> list[str]:
        return ["make", "-C", str(self.tree), f"O={self.out}", f"-j{jobs}", *self.vars, *targets]

    def run(self, *targets: str, jobs: int = 1,
            on_step: Optional[Callable[[str, str], None]] = None) -> str:
        """Run make; its output goes to the log; KernelBuildError names the log on failure."""
        cmd = self.command(*targets, jobs=jobs)
        with open(self.log, "a") as log:
            log.write(f"\n$ {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace",
                                    start_new_session=True, env=self.env())
            tail: list[str] = []
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    tail = (tail + [line])[-400:]
                    m = _STEP.match(line)
                    if m and on_step:
                        on_step(m.group(1), m.group(2))
                code = proc.wait()
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        if code != 0:
            errors = [l.rstrip() for l in tail if "error" in l.lower()] or [tail[-1].rstrip()]
            raise KernelBuildError(f"make {' '.join(targets)} failed for {self.arch}: "
                             f"{errors[0][-300:]}\nfull log: {self.log}")
        return "".join(tail)

    def env(self) -> dict[str, str]:
        """ccache keyed by paths relative to the build's top directory, so a build
        of the same source in another (temporary) directory hits the cache."""
        top = os.path.commonpath([self.tree, self.out])
        return dict(os.environ, CCACHE_BASEDIR=top, CCACHE_NOHASHDIR="1")

    def value(self, target: str) -> str:
        """A one-line answer such as `make -s kernelrelease`."""
        proc = subprocess.run(["make", "-s", "-C", str(self.tree), f"O={self.out}",
                               *self.vars, target], capture_output=True, text=True)
        if proc.returncode != 0:
            raise KernelBuildError(f"make {target} failed: {proc.stderr.strip()[-300:]}")
        return proc.stdout.strip().splitlines()[-1]


def configure(make: Make, options: dict[str, fragments.Option], localversion: str) -> str:
    """allnoconfig + fragments + olddefconfig; KernelBuildError naming every dropped option."""
    make.run("allnoconfig")
    config = make.out / ".config"
    with open(config, "a") as f:
        f.write(fragments.render(options))
        f.write(f'CONFIG_LOCALVERSION="{localversion}"\n# CONFIG_LOCALVERSION_AUTO is not set\n')
    make.run("olddefconfig")
    text = config.read_text()
    problems = fragments.dropped(options, text, fragments.declared_symbols(make.tree))
    if problems:
        kept = make.log.with_suffix(".config")
        shutil.copyfile(config, kept)
        raise KernelBuildError("the kernel config lost options the fragments ask for:\n  "
                         + "\n  ".join(problems) + f"\nconfig: {kept}")
    return text


class StepCounter:
    """Turns make's `  CC  path` lines into a progress line, at most once a second.

    expected: the step count of an earlier build of the same kind, for a percentage.
    """

    def __init__(self, label: str, expected: int = 0, stream=None):
        self.label = label
        self.expected = expected
        self.steps = 0
        self.started = time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown = 0.0
        self._interval = 1.0 if self.tty else 60.0

    def __call__(self, kind: str, path: str) -> None:
        self.steps += 1
        now = time.monotonic()
        if now - self._shown >= self._interval:
            self._shown = now
            self._show(f"{kind} {path}")

    def line(self, detail: str = "") -> str:
        elapsed = int(time.monotonic() - self.started)
        done = f"{self.steps} steps"
        if self.expected:
            done += f" (~{min(99, 100 * self.steps // self.expected)}%)"
        return f"{self.label}: [{elapsed // 60:d}:{elapsed % 60:02d}] {done} {detail}".rstrip()

    def summary(self) -> str:
        """'16m57s, 2325 steps', for the line that ends a build."""
        elapsed = int(time.monotonic() - self.started)
        return f"{elapsed // 60}m{elapsed % 60:02d}s, {self.steps} steps"

    def _show(self, detail: str) -> None:
        text = self.line(detail)
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + text[:width].ljust(width))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * (shutil.get_terminal_size().columns - 1) + "\r")
            self.stream.flush()


def compile_kernel(make: Make, counter: StepCounter, jobs: Optional[int] = None) -> None:
    target = ARCH[make.arch].image_name
    try:
        make.run(target, "modules", jobs=jobs or os.cpu_count() or 1, on_step=counter)
    finally:
        counter.finish()


def install(make: Make, root: Path) -> tuple[str, Path, Path]:
    """Image, config and modules into root/{boot,lib/modules}; return (release, image, config)."""
    release = make.value("kernelrelease")
    boot = root / "boot"
    boot.mkdir(parents=True, exist_ok=True)
    image = boot / f"vmlinuz-{release}"
    config = boot / f"config-{release}"
    shutil.copyfile(make.out / ARCH[make.arch].image, image)
    shutil.copyfile(make.out / ".config", config)
    make.run("modules_install", f"INSTALL_MOD_PATH={root}", "INSTALL_MOD_STRIP=1")
    for link in ("build", "source"):
        (root / "lib/modules" / release / link).unlink(missing_ok=True)
    subprocess.run(["depmod", "-a", "-b", str(root), release], check=True,
                   stderr=subprocess.DEVNULL)
    return release, image, config


def ccache_path() -> Optional[str]:
    return shutil.which("ccache")


def run_steps(tree: Path, work: Path, arch: str, options: dict[str, fragments.Option],
              localversion: str, log: Path, root: Path, counter: StepCounter,
              progress: Progress) -> tuple[str, Path, Path]:
    """Configure, compile and install one kernel; the output dir is work/out."""
    make = Make(tree, work, arch, log, ccache=ccache_path())
    progress(f"{counter.label}: configuring (allnoconfig + fragments)")
    configure(make, options, localversion)
    compile_kernel(make, counter)
    progress(f"{counter.label}: compiled ({counter.summary()})")
    return install(make, root)


def fragment_names(flavour_fragments: Sequence[str], arch: str) -> list[str]:
    """A flavour's fragments followed by the arch's own."""
    return [*flavour_fragments, arch]
