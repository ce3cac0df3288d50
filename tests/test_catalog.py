import pytest

from bpfvm.host.kernels import catalog


def test_repo_catalog_has_every_line_for_both_arches():
    entries = catalog.load()
    lines = {(e.name, e.arch): e for e in entries}
    for name, suite in (("5.10", "bullseye"), ("6.1", "bookworm"), ("6.12", "trixie"),
                        ("latest", "sid")):
        for arch, pkg in (("x86_64", "linux-image-amd64"), ("arm64", "linux-image-arm64")):
            assert lines[(name, arch)].suite == suite
            assert lines[(name, arch)].package == pkg
    assert len(entries) == 8


@pytest.mark.parametrize("text, error", [
    ('[[kernel]]\nname="x"\narch="x86_64"\nsuite="sid"\n', "lacks package"),
    ('[[kernel]]\nname="x"\narch="mips"\nsuite="sid"\npackage="p"\n', "unknown arch 'mips'"),
    ('[[kernel]]\nname="x"\narch="x86_64"\nsuite="sid"\npackage="p"\n' * 2, "twice"),
    ("[[kernel]\n", "not valid TOML"),
])
def test_bad_catalogs_say_what_is_wrong(text, error):
    with pytest.raises(catalog.CatalogError, match=error):
        catalog.parse(text)


def test_unknown_name_lists_what_exists():
    entries = catalog.parse('[[kernel]]\nname="6.1"\narch="x86_64"\nsuite="bookworm"\npackage="p"\n')
    with pytest.raises(catalog.CatalogError, match=r"unknown kernel '9\.9' for x86_64; known: 6\.1"):
        catalog.lookup(entries, "9.9", "x86_64")
    with pytest.raises(catalog.CatalogError, match="for arm64"):
        catalog.lookup(entries, "6.1", "arm64")
