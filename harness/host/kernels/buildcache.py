"""Built kernels in the cache: `bpfvm kernels build` and `--kernel 6.12-test`.

A built kernel is published like a fetched one (boot/vmlinuz-REL,
boot/config-REL, lib/modules/REL, manifest.json) under kernels/LINE-FLAVOUR-ARCH,
and its manifest records the build key: source, merged fragments, arch,
compiler and recipe. The same key again is a cache hit.
"""
from __future__ import annotations

import datetime
import hashlib
import shutil
import time
from pathlib import Path
from typing import Optional

from ...target import host_arch
from ..progress import Progress
from . import cache, catalog, fragments, kmake, ksource
from .kmake import KernelBuildError


def entry_key(line: str, flavour: str, arch: str) -> str:
    return f"{line}-{flavour}-{arch}"


def merged_options(flavour: catalog.Flavour, arch: str) -> dict[str, fragments.Option]:
    return fragments.merge(fragments.load(kmake.fragment_names(flavour.fragments, arch)))


def cached(line: str, flavour: catalog.Flavour, arch: str) -> Optional[Path]:
    """The cached build when it is intact and its key still matches (no mirror asked)."""
    final = cache.kernels_dir() / entry_key(line, flavour.name, arch)
    manifest = cache.read_manifest(final)
    if manifest is None or cache.verify(final) is not None:
        return None
    try:
        compiler = kmake.compiler(arch)
    except KernelBuildError:  # no compiler here: what was built elsewhere is what there is
        compiler = manifest.get("compiler", "")
    key = kmake.build_key(manifest["source"], merged_options(flavour, arch), arch, compiler)
    return final if manifest.get("build_key") == key else None


def build(entry: catalog.Entry, flavour: catalog.Flavour, progress: Progress = print,
          refresh: bool = True) -> Path:
    """Make the cache hold entry's line built as flavour for entry's arch; return its dir.

    refresh=False uses an intact build whose key matches without asking the
    mirror for a newer source (what pytest does).
    """
    arch = entry.arch
    key_name = entry_key(entry.name, flavour.name, arch)
    final = cache.kernels_dir() / key_name
    options = merged_options(flavour, arch)
    with cache.locked(key_name):
        cache.sweep(final.parent, key_name)
        if not refresh and cached(entry.name, flavour, arch):
            return final
        compiler = kmake.compiler(arch)
        missing = kmake.missing_tools()
        if missing:
            raise KernelBuildError(f"building kernels needs {', '.join(missing)}: "
                             "run bpfvm setup --build")
        source = ksource.debian_source(entry, progress)
        key = kmake.build_key(source.label, options, arch, compiler)
        old = cache.read_manifest(final) if cache.verify(final) is None else None
        if old and old.get("build_key") == key:
            progress(f"{key_name}: {source.package} {source.debian_version} is already built "
                     f"({old['release']})")
            return final
        log = cache.cache_dir() / "logs" / f"build-{key_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"# {key_name}: {source.label}, {compiler}\n")
        started = time.monotonic()
        with cache.new_entry(final, key_name) as stage:
            tree = ksource.unpack_debian(entry, source, stage.dir / "src", progress)
            counter = kmake.StepCounter(key_name, expected=(old or {}).get("steps", 0))
            release, image, config = kmake.run_steps(
                tree, stage.dir / "out", arch, options, f"-bpfvm-{flavour.name}", log,
                stage.root, counter, progress)
            seconds = round(time.monotonic() - started)
            manifest = _manifest(entry, flavour, source, key, compiler, stage.root, release,
                                 image, config, counter.steps, seconds)
            shutil.rmtree(stage.dir / "src")
            shutil.rmtree(stage.dir / "out")
            stage.publish(manifest)
        progress(f"{key_name}: built {release} in {seconds // 60}m{seconds % 60:02d}s "
                 f"(log: {log}); cached in {final}")
        return final


def _manifest(entry: catalog.Entry, flavour: catalog.Flavour, source: ksource.DebianSource,
              key: str, compiler: str, root: Path, release: str, image: Path, config: Path,
              steps: int, seconds: int) -> dict:
    return {
        "name": f"{entry.name}-{flavour.name}", "line": entry.name, "flavour": flavour.name,
        "arch": entry.arch, "source": source.label, "version": source.version,
        "debian_version": source.debian_version, "release": release,
        "build_key": key, "compiler": compiler, "fragments": list(
            kmake.fragment_names(flavour.fragments, entry.arch)),
        "steps": steps, "build_seconds": seconds,
        **cache.boot_files(root, release, image, config),
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def build_tree(tree: Path, flavour: catalog.Flavour, arch: str,
               progress: Progress = print) -> Path:
    """Build a user's tree out of tree into the cache; return the build dir (for --kernel).

    The build dir is kept between runs, so make rebuilds only what changed.
    """
    tree = tree.expanduser().resolve()
    version = ksource.tree_version(tree)
    slug = f"{tree.name}-{hashlib.sha256(str(tree).encode()).hexdigest()[:8]}"
    out = cache.cache_dir() / "trees" / f"{slug}-{flavour.name}-{arch}"
    log = out.parent / f"{out.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    revision = ksource.tree_revision(tree) or "no git"
    log.write_text(f"# {tree} {version} ({revision}), flavour {flavour.name}, {arch}\n")
    options = merged_options(flavour, arch)
    label = f"{tree.name}-{flavour.name}-{arch}"
    counter = kmake.StepCounter(label)
    make = kmake.Make(tree, out, arch, log, ccache=kmake.ccache_path())
    progress(f"{label}: configuring {version} ({revision})")
    kmake.configure(make, options, f"-bpfvm-{flavour.name}")
    kmake.compile_kernel(make, counter)
    progress(f"{label}: built ({counter.summary()}); run tests with --kernel {out}"
             + (f" --arch {arch}" if arch != host_arch() else ""))
    return out
