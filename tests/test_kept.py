"""Where kept VMs are registered (host-side logic only; tests/test_vm_reuse.py boots them)."""
import dataclasses
import json
import os

import pytest

from bpfvm.host.vm import kept


def test_the_run_directory_is_the_users_own_under_tmpdir(tmp_path, monkeypatch):
    monkeypatch.delenv("BPFVM_RUNDIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(kept.tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    path = kept.run_dir()
    assert path == tmp_path / f"bpfvm-{os.getuid()}"
    assert path.stat().st_mode & 0o777 == 0o700


def test_bpfvm_rundir_is_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFVM_RUNDIR", str(tmp_path / "runs"))
    assert kept.vms_dir() == tmp_path / "runs" / "vms"


@pytest.mark.parametrize("where", ["/run/user/1000/bpfvm", "/dev/shm/bpfvm", "/run"])
def test_a_run_directory_the_guest_cannot_see_is_one_line(monkeypatch, where):
    monkeypatch.setenv("BPFVM_RUNDIR", where)
    with pytest.raises(kept.RunDirError, match=f"^bpfvm's run directory {where} .* set "
                                               f"BPFVM_RUNDIR to a directory elsewhere$"):
        kept.run_dir()


def test_a_record_is_read_back_and_a_malformed_one_is_none(tmp_path):
    record = kept.Record(key="k", target="6.12", release="6.12.1", leash=123, cpus=2,
                         memory="1G", accel="tcg", booted=1.5, boot_id="b", idle=600)
    record.save(tmp_path)
    assert kept.Record.load(tmp_path) == record
    for bad in ('{"key": "k"}', '[]', '{"key": 1, "target": "6.12"}', "not json"):
        (tmp_path / kept.RECORD).write_text(bad)
        assert kept.Record.load(tmp_path) is None, bad
    data = dataclasses.asdict(record) | {"leash": "123"}
    (tmp_path / kept.RECORD).write_text(json.dumps(data))
    assert kept.Record.load(tmp_path) is None
