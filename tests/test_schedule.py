from harness.host.schedule import kernel_of, scope_of
from harness.target import Target, host_arch

IDS = ["6.1", "6.12", "6.12-arm64"]


def test_kernel_is_read_from_the_last_parameter():
    assert kernel_of("suites/test_x.py::test_a[6.12]", IDS) == "6.12"
    assert kernel_of("suites/test_x.py::test_a[6.1]", IDS) == "6.1"
    assert kernel_of("suites/test_x.py::test_a[3-6.12-arm64]", IDS) == "6.12-arm64"
    assert kernel_of("tests/test_y.py::test_b", IDS) is None


def test_scope_groups_by_kernel_unless_workers_are_spare():
    nodeid = "suites/test_x.py::test_a[6.12]"
    assert scope_of(nodeid, IDS, workers=2) == "6.12"
    assert scope_of(nodeid, IDS, workers=8) == "6.12::suites/test_x.py"
    assert scope_of("tests/test_y.py::test_b", IDS, workers=2) == "tests/test_y.py::test_b"


def test_ids_carry_a_foreign_arch_only():
    foreign = "arm64" if host_arch() == "x86_64" else "x86_64"
    assert Target("6.12", host_arch(), "catalog").id == "6.12"
    assert Target("6.12", foreign, "catalog").id == f"6.12-{foreign}"
    assert Target("host", host_arch(), "host").id == "host"
