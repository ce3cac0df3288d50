import pytest

from bpfvm.host.kernels import aptsources
from bpfvm.host.kernels.aptsources import Source

MIRROR = "http://mirror.invalid/archive"

ONE_LINE = f"""
# a comment
deb [arch=amd64 signed-by=/etc/keys/debian.gpg] {MIRROR} bookworm main contrib
deb-src {MIRROR} bookworm main
deb http://security.invalid/archive-security bookworm-security main
deb http://other.invalid/elsewhere jammy main
"""

DEB822 = f"""Types: deb
# a comment line
URIs: http://security.invalid/archive-security
Suites: bookworm-security
Components: main

Types: deb deb-src
URIs: {MIRROR} http://second.invalid/archive
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
Enabled: no
URIs: http://disabled.invalid/archive
Suites: sid
Components: main

Types: deb
URIs: http://inline.invalid/archive
Suites: trixie
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----
"""


def test_one_line_format():
    sources = aptsources.parse_one_line(ONE_LINE)
    assert sources[0] == Source(MIRROR, ("bookworm",), ("main", "contrib"), "/etc/keys/debian.gpg")
    assert len(sources) == 3  # deb-src is not a binary source
    assert aptsources.pick_mirror(sources).uri == MIRROR


def test_deb822_format():
    sources = aptsources.parse_deb822(DEB822)
    uris = [s.uri for s in sources]
    assert uris == ["http://security.invalid/archive-security", MIRROR,
                    "http://second.invalid/archive", "http://inline.invalid/archive"]
    picked = aptsources.pick_mirror(sources)
    assert picked.uri == MIRROR  # the security archive is skipped
    assert picked.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert sources[-1].signed_by is None  # an inline key is not a keyring path


def test_system_sources_reads_both_formats(tmp_path):
    etc = tmp_path / "etc/apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text("deb http://other.invalid/elsewhere jammy main\n")
    (etc / "sources.list.d/debian.sources").write_text(DEB822)
    (etc / "sources.list.d/ignored.list.disabled").write_text(f"deb {MIRROR}x sid main\n")
    assert aptsources.mirror(str(tmp_path)) == (MIRROR, "/usr/share/keyrings/debian-archive-keyring.gpg")


def test_no_debian_mirror_is_one_clear_error(tmp_path):
    (tmp_path / "etc/apt").mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text("deb http://other.invalid/elsewhere jammy main\n")
    with pytest.raises(aptsources.MirrorError, match="set BPFVM_MIRROR"):
        aptsources.mirror(str(tmp_path))


def test_env_overrides_the_system(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFVM_MIRROR", "http://override.invalid/archive/")
    assert aptsources.mirror(str(tmp_path))[0] == "http://override.invalid/archive"
