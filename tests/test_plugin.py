"""The plugin's collection-time behaviour, without booting anything.

A fake kernel image file with a config beside it stands in for a kernel:
the host decides requirement skips from that config without a boot.
"""
import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def fake_kernel(tmp_path):
    image = tmp_path / "kimg" / "vmlinuz-6.1.0-test"
    image.parent.mkdir()
    image.write_bytes(b"\0" * 64 + b"Linux version 6.1.0-test (builder) #1 SMP\0")
    (image.parent / "config-6.1.0-test").write_text("CONFIG_BPF_SYSCALL=y\nCONFIG_VETH=m\n")
    return image


def test_vm_tests_get_kernel_ids_and_others_do_not(pytester, fake_kernel):
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.vm
        def test_in_vm(): pass
        @pytest.mark.vm
        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n): pass
        def test_on_host(): pass
    """)
    result = pytester.runpytest("--collect-only", "-q", f"--kernel=5.10,{fake_kernel}",
                                "--accel=tcg")
    ids = {line for line in result.stdout.lines if line.startswith("test_a.py::")}
    assert ids == {
        "test_a.py::test_in_vm[5.10]", "test_a.py::test_in_vm[6.1.0-test]",
        "test_a.py::test_param[1-5.10]", "test_a.py::test_param[1-6.1.0-test]",
        "test_a.py::test_param[2-5.10]", "test_a.py::test_param[2-6.1.0-test]",
        "test_a.py::test_on_host",
    }


def test_unmet_requirements_skip_on_the_host_with_reasons(pytester, fake_kernel):
    pytester.makepyfile(test_b="""
        import pytest
        pytestmark = pytest.mark.vm
        @pytest.mark.kernel(">=6.2")
        def test_new(): pass
        @pytest.mark.kconfig("CONFIG_NETDEVSIM")
        def test_nsim(): pass
        @pytest.mark.arch("arm64")
        def test_arm(): pass
        @pytest.mark.kconfig("CONFIG_XYZ", hint="build it in")
        def test_hint(): pass
    """)
    result = pytester.runpytest(f"--kernel={fake_kernel}", "--accel=tcg", "-rs")
    result.stdout.fnmatch_lines([
        "*kernel 6.1.0-test: needs kernel >=6.2",
        "*kernel 6.1.0-test: kernel lacks CONFIG_NETDEVSIM",
        "*kernel 6.1.0-test: needs arch arm64, runs x86_64",
        "*kernel 6.1.0-test: kernel lacks CONFIG_XYZ (build it in)",
    ])
    result.assert_outcomes(skipped=4)


@pytest.mark.fault("a malformed marker argument")
def test_malformed_marker_is_a_collection_error(pytester, fault_outcome):
    pytester.makepyfile(test_c="""
        import pytest
        @pytest.mark.vm
        @pytest.mark.kconfig("NETDEVSIM")
        def test_x(): pass
    """)
    result = pytester.runpytest("--kernel=5.10", "--accel=tcg")
    result.stdout.fnmatch_lines(["*kconfig marker: 'NETDEVSIM' is not an option name*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED
    fault_outcome(next(line for line in result.outlines if "is not an option name" in line))


@pytest.mark.parametrize("arg, message", [
    pytest.param("--kernel=9.99", "unknown kernel '9.99' for x86_64*",
                 marks=pytest.mark.fault("an unknown kernel name")),
    pytest.param("--kernel=/nonexistent/bzImage",
                 "kernel path /nonexistent/bzImage does not exist",
                 marks=pytest.mark.fault("a kernel path that does not exist")),
])
def test_bad_kernel_is_one_clear_line(pytester, arg, message, fault_outcome):
    pytester.makepyfile(test_d="import pytest\n@pytest.mark.vm\ndef test_x(): pass\n")
    result = pytester.runpytest(arg)
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    fault_outcome(next(line for line in result.errlines if line.startswith("ERROR: ")))


def test_deselected_vm_tests_fetch_nothing(pytester, tmp_path, monkeypatch):
    """-k leaving only ordinary tests: no tools checked, no kernel fetched, no probe."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("BPFVM_CACHE", str(cache))
    pytester.makepyfile(test_e="""
        import pytest
        @pytest.mark.vm
        def test_in_vm(): pass
        def test_plain(): pass
    """)
    result = pytester.runpytest("--kernel=5.10", "-k", "plain")
    result.assert_outcomes(passed=1, deselected=1)
    assert not cache.exists()


@pytest.mark.fault("a cache directory that cannot be made")
def test_unusable_cache_is_one_line(pytester, monkeypatch, fault_outcome):
    monkeypatch.setenv("BPFVM_CACHE", "/proc/bpfvm-cache")
    pytester.makepyfile(test_f="import pytest\n@pytest.mark.vm\ndef test_x(): pass\n")
    result = pytester.runpytest("--kernel=6.12", "--accel=tcg")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR: ")]
    assert errors == ["ERROR: /proc/bpfvm-cache: No such file or directory; the cache is "
                      "/proc/bpfvm-cache: set BPFVM_CACHE to a writable directory"]
    fault_outcome(errors[0])
