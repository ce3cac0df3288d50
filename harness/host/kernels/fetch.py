"""Fetching Debian kernels with apt into the cache.

apt-get runs with a private state, cache and sources list under the
bpfvm cache (the system's apt configuration is read for the mirror but
never changed); packages are unpacked with dpkg-deb -x and normalized to
one layout: boot/vmlinuz-REL, boot/config-REL, lib/modules/REL/.
"""
from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from ...arches import ARCH
from ..progress import Progress
from . import aptsources, cache
from .catalog import Entry

# Versioned kernel packages: linux-image-6.12.107+deb13-amd64, and in sid's
# split layout linux-binary-/linux-base-/linux-modules-VERSION-FLAVOUR.
_KERNEL_PKG = re.compile(r"^linux-(image|binary|base|modules)-\d")


class FetchError(RuntimeError):
    pass


class Apt:
    """apt-get/apt-cache confined to a private directory for one suite and arch."""

    def __init__(self, root: Path, uri: str, keyring: str, suite: str, arch: str):
        self.root = root
        self.arch = ARCH[arch].debian
        for sub in ("lists/partial", "archives/partial", "parts", "prefs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "status").touch()
        (root / "sources.list").write_text(
            f"deb [arch={self.arch} signed-by={keyring}] {uri} {suite} main\n")

    def options(self) -> list[str]:
        r = self.root
        opts = {
            "Dir::State": r, "Dir::State::Lists": r / "lists", "Dir::State::status": r / "status",
            "Dir::Cache": r, "Dir::Cache::archives": r / "archives",
            "Dir::Etc::SourceList": r / "sources.list", "Dir::Etc::SourceParts": r / "parts",
            "Dir::Etc::Preferences": "/dev/null", "Dir::Etc::PreferencesParts": r / "prefs",
            "APT::Architecture": self.arch, "APT::Architectures::": self.arch,
            "Acquire::Languages": "none", "APT::Sandbox::User": "root",
        }
        return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]

    def run(self, tool: str, *args: str, cwd: Optional[Path] = None,
            quiet: bool = True) -> str:
        cmd = [tool, *self.options(), *args]
        proc = subprocess.run(cmd, cwd=cwd, text=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE if quiet else None,
                              stderr=subprocess.PIPE)
        if proc.returncode != 0:
            detail = (proc.stderr or "").strip().splitlines()
            if cache.out_of_space(proc.stderr or ""):
                raise FetchError(cache.no_space(cache.cache_dir()))
            raise FetchError(f"{tool} {args[0]} failed: {detail[-1] if detail else proc.returncode}")
        return proc.stdout or ""

    def update(self) -> None:
        self.run("apt-get", "-q", "update")

    def unpack(self, wanted: list[str], dest: Path, progress: Optional[Progress] = None,
               quiet: bool = True) -> None:
        """Download the packages wanted (NAME=VERSION) and dpkg-deb -x each into dest.

        The .debs go to a directory beside dest, removed afterwards.
        """
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".debs-", dir=dest.parent) as debs:
            self.run("apt-get", "download", *wanted, cwd=Path(debs), quiet=quiet)
            for deb in sorted(Path(debs).glob("*.deb")):
                if progress is not None:
                    progress(f"  unpacking {deb.name}")
                subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True,
                               stderr=subprocess.PIPE, text=True)

    def record(self, package: str) -> dict[str, str]:
        """The candidate version's control fields of a package."""
        text = self.run("apt-cache", "show", "--no-all-versions", package)
        fields: dict[str, str] = {}
        key = None
        for line in text.splitlines():
            if not line.strip():
                break
            if line[0] in " \t" and key:
                fields[key] += "\n" + line.strip()
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Version" not in fields:
            raise FetchError(f"no package {package} for {self.arch} in the configured suite")
        return fields


def apt_for(suite: str, arch: str) -> Apt:
    """A private apt for one suite and arch, on the system's mirror."""
    uri, keyring = aptsources.mirror()
    return Apt(cache.cache_dir() / "apt" / f"{suite}-{ARCH[arch].debian}", uri, keyring,
               suite, arch)


def depends(fields: dict[str, str]) -> list[str]:
    """First alternative of each dependency, names only."""
    names = []
    for dep in fields.get("Depends", "").split(","):
        first = dep.split("|")[0].strip()
        if first:
            names.append(first.split()[0].split(":")[0])
    return names


def resolve(apt: Apt, meta: str) -> dict[str, dict[str, str]]:
    """Follow the meta package to the versioned kernel packages it pulls in."""
    found: dict[str, dict[str, str]] = {}
    queue = [meta]
    seen = set()
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        fields = apt.record(name)
        if _KERNEL_PKG.match(name):
            found[name] = fields
        queue += [d for d in depends(fields) if d.startswith("linux-") and d != "linux-base"]
    if not any(n.startswith(("linux-image-", "linux-binary-")) for n in found):
        raise FetchError(f"{meta} does not lead to a kernel image package")
    return found


def normalize(root: Path) -> tuple[str, Path, Path]:
    """Move an unpacked kernel into boot/ + lib/modules/; return (release, vmlinuz, config)."""
    usr_mods = root / "usr/lib/modules"
    mods = root / "lib/modules"
    if usr_mods.is_dir():
        mods.mkdir(parents=True, exist_ok=True)
        for d in usr_mods.iterdir():
            shutil.move(str(d), mods / d.name)
        shutil.rmtree(root / "usr")
    boot = root / "boot"
    boot.mkdir(exist_ok=True)
    images = sorted(boot.glob("vmlinuz-*")) + sorted(mods.glob("*/vmlinuz"))
    if not images:
        raise FetchError("the packages contain no vmlinuz")
    image = images[0]
    release = image.name[len("vmlinuz-"):] if image.parent == boot else image.parent.name
    vmlinuz = boot / f"vmlinuz-{release}"
    config = boot / f"config-{release}"
    if image != vmlinuz:
        shutil.move(str(image), vmlinuz)
    if not config.exists() and (mods / release / "config").exists():
        shutil.move(str(mods / release / "config"), config)
    if not config.exists():
        raise FetchError(f"the packages contain no config for {release}")
    return release, vmlinuz, config


def upstream_version(debian_version: str) -> str:
    """'6.12.107-1' -> '6.12.107'; '7.2.13-1~exp1' -> '7.2.13'."""
    return re.split(r"[-~+]", debian_version, maxsplit=1)[0]


def cached(entry: Entry) -> Optional[Path]:
    """The entry's directory when the cache holds it intact (no mirror asked)."""
    final = cache.kernels_dir() / entry.key
    with cache.locked(entry.key):
        return final if final.exists() and cache.verify(final) is None else None


def fetch(entry: Entry, progress: Progress = print, refresh: bool = True,
          show_apt: bool = False) -> Path:
    """Make the cache hold the newest kernel of entry's suite; return its directory.

    With refresh=False an intact cached entry is used as is, without asking
    the mirror.
    """
    final = cache.kernels_dir() / entry.key
    with cache.locked(entry.key):
        cache.sweep(final.parent, entry.key)
        problem = cache.verify(final) if final.exists() else "not cached"
        if not refresh and problem is None:
            return final
        if final.exists() and problem:
            progress(f"{entry.key}: cached copy unusable ({problem}); fetching again")
        apt = apt_for(entry.suite, entry.arch)
        progress(f"{entry.key}: updating package lists for {entry.suite}/{apt.arch}")
        apt.update()
        packages = resolve(apt, entry.package)
        image = next(n for n in packages if n.startswith(("linux-image-", "linux-binary-")))
        version = packages[image]["Version"]
        current = cache.read_manifest(final) if problem is None else None
        if current and current.get("debian_version") == version:
            progress(f"{entry.key}: {image} {version} is already cached")
            return final
        size = sum(int(f.get("Size", 0)) for f in packages.values())
        progress(f"{entry.key}: downloading {', '.join(sorted(packages))} "
                 f"{version} ({size / 1e6:.0f} MB)")
        with cache.new_entry(final, entry.key) as stage:
            try:
                apt.unpack([f"{n}={f['Version']}" for n, f in packages.items()], stage.root,
                           progress, quiet=not show_apt)
                release, vmlinuz, config = normalize(stage.root)
                progress(f"{entry.key}: indexing modules of {release}")
                subprocess.run(["depmod", "-a", "-b", str(stage.root), release],
                               check=True, stderr=subprocess.DEVNULL)
                stage.publish(build_manifest(entry, packages, image, stage.root, release,
                                             vmlinuz, config))
            except (OSError, subprocess.CalledProcessError) as e:
                if cache.out_of_space(e):
                    raise FetchError(cache.no_space(cache.cache_dir())) from None
                raise
        progress(f"{entry.key}: cached {release} in {final}")
        return final


def build_manifest(entry: Entry, packages: dict[str, dict[str, str]], image: str, root: Path,
                   release: str, vmlinuz: Path, config: Path) -> dict:
    """What manifest.json records: versions, paths and checksums of an unpacked kernel."""
    version = packages[image]["Version"]
    return {
        "name": entry.name, "arch": entry.arch, "suite": entry.suite,
        "package": image, "debian_version": version,
        "version": upstream_version(version), "release": release,
        **cache.boot_files(root, release, vmlinuz, config),
        "debs": {n: {"version": f["Version"], "sha256": f.get("SHA256", "")}
                 for n, f in packages.items()},
        "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


