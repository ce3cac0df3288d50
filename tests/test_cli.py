"""The `bpfvm` command, run for real (doctor boots a KVM probe where /dev/kvm exists)."""
import os
import subprocess
import sys

from bpfvm.target import host_arch


def bpfvm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpfvm.host.cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_kernels_list_shows_the_catalog():
    proc = bpfvm("kernels", "list")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ARCH", "SOURCE", "CACHED"]
    rows = [line.split()[:2] for line in lines[1:]]
    assert ["latest", "arm64"] in rows and ["5.10", "x86_64"] in rows
    assert ["6.12-test", "arm64"] in rows
    assert len(rows) == 16  # 8 fetched lines, each also as the test flavour


DOCTOR_CHECKS = ["catalog", "qemu-system-x86_64", "virtme-ng", "clang", "bpftool", "libbpf",
                 "cache", "mirror", "keyring", "qemu-system-aarch64", "debootstrap",
                 "qemu-aarch64-static", "kvm"]


# What `bpfvm setup` installs (ci/run.sh ran it on this machine), so doctor finds them.
SET_UP = ["qemu-system-x86_64", "virtme-ng", "clang", "bpftool", "libbpf", "keyring",
          "qemu-system-aarch64", "debootstrap", "qemu-aarch64-static"]


def test_doctor_checks_one_line_each():
    proc = bpfvm("doctor")
    status = {line.split()[1]: line.split()[0] for line in proc.stdout.splitlines()}
    assert list(status) == DOCTOR_CHECKS
    assert [name for name in SET_UP if status[name] != "ok"] == [], proc.stdout
    assert status["catalog"] == "ok" and status["kvm"] in ("ok", "warn")
    assert (proc.returncode, "FAIL" in proc.stdout) == (0, False), proc.stdout


def test_doctor_keeps_going_after_a_failed_check(tmp_path):
    missing = tmp_path / "no-catalog.toml"
    proc = subprocess.run([sys.executable, "-m", "bpfvm.host.cli", "doctor"], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, BPFVM_CATALOG=str(missing)))
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("FAIL  catalog") and str(missing) in lines[0]
    assert [line.split()[1] for line in lines] == DOCTOR_CHECKS
    assert proc.returncode == 1


def test_version_and_usage_errors():
    from bpfvm import __version__

    version = bpfvm("--version")
    assert (version.returncode, version.stdout) == (0, f"bpfvm {__version__}\n")
    assert bpfvm("no-such-command").returncode == 2
    assert bpfvm("kernels", "fetch", "--arch", "mips").returncode == 2


def test_setup_installs_nothing_when_everything_is_there():
    """This machine ran ci/run.sh, which runs bpfvm setup: a second run finds everything."""
    from bpfvm.host import sysdeps

    assert sysdeps.missing(sysdeps.wanted()) == []
    proc = bpfvm("setup")
    assert (proc.returncode, proc.stdout) == (
        0, "bpfvm setup: every Debian package bpfvm needs is installed\n")
    assert bpfvm("setup", "--quiet").stdout == ""


def test_unknown_kernel_is_one_clear_line():
    proc = bpfvm("kernels", "fetch", "4.4")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"bpfvm: unknown kernel '4.4' for {host_arch()}; known: 5.10, 6.1, 6.12, latest, "
        "a built flavour such as 6.12-test, 'host', or a path to a bzImage/Image "
        "or kernel build tree"]


def test_kernels_built_lists_cached_builds_as_one_kernel_value():
    proc = bpfvm("kernels", "built", "--flavour", "test")
    assert proc.returncode == 0
    built = [name for name in proc.stdout.strip().split(",") if name]
    listed = [line.split() for line in bpfvm("kernels", "list").stdout.splitlines()[1:]]
    cached = {row[0] for row in listed if row[1] == host_arch() and row[-1] != "-"}
    assert sorted(built) == sorted(name for name in cached if name.endswith("-test"))


def test_kernels_built_unknown_flavour_is_one_clear_line():
    proc = bpfvm("kernels", "built", "--flavour", "nope")
    assert (proc.returncode, proc.stderr) == (2, "bpfvm: unknown flavour 'nope'; the catalog "
                                                 "has test\n")
