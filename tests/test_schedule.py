from bpfvm.host.run.schedule import group_by_kernel, kernel_of, scope_of
from bpfvm.target import Target, host_arch

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
    from bpfvm.host.kernels import catalog, resolve
    foreign = "arm64" if host_arch() == "x86_64" else "x86_64"
    entries, flavours = catalog.load(), catalog.load_flavours()
    assert resolve.parse("6.12", host_arch(), entries).id == "6.12"
    assert resolve.parse("6.12", foreign, entries).id == f"6.12-{foreign}"
    assert resolve.parse("6.12-test", foreign, entries, flavours).id == f"6.12-test-{foreign}"
    assert resolve.parse("host", host_arch(), entries).id == "host"
    # the id travels with the target: the guest, whose own arch is the
    # foreign one, computes the same id
    assert Target.from_json(resolve.parse("6.12", foreign, entries).to_json()).id == f"6.12-{foreign}"


def test_each_kernels_items_come_together_and_others_keep_their_places():
    items = ["host_a", "x[a-6.12]", "x[a-6.1]", "x[b-6.12]", "host_b", "x[b-6.1]"]
    group_by_kernel(items, lambda nodeid: kernel_of(nodeid, ["6.1", "6.12"]), ["6.1", "6.12"])
    assert items == ["host_a", "x[a-6.1]", "x[b-6.1]", "x[a-6.12]", "host_b", "x[b-6.12]"]
