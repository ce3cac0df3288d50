import hashlib
import json
import os
from pathlib import Path

import pytest

from bpfvm.host.kernels import cache, fetch


@pytest.fixture
def cachedir(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFVM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_entry(root, release="6.1.0-9-amd64"):
    (root / "boot").mkdir(parents=True)
    (root / f"lib/modules/{release}/kernel").mkdir(parents=True)
    (root / f"boot/vmlinuz-{release}").write_bytes(b"image" * 100)
    (root / f"boot/config-{release}").write_text("CONFIG_BPF=y\n")
    (root / f"lib/modules/{release}/kernel/veth.ko").write_bytes(b"m" * 50)
    manifest = {
        "release": release, "modules": f"lib/modules/{release}",
        "modules_digest": cache.tree_digest(root / f"lib/modules/{release}"),
        "sha256": {f"boot/{n}-{release}": cache.sha256_file(root / f"boot/{n}-{release}")
                   for n in ("vmlinuz", "config")},
    }
    (root / cache.MANIFEST).write_text(json.dumps(manifest))
    return root


def test_whole_entry_verifies(tmp_path):
    assert cache.verify(make_entry(tmp_path / "e")) is None


def test_corrupt_image_is_detected(tmp_path):
    entry = make_entry(tmp_path / "e")
    (entry / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(b"imagf" * 100)
    assert "does not match its recorded sha256" in cache.verify(entry)


def test_truncated_module_is_detected(tmp_path):
    entry = make_entry(tmp_path / "e")
    (entry / "lib/modules/6.1.0-9-amd64/kernel/veth.ko").write_bytes(b"m")
    assert "does not match its recorded file list" in cache.verify(entry)


def test_half_written_entry_is_not_usable(tmp_path):
    entry = make_entry(tmp_path / "e")
    (entry / cache.MANIFEST).unlink()
    assert "no readable manifest.json" in cache.verify(entry)


def test_publish_replaces_atomically_and_sweep_cleans(cachedir):
    parent = cache.kernels_dir()
    old = make_entry(parent / "6.1-x86_64")
    staged = cache.staging(parent, "6.1-x86_64")
    make_entry(staged / "root", release="6.1.0-10-amd64")
    cache.publish(staged / "root", old)
    assert (old / "boot/vmlinuz-6.1.0-10-amd64").exists()
    assert not (old / "boot/vmlinuz-6.1.0-9-amd64").exists()
    other = cache.staging(parent, "6.12-x86_64")
    cache.sweep(parent, "6.1-x86_64")
    assert not staged.exists() and other.exists()


def test_normalize_classic_layout(tmp_path):
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot/vmlinuz-5.10.0-32-amd64").write_bytes(b"k")
    (root / "boot/config-5.10.0-32-amd64").write_text("")
    (root / "lib/modules/5.10.0-32-amd64").mkdir(parents=True)
    release, vmlinuz, config = fetch.normalize(root)
    assert release == "5.10.0-32-amd64"
    assert vmlinuz == root / "boot/vmlinuz-5.10.0-32-amd64" and config.exists()


def test_normalize_split_usr_layout(tmp_path):
    """sid: vmlinuz and config under usr/lib/modules/VERSION/."""
    root = tmp_path / "root"
    mods = root / "usr/lib/modules/7.2.13+deb14-amd64"
    (mods / "kernel").mkdir(parents=True)
    (mods / "vmlinuz").write_bytes(b"k")
    (mods / "config").write_text("")
    release, vmlinuz, config = fetch.normalize(root)
    assert release == "7.2.13+deb14-amd64"
    assert vmlinuz == root / "boot/vmlinuz-7.2.13+deb14-amd64"
    assert config == root / "boot/config-7.2.13+deb14-amd64"
    assert (root / "lib/modules/7.2.13+deb14-amd64/kernel").is_dir()
    assert not (root / "usr").exists()


class FakeApt:
    def __init__(self, records):
        self.records = records

    def record(self, name):
        return self.records[name]


def test_resolve_follows_the_split_packages():
    apt = FakeApt({
        "linux-image-amd64": {"Version": "7.2.13-1",
                              "Depends": "linux-base-amd64 (= 7.2.13-1), linux-image-7.2.13+deb14-amd64 (= 7.2.13-1)"},
        "linux-base-amd64": {"Version": "7.2.13-1", "Depends": "linux-base-7.2.13+deb14-amd64"},
        "linux-image-7.2.13+deb14-amd64": {
            "Version": "7.2.13-1",
            "Depends": "dracut | initramfs-tools (>= 0.120), linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), "
                       "linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-amd64"},
        "linux-base-7.2.13+deb14-amd64": {"Version": "7.2.13-1", "Depends": "linux-base"},
        "linux-binary-7.2.13+deb14-amd64": {"Version": "7.2.13-1"},
        "linux-modules-7.2.13+deb14-amd64": {"Version": "7.2.13-1"},
    })
    assert sorted(fetch.resolve(apt, "linux-image-amd64")) == [
        "linux-base-7.2.13+deb14-amd64", "linux-binary-7.2.13+deb14-amd64",
        "linux-image-7.2.13+deb14-amd64", "linux-modules-7.2.13+deb14-amd64"]


def test_upstream_version():
    assert fetch.upstream_version("5.10.223-1") == "5.10.223"
    assert fetch.upstream_version("7.2.13-1~exp1") == "7.2.13"


def test_tree_digest_is_unchanged_from_the_os_walk_one(tmp_path):
    """Caches written before the scandir rewrite must stay valid."""
    for rel in ("b/x.ko", "a/z/y.ko", "a/w.ko", "top.ko", "a/z/deep/q.ko"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"k" * len(rel))
    (tmp_path / "link.ko").symlink_to(tmp_path / "top.ko")
    (tmp_path / "dirlink").symlink_to(tmp_path / "a")
    h = hashlib.sha256()
    for root, dirs, files in os.walk(tmp_path):
        dirs.sort()
        for name in sorted(files):
            full = Path(root, name)
            if not full.is_symlink():
                h.update(f"{full.relative_to(tmp_path)}\0{full.stat().st_size}\n".encode())
    assert cache.tree_digest(tmp_path) == h.hexdigest()


def test_a_kernel_can_be_looked_up_in_the_cache_without_fetching(cachedir):
    from bpfvm.host.kernels import catalog, resolve

    entries = catalog.load()
    target = resolve.parse("6.1", "x86_64", entries)
    assert resolve.materialize(target, entries, progress=pytest.fail,
                               fetch_missing=False) is False
    assert target.vmlinuz is None
    assert not cache.kernels_dir().exists() or not any(cache.kernels_dir().iterdir())
    entry = make_entry(cache.kernels_dir() / catalog.lookup(entries, "6.1", "x86_64").key)
    manifest = json.loads((entry / cache.MANIFEST).read_text())
    manifest.update(version="6.1.140", vmlinuz="boot/vmlinuz-6.1.0-9-amd64",
                    config="boot/config-6.1.0-9-amd64")
    (entry / cache.MANIFEST).write_text(json.dumps(manifest))
    assert resolve.materialize(target, entries, progress=pytest.fail, fetch_missing=False)
    assert target.vmlinuz == str(entry / "boot/vmlinuz-6.1.0-9-amd64")
