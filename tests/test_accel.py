import pytest

from bpfvm.host.vm import accel


def probe_says(works, calls):
    """A decide() probe: (works, detail)."""
    def probe():
        calls.append(1)
        return works, "detail"
    return probe


def boot_says(works, calls, clear=True):
    """An accel.probe() stand-in: (works, detail, clear)."""
    def probe():
        calls.append(1)
        return works, "detail", clear
    return probe


def test_tcg_requested_never_probes():
    calls = []
    assert accel.decide("tcg", True, probe_says(True, calls)) == ("tcg", None)
    assert calls == []


def test_auto_uses_kvm_only_when_the_probe_boots():
    calls = []
    assert accel.decide("auto", True, probe_says(True, calls)) == ("kvm", None)
    accel_, warning = accel.decide("auto", True, probe_says(False, calls))
    assert accel_ == "tcg" and "KVM does not work here (detail)" in warning
    assert len(calls) == 2


def test_auto_without_device_is_tcg_without_probe():
    calls = []
    assert accel.decide("auto", False, probe_says(True, calls)) == ("tcg", None)
    assert calls == []


def test_forced_kvm_without_device_is_an_error():
    with pytest.raises(ValueError, match="/dev/kvm is missing"):
        accel.decide("kvm", False, probe_says(True, []))


def test_verdict_is_remembered_until_the_device_changes(tmp_path):
    device = tmp_path / "kvm"
    device.write_text("")
    state = tmp_path / "cache" / "kvm-probe.json"
    calls = []
    assert accel.remembered(state, boot_says(False, calls), str(device)) == (False, "detail")
    works, detail = accel.remembered(state, boot_says(True, calls), str(device))
    assert (works, detail) == (False, "detail; probed earlier in this boot") and len(calls) == 1
    device.unlink()
    device.write_text("")  # another device node: probed again
    assert accel.remembered(state, boot_says(True, calls), str(device)) == (True, "detail")
    assert accel.remembered(state, boot_says(False, calls), str(device), fresh=True) == \
        (False, "detail")
    assert len(calls) == 3


def test_a_probe_that_timed_out_is_not_remembered(tmp_path):
    device = tmp_path / "kvm"
    device.write_text("")
    state = tmp_path / "cache" / "kvm-probe.json"
    calls = []
    works, detail = accel.remembered(state, boot_says(False, calls, clear=False), str(device))
    assert not works and "not remembered" in detail and not state.exists()
    assert accel.remembered(state, boot_says(True, calls), str(device)) == (True, "detail")
    assert len(calls) == 2


def test_settled_tells_the_choice_only_when_no_probe_is_due(tmp_path):
    device = tmp_path / "kvm"
    state = tmp_path / "cache" / "kvm-probe.json"
    assert accel.settled("auto", str(device), state) == "tcg"  # no device: no probe
    assert accel.settled("kvm", str(device), state) is None  # decide() refuses it
    device.write_text("")
    assert accel.settled("tcg", str(device), state) == "tcg"
    assert accel.settled("kvm", str(device), state) == "kvm"
    assert accel.settled("auto", str(device), state) is None  # a probe is due
    accel.remembered(state, boot_says(True, []), str(device))
    assert accel.settled("auto", str(device), state) == "kvm"
    state.write_text('{"key": "another boot", "works": true, "detail": ""}')
    assert accel.settled("auto", str(device), state) is None
