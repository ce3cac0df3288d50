"""The kernel catalog (kernels/catalog.toml): which kernels can be fetched or built."""
from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from ...target import ARCHES

PACKAGED_PATH = Path(str(resources.files("bpfvm.kernels") / "catalog.toml"))


class CatalogError(ValueError):
    pass


class UnknownName(CatalogError):
    """A kernel or flavour name the catalog does not have (the user's mistake)."""


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    arch: str
    suite: str
    package: str

    @property
    def key(self) -> str:
        """Directory name of this entry in the cache."""
        return f"{self.name}-{self.arch}"


def catalog_path() -> Path:
    """BPFVM_CATALOG when set (a catalog of the user's own), else bpfvm's."""
    return Path(os.environ.get("BPFVM_CATALOG") or PACKAGED_PATH)


def parse(text: str) -> list[Entry]:
    data = _toml(text)
    entries = []
    seen = set()
    for i, raw in enumerate(data.get("kernel", [])):
        missing = {"name", "arch", "suite", "package"} - raw.keys()
        if missing:
            raise CatalogError(f"kernel catalog entry {i + 1} lacks {', '.join(sorted(missing))}")
        entry = Entry(str(raw["name"]), raw["arch"], raw["suite"], raw["package"])
        if entry.arch not in ARCHES:
            raise CatalogError(f"kernel catalog entry {entry.name}: unknown arch {entry.arch!r}")
        if (entry.name, entry.arch) in seen:
            raise CatalogError(f"kernel catalog lists {entry.name} for {entry.arch} twice")
        seen.add((entry.name, entry.arch))
        entries.append(entry)
    return entries


def _toml(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(f"kernel catalog is not valid TOML: {e}") from None


def load(path: Path | None = None) -> list[Entry]:
    return parse(_read(path))


def _read(path: Path | None) -> str:
    path = path or catalog_path()
    try:
        return path.read_text()
    except OSError as e:
        raise CatalogError(f"cannot read kernel catalog {path}: {e.strerror}") from None


@dataclasses.dataclass(frozen=True)
class Flavour:
    """A kernel configuration bpfvm builds: fragment names under kernels/fragments/."""
    name: str
    fragments: tuple[str, ...]


def parse_flavours(text: str) -> dict[str, Flavour]:
    data = _toml(text)
    flavours = {}
    for name, raw in data.get("flavour", {}).items():
        frags = raw.get("fragments")
        if not isinstance(frags, list) or not frags:
            raise CatalogError(f"kernel catalog flavour {name!r} needs a list of fragments")
        flavours[name] = Flavour(name, tuple(str(f) for f in frags))
    return flavours


def load_flavours(path: Path | None = None) -> dict[str, Flavour]:
    return parse_flavours(_read(path))


def split_built(name: str, flavours: dict[str, Flavour]) -> tuple[str, Flavour] | None:
    """'6.12-test' -> ('6.12', test flavour); None when name is no built kernel."""
    line, sep, flavour = name.rpartition("-")
    if sep and line and flavour in flavours:
        return line, flavours[flavour]
    return None


def lookup(entries: list[Entry], name: str, arch: str) -> Entry:
    for entry in entries:
        if entry.name == name and entry.arch == arch:
            return entry
    names = sorted({e.name for e in entries if e.arch == arch})
    raise UnknownName(
        f"unknown kernel {name!r} for {arch}; known: {', '.join(names)}, "
        "a built flavour such as 6.12-test, 'host', or a path to a bzImage/Image "
        "or kernel build tree")
