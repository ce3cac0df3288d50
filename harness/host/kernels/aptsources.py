"""Finding the Debian mirror in the system's own apt sources.

Reads /etc/apt/sources.list and /etc/apt/sources.list.d/ in both the
one-line (.list) and deb822 (.sources) formats. Nothing here ever writes
the system's apt configuration.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Iterable, Optional

DEBIAN_CODENAMES = {"buster", "bullseye", "bookworm", "trixie", "forky", "duke",
                    "sid", "unstable", "testing", "stable", "oldstable", "experimental"}
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class MirrorError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: Optional[str] = None


def parse_one_line(text: str) -> list[Source]:
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        options = {}
        m = re.match(r"deb\s+\[([^\]]*)\]\s*(.*)", line)
        if m:
            for opt in m.group(1).split():
                key, _, value = opt.partition("=")
                options[key] = value
            rest = m.group(2).split()
        else:
            rest = line.split()[1:]
        if len(rest) < 2:
            continue
        sources.append(Source(rest[0], (rest[1],), tuple(rest[2:]), options.get("signed-by")))
    return sources


def parse_deb822(text: str) -> list[Source]:
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                key = None
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by")
        if signed_by and "\n" in signed_by:  # an inline key block, not a path
            signed_by = None
        for uri in fields.get("uris", "").split():
            sources.append(Source(uri, tuple(fields.get("suites", "").split()),
                                  tuple(fields.get("components", "").split()), signed_by))
    return sources


def system_sources(root: str = "/") -> list[Source]:
    etc = Path(root, "etc/apt")
    sources: list[Source] = []
    main = etc / "sources.list"
    if main.exists():
        sources += parse_one_line(main.read_text(errors="replace"))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(errors="replace"))
    return sources


def _is_debian_archive(source: Source) -> bool:
    bases = {s.split("-")[0].split("/")[0] for s in source.suites}
    security = any("security" in s for s in source.suites) or "security" in source.uri
    return bool(bases & DEBIAN_CODENAMES) and not security


def pick_mirror(sources: Iterable[Source]) -> Source:
    for source in sources:
        if _is_debian_archive(source):
            return source
    raise MirrorError(
        "no Debian archive found in the system's apt sources; "
        "set BPFVM_MIRROR to a Debian mirror URI")


def mirror(root: str = "/") -> tuple[str, str]:
    """(uri, keyring) of the Debian mirror to fetch kernels from."""
    override = os.environ.get("BPFVM_MIRROR")
    if override:
        return override.rstrip("/"), os.environ.get("BPFVM_KEYRING", DEFAULT_KEYRING)
    source = pick_mirror(system_sources(root))
    return source.uri.rstrip("/"), source.signed_by or DEFAULT_KEYRING
