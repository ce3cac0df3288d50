import tarfile
import types

from harness.host import bundle


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


def test_nested_roots_fold_into_the_outer_one(tmp_path):
    lib = tmp_path / "lib"
    (lib / "dynload").mkdir(parents=True)
    (lib / "os_.py").write_text("")
    (lib / "dynload/_ext.py").write_text("")
    groups = bundle.module_roots([fake_module("os_", lib / "os_.py"),
                                  fake_module("_ext", lib / "dynload/_ext.py")])
    assert list(groups) == [lib] and len(groups[lib]) == 2


def test_tar_is_cached_and_prelude_layers_each_root(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFVM_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "root"
    root.mkdir()
    (root / "m.py").write_text("x = 1\n")
    tar, roots = bundle.build({root: [root / "m.py"]})
    assert bundle.build({root: [root / "m.py"]}) == (tar, roots)
    with tarfile.open(tar) as t:
        assert t.getnames() == ["0/m.py"]
    prelude = bundle.guest_prelude(tar, roots)
    assert f"lowerdir={bundle.GUEST_DIR}/0:{root} {root}" in prelude
