"""One guest VM: booted with virtme-ng, talked to over a virtio-serial port.

The kernel console (and QEMU's own stderr) go to a log file; the guest
worker's messages travel on a separate virtio-serial port that QEMU
exposes as a unix socket in the VM's private run directory.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from ... import protocol
from ...arches import ARCH
from ...protocol import PORT_NAME, Ev, Op
from ...target import Target
from .. import tools
from . import console, kept
from .leash import Leash


class VmError(RuntimeError):
    """The VM cannot be used; the message says why and where its console log is."""


class VmDied(VmError):
    pass


class VmBadMessage(VmError):
    """The guest sent something the protocol does not have; the VM is not trusted after it."""


class VmTimeout(VmError):
    pass


class KvmFailed(VmDied):
    """QEMU said KVM cannot run the guest: booting again would fail the same way."""


@dataclasses.dataclass
class VmOptions:
    accel: str = "tcg"
    cpus: int = 2
    memory: str = "1G"
    boot_timeout: float = 300.0
    logdir: Path = Path(tempfile.gettempdir())
    console_allowed: tuple[console.Allowed, ...] = console.BUILTIN_ALLOWED
    keep_idle: Optional[float] = None  # --bpfvm-reuse: seconds a kept VM waits for the next run


@dataclasses.dataclass
class ForeignRoot:
    """How a guest of a foreign arch sees its files: its own root plus shared host dirs.

    shares appear at their host paths. The root is read-only to the guest,
    so mount points outside the directories virtme-ng overlays with tmpfs
    (/tmp, /usr, /etc, ...) are created in the root beforehand. The VM's run
    directory appears at RUN_DIR.
    """
    root: str
    shares: list[str]
    modules: Optional[str] = None  # the kernel's lib/modules/RELEASE on the host
    package: Optional[str] = None  # the host's bpfvm package directory (one of shares)

    RUN_DIR = "/run/bpfvm"
    OVERLAID = ("/etc", "/lib", "/home", "/opt", "/srv", "/usr", "/var", "/tmp")

    def prepare(self, rundir: Path) -> None:
        """Mount points in the root, and rundir/pylib/bpfvm linking to the package:
        the package directory may have another name (harness/ in an editable
        install), and Python imports it by the name of its directory."""
        for share in self.shares:
            if not share.startswith(tuple(f"{d}/" for d in self.OVERLAID)):
                Path(self.root, share.lstrip("/")).mkdir(parents=True, exist_ok=True)
        if self.package:
            (rundir / "pylib").mkdir(exist_ok=True)
            (rundir / "pylib" / "bpfvm").symlink_to(self.package)

    def vng_args(self, rundir: Path) -> list[str]:
        args = ["--root", self.root, "--busybox", f"{self.root}/bin/busybox",
                f"--rodir={self.RUN_DIR}={rundir}"]
        return args + [f"--rodir={share}={share}" for share in self.shares]

    def prelude(self) -> str:
        """bpfvm on the import path, and the kernel's modules where modprobe looks
        (/lib is overlaid, so writable)."""
        lines = []
        if self.package:
            lines.append(f"export PYTHONPATH={self.RUN_DIR}/pylib")
        if self.modules:
            mods = shlex.quote(self.modules)
            lines.append(f'[ -e /lib/modules/$(uname -r)/modules.dep ] || '
                         f'{{ mkdir -p /lib/modules && ln -sfn {mods} /lib/modules/$(uname -r); }}')
        return "\n".join(lines)


_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: str) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the process."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return _digests[key]


def channel_opts(sock: Path, arch: str) -> str:
    """QEMU options for the host-guest channel: a virtio-serial port named
    PORT_NAME, on a unix socket at sock on the host."""
    return (f"-chardev socket,id=bpfvm,path={sock},server=on,wait=off "
            f"-device {ARCH[arch].virtio_serial},id=bpfvmser "
            f"-device virtserialport,bus=bpfvmser.0,name={PORT_NAME},chardev=bpfvm")


def boot_command(target: Target, opts: VmOptions, command: str, extra: Sequence[str] = (),
                 qemu_opts: str = "", verbose: bool = True) -> list[str]:
    """The vng command that boots target with opts' CPUs, memory and accelerator
    and runs command; qemu_opts are added to QEMU's (the channel, for a Vm)."""
    try:
        vng = tools.require("vng")
    except tools.ToolMissing as e:
        raise VmError(str(e)) from None
    kernel = target.kdir or target.vmlinuz
    qemu = [qemu_opts] if qemu_opts else []
    if opts.accel != "kvm":
        # Multi-threaded TCG mishandles the kernel patching its own text while
        # another vCPU runs it: 6.12 guests with 2 vCPUs oopsed at boot on an
        # int3 in sched_clock_cpu. One TCG thread for all vCPUs avoids it.
        qemu.append("-accel tcg,thread=single")
    # --force-9p: virtme-ng would otherwise try virtiofsd first, and where only
    # QEMU's old C virtiofsd is installed that costs seconds before falling back.
    cmd = [vng, "--run", str(kernel), *(["--verbose"] if verbose else []), "--force-9p",
           "--cpus", str(opts.cpus), "--memory", opts.memory]
    if qemu:
        cmd.append(f"--qemu-opts={' '.join(qemu)}")
    if opts.accel != "kvm":
        cmd.append("--disable-kvm")
    if target.arch != "x86_64":
        cmd += ["--arch", target.arch]
    return cmd + list(extra) + ["--exec", command]


class Vm:
    """A booted guest running the bpfvm worker, reachable by messages."""

    _count = 0

    def __init__(self, target: Target, opts: VmOptions, guest_spec: protocol.GuestSpec,
                 prelude: str = "", foreign: Optional[ForeignRoot] = None,
                 boot: Optional[protocol.BootSpec] = None):
        """prelude: shell commands the guest runs before starting the worker.
        foreign: the root and shares of a guest that cannot use the host's root.
        boot: what the guest's parent imports before its first session."""
        self.target = target
        self.prelude = prelude
        self.foreign = foreign
        self.opts = opts
        self.guest_spec = guest_spec
        self.boot = boot or protocol.BootSpec(preload=[])
        self.claim: Optional[kept.Claim] = None  # a kept (or keepable) VM's registry hold
        self.record: Optional[kept.Record] = None
        self.booted = 0.0  # seconds its boot took (0 when attached)
        self.taint: Optional[str] = None  # why it must not be kept, once its run shows it
        Vm._count += 1
        self.log_path = opts.logdir / f"console-{target.id}-{os.getpid()}-{Vm._count}.log"
        self.rundir: Optional[Path] = None
        self.proc: Optional[subprocess.Popen] = None
        self.sock: Optional[socket.socket] = None
        self.leash: Optional[Leash] = None
        self._decoder = protocol.Decoder()
        self._inbox: list[dict[str, Any]] = []
        self._console = b""
        self.watch = console.Watch(opts.console_allowed)
        self.boot_failures: list[str] = []  # earlier attempts at booting this kernel
        self.ready: dict[str, Any] = {}
        self._started = 0.0

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Boot the guest (if launch() has not already) and wait for its worker;
        VmError if it fails. Nothing is left of a boot that did not finish
        (Ctrl-C included)."""
        try:
            if self.leash is None:
                self._launch()
            self._finish()
        except BaseException:
            self.kill()
            raise

    def launch(self) -> None:
        """Start booting and return at once: the guest boots while the host
        goes on (collecting tests); start() later waits for it. The guest
        spec is needed only then, and may be replaced until then."""
        try:
            self._launch()
        except BaseException:
            self.kill()
            raise

    def _launch(self) -> None:
        self._started = time.monotonic()
        self.opts.logdir.mkdir(parents=True, exist_ok=True)
        keeping = self.opts.keep_idle is not None
        self.rundir = Path(tempfile.mkdtemp(prefix="bpfvm-", dir=kept.vms_dir() if keeping else None))
        if keeping:  # the console log lives as long as the VM may
            self.claim = kept.Claim.take(self.rundir)
            self.log_path = self.rundir / "console.log"
        spec_path = self.rundir / "guest.json"
        spec_path.write_text(self.boot.to_json())
        sock_path = self.rundir / "chan.sock"
        script = self.rundir / "guest.sh"
        python, guest_dir, extra, prelude = sys.executable, self.rundir, [], self.prelude
        if self.foreign:
            self.foreign.prepare(self.rundir)
            python, guest_dir = "/usr/bin/python3", Path(ForeignRoot.RUN_DIR)
            extra = self.foreign.vng_args(self.rundir)
            prelude = f"{self.foreign.prelude()}\n{prelude}"
        script.write_text(f"{prelude}\n"
                          f"exec {python} -m bpfvm.guest.worker {guest_dir / spec_path.name}\n")
        # The command travels on the kernel command line (2048 bytes on x86),
        # so the guest gets only the path of the script.
        # QEMU runs in the run directory and binds the socket by its name there:
        # a socket's path may not exceed 107 bytes, and under a deep TMPDIR
        # the run directory's does.
        cmd = boot_command(self.target, self.opts, f"exec sh {guest_dir / script.name}", extra,
                           qemu_opts=channel_opts(Path(sock_path.name), self.target.arch))
        env = dict(os.environ, PATH=tools.search_path(), PYTHONDONTWRITEBYTECODE="1")
        self.log_path.write_text(f"$ {' '.join(cmd)}\n")
        self.leash = Leash(cmd, self.rundir, self.log_path, env, cwd=str(self.rundir))
        self.proc = self.leash.proc

    def _finish(self) -> None:
        assert self.rundir is not None
        deadline = self._started + self.opts.boot_timeout
        self._connect(self.rundir / "chan.sock", deadline)
        self._session(deadline)
        self.booted = time.monotonic() - self._started
        if self.opts.keep_idle is not None:
            self.record = kept.Record(
                key=self.reuse_key(), target=self.target.id, release=self.ready["release"],
                leash=self.leash.proc.pid, cpus=self.opts.cpus, memory=self.opts.memory,
                accel=self.opts.accel, booted=time.time() - self.booted,
                boot_id=str(self.ready.get("boot_id", "")), idle=self.opts.keep_idle)
            self.record.save(self.rundir)

    def _session(self, deadline: float) -> None:
        """Start this run's pytest session in the guest and wait until it is ready."""
        self.send({"op": Op.SESSION, "spec": self.guest_spec.to_dict()})
        self.ready = self.receive(deadline, what="boot")
        if self.ready.get("ev") != Ev.READY:
            raise VmError(f"guest worker on {self.target.id} failed to start: "
                          f"{self.ready.get('error', self.ready)} (console log: {self.log_path})")

    # -- kept VMs (--bpfvm-reuse) ------------------------------------------

    def reuse_key(self) -> str:
        """Everything that must match for a run to use a VM another run booted:
        the kernel image's checksum, arch, vCPUs, memory, accelerator, what the
        guest runs before the worker (the import bundle, by content), the
        Python and bpfvm it runs, the project root and the shared directories."""
        image = self.target.vmlinuz or self.target.kdir or ""
        parts = {"kernel": _file_digest(image), "arch": self.target.arch,
                 "cpus": self.opts.cpus, "memory": self.opts.memory, "accel": self.opts.accel,
                 "prelude": self.prelude, "python": sys.executable,
                 "package": str(Path(__file__).resolve().parents[2]),
                 "rootdir": self.guest_spec.rootdir, "preload": self.boot.preload,
                 "foreign": dataclasses.asdict(self.foreign) if self.foreign else None}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def attach(self, claim: kept.Claim, record: kept.Record) -> None:
        """Start this run's session in a kept VM (claimed by this run); VmError
        when it cannot be used, and then nothing of it is left."""
        self.claim, self.record, self.rundir = claim, record, claim.directory
        self.log_path = self.rundir / "console.log"
        self.leash = Leash.adopt(record.leash)
        self.proc = self.leash.proc
        try:
            if not kept.leash_alive(self.rundir, record.leash):
                raise VmDied("its leash process is gone")
            text = self.console_text()
            splat = console.find_splat(text[record.console_at:], self.opts.console_allowed)
            if splat:
                raise VmError(f"the kernel reported a problem while it was idle:\n{splat}")
            self.watch.checked = len(text)
            record.state = "busy"
            record.save(self.rundir)
            deadline = time.monotonic() + min(30.0, self.opts.boot_timeout)
            self._connect(self.rundir / "chan.sock", deadline)
            self._session(deadline)
        except BaseException:
            self.kill()
            raise

    def end_session(self, timeout: float = 30.0) -> list[str]:
        """End the run's session, keeping the VM up; what the guest says the
        session left outside its namespaces."""
        self.send({"op": Op.END})
        ended = self.receive(time.monotonic() + timeout, what="the session's end")
        if ended.get("ev") != Ev.ENDED:
            raise VmBadMessage(f"the guest answered the session's end with "
                               f"{protocol.excerpt(ended)}")
        return [protocol.excerpt(str(line)) for line in ended["leftovers"][:20]]

    def detach(self) -> None:
        """Leave the VM booted and idle for the next run (after end_session)."""
        assert self.record is not None and self.claim is not None and self.rundir is not None
        self.record.state, self.record.since = "idle", time.time()
        self.record.runs += 1
        self.record.console_at = len(self.console_text())
        self.record.save(self.rundir)
        self.leash.keep()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.claim.release()
        self.claim = self.rundir = self.leash = self.proc = None

    def _connect(self, path: Path, deadline: float) -> None:
        while True:
            self._check_alive("boot")
            if path.exists():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                dirfd = os.open(path.parent, os.O_PATH)
                try:
                    # Through the directory's fd: its path may be too long (_start).
                    sock.connect(f"/proc/self/fd/{dirfd}/{path.name}")
                    self.sock = sock
                    return
                except OSError:
                    sock.close()
                finally:
                    os.close(dirfd)
            if time.monotonic() > deadline:
                raise VmTimeout(self._explain(f"QEMU did not open its channel within "
                                              f"{self.opts.boot_timeout:.0f}s"))
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the worker to finish, wait for the guest to power off, then clean up."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None and self.sock is not None:
                self.send({"op": Op.EXIT})
                self.proc.wait(timeout)
        except (OSError, VmError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def kill(self) -> None:
        """Kill the VM (through its leash) and remove its run directory."""
        if self.leash is not None:
            self.leash.pull()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.rundir is not None:
            if self.claim is not None:
                kept.remove(self.rundir)  # and what a dead leash left running
                self.claim.release()
                self.claim = None
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    # -- messages --------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        assert self.sock is not None
        try:
            self.sock.sendall(protocol.encode(message))
        except OSError as e:
            raise VmDied(self._explain(f"lost the guest channel ({e.strerror})")) from None

    def receive(self, deadline: float, what: str = "test") -> dict[str, Any]:
        """The next message from the guest; VmDied/VmTimeout when none can come."""
        assert self.sock is not None
        while not self._inbox:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise VmTimeout(self._explain(f"no answer from the guest in time during {what}"))
            self.sock.settimeout(min(remaining, 0.5))
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                self._check_alive(what)
                continue
            except OSError:
                data = b""
            if not data:
                self._wait_exit(5)
                self._check_alive(what)
                raise VmDied(self._explain(f"the guest closed its channel during {what}"))
            try:
                self._inbox += [protocol.check_event(m) for m in self._decoder.feed(data)]
            except protocol.ProtocolError as e:
                raise VmBadMessage(f"the guest sent {e} during {what}") from None
        return self._inbox.pop(0)

    def _wait_exit(self, seconds: float) -> None:
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            pass

    def _check_alive(self, what: str) -> None:
        code = self.proc.poll() if self.proc else None
        if what == "boot" and self.opts.accel == "kvm":
            failure = console.kvm_failure(self.console_text(), time.monotonic() - self._started)
            if failure:
                raise KvmFailed(self._explain(
                    f"KVM failed during boot ({failure})",
                    fix="KVM does not work on this host: use --accel auto (probes KVM, "
                        "falls back to TCG) or --accel tcg"))
        if code is not None:
            raise VmDied(self._explain(f"the VM exited with status {code} during {what}"))

    # -- console ---------------------------------------------------------

    def console_text(self) -> str:
        """The console log so far (read incrementally; carriage returns dropped)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(len(self._console))
                self._console += f.read()
        except OSError:
            pass
        return self._console.decode(errors="replace").replace("\r", "")

    def wait_console(self, needle: str, timeout: float = 5.0) -> str:
        """The console text once needle has appeared in it (or after timeout)."""
        end = time.monotonic() + timeout
        while True:
            text = self.console_text()
            if needle in text or time.monotonic() > end:
                return text
            time.sleep(0.002)

    def _explain(self, what: str, fix: str = "") -> str:
        text = self.console_text()
        splat = console.find_splat(text)
        excerpt = splat if splat else console.tail(text)
        return (f"{what} on kernel {self.target.describe()}{': ' + fix if fix else ''}\n"
                f"console log: {self.log_path}\n{excerpt}")
