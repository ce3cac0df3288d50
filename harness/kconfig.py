"""Kernel .config parsing, shared by host (catalog/manifest) and guest."""
from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path
from typing import Optional


def parse(text: str) -> dict[str, str]:
    """Map CONFIG_X to its value ('y', 'm', a number or a quoted string).

    '# CONFIG_X is not set' lines and absent options both read as absent.
    """
    config = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            config[key] = value
    return config


@functools.lru_cache(maxsize=8)
def load(path: str) -> dict[str, str]:
    """The parsed config at path (cached: tests ask for it again and again)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as f:
        return parse(f.read())


def running_config_path() -> Optional[str]:
    """Where the running kernel's config can be read, if anywhere."""
    release = os.uname().release
    for path in ("/proc/config.gz", f"/boot/config-{release}",
                 f"/lib/modules/{release}/config"):
        if Path(path).exists():
            return path
    return None
