"""Which host option values reach the guest's pytest, run for real in a VM."""
from conftest import VM_KERNEL


def test_the_projects_options_reach_the_guest_and_host_only_ones_do_not(vm_runner):
    (vm_runner.base / "conftest.py").write_text(
        "def pytest_addoption(parser):\n"
        "    parser.addoption('--run-slow', action='store_true')\n"
        "    parser.getgroup('mine').addoption('--level', dest='my_level', default='1')\n")
    vm_runner.write("""
        def test_options(request, host_boot_id):
            opt = request.config.getoption
            assert open("/proc/sys/kernel/random/boot_id").read().strip() != host_boot_id
            assert opt("run_slow") is True and opt("my_level") == "7"   # the project's own
            assert opt("tbstyle") == "short"                            # how failures are told
            assert opt("log_file") is None      # the logging plugin's, host-only
            assert opt("durations") is None     # a reporting option
            assert opt("xmlpath") is None       # JUnit's: the host writes it
            assert opt("maxfail") != 1          # -x: the host stops the run
    """)
    log = vm_runner.base / "host.log"
    run = vm_runner.run("--run-slow", "--level=7", "--tb=short", f"--log-file={log}",
                        "--durations=3", "-x")
    assert run.outcome(f"test_options[{VM_KERNEL}]") == "passed", run.output
