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
from . import console, tools
from . import vm as vmmod

PROBE_TIMEOUT = 60.0


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
                            env=dict(os.environ, PATH=tools.search_path()))
    output = b""
    try:
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() - started < timeout:
            chunk = proc.stdout.read() or b""
            output += chunk
            failure = console.kvm_failure(output.decode(errors="replace"),
                                          time.monotonic() - started)
            if failure:
                return False, f"KVM guest failed: {failure}"
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
