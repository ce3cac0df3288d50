"""Deciding between KVM and TCG.

/dev/kvm existing is no proof that KVM works: with broken nested
virtualization a KVM guest stops in early boot ("KVM internal error") or
hangs, and QEMU's accel=kvm:tcg does not fall back. So KVM is probed with
one short, bounded boot per run, and TCG is used when the probe fails.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from ..target import Target
from . import vm as vmmod

PROBE_TIMEOUT = 60.0
# A working KVM guest prints its first console line within a second or two;
# a broken one often prints nothing at all.
FIRST_OUTPUT_TIMEOUT = 10.0
_FATAL = ("KVM internal error", "failed to initialize kvm", "Could not access KVM")


def kvm_device_usable(path: str = "/dev/kvm") -> bool:
    return os.path.exists(path) and os.access(path, os.R_OK | os.W_OK)


def probe(target: Target, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boot target under KVM running `true`; (works, what happened)."""
    opts = vmmod.VmOptions(accel="kvm", cpus=1, memory="512M")
    cmd = vmmod.vng_command(target, opts, Path("/dev/null"), "true")
    cmd = [c for c in cmd if not c.startswith("--qemu-opts=")]  # --verbose stays: QEMU's errors show
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PATH=vmmod._tool_path()))
    output = b""
    try:
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() - started < timeout:
            chunk = proc.stdout.read() or b""
            output += chunk
            text = output.decode(errors="replace")
            if "Linux version" not in text and time.monotonic() - started > FIRST_OUTPUT_TIMEOUT:
                return False, f"KVM guest printed nothing within {FIRST_OUTPUT_TIMEOUT:.0f}s"
            fatal = next((f for f in _FATAL if f in text), None)
            if fatal:
                return False, f"KVM guest failed: {fatal}"
            if proc.poll() is not None:
                output += proc.stdout.read() or b""
                if proc.returncode == 0:
                    return True, f"KVM guest booted in {time.monotonic() - started:.1f}s"
                return False, f"KVM guest exited with status {proc.returncode}"
            time.sleep(0.1)
        return False, f"KVM guest did not finish booting within {timeout:.0f}s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()
        proc.stdout.close()


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
