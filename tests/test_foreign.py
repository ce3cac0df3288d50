"""How a foreign-arch guest is started: its root, shares and command line (host-side logic)."""
from pathlib import Path

from bpfvm.host.vm.vm import ForeignRoot, VmOptions, boot_command, channel_opts
from bpfvm.target import Target


def test_shares_get_mount_points_only_outside_the_overlaid_dirs(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    fr = ForeignRoot(str(root), ["/work/project", "/tmp/pytest-of-x/t0", "/root/.cache/k/6.12"])
    fr.prepare(tmp_path)
    assert (root / "work/project").is_dir() and (root / "root/.cache/k/6.12").is_dir()
    assert not (root / "tmp").exists()  # virtme-ng overlays /tmp: the guest creates it there


def test_the_guest_imports_bpfvm_through_a_link_named_bpfvm(tmp_path):
    package = tmp_path / "harness"  # an editable install's package directory
    package.mkdir()
    (tmp_path / "root").mkdir()
    rundir = tmp_path / "run"
    rundir.mkdir()
    fr = ForeignRoot(str(tmp_path / "root"), [str(package)], package=str(package))
    fr.prepare(rundir)
    assert (rundir / "pylib/bpfvm").resolve() == package
    assert "export PYTHONPATH=/run/bpfvm/pylib" in fr.prelude()


def test_vng_gets_the_root_busybox_run_dir_and_same_path_shares(tmp_path):
    fr = ForeignRoot("/cache/rootfs/arm64", ["/work/project"], modules="/k/lib/modules/6.12")
    target = Target("6.12", "arm64", "catalog", vmlinuz="/k/boot/vmlinuz-6.12", foreign=True)
    cmd = boot_command(target, VmOptions(), "exec sh /run/bpfvm/guest.sh",
                       fr.vng_args(Path("/tmp/bpfvm-abc")),
                       qemu_opts=channel_opts(tmp_path / "chan.sock", target.arch))
    assert cmd[cmd.index("--arch") + 1] == "arm64"
    assert cmd[cmd.index("--root") + 1] == "/cache/rootfs/arm64"
    assert cmd[cmd.index("--busybox") + 1] == "/cache/rootfs/arm64/bin/busybox"
    assert "--rodir=/run/bpfvm=/tmp/bpfvm-abc" in cmd
    assert "--rodir=/work/project=/work/project" in cmd
    assert any("-device virtio-serial-device" in arg for arg in cmd)  # MMIO on virt
    assert cmd[-2:] == ["--exec", "exec sh /run/bpfvm/guest.sh"]


def test_prelude_links_the_kernels_modules_when_the_root_has_none():
    assert ForeignRoot("/r", []).prelude() == ""
    prelude = ForeignRoot("/r", [], modules="/k/lib/modules/6.12").prelude()
    assert "ln -sfn /k/lib/modules/6.12 /lib/modules/$(uname -r)" in prelude


def test_the_channel_is_separate_from_the_boot_command(tmp_path):
    """The KVM probe boots without a channel; a Vm adds it, with TCG's options kept."""
    target = Target("6.12", "x86_64", "catalog", vmlinuz="/k/boot/vmlinuz-6.12")
    bare = boot_command(target, VmOptions(accel="kvm"), "true")
    assert not any(arg.startswith("--qemu-opts") for arg in bare) and "--disable-kvm" not in bare
    channel = channel_opts(tmp_path / "chan.sock", "x86_64")
    full = boot_command(target, VmOptions(accel="tcg"), "true", qemu_opts=channel)
    assert f"--qemu-opts={channel} -accel tcg,thread=single" in full and "--disable-kvm" in full
