"""netdevsim: the kernel's simulated NIC, with BPF offload, driven through sysfs and debugfs.

    with NetdevSim(ports=2) as dev:
        port = dev.ports[0]
        obj = bpf.load(data, "offload", offload=port)      # bound to dev's offload device
        obj.program("xdp_pass").attach_xdp(port, mode="offload")
        assert port.knobs["bpf_offloaded_id"] == obj.program("xdp_pass").id

A device is made by writing to /sys/bus/netdevsim/new_device (a random free
id) and removed by del_device; its ports are ordinary netdevs. Its debugfs
knobs are the mapping ``knobs``: the device's (netdevsim/netdevsimID/, e.g.
bpf_bind_verifier_accept) on the device, a port's (ports/N/, e.g.
bpf_xdpoffload_accept, bpf_offloaded_id) on the port. Booleans read as
True/False and take True/False; numbers are ints.

Test bodies should use only what a real offload NIC would have too (a
device with ``ports``; a port with ``name``, ``ifindex``, ``netns_fd``,
``xdp()``, ``tc_filters()``, ``set_mtu()``, ``set_feature()``), and the
knobs only where they test the simulation itself, the way the kernel's
drivers/net/lib/py keeps tests apart from the device behind them.
"""
from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from collections.abc import MutableMapping
from typing import Any, Iterable, Iterator, Optional, Union

from . import netns, packets, system
from .bpf.attach import XdpState, ifindex, netlink_error, xdp_query
from .bpf.tcfilter import filters

BUS = Path("/sys/bus/netdevsim")
DEBUGFS = Path("/sys/kernel/debug/netdevsim")
MAX_ID = 1 << 15
NO_NETDEVSIM = "kernel lacks CONFIG_NETDEVSIM (use a *-test kernel)"
# netdevsim refuses XDP without frags support above this MTU (drivers/net/netdevsim/netdevsim.h)
XDP_MAX_MTU = 4000


def available() -> bool:
    return BUS.is_dir()


def _knob_value(text: str) -> Any:
    text = text.strip()
    if text in ("Y", "N"):
        return text == "Y"
    return int(text) if text.isdigit() else text


def _knob_text(value: Any) -> str:
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


class Knobs(MutableMapping):
    """The debugfs knobs of one directory: ``knobs["bpf_offloaded_id"]`` reads the
    file, ``knobs["bpf_bind_accept"] = False`` writes it. A name that is no
    knob there is a KeyError listing the ones there are; knobs cannot be
    added or removed."""

    def __init__(self, directory: Path, owner: str):
        self.directory, self.owner = directory, owner

    def _path(self, name: str) -> Path:
        path = self.directory / name
        if not name or "/" in name or name.startswith(".") or not path.is_file():
            raise KeyError(f"{self.owner} has no debugfs knob {name!r}; it has: "
                           f"{', '.join(self) or 'none'}")
        return path

    def __getitem__(self, name: str) -> Any:
        return _knob_value(self._path(name).read_text())

    def __setitem__(self, name: str, value: Any) -> None:
        self._path(name).write_text(_knob_text(value))

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"debugfs knobs of {self.owner} cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(p.name for p in self.directory.iterdir()
                           if p.is_file() and p.stat().st_mode & 0o400))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class NsimPort:
    """One port of a netdevsim device: a netdev in the namespace netns_fd."""

    def __init__(self, dev: "NetdevSim", index: int, name: str):
        self.dev, self.index, self.name = dev, index, name
        self.knobs = Knobs(DEBUGFS / f"netdevsim{dev.id}" / "ports" / str(index),
                           f"netdevsim{dev.id} port {index}")

    def __repr__(self) -> str:
        return f"<NsimPort netdevsim{self.dev.id}/{self.index} {self.name}>"

    @property
    def netns_fd(self) -> int:
        return self.dev.netns_fd

    @property
    def ifindex(self) -> int:
        return ifindex(self)

    def _ipr(self):
        from pyroute2 import IPRoute

        with netns.entered(self.netns_fd):
            return IPRoute(ext_ack=True)

    def _link_set(self, what: str, **attrs: Any) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        index = self.ifindex
        with self._ipr() as ipr:
            try:
                ipr.link("set", index=index, **attrs)
            except NetlinkError as e:
                raise netlink_error(e, f"{what} on {self.name}") from None

    def up(self) -> "NsimPort":
        self._link_set("set up", state="up")
        return self

    def set_mtu(self, mtu: int) -> None:
        """Set the MTU; a refusal is OSError with the kernel's .extack."""
        self._link_set(f"set MTU {mtu}", mtu=mtu)

    @property
    def mtu(self) -> int:
        index = self.ifindex
        with self._ipr() as ipr:
            return ipr.get_links(index)[0].get_attr("IFLA_MTU")

    def set_feature(self, name: str, enable: bool) -> None:
        """Turn an ethtool feature (e.g. hw-tc-offload) on or off.

        The ioctl says only that a wish was not granted, not why: a device
        keeping the feature is a RuntimeError naming it.
        """
        from pyroute2.ethtool import Ethtool
        from pyroute2.ethtool.ioctl import NotSupportedError

        with netns.entered(self.netns_fd), Ethtool() as ethtool:
            features = ethtool.get_features(self.name)
            features.features[name].enable = enable
            try:
                ethtool.set_features(self.name, features)
            except NotSupportedError:
                pass  # checked below
            if ethtool.get_features(self.name).features[name].enable != enable:
                raise RuntimeError(f"{self.name}: the device kept {name} "
                                   f"{'off' if enable else 'on'}")

    def xdp(self) -> XdpState:
        """The XDP programs the kernel reports for this port (ip link's view)."""
        return xdp_query(self)

    def tc_filters(self, direction: str = "ingress") -> list[dict[str, Any]]:
        """BPF filters on this port's clsact hook (tc's JSON: in_hw, skip_sw, prog, ...)."""
        return filters(self, direction)

    def send(self, frames: Iterable[Any]) -> int:
        with netns.entered(self.netns_fd):
            return packets.send(self.name, frames)

    def capture(self) -> packets.Capture:
        with netns.entered(self.netns_fd):
            return packets.Capture(self.name)


class NetdevSim:
    """A netdevsim device with `ports` ports, removed by remove() (or the with block).

    namespace (a bpfvm.net Namespace, or a namespace fd) moves the ports
    there right after creation; otherwise they stay in the caller's namespace.
    """

    def __init__(self, ports: int = 1, queues: int = 1,
                 namespace: Optional[Union[int, Any]] = None):
        if not available():
            raise OSError(errno.ENODEV, NO_NETDEVSIM)
        system.mount_filesystems()  # debugfs, for the knobs
        self.removed = False
        self.id = self._create(ports, queues)
        self.knobs = Knobs(DEBUGFS / f"netdevsim{self.id}", f"netdevsim{self.id}")
        self.netns_fd = netns.current()
        try:
            names = self._wait_for_netdevs(ports)
            self.ports = [NsimPort(self, i, name) for i, name in enumerate(names)]
            if namespace is not None:
                self.move_to(namespace)
        except BaseException:
            self.remove()
            raise

    def __repr__(self) -> str:
        return f"<NetdevSim {self.id} ports={[p.name for p in self.ports]}>"

    def __enter__(self) -> "NetdevSim":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    @staticmethod
    def _create(ports: int, queues: int) -> int:
        for _ in range(100):
            dev_id = random.randrange(MAX_ID)
            try:
                (BUS / "new_device").write_text(f"{dev_id} {ports} {queues}")
                return dev_id
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EEXIST, errno.EBUSY):
                    raise OSError(e.errno, f"netdevsim new_device {dev_id} {ports} {queues}: "
                                           f"{os.strerror(e.errno)}") from None
        raise OSError(errno.ENOSPC, "netdevsim: no free device id after 100 tries")

    def _wait_for_netdevs(self, ports: int, timeout: float = 5.0) -> list[str]:
        """The ports' netdev names in port order (the device probes from a workqueue)."""
        net = BUS / "devices" / f"netdevsim{self.id}" / "net"

        def names() -> list[str]:
            try:
                found = os.listdir(net)
            except FileNotFoundError:
                return []
            return found if len(found) == ports else []

        found = packets.wait_until(names, timeout, f"the {ports} netdevs of netdevsim{self.id}")
        return sorted(found, key=lambda n: int((net / n / "ifindex").read_text()))

    def move_to(self, target: Union[int, Any]) -> None:
        """Move every port into the namespace target (a Namespace or an fd)."""
        fd = target if isinstance(target, int) else target.fd
        for port in self.ports:
            port._link_set("move to another namespace", net_ns_fd=fd)
        os.close(self.netns_fd)
        self.netns_fd = os.dup(fd)

    def bound_progs(self) -> list[dict[str, Any]]:
        """Programs bound to this device: id, state (verify/xlated), loaded, from debugfs."""
        progs = []
        for entry in sorted((self.knobs.directory / "bpf_bound_progs").iterdir(),
                            key=lambda p: int(p.name)):
            progs.append({"id": _knob_value((entry / "id").read_text()),
                          "state": (entry / "state").read_text().strip(),
                          "loaded": _knob_value((entry / "loaded").read_text())})
        return progs

    def remove(self) -> None:
        """Delete the device (its ports, and what was attached to them); idempotent."""
        if self.removed:
            return
        self.removed = True
        try:
            (BUS / "del_device").write_text(str(self.id))
        finally:
            if hasattr(self, "netns_fd"):
                os.close(self.netns_fd)


def connect(a: NsimPort, b: NsimPort) -> None:
    """Join two ports like a cable (6.10+): what one sends, the other receives.

    Returns once both can carry frames (bring them up first).
    """
    target = BUS / "link_device"
    if not target.exists():
        raise OSError(errno.EOPNOTSUPP, "this kernel's netdevsim cannot link ports "
                                        "(/sys/bus/netdevsim/link_device came in 6.10)")
    target.write_text(f"{a.netns_fd}:{a.ifindex} {b.netns_fd}:{b.ifindex}")
    for port in (a, b):
        with port._ipr() as ipr:
            packets.wait_operational(ipr, port.ifindex, port.name)
