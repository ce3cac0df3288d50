"""Kernel builds, host-side logic: fragments, the dropped-option check, keys, make variables."""
import pytest

from bpfvm.host.kernels import buildcache, catalog, fragments, kmake, resolve
from bpfvm.host.vm import rootfs


def frag(tmp_path, name, text):
    (tmp_path / f"{name}.config").write_text(text)


def test_later_fragments_override_earlier_ones(tmp_path):
    frag(tmp_path, "a", "# comment\nCONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n")
    frag(tmp_path, "b", "CONFIG_B=m\nCONFIG_C=y\nCONFIG_D=\"x y\"\n")
    merged = fragments.merge(fragments.load(["a", "b"], tmp_path))
    assert {k: o.value for k, o in merged.items()} == {
        "CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_C": "y", "CONFIG_D": '"x y"'}
    assert merged["CONFIG_B"].source == "b.config:1"
    assert fragments.render(merged).splitlines() == [
        "CONFIG_A=y", "CONFIG_B=m", "CONFIG_C=y", 'CONFIG_D="x y"']


def test_unset_lines_render_as_not_set(tmp_path):
    frag(tmp_path, "a", "CONFIG_A=y\n")
    frag(tmp_path, "b", "# CONFIG_A is not set\n")
    merged = fragments.merge(fragments.load(["a", "b"], tmp_path))
    assert fragments.render(merged) == "# CONFIG_A is not set\n"


def test_a_line_that_is_no_kconfig_is_an_error_naming_it(tmp_path):
    frag(tmp_path, "bad", "CONFIG_A=y\nBPF_SYSCALL=y\n")
    with pytest.raises(fragments.FragmentError, match=r"bad.config:2: not a Kconfig line"):
        fragments.load(["bad"], tmp_path)


def test_a_missing_fragment_names_its_path(tmp_path):
    with pytest.raises(fragments.FragmentError, match=r"cannot read Kconfig fragment .*nope.config"):
        fragments.load(["nope"], tmp_path)


def test_bpfvm_fragments_dirs_are_searched_before_the_packaged_ones(tmp_path, monkeypatch):
    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    frag(mine, "bpf", "CONFIG_MINE=y\n")
    frag(other, "extra", "CONFIG_EXTRA=y\n")
    monkeypatch.setenv("BPFVM_FRAGMENTS", f"{mine}:{other}")
    assert fragments.fragment_path("bpf") == mine / "bpf.config"      # shadows bpfvm's own
    assert fragments.fragment_path("extra") == other / "extra.config"
    assert fragments.fragment_path("base") == fragments.PACKAGED_DIR / "base.config"
    merged = fragments.merge(fragments.load(["base", "bpf", "extra"]))
    assert merged["CONFIG_MINE"].source == "bpf.config:1" and "CONFIG_EXTRA" in merged
    with pytest.raises(fragments.FragmentError, match="cannot read Kconfig fragment .*/nope.config"):
        fragments.load(["nope"])


def test_dropped_options_are_named_with_the_reason(tmp_path):
    frag(tmp_path, "f", "CONFIG_KEPT=y\nCONFIG_DEPS=y\nCONFIG_MOD=y\nCONFIG_GONE=y\n"
                        "CONFIG_NEW=y  # if-known: only on newer kernels\n# CONFIG_OFF is not set\n")
    merged = fragments.merge(fragments.load(["f"], tmp_path))
    config = "CONFIG_KEPT=y\n# CONFIG_DEPS is not set\nCONFIG_MOD=m\n"
    problems = fragments.dropped(merged, config, {"KEPT", "DEPS", "MOD", "OFF"})
    assert problems == [
        "CONFIG_DEPS=y (f.config:2) was dropped: unmet dependencies",
        "CONFIG_MOD=y (f.config:3) was dropped: it is m",
        "CONFIG_GONE=y (f.config:4) was dropped: the kernel has no such option",
    ]
    assert fragments.dropped(merged, config + "CONFIG_DEPS=y\nCONFIG_MOD=y\nCONFIG_GONE=y\n",
                             {"GONE"}) == []


def test_if_known_options_are_checked_where_the_kernel_has_them(tmp_path):
    frag(tmp_path, "f", "CONFIG_NEW=y  # if-known\n")
    merged = fragments.merge(fragments.load(["f"], tmp_path))
    assert fragments.dropped(merged, "", {"NEW"}) == [
        "CONFIG_NEW=y (f.config:1) was dropped: unmet dependencies"]


def test_declared_symbols_reads_every_kconfig_file(tmp_path):
    (tmp_path / "Kconfig").write_text('config FOO\n\tbool "foo"\nmenuconfig BAR\n\tbool\n')
    (tmp_path / "net").mkdir()
    (tmp_path / "net/Kconfig.debug").write_text("config BAZ\n\tdef_bool y\n# config NOT\n")
    assert fragments.declared_symbols(tmp_path) == {"FOO", "BAR", "BAZ"}


def test_repository_fragments_parse_and_every_flavour_has_its_files():
    flavours = catalog.load_flavours()
    assert flavours["test"].fragments == ("base", "bpf", "netdevsim", "error-injection")
    for flavour in flavours.values():
        for arch in ("x86_64", "arm64"):
            merged = buildcache.merged_options(flavour, arch)
            assert merged["CONFIG_BPF_SYSCALL"].value == "y"
    test = buildcache.merged_options(flavours["test"], "arm64")
    assert {"CONFIG_NETDEVSIM", "CONFIG_BPF_KPROBE_OVERRIDE", "CONFIG_SERIAL_AMBA_PL011"} <= set(test)


def test_make_variables_cross_compile_only_for_a_foreign_arch():
    assert kmake.make_vars("x86_64", host="x86_64") == ["ARCH=x86_64"]
    assert kmake.make_vars("arm64", host="x86_64") == [
        "ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"]
    assert kmake.make_vars("arm64", host="arm64") == ["ARCH=arm64"]
    assert kmake.make_vars("x86_64", host="arm64", ccache="/usr/bin/ccache") == [
        "ARCH=x86_64", "CROSS_COMPILE=x86_64-linux-gnu-", "CC=/usr/bin/ccache x86_64-linux-gnu-gcc"]


def test_make_commands_build_out_of_tree_with_the_arch_variables(tmp_path):
    make = kmake.Make(tmp_path / "src", tmp_path / "out", "arm64", tmp_path / "log")
    cmd = make.command("Image", "modules", jobs=2)
    assert cmd[:4] == ["make", "-C", str(tmp_path / "src"), f"O={tmp_path / 'out'}"]
    assert "-j2" in cmd and "ARCH=arm64" in cmd and cmd[-2:] == ["Image", "modules"]
    # ccache sees paths relative to the build's top dir: rebuilds in a new
    # temporary directory still hit
    assert make.env()["CCACHE_BASEDIR"] == str(tmp_path)


def test_build_key_follows_source_config_arch_and_compiler(tmp_path):
    frag(tmp_path, "f", "CONFIG_A=y\n")
    frag(tmp_path, "g", "CONFIG_A=y\nCONFIG_B=y\n")
    f = fragments.merge(fragments.load(["f"], tmp_path))
    g = fragments.merge(fragments.load(["g"], tmp_path))
    base = kmake.build_key("debian trixie linux-source-6.12 6.12.1-1", f, "x86_64", "gcc 12")
    assert base == kmake.build_key("debian trixie linux-source-6.12 6.12.1-1", dict(f),
                                    "x86_64", "gcc 12")
    others = {
        kmake.build_key("debian trixie linux-source-6.12 6.12.2-1", f, "x86_64", "gcc 12"),
        kmake.build_key("debian trixie linux-source-6.12 6.12.1-1", g, "x86_64", "gcc 12"),
        kmake.build_key("debian trixie linux-source-6.12 6.12.1-1", f, "arm64", "gcc 12"),
        kmake.build_key("debian trixie linux-source-6.12 6.12.1-1", f, "x86_64", "gcc 14"),
    }
    assert base not in others and len(others) == 4


def test_a_missing_cross_compiler_says_what_to_install(monkeypatch):
    monkeypatch.setattr(kmake.shutil, "which", lambda name, **kw: None)
    monkeypatch.setattr(kmake, "host_arch", lambda: "x86_64")
    with pytest.raises(kmake.KernelBuildError, match="aarch64-linux-gnu-gcc is not installed.*"
                                                 "run bpfvm setup --build"):
        kmake.compiler("arm64")


def test_a_failing_make_names_the_error_and_the_log(tmp_path):
    (tmp_path / "Makefile").write_text("all:\n\t@echo '  CC      a.o'\n"
                                       "\t@echo 'a.c:1: error: boom' >&2; exit 1\n")
    make = kmake.Make(tmp_path, tmp_path / "out", "x86_64", tmp_path / "build.log")
    steps = []
    with pytest.raises(kmake.KernelBuildError, match=r"(?s)a.c:1: error: boom.*full log: .*build.log"):
        make.run("all", on_step=lambda kind, path: steps.append((kind, path)))
    assert steps == [("CC", "a.o")]
    assert "error: boom" in (tmp_path / "build.log").read_text()


def test_progress_line_shows_time_steps_and_share_of_the_last_build():
    counter = kmake.StepCounter("6.12-test-x86_64", expected=200)
    for _ in range(50):
        counter("CC", "x.o")
    assert "50 steps (~25%)" in counter.line()
    assert counter.summary() == "0m00s, 50 steps"


def test_built_names_split_into_line_and_flavour():
    flavours = catalog.parse_flavours('[flavour.test]\nfragments = ["base"]\n')
    assert catalog.split_built("6.12-test", flavours) == ("6.12", flavours["test"])
    assert catalog.split_built("6.12", flavours) is None
    assert catalog.split_built("6.12-nope", flavours) is None
    with pytest.raises(catalog.CatalogError, match="flavour 'x' needs a list of fragments"):
        catalog.parse_flavours("[flavour.x]\n")


def test_built_kernels_resolve_per_arch():
    entries = catalog.load()
    flavours = catalog.load_flavours()
    t = resolve.parse("6.12-test", "arm64", entries, flavours)
    assert (t.name, t.arch, t.kind, t.id) == ("6.12-test", "arm64", "built", "6.12-test-arm64")
    with pytest.raises(catalog.CatalogError, match="unknown kernel '9.9'"):
        resolve.parse("9.9-test", "x86_64", entries, flavours)


def test_rootfs_recipe_pins_the_hosts_python_packages():
    rec = rootfs.recipe("arm64")
    assert rec["arch"] == "arm64" and rec["suite"] == "bookworm"
    assert {"pytest", "pytest-xdist", "scapy", "pyroute2", "pluggy"} <= set(rec["python"])
    import pytest as this
    assert rec["python"]["pytest"] == this.__version__
    changed = dict(rec, packages=rec["packages"] + ["tcpdump"])
    assert rootfs.recipe_key(rec) != rootfs.recipe_key(changed)


def test_tree_builds_reject_a_directory_that_is_no_kernel_tree(tmp_path):
    from bpfvm.host.kernels import ksource
    with pytest.raises(ksource.SourceError, match="is not a kernel source tree"):
        ksource.tree_version(tmp_path)


def test_build_cli_rejects_an_unknown_flavour(capsys):
    from bpfvm.host import cli
    assert cli.main(["kernels", "build", "6.12", "--flavour", "huge"]) == 2
    assert "unknown flavour 'huge'; the catalog has test" in capsys.readouterr().err
