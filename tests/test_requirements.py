import pytest

from bpfvm import requirements as req
from bpfvm.target import Target

T510 = Target("5.10", "x86_64", "catalog", release="5.10.0-32-amd64", version="5.10.223")
CONFIG = {"CONFIG_BPF_SYSCALL": "y", "CONFIG_VETH": "m", "CONFIG_HZ": "250"}


@pytest.mark.parametrize("spec, clauses", [
    (">=5.15", [(">=", (5, 15, 0))]),
    (">=5.15,<6.2", [(">=", (5, 15, 0)), ("<", (6, 2, 0))]),
    ("6.1.55", [("==", (6, 1, 55))]),
])
def test_kernel_specs(spec, clauses):
    assert req.parse_kernel_spec(spec) == clauses


@pytest.mark.parametrize("name, args, error", [
    ("kernel", [">=five"], "cannot parse '>=five'"),
    ("kernel", [""], "needs a version spec"),
    ("kconfig", ["NETDEVSIM"], "not an option name"),
    ("arch", ["sparc"], "unknown arch 'sparc'"),
    ("arch", [], "at least one argument"),
])
def test_malformed_markers_are_errors(name, args, error):
    with pytest.raises(req.RequirementError, match=error):
        req.validate(name, args)


def test_kernel_version_uses_the_upstream_version():
    # 5.10.0-32-amd64 is Debian's ABI name; the kernel is 5.10.223.
    assert req.check_kernel(T510, [">=5.10.200"]) is None
    assert req.check_kernel(T510, [">=5.15"]) == "kernel 5.10 (5.10.0-32-amd64): needs kernel >=5.15"


def test_kconfig_values():
    assert req.check_kconfig(T510, ["CONFIG_BPF_SYSCALL", "CONFIG_VETH"], CONFIG) is None
    assert req.check_kconfig(T510, ["CONFIG_VETH=y"], CONFIG) == \
        "kernel 5.10 (5.10.0-32-amd64): kernel lacks CONFIG_VETH=y (is CONFIG_VETH=m)"
    assert req.check_kconfig(T510, ["CONFIG_NETDEVSIM=n"], CONFIG) is None
    assert "lacks CONFIG_NETDEVSIM" in req.check_kconfig(T510, ["CONFIG_NETDEVSIM"], CONFIG)


def test_kconfig_hint_follows_the_reason():
    options = ["CONFIG_NETDEVSIM", req.Hint("use a *-test kernel")]
    assert req.check_kconfig(T510, options, CONFIG) == \
        "kernel 5.10 (5.10.0-32-amd64): kernel lacks CONFIG_NETDEVSIM (use a *-test kernel)"
    assert req.check_kconfig(T510, ["CONFIG_VETH", req.Hint("unused")], CONFIG) is None


def test_evaluate_reports_first_unmet_and_undecided():
    marks = {"arch": [["arm64"]], "kconfig": [["CONFIG_X"]]}
    assert "needs arch arm64, runs x86_64" in req.evaluate(T510, marks, None)
    with pytest.raises(req.Undecided):
        req.evaluate(T510, {"kconfig": [["CONFIG_X"]]}, None)
    assert req.evaluate(T510, {"kernel": [[">=5.4"]], "arch": [["x86_64"]]}, None) is None


def test_missing_option_is_named_before_the_version():
    marks = {"kernel": [[">=7.0"]], "kconfig": [["CONFIG_NETDEVSIM"]]}
    assert "kernel lacks CONFIG_NETDEVSIM" in req.evaluate(T510, marks, CONFIG)
    assert "needs kernel >=7.0" in req.evaluate(T510, marks, None)  # no config: the version
