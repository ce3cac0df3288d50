"""Faults of the kernel cache, made real: a full disk under BPFVM_CACHE, a download
interrupted with Ctrl-C, a cached image damaged on disk. Each fetches from the
mirror into a cache of its own."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 40 MiB tmpfs: room for the package lists, not for a kernel package."""
    if os.geteuid() != 0:
        pytest.skip("host: mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.fault("disk full in the cache dir")
def test_disk_full_while_fetching_is_one_line_and_leaves_nothing(small_disk, fault_outcome):
    proc = subprocess.run([sys.executable, "-m", "bpfvm.host.cli", "kernels", "fetch", "6.12",
                           "--arch", "x86_64"], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, BPFVM_CACHE=str(small_disk)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bpfvm: no space left for the cache in {small_disk} (")
    assert last.endswith("free some, or set BPFVM_CACHE to a directory on a larger disk")
    assert sorted(p.name for p in (small_disk / "kernels").iterdir()) == []
    fault_outcome(f"exit {proc.returncode}: {last}")


def bpfvm_fetch(cache_dir: Path, *, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpfvm.host.cli", "kernels", "fetch", "6.12",
                           "--arch", "x86_64"], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, BPFVM_CACHE=str(cache_dir)))


def entry_problem(cache_dir: Path, monkeypatch) -> object:
    from bpfvm.host.kernels import cache

    monkeypatch.setenv("BPFVM_CACHE", str(cache_dir))
    entry = cache.kernels_dir() / "6.12-x86_64"
    return cache.verify(entry) if entry.exists() else "absent"


@pytest.mark.fault("interrupted kernel download (Ctrl-C in apt-get download)")
def test_interrupted_download_leaves_nothing_and_the_next_fetch_completes(tmp_path, monkeypatch,
                                                                         fault_outcome):
    # A fast mirror delivers the packages within a second; at 4 MB/s the
    # download is surely still running when Ctrl-C comes.
    slow = tmp_path / "apt-slow.conf"
    slow.write_text('Acquire::http::Dl-Limit "4000";\n')
    proc = subprocess.Popen([sys.executable, "-m", "bpfvm.host.cli", "kernels", "fetch", "6.12",
                             "--arch", "x86_64"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, BPFVM_CACHE=str(tmp_path),
                                                APT_CONFIG=str(slow)))
    for line in proc.stdout:
        if "downloading" in line:
            break
    time.sleep(1)  # inside apt-get download
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == []  # no entry, no staging
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and str(tmp_path) in
                _cmdline(pid)], "a download process outlived the interrupted fetch"
    again = bpfvm_fetch(tmp_path)
    assert again.returncode == 0, again.stderr
    assert entry_problem(tmp_path, monkeypatch) is None
    fault_outcome(f"exit {proc.returncode}, no entry or staging left; the next fetch: "
                  f"{again.stdout.strip().splitlines()[-1]}")


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.fault("corrupt cached image (a flipped byte in vmlinuz)")
def test_damaged_cached_image_is_fetched_again(tmp_path, monkeypatch, fault_outcome):
    from bpfvm.host.kernels import cache

    source = cache.kernels_dir() / "6.12-x86_64"  # the real cache (BPFVM_CACHE not set yet)
    entry = tmp_path / "kernels" / "6.12-x86_64"
    if cache.verify(source) is None:  # borrow it: boot/ copied (damaged below), lib/ linked
        shutil.copytree(source / "boot", entry / "boot")
        subprocess.run(["cp", "-al", str(source / "lib"), str(entry / "lib")], check=True)
        shutil.copy(source / cache.MANIFEST, entry / cache.MANIFEST)
    else:  # not cached on this machine yet: fetch one to damage
        source = None
        assert bpfvm_fetch(tmp_path).returncode == 0
    manifest = json.loads((entry / cache.MANIFEST).read_text())
    image = entry / manifest["vmlinuz"]
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF
    image.write_bytes(bytes(data))
    assert "does not match its recorded sha256" in entry_problem(tmp_path, monkeypatch)
    proc = bpfvm_fetch(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cached copy unusable (" in proc.stdout and "fetching again" in proc.stdout
    assert entry_problem(tmp_path, monkeypatch) is None
    monkeypatch.undo()
    assert source is None or cache.verify(source) is None  # the real cache was only read
    fault_outcome(next(line for line in proc.stdout.splitlines() if "cached copy unusable" in line))


def test_doctor_warns_of_a_small_cache_and_fails_an_unusable_one(small_disk, tmp_path):
    def doctor(cache: Path) -> tuple[int, str]:
        proc = subprocess.run([sys.executable, "-m", "bpfvm.host.cli", "doctor"],
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, BPFVM_CACHE=str(cache)))
        return proc.returncode, next(l for l in proc.stdout.splitlines() if "cache" in l.split()[1])

    _code, line = doctor(small_disk)  # writable, 40 MiB free
    assert line.startswith("warn  cache") and "0.0 GB free" in line
    unusable = tmp_path / "file"
    unusable.write_text("")
    code, line = doctor(unusable / "cache")
    assert line.startswith("FAIL  cache") and code == 1
