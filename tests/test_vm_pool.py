"""The bound on VMs alive at once, with real guests on two kernels."""
import threading

from conftest import qemu_pids


def test_one_vm_at_a_time_runs_every_kernel_booting_each_once(vm_runner):
    """test_b's own parameter would interleave the kernels in pytest's order."""
    vm_runner.write("""
        def test_a(kernel):
            assert kernel.release
        @pytest.mark.parametrize("n", [1, 2])
        def test_b(kernel, n):
            assert kernel.release
    """)
    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], len(qemu_pids(str(vm_runner.tmp))))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run = vm_runner.run("--bpfvm-max-vms=1", kernel="5.10,6.12")
    finally:
        done.set()
        sampler.join()
    assert run.returncode == 0, run.output
    assert sorted(run.outcomes) == ["test_a[5.10]", "test_a[6.12]", "test_b[1-5.10]",
                                    "test_b[1-6.12]", "test_b[2-5.10]", "test_b[2-6.12]"]
    assert peak[0] == 1, f"{peak[0]} QEMU processes were alive at once"
    boots = sorted(p.name.split("-")[1] for p in vm_runner.logdir.glob("console-*.log"))
    assert boots == ["5.10", "6.12"], "each kernel boots once"
