"""A digest of what bpfvm's cache holds: each kernel's Debian package version and build key.

    cache_key.py CACHE_DIR

action.yml saves the cache under it, so a kernel that changed (a Debian update fetched,
a flavour rebuilt) is saved anew. Only the standard library.
"""
import hashlib
import json
import sys
from pathlib import Path


def key(cache: Path) -> str:
    parts = []
    for manifest in sorted((cache / "kernels").glob("*/manifest.json")):
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            parts.append(f"{manifest.parent.name}={data.get('debian_version')}/{data.get('build_key')}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16] if parts else ""


if __name__ == "__main__":
    print(key(Path(sys.argv[1])))
