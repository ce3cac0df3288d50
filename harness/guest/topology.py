"""Namespaces joined by veth pairs, addressed so that traffic flows without discovery.

    with pair() as net:                    # hosts a and b, one veth pair
        sock = net.b.udp_socket(5000)
        net.a.send([net.a.udp_to(net.b, 5000, b"hi")])
        assert sock.recv(16) == b"hi"

A topology is a list of links between named hosts; each host is a network
namespace. Link i (from 1) is subnet 10.0.i.0/24 (and fd00:0:0:i::/64 with
ipv6=True); its first end is .1 with MAC 02:00:00:00:ii:01, its second .2
with MAC 02:00:00:00:ii:02. Interfaces are veth0, veth1, ... in each host in
the order of its links. Every end has a permanent neighbour entry for the
other end (no ARP, no ND), hosts reach subnets that are not theirs along the
shortest path (hosts on the way forward), IPv6 is disabled unless asked for
(and then DAD and router solicitations are off), and transmit checksum
offload is off, so frames carry their final checksums on the wire.
"""
from __future__ import annotations

import os
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from . import packets
from .netns import Namespace

NUD_PERMANENT = 0x80
IFA_F_NODAD = 0x02


@dataclass
class Iface:
    """One end of a veth pair."""

    host: "Host"
    name: str
    mac: str
    ip4: str
    ip6: str
    subnet4: str
    subnet6: str
    peer: Optional["Iface"] = None

    def __repr__(self) -> str:
        return f"<Iface {self.host.name}:{self.name} {self.ip4}>"

    @property
    def ifindex(self) -> int:
        return self.host.ns.ipr.link_lookup(ifname=self.name)[0]

    @property
    def netns_fd(self) -> int:
        """Its namespace: bpfvm.bpf's attach calls and XskSocket enter it themselves."""
        return self.host.ns.fd

    @property
    def mac_bytes(self) -> bytes:
        """The MAC as 6 bytes, as a BPF map value wants it."""
        return bytes.fromhex(self.mac.replace(":", ""))


@dataclass
class Host:
    """A namespace with its interfaces; ``with host:`` runs the block inside it."""

    name: str
    ns: Namespace
    ifaces: list[Iface] = field(default_factory=list)
    hops: dict[str, Iface] = field(default_factory=dict)  # host name -> our iface towards it
    owned: list = field(default_factory=list)  # sockets and captures handed out, closed with us

    def __repr__(self) -> str:
        return f"<Host {self.name}>"

    def __enter__(self) -> "Host":
        self.ns.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.ns.__exit__(*exc)

    @property
    def iface(self) -> Iface:
        return self.ifaces[0]

    @property
    def ip4(self) -> str:
        return self.iface.ip4

    @property
    def ip6(self) -> str:
        return self.iface.ip6

    @property
    def mac(self) -> str:
        return self.iface.mac

    def towards(self, other: "Host") -> Iface:
        """Our interface on the path to other (its peer is the next hop)."""
        return self.hops[other.name]

    def run(self, cmd: list[str], **kwargs: Any):
        return self.ns.run(cmd, **kwargs)

    # -- traffic ---------------------------------------------------------------------

    def udp_socket(self, port: int = 0, ipv6: bool = False, timeout: float = 2.0) -> socket.socket:
        """A UDP socket of this namespace bound to its address and port (0: any free one)."""
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        with self:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        self.owned.append(sock)
        sock.settimeout(timeout)
        sock.bind((self.ip6 if ipv6 else self.ip4, port))
        return sock

    def capture(self, iface: Optional[Iface] = None) -> packets.Capture:
        """Frames arriving on iface (default: the first), opened now."""
        with self:
            capture = packets.Capture((iface or self.iface).name)
        self.owned.append(capture)
        return capture

    def close(self) -> None:
        for thing in reversed(self.owned):
            thing.close()
        self.owned.clear()
        self.ns.close()

    def send(self, frames: Iterable[Any], iface: Optional[Iface] = None) -> int:
        """Transmit frames (bytes or scapy packets) on iface as they are."""
        with self:
            return packets.send((iface or self.iface).name, frames)

    def ether_to(self, dst: "Host", ipv6: bool = False) -> Any:
        """scapy Ether/IP (or IPv6) headers from this host to dst, via the next hop's MAC."""
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether

        out = self.towards(dst)
        ip = IPv6(src=out.ip6, dst=dst.ip6) if ipv6 else IP(src=out.ip4, dst=dst.ip4)
        return Ether(src=out.mac, dst=out.peer.mac) / ip

    def udp_to(self, dst: "Host", dport: int, payload: bytes = b"", sport: int = 4000,
               ipv6: bool = False) -> Any:
        """A UDP datagram from this host to dst:dport, ready to send()."""
        from scapy.layers.inet import UDP

        return self.ether_to(dst, ipv6) / UDP(sport=sport, dport=dport) / payload


class Topology:
    """Hosts by name (``net.a``, ``net["a"]``); close() removes everything."""

    def __init__(self, links: Sequence[tuple[str, str]], ipv6: bool = False):
        if not links:
            raise ValueError("a topology needs at least one link, e.g. [('a', 'b')]")
        self.links, self.ipv6 = list(links), ipv6
        self.hosts: dict[str, Host] = {}
        try:
            for a, b in self.links:
                for name in (a, b):
                    if name not in self.hosts:
                        self.hosts[name] = self._new_host(name)
            for number, (a, b) in enumerate(self.links, 1):
                self._link(number, self.hosts[a], self.hosts[b])
            self._route()
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def __getattr__(self, name: str) -> Host:
        hosts = self.__dict__.get("hosts", {})
        if name in hosts:
            return hosts[name]
        raise AttributeError(f"no host {name!r} in this topology; it has {sorted(hosts)}")

    def __getitem__(self, name: str) -> Host:
        return getattr(self, name)

    def __enter__(self) -> "Topology":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for host in self.hosts.values():
            host.close()

    # -- building --------------------------------------------------------------------

    def _new_host(self, name: str) -> Host:
        host = Host(name, Namespace(name))
        if os.path.exists("/proc/sys/net/ipv6"):
            for scope in ("all", "default"):
                if self.ipv6:
                    host.ns.sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0)
                    host.ns.sysctl(f"net.ipv6.conf.{scope}.router_solicitations", 0)
                    host.ns.sysctl(f"net.ipv6.conf.{scope}.accept_ra", 0)
                else:
                    host.ns.sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", 1)
        elif self.ipv6:
            raise RuntimeError("ipv6=True, but this kernel has no IPv6 (CONFIG_IPV6)")
        ipr = host.ns.ipr
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return host

    def _link(self, number: int, a: Host, b: Host) -> None:
        ends = []
        for end, host in enumerate((a, b), 1):
            ends.append(Iface(host, f"veth{len(host.ifaces)}", f"02:00:00:00:{number:02x}:{end:02x}",
                              f"10.0.{number}.{end}", f"fd00:0:0:{number}::{end}",
                              f"10.0.{number}.0/24", f"fd00:0:0:{number}::/64"))
        ea, eb = ends
        ea.peer, eb.peer = eb, ea
        a.ns.ipr.link("add", ifname=ea.name, kind="veth", address=ea.mac,
                      peer={"ifname": eb.name, "address": eb.mac, "net_ns_fd": b.ns.fd})
        for iface in ends:
            iface.host.ifaces.append(iface)
            self._configure(iface)

    def _configure(self, iface: Iface) -> None:
        from pyroute2.ethtool import Ethtool

        host, ipr = iface.host, iface.host.ns.ipr
        index = iface.ifindex
        with host, Ethtool() as ethtool:
            features = ethtool.get_features(iface.name)
            features.features["tx-checksum-ip-generic"].enable = False
            ethtool.set_features(iface.name, features)
        ipr.addr("add", index=index, address=iface.ip4, prefixlen=24)
        ipr.neigh("add", dst=iface.peer.ip4, lladdr=iface.peer.mac, ifindex=index,
                  state=NUD_PERMANENT)
        if self.ipv6:
            ipr.addr("add", index=index, address=iface.ip6, prefixlen=64, flags=IFA_F_NODAD)
            ipr.neigh("add", dst=iface.peer.ip6, lladdr=iface.peer.mac, ifindex=index,
                      state=NUD_PERMANENT, family=socket.AF_INET6)
        ipr.link("set", index=index, state="up")

    def _route(self) -> None:
        """Routes along shortest paths; hosts with several links forward."""
        for host in self.hosts.values():
            for iface in host.ifaces:
                host.hops[iface.peer.host.name] = iface
            seen, queue = {host.name}, deque((i.peer.host, i) for i in host.ifaces)
            while queue:
                other, first = queue.popleft()
                if other.name in seen:
                    continue
                seen.add(other.name)
                host.hops.setdefault(other.name, first)
                queue.extend((i.peer.host, first) for i in other.ifaces)
            local = {i.subnet4 for i in host.ifaces}
            for other in self.hosts.values():
                if other is host:
                    continue
                out = host.hops[other.name]
                for iface in other.ifaces:
                    if iface.subnet4 in local:
                        continue
                    local.add(iface.subnet4)
                    self._add_route(host, iface, out)
            if len(host.ifaces) > 1:
                host.ns.sysctl("net.ipv4.ip_forward", 1)
                if self.ipv6:
                    host.ns.sysctl("net.ipv6.conf.all.forwarding", 1)

    def _wait_ready(self) -> None:
        for host in self.hosts.values():
            for iface in host.ifaces:
                packets.wait_operational(host.ns.ipr, iface.ifindex, f"{host.name}:{iface.name}")

    def _add_route(self, host: Host, target: Iface, out: Iface) -> None:
        ipr = host.ns.ipr
        ipr.route("add", dst=target.subnet4, gateway=out.peer.ip4, oif=out.ifindex)
        if self.ipv6:
            ipr.route("add", dst=target.subnet6, gateway=out.peer.ip6, oif=out.ifindex,
                      family=socket.AF_INET6)


def pair(ipv6: bool = False) -> Topology:
    """Hosts a and b over one veth pair."""
    return Topology([("a", "b")], ipv6)


def router(ipv6: bool = False) -> Topology:
    """a - r - b: r forwards between subnet 10.0.1.0/24 (a) and 10.0.2.0/24 (b)."""
    return Topology([("a", "r"), ("r", "b")], ipv6)


def fanout(receivers: int = 2, ipv6: bool = False) -> Topology:
    """Sender s with one veth to each receiver r0, r1, ... (s's veth<i> faces r<i>)."""
    if receivers < 1:
        raise ValueError(f"fanout needs at least one receiver, got {receivers}")
    return Topology([("s", f"r{i}") for i in range(receivers)], ipv6)


SHAPES = {"pair": pair, "router": router, "fanout": fanout}
