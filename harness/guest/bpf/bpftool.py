"""bpftool, run in the guest, its JSON parsed."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from typing import Any


def bpftool(*args: str) -> Any:
    """Run ``bpftool -j ARGS`` and return its JSON (None when it printed nothing)."""
    tool = shutil.which("bpftool", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if tool is None:
        raise FileNotFoundError(errno.ENOENT, "bpftool not found in the guest (a guest runs the "
                                "host's /usr): run bpfvm setup on the host")
    out = subprocess.run([tool, "-j", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bpftool {' '.join(args)} failed: {out.stderr.strip() or out.stdout}")
    return json.loads(out.stdout) if out.stdout.strip() else None
