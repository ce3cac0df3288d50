import os

import pytest

from bpfvm.host import tools


def test_missing_tool_is_one_line_with_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tools.ToolMissing) as e:
        tools.require("qemu-system-aarch64")
    assert str(e.value) == "qemu-system-aarch64 not found: bpfvm setup (qemu-system-arm)"
    assert "\n" not in tools.missing("anything")


def test_found_on_path_and_in_sbin(monkeypatch, tmp_path):
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tools.require("mytool") == str(tool)
    assert "/usr/sbin" in tools.search_path().split(os.pathsep)


def test_every_qemu_has_an_install_hint():
    for qemu in tools.QEMU.values():
        assert tools.install_hint(qemu).startswith("bpfvm setup (qemu-system-")
