"""Deciding between KVM and TCG.

/dev/kvm existing is no proof that KVM works: with broken nested
virtualization a KVM guest stops in early boot ("KVM internal error") or
hangs, and QEMU's accel=kvm:tcg does not fall back. So KVM is probed with
one short, bounded boot per run, and TCG is used when the probe fails.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from ...target import Target, host_arch
from .. import tools
from ..kernels import cache
from . import console
from . import vm as vmmod
from .leash import Leash

PROBE_TIMEOUT = 60.0
STATE = "kvm-probe.json"  # in the cache dir


def kvm_device_usable(path: str = "/dev/kvm") -> bool:
    return os.path.exists(path) and os.access(path, os.R_OK | os.W_OK)


def probe(target: Target, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str, bool]:
    """Boot target under KVM running `true`; (works, what happened, clear).

    clear: the verdict is KVM's own (it booted, or QEMU said KVM failed), not
    a timeout or an exit that a loaded host may cause. QEMU runs on a leash,
    so it dies with this process however that ends.
    """
    opts = vmmod.VmOptions(accel="kvm", cpus=1, memory="512M")
    cmd = vmmod.boot_command(target, opts, "true")  # --verbose: QEMU's errors show
    rundir = Path(tempfile.mkdtemp(prefix="bpfvm-probe-"))
    log = rundir / "console.log"
    log.touch()
    started = time.monotonic()
    leash = Leash(cmd, rundir, log, dict(os.environ, PATH=tools.search_path()))
    try:
        while time.monotonic() - started < timeout:
            code = leash.proc.poll()
            output = log.read_text(errors="replace")
            failure = console.kvm_failure(output, time.monotonic() - started)
            if failure:
                # Silence is KVM's hang on an idle host, but may be load on a busy one.
                clear = console.kvm_fatal(output) is not None or not _loaded()
                return False, f"KVM guest failed: {failure}", clear
            if code is not None:
                if code == 0:
                    return True, f"KVM guest booted in {time.monotonic() - started:.1f}s", True
                return False, f"KVM guest exited with status {code}", False
            time.sleep(0.1)
        return False, f"KVM guest did not finish booting within {timeout:.0f}s", False
    finally:
        leash.pull()
        shutil.rmtree(rundir, ignore_errors=True)


def _loaded() -> bool:
    """Whether the host has more runnable work than CPUs (the last minute's load)."""
    return os.getloadavg()[0] >= len(os.sched_getaffinity(0))


def remembered(state: Path, run_probe: Callable[[], tuple[bool, str, bool]],
               device: str = "/dev/kvm", fresh: bool = False) -> tuple[bool, str]:
    """The probe's verdict, reused while the host's boot, its KVM device and
    QEMU stay the same (fresh: probe anyway). Only a clear verdict is kept: a
    probe that timed out on a loaded host says nothing about KVM, and
    remembering it would mean TCG until the host reboots.

    On a host whose KVM hangs, the probe waits its whole first-output time
    (10 s) before falling back; that was paid by every pytest run.
    """
    key = _host_key(device)
    saved = None if fresh else _saved(state, key)
    if saved is not None:
        return saved["works"], f"{saved['detail']}; probed earlier in this boot"
    works, detail, clear = run_probe()
    if not clear:
        return works, f"{detail}; not remembered, the next run probes again"
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
        tmp = state.with_name(f".{state.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "works": works, "detail": detail}))
        os.replace(tmp, state)
    except OSError:
        pass  # not remembered: the next run probes again
    return works, detail


def _saved(state: Path, key: str) -> Optional[dict]:
    """The remembered verdict when it is for this host's boot, device and QEMU."""
    try:
        saved = json.loads(state.read_text())
        if saved["key"] == key and isinstance(saved["works"], bool) \
                and isinstance(saved["detail"], str):
            return saved
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def settled(requested: str, device: str = "/dev/kvm",
            state: Optional[Path] = None) -> Optional[str]:
    """The accelerator choose() picks, when it can be told without a probe (a
    run that boots before it collects must not probe for tests it may not have)."""
    usable = kvm_device_usable(device)
    if requested != "auto" or not usable:
        try:
            return decide(requested, usable, lambda: (False, ""))[0]
        except ValueError:
            return None
    saved = _saved(state or cache.cache_dir() / STATE, _host_key(device))
    return None if saved is None else "kvm" if saved["works"] else "tcg"


def _host_key(device: str) -> str:
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    parts = [boot]
    for path in (device, tools.find(tools.QEMU[host_arch()])):
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        parts.append(f"{st.st_rdev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}" if st else "-")
    return " ".join(parts)


def decide(requested: str, device_ok: bool,
           run_probe: Callable[[], tuple[bool, str]]) -> tuple[str, Optional[str]]:
    """(accel, warning) for --accel auto|kvm|tcg."""
    if requested == "tcg":
        return "tcg", None
    if requested == "kvm":
        if not device_ok:
            raise ValueError("--accel kvm: /dev/kvm is missing or not accessible; "
                             "use --accel tcg or auto")
        return "kvm", None
    if not device_ok:
        return "tcg", None
    works, detail = run_probe()
    if works:
        return "kvm", None
    return "tcg", f"bpfvm: KVM does not work here ({detail}); using TCG (slower)"


def choose(requested: str, target: Target, say: Callable[[str], None]) -> str:
    """The accelerator for this host's guests: decide() with the probe (booting
    target) remembered in the cache; say() gets the warning when KVM fails."""
    accel, warning = decide(requested, kvm_device_usable(),
                            lambda: remembered(cache.cache_dir() / STATE, lambda: probe(target)))
    if warning:
        say(warning)
    return accel
