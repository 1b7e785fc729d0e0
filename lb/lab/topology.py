"""Declarative lab topologies: `netns/<mode>.toml` → a `Topology` → namespaces, links, addresses.

Each TOML file opens with the ASCII diagram of its mode. An entry that mentions `{i}` or `{h}` is repeated
for every real server (i = 1..N, h = host_base + i); `{vip}` is the service address. `build()` applies the
result through `lb.lab.netns.NetnsSet` (the only module that runs `ip`/`sysctl`/`nft`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lb.lab.netns import NetnsSet

MODES = ("nat", "dr", "tun")


def netns_dir() -> Path:
    """Where the topology files live: $PYVS_NETNS_DIR, else `netns/` next to the `lb` package."""
    env = os.environ.get("PYVS_NETNS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "netns"


@dataclass(frozen=True, slots=True)
class Endpoint:
    node: str
    dev: str

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        node, _, dev = text.partition(":")
        return cls(node, dev)


@dataclass(slots=True)
class Topology:
    """One mode's topology expanded for N real servers."""

    mode: str
    fwd: str                       # ipvsadm forwarding flag: -m / -g / -i
    vip: str
    balancer: str                  # node name of the balancer
    balancer_ifaces: list[str]
    client_if: Endpoint
    client_side: Endpoint
    server_side: Endpoint
    servers: list[str]             # node names of the real servers
    rips: list[str]
    server_macs: list[str]
    nodes: list[str]               # every node, in creation order
    bridges: list[Endpoint] = field(default_factory=list)
    links: list[tuple[Endpoint, Endpoint, str]] = field(default_factory=list)
    addrs: list[tuple[Endpoint, str, str]] = field(default_factory=list)   # (dev, cidr, mac)
    routes: list[tuple[str, str, str]] = field(default_factory=list)       # (node, to, via)
    sysctls: list[tuple[str, str, int]] = field(default_factory=list)
    neighs: list[tuple[Endpoint, str, str]] = field(default_factory=list)  # (dev, addr, mac)
    # (node, argv): argv[0] names a module lb.lab.<argv[0]> run with the current interpreter
    processes: list[tuple[str, list[str]]] = field(default_factory=list)

    def addr_of(self, ep: Endpoint) -> str:
        for dev, cidr, _ in self.addrs:
            if dev == ep:
                return cidr.split("/")[0]
        return ""

    def peer_of(self, ep: Endpoint) -> Endpoint:
        """The other end of the veth pair `ep` belongs to (captures there see what `ep` really sent, even
        frames a balancer transmits with PACKET_QDISC_BYPASS, which its own interface's taps miss)."""
        for a, b, _ in self.links:
            if a == ep:
                return b
            if b == ep:
                return a
        raise KeyError(f"{ep.node}:{ep.dev} is on no link")

    def mac_of(self, ep: Endpoint) -> str:
        for dev, _, mac in self.addrs:
            if dev == ep and mac:
                return mac
        return ""


def _expand(entries: list[dict[str, Any]], n: int, host_base: int, vip: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in entries:
        templated = any(isinstance(v, str) and ("{i" in v or "{h" in v) for v in entry.values())
        for i in range(1, n + 1) if templated else [0]:
            out.append({k: v.format(i=i, h=host_base + i, vip=vip) if isinstance(v, str) else v
                        for k, v in entry.items()})
    return out


def load(mode: str, servers: int, path: Path | None = None) -> Topology:
    """Read `netns/<mode>.toml` and expand it for `servers` real servers."""
    if mode not in MODES:
        raise ValueError(f"unknown lab mode {mode!r} (one of {', '.join(MODES)})")
    if not 1 <= servers <= 200:
        raise ValueError("--servers must be between 1 and 200")
    path = path or netns_dir() / f"{mode}.toml"
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    vip = raw["vip"]
    base = int(raw.get("host_base", 10))
    x = lambda key: _expand(raw.get(key, []), servers, base, vip)  # noqa: E731
    server_names = [raw["server_node"].format(i=i) for i in range(1, servers + 1)]
    topo = Topology(
        mode=raw["mode"], fwd=raw["fwd"], vip=vip, balancer=raw["balancer"],
        balancer_ifaces=list(raw["balancer_ifaces"]),
        client_if=Endpoint.parse(raw["client_if"]),
        client_side=Endpoint.parse(raw["client_side"]),
        server_side=Endpoint.parse(raw["server_side"]),
        servers=server_names,
        rips=[raw["rip"].format(i=i, h=base + i) for i in range(1, servers + 1)],
        server_macs=[],
        nodes=list(raw["nodes"]) + server_names,
    )
    topo.bridges = [Endpoint.parse(b["dev"]) for b in x("bridge")]
    topo.links = [(Endpoint.parse(ln["a"]), Endpoint.parse(ln["b"]), ln.get("bridge", ""))
                  for ln in x("link")]
    topo.addrs = [(Endpoint.parse(a["dev"]), a["cidr"], a.get("mac", "")) for a in x("addr")]
    topo.routes = [(r["node"], r["to"], r["via"]) for r in x("route")]
    topo.sysctls = [(s["node"], s["key"], int(s["value"])) for s in x("sysctl")]
    topo.neighs = [(Endpoint.parse(nb["dev"]), nb["addr"], nb["mac"]) for nb in x("neigh")]
    topo.processes = [(p["node"], p["run"].split()) for p in x("process")]
    topo.server_macs = [topo.mac_of(Endpoint(s, "eth0")) for s in server_names]
    return topo


def build(topo: Topology, net: NetnsSet) -> None:
    """Create every namespace, link, address, route, sysctl and neighbour entry of `topo` in `net`."""
    for node in topo.nodes:
        net.add_ns(node)
    for br in topo.bridges:
        net.bridge(br.node, br.dev)
    for a, b, bridge in topo.links:
        net.veth(a.node, a.dev, b.node, b.dev)
        if bridge:
            net.bridge(b.node, bridge, [b.dev])
    for dev, cidr, mac in topo.addrs:
        if mac:
            net.set_mac(dev.node, dev.dev, mac)
        net.addr(dev.node, dev.dev, cidr)
    for node, key, value in topo.sysctls:
        net.sysctl(node, key, value)
    for node, to, via in topo.routes:
        net.route(node, to, via)
    for dev, addr, mac in topo.neighs:
        net.neigh(dev.node, dev.dev, addr, mac)
