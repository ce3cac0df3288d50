"""The `bpfvm` command: kernel catalog and cache, a health check, verifier statistics,
compatibility tables."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

from .. import __version__
from ..arches import ARCH
from ..target import ARCHES, host_arch
from . import interrupt, sysdeps, tools
from .kernels import aptsources, buildcache, cache, catalog, fetch, fragments, ksource, resolve
from .kernels.aptsources import MirrorError
from .report import compat, verifier_stats
from .vm import accel, kept, rootfs


def cmd_list(args: argparse.Namespace) -> int:
    entries = catalog.load()
    rows = [("NAME", "ARCH", "SOURCE", "CACHED")]
    for e in entries:
        rows.append((e.name, e.arch, f"debian {e.suite}: {e.package}",
                     _cached_label(cache.kernels_dir() / e.key, "debian_version")))
    for flavour in catalog.load_flavours().values():
        for e in entries:
            entry_dir = cache.kernels_dir() / buildcache.entry_key(e.name, flavour.name, e.arch)
            rows.append((f"{e.name}-{flavour.name}", e.arch,
                         f"built: linux-source of {e.suite} + {'+'.join(flavour.fragments)}",
                         _cached_label(entry_dir, "build_seconds")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    return 0


def _cached_label(entry_dir: Path, detail: str) -> str:
    manifest = cache.read_manifest(entry_dir)
    if manifest is None:
        return "-"
    extra = manifest.get(detail, "")
    if detail == "build_seconds" and extra != "":
        extra = f"built in {extra // 60}m{extra % 60:02d}s"
    label = f"{manifest['release']} ({extra})"
    if cache.verify(entry_dir):
        label += " [damaged: will be redone]"
    return label


def cmd_built(args: argparse.Namespace) -> int:
    """Print the cached, ready-to-boot builds of a flavour as one --kernel value."""
    flavour = _flavour(args.flavour)
    runnable = args.arch == host_arch() or rootfs.cached(args.arch) is not None
    lines = dict.fromkeys(e.name for e in catalog.load() if e.arch == args.arch)
    names = [f"{line}-{args.flavour}" for line in lines
             if runnable and buildcache.cached(line, flavour, args.arch)]
    print(",".join(names))
    return 0


def _flavour(name: str) -> catalog.Flavour:
    flavours = catalog.load_flavours()
    if name not in flavours:
        raise catalog.UnknownName(f"unknown flavour {name!r}; the catalog has "
                                  f"{', '.join(sorted(flavours)) or 'none'}")
    return flavours[name]


def cmd_fetch(args: argparse.Namespace) -> int:
    entries = catalog.load()
    names = args.names or list(dict.fromkeys(e.name for e in entries))
    for name in names:
        entry = catalog.lookup(entries, name, args.arch)
        fetch.fetch(entry, progress=lambda line: print(line, flush=True), show_apt=True)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    flavour = _flavour(args.flavour)
    say = lambda line: print(line, flush=True)  # noqa: E731
    if args.tree:
        buildcache.build_tree(Path(args.tree), flavour, args.arch, progress=say)
        return 0
    if not args.line:
        raise catalog.UnknownName("name a kernel line to build (e.g. 6.12) or --tree PATH")
    entry = catalog.lookup(catalog.load(), args.line, args.arch)
    buildcache.build(entry, flavour, progress=say)
    return 0


def cmd_source(args: argparse.Namespace) -> int:
    """Progress on stderr, the tree's path alone on stdout: "$(bpfvm kernels source 6.12)"."""
    entry = catalog.lookup(catalog.load(), args.line, args.arch)
    tree = ksource.cached_tree(entry, progress=lambda line: print(line, file=sys.stderr,
                                                                  flush=True))
    print(tree)
    return 0


def cmd_rootfs(args: argparse.Namespace) -> int:
    rootfs.ensure(args.arch, progress=lambda line: print(line, flush=True))
    print(rootfs.rootfs_dir(args.arch))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """One line per requirement: ok/FAIL/warn, what was found, and the fix.

    FAIL is something the default kernel (the host's arch) needs; warn is
    something only arm64 guests, kernel builds or speed need, or a check
    whose probe answers None (works, but see the detail). Every check runs,
    whatever failed before it.
    """
    results = []

    def check(name: str, probe, fix: str = "", warn: bool = False) -> None:
        try:
            ok, detail = probe()
        except Exception as e:  # noqa: BLE001 - a broken check is a failed check, not a crash
            ok, detail = False, f"{type(e).__name__}: {e}"
        status = "warn" if ok is None else "ok" if ok else ("warn" if warn else "FAIL")
        results.append(ok is not False or warn)
        print(f"{status:4}  {name:20} {detail}" + (f" -> {fix}" if fix and not ok else ""),
              flush=True)

    def tool(name: str) -> Callable[[], tuple[bool, str]]:
        def probe() -> tuple[bool, str]:
            found = tools.find(name)
            return found is not None, found or "not found"
        return probe

    arch = host_arch()
    check("catalog", _check_catalog, "fix the file or unset BPFVM_CATALOG")
    check(tools.QEMU[arch], tool(tools.QEMU[arch]), tools.install_hint(tools.QEMU[arch]))
    check("virtme-ng", tool("vng"), tools.install_hint("vng"))
    check("clang", tool("clang"), tools.install_hint("clang"))
    check("bpftool", tool("bpftool"), tools.install_hint("bpftool"))
    check("libbpf", _check_libbpf, "bpfvm setup (libbpf1)")
    check("cache", _check_cache, "set BPFVM_CACHE to a writable directory with space")
    check("mirror", _check_mirror, "add a Debian archive to apt's sources, or set BPFVM_MIRROR")
    check("keyring", _check_keyring, "bpfvm setup (debian-archive-keyring), or set BPFVM_KEYRING")
    for other in (a for a in ARCHES if a != arch):
        qemu = tools.QEMU[other]
        check(qemu, tool(qemu), f"{tools.install_hint(qemu)} (for --arch {other})", warn=True)
        check("debootstrap", tool("debootstrap"), f"bpfvm setup (for the {other} root)", warn=True)
        user = f"{ARCH[other].qemu_user}-static"
        check(user, tool(user), f"bpfvm setup (for the {other} root)", warn=True)
    check("kvm", _check_kvm, "tests fall back to TCG (slower)", warn=True)
    return 0 if all(results) else 1


def _check_catalog() -> tuple[bool, str]:
    entries = catalog.load()
    return True, f"{catalog.catalog_path()}: {len(entries)} kernels"


def _check_libbpf() -> tuple[bool, str]:
    import ctypes

    from ..guest.bpf.libbpf import LIBRARY

    try:
        ctypes.CDLL(LIBRARY)
    except OSError as e:
        return False, f"cannot load {LIBRARY}: {e}"
    return True, f"{LIBRARY} loads (x86_64 guests use the host's)"


def _check_cache() -> tuple[Optional[bool], str]:
    """Unwritable fails; writable with under 2 GB free is a warning (a kernel is ~0.5 GB)."""
    cdir = cache.cache_dir()
    cdir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cdir):
        pass
    free = shutil.disk_usage(cdir).free / 1e9
    return (True if free > 2 else None), f"{cdir} writable, {free:.1f} GB free"


def _check_mirror() -> tuple[bool, str]:
    uri, _keyring = aptsources.mirror()
    source = "BPFVM_MIRROR" if os.environ.get("BPFVM_MIRROR") else "apt sources"
    return True, f"{uri} (from {source})"


def _check_keyring() -> tuple[bool, str]:
    try:
        _uri, keyring = aptsources.mirror()
    except MirrorError:
        keyring = os.environ.get("BPFVM_KEYRING", aptsources.DEFAULT_KEYRING)
    return os.path.isfile(keyring), keyring + ("" if os.path.isfile(keyring) else " missing")


def _check_kvm() -> tuple[bool, str]:
    if not accel.kvm_device_usable():
        return False, "/dev/kvm missing or not accessible: tests run under TCG (slower)"
    target = _probe_target()
    if target is None:
        return False, "/dev/kvm present; no cached kernel to probe it with " \
                      "(bpfvm kernels fetch 6.12)"
    works, detail = accel.remembered(cache.cache_dir() / accel.STATE,
                                     lambda: accel.probe(target), fresh=True)
    return works, f"{detail} (probed with {target.describe()})"


def cmd_setup(args: argparse.Namespace) -> int:
    sysdeps.setup(args.build, lambda line: print(line, flush=True), quiet=args.quiet)
    return 0


def _probe_target():
    for entry in catalog.load():
        if entry.arch != host_arch():
            continue
        entry_dir = cache.kernels_dir() / entry.key
        if cache.read_manifest(entry_dir) and cache.verify(entry_dir) is None:
            target = resolve.parse(entry.name, entry.arch, [entry])
            resolve.materialize(target, [entry], progress=lambda _: None)
            return target
    return None


def cmd_vms(args: argparse.Namespace) -> int:
    """The VMs kept booted for the next run (--bpfvm-reuse)."""
    rows = [("KERNEL", "RELEASE", "AGE", "IDLE", "RUNS", "MEMORY", "ACCEL")]
    for _directory, record in kept.entries():
        if record is None:
            continue
        shown = kept.summary(record)
        idle = record.gone if record.state == "gone" else shown["idle"]
        rows.append((shown["kernel"], shown["release"], shown["age"], idle, str(shown["runs"]),
                     shown["memory"], shown["accel"]))
    if len(rows) == 1:
        print("bpfvm: no VMs are kept (pytest --bpfvm-reuse keeps them)")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_vms_stop(args: argparse.Namespace) -> int:
    """End kept VMs: those of one kernel, or all."""
    if not args.all and not args.kernel:
        print("bpfvm: say which: bpfvm vms stop KERNEL, or bpfvm vms stop --all", file=sys.stderr)
        return 2
    chosen = [(d, r) for d, r in kept.entries()
              if args.all or (r is not None and r.target == args.kernel)]
    if not chosen:
        print(f"bpfvm: no kept VM{'' if args.all else ' of ' + args.kernel}")
        return 0
    for directory, record in chosen:
        print(f"{record.target if record else directory.name}: {kept.stop(directory, record)}")
    return 0


def cmd_report_merge(args: argparse.Namespace) -> int:
    """One compatibility table from the JSON reports of several runs (CI cells)."""
    matrix = compat.merge_files(args.files)
    if args.output:
        md, js = matrix.write(args.output)
        print(f"bpfvm: merged table written to {md} and {js}", file=sys.stderr)
    print(matrix.render_markdown(), end="")
    return 0


def cmd_verifier_stats(args: argparse.Namespace) -> int:
    root = Path(args.golden) if args.golden else verifier_stats.project_golden(Path.cwd())
    kernels = args.kernels or verifier_stats.kernel_dirs(root)
    if len(kernels) < 2:
        raise verifier_stats.StatsError(
            f"need statistics of two kernels or more in {root} (found: {', '.join(kernels) or 'none'}); "
            "write them with: pytest suites -k verifier --kernel A,B --update-golden")
    table = verifier_stats.load(root, kernels, args.field)
    print(verifier_stats.render(table, kernels, args.field))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bpfvm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"bpfvm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("setup", help="install the Debian/Ubuntu packages bpfvm needs "
                                      "(idempotent; as root or through sudo)")
    st.add_argument("--build", action="store_true",
                    help="also what building kernels from source needs")
    st.add_argument("-q", "--quiet", action="store_true", help="say nothing when nothing is missing")
    st.set_defaults(func=cmd_setup)
    kernels = sub.add_parser("kernels", help="the kernel catalog and cache")
    ksub = kernels.add_subparsers(dest="action", required=True)
    ksub.add_parser("list", help="catalog entries and what is cached").set_defaults(func=cmd_list)
    bl = ksub.add_parser("built", help="cached builds of a flavour ready to boot, as a "
                                       "--kernel value (empty when none)")
    bl.add_argument("--flavour", default="test", help="flavour from the catalog (default: test)")
    bl.add_argument("--arch", default=host_arch(), choices=ARCHES)
    bl.set_defaults(func=cmd_built)
    f = ksub.add_parser("fetch", help="fetch (or update) kernels into the cache")
    f.add_argument("names", nargs="*", help="catalog names (default: all)")
    f.add_argument("--arch", default=host_arch(), choices=ARCHES)
    f.set_defaults(func=cmd_fetch)
    b = ksub.add_parser("build", help="build a kernel flavour from source into the cache")
    b.add_argument("line", nargs="?", help="catalog line whose Debian linux-source to build")
    b.add_argument("--tree", help="build this kernel source tree instead (out of tree)")
    b.add_argument("--flavour", default="test", help="flavour from the catalog (default: test)")
    b.add_argument("--arch", default=host_arch(), choices=ARCHES)
    b.set_defaults(func=cmd_build)
    src = ksub.add_parser("source", help="fetch and unpack a line's Debian kernel source into "
                                         "the cache; print the tree's path")
    src.add_argument("line", help="catalog line (5.10, 6.1, 6.12, latest)")
    src.add_argument("--arch", default=host_arch(), choices=ARCHES,
                     help="the catalog entry whose suite to follow (the source is the same)")
    src.set_defaults(func=cmd_source)
    r = sub.add_parser("rootfs", help="guest root filesystems for foreign arches")
    rsub = r.add_subparsers(dest="action", required=True)
    rb = rsub.add_parser("build", help="build (or check) the cached root of an arch")
    rb.add_argument("--arch", default="arm64", choices=[a for a in ARCHES if a != host_arch()])
    rb.set_defaults(func=cmd_rootfs)
    sub.add_parser("doctor", help="check every requirement, one line each; exit 0 when the "
                                  "default kernel has what it needs").set_defaults(func=cmd_doctor)
    rp = sub.add_parser("report", help="compatibility tables written by pytest --compat-report")
    rpsub = rp.add_subparsers(dest="action", required=True)
    rm = rpsub.add_parser("merge", help="merge several BASE.json into one table (Markdown on "
                                        "stdout)")
    rm.add_argument("files", nargs="+", help="JSON reports to merge")
    rm.add_argument("-o", "--output", metavar="BASE", help="also write BASE.md and BASE.json")
    rm.set_defaults(func=cmd_report_merge)
    vm = sub.add_parser("vms", help="VMs kept booted between runs (pytest --bpfvm-reuse)")
    vm.set_defaults(func=cmd_vms)
    vmsub = vm.add_subparsers(dest="action")
    vs = vmsub.add_parser("stop", help="end kept VMs and remove what they leave")
    vs.add_argument("kernel", nargs="?", help="the kernel id whose VMs to end (6.12, 6.12-arm64)")
    vs.add_argument("--all", action="store_true", help="end every kept VM")
    vs.set_defaults(func=cmd_vms_stop)
    v = sub.add_parser("verifier-stats", help="golden verifier statistics compared across kernels")
    v.add_argument("kernels", nargs="*", help="kernel ids to compare, first is the baseline "
                                              "(default: every kernel with statistics)")
    v.add_argument("--golden", help="golden directory (default: the one golden/ directory with "
                                    "statistics in the project pytest would use from here)")
    v.add_argument("--field", default="processed_insns", choices=verifier_stats.FIELDS)
    v.set_defaults(func=cmd_verifier_stats)
    args = parser.parse_args(argv)
    interrupt.sigterm_interrupts()
    try:
        return args.func(args)
    except (catalog.UnknownName, resolve.ResolveError) as e:
        print(f"bpfvm: {e}", file=sys.stderr)  # the arguments name nothing: a usage error
        return 2
    except (catalog.CatalogError, fetch.FetchError, MirrorError, buildcache.KernelBuildError,
            ksource.SourceError, fragments.FragmentError, rootfs.RootfsError,
            verifier_stats.StatsError, compat.ReportError, sysdeps.SetupError,
            kept.RunDirError) as e:
        print(f"bpfvm: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        print(f"bpfvm: {cache.os_error_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
