import importlib.util
import os
import sys
import tarfile
import types

import pytest

from bpfvm.host.vm import bundle


def fake_module(name, path):
    module = types.ModuleType(name)
    module.__file__ = str(path)
    return module


def test_roots_follow_dotted_names_and_skip_aliases(tmp_path):
    site = tmp_path / "site"
    (site / "pkg/sub").mkdir(parents=True)
    for rel in ("pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py", "top.py"):
        (site / rel).write_text("")
    (site / "_impl.py").write_text("")
    modules = [fake_module("pkg", site / "pkg/__init__.py"),
               fake_module("pkg.sub", site / "pkg/sub/__init__.py"),
               fake_module("pkg.sub.mod", site / "pkg/sub/mod.py"),
               fake_module("top", site / "top.py"),
               fake_module("other.alias", site / "_impl.py"),
               fake_module("builtin", tmp_path / "missing.py")]
    groups = bundle.module_roots(modules)
    assert list(groups) == [site]
    assert {p.relative_to(site).as_posix() for p in groups[site]} == {
        "pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py", "top.py"}


def test_a_package_mapped_from_a_directory_of_another_name_is_bundled(tmp_path):
    """An editable install of bpfvm: package bpfvm, files in harness/."""
    repo = tmp_path / "repo"
    (repo / "harness/host").mkdir(parents=True)
    for rel in ("harness/__init__.py", "harness/host/__init__.py", "harness/host/vm.py",
                "harness/stray.py"):
        (repo / rel).write_text("")
    groups = bundle.module_roots([fake_module("bpfvm", repo / "harness/__init__.py"),
                                  fake_module("bpfvm.host", repo / "harness/host/__init__.py"),
                                  fake_module("bpfvm.host.vm", repo / "harness/host/vm.py"),
                                  fake_module("bpfvm.host.alias", repo / "harness/stray.py")])
    assert list(groups) == [repo]
    assert {p.relative_to(repo).as_posix() for p in groups[repo]} == {
        "harness/__init__.py", "harness/host/__init__.py", "harness/host/vm.py"}


def test_nested_roots_fold_into_the_outer_one(tmp_path):
    lib = tmp_path / "lib"
    (lib / "dynload").mkdir(parents=True)
    (lib / "os_.py").write_text("")
    (lib / "dynload/_ext.py").write_text("")
    groups = bundle.module_roots([fake_module("os_", lib / "os_.py"),
                                  fake_module("_ext", lib / "dynload/_ext.py")])
    assert list(groups) == [lib] and len(groups[lib]) == 2


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A sys.path root to bundle, and a cache of the test's own."""
    monkeypatch.setenv("BPFVM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


def test_tar_is_cached_and_prelude_layers_each_root(root):
    (root / "m.py").write_text("x = 1\n")
    tar, roots = bundle.build({root: [root / "m.py"]})
    assert bundle.build({root: [root / "m.py"]}) == (tar, roots)
    with tarfile.open(tar) as t:
        assert t.getnames() == ["0/m.py", f"0/__pycache__/m.{sys.implementation.cache_tag}.pyc"]
    prelude = bundle.guest_prelude(tar, roots)
    assert f"lowerdir={bundle.GUEST_DIR}/0:{root} {root}" in prelude


def test_bytecode_made_on_the_host_is_what_the_guest_python_uses(root, tmp_path, monkeypatch):
    (root / "m.py").write_text("x = 41 + 1\n")
    tar, _ = bundle.build({root: [root / "m.py"]})
    with tarfile.open(tar) as t:
        t.extractall(tmp_path / "unpacked")
    source = tmp_path / "unpacked" / "0" / "m.py"
    source.write_text("x = 41 + 2\n")  # same size and (below) mtime: only the bytecode says 42
    os.utime(source, ns=(0, (root / "m.py").stat().st_mtime_ns))
    spec = importlib.util.spec_from_file_location("m", source)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec.loader.exec_module(module)
    assert module.x == 42


def test_old_bundles_are_pruned(root, tmp_path):
    made = []
    for i in range(bundle.KEEP + 3):
        (root / "m.py").write_text(f"x = {i}\n")
        os.utime(root / "m.py", ns=(0, i * 10**9))
        made.append(bundle.build({root: [root / "m.py"]})[0])
        os.utime(made[-1], (i, i))
    left = sorted((tmp_path / "cache" / "bundles").glob("*.tar"))
    assert len(left) == bundle.KEEP and made[-1] in left and made[0] not in left


def test_the_guest_gets_neither_the_project_nor_the_host_side(tmp_path):
    project, site = tmp_path / "project", tmp_path / "site"
    modules = [fake_module("test_x", project / "test_x.py"),
               fake_module("bpfvm.host.vm.vm", bundle.PACKAGE_DIR / "host/vm/vm.py"),
               fake_module("bpfvm.net", bundle.PACKAGE_DIR / "net.py"),
               fake_module("xdist", site / "xdist/__init__.py"),
               fake_module("xdistant", site / "xdistant.py")]
    kept = bundle.for_guest(modules, project)
    assert [m.__name__ for m in kept] == ["bpfvm.net", "xdistant"]


def test_a_projects_guest_imports_are_recalled_by_its_next_run(root, tmp_path):
    project, other = tmp_path / "project", tmp_path / "other"
    assert bundle.recall(project) == []
    (root / "pkg").mkdir()
    for rel in ("m.py", "pkg/n.py", "gone.py"):
        (root / rel).write_text("")
    modules = [("gone", str(root / "gone.py")), ("m", str(root / "m.py")),
               ("pkg.n", str(root / "pkg/n.py"))]
    bundle.remember(project, modules)
    (root / "gone.py").unlink()
    assert bundle.recall(project) == modules[1:] and bundle.recall(other) == []
    bundle.record_path(project).write_text(f'[["m", 1], ["ok", "{root}/m.py"], "junk", ["a", "b", "c"]]')
    assert bundle.recall(project) == [("ok", str(root / "m.py"))]
    bundle.record_path(project).write_text("{not json")
    assert bundle.recall(project) == []


def test_the_prelude_bundles_what_was_recorded(root):
    (root / "m.py").write_text("x = 1\n")
    prelude = bundle.prelude([("m", str(root / "m.py")), ("gone", str(root / "gone.py"))])
    tar = next(word for word in prelude.split() if word.endswith(".tar"))
    with tarfile.open(tar) as t:
        assert t.getnames() == ["0/m.py", f"0/__pycache__/m.{sys.implementation.cache_tag}.pyc"]
