"""The balancers a lab can run in its balancer namespace, as data: rules text, nft scripts, argv lists.

- `lb`    : pyvs itself, `lb run` inside the balancer namespace, configured from an ipvsadm-save style rules
            file and administered with `lbadm` over the lab's socket (the default once `lb run` exists).
- `nft`   : the kernel as a balancer, nftables style (what kube-proxy users have). NAT: DNAT in prerouting
            with `numgen inc` (rr/wrr; weights = repeated buckets) or `jhash ip saddr` (sh/mh/dh); conntrack
            undoes it on replies. DR: a netdev ingress rule sets the dst MAC by a per-flow `jhash` and `fwd`s
            the frame back out (the IP packet is untouched).
- `nft-dnat`: nftables DNAT (as `nft` in NAT) in *any* topology, so that DR and TUN can be compared with
            DNAT in the same namespaces.  DNAT needs the replies back through the balancer, so in the DR and
            TUN topologies the real servers' replies are routed to it (`dnat_return_routes`): a server on
            the balancer's subnet gets it as its default gateway; otherwise its gateway (the router) sends
            what comes from the real servers to the balancer by a source rule.
- `route` : plain kernel forwarding, DR only: an ECMP route to the VIP over the real servers with L4 hashing
            (the kernel rewrites the MACs and decrements the TTL).
- `py`    : `lb.lab.pyfwd`, a naive Python forwarder for DR and TUN (the benchmarks' "naive Python").
Nothing here runs a command: `lb.lab.lab` applies these through `NetnsSet`.
"""

from __future__ import annotations

import ipaddress
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from lb.lab.topology import Topology

BALANCERS = ("lb", "nft", "nft-dnat", "route", "py")
#: Which balancer can run which mode.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "lb": ("nat", "dr", "tun"),
    "nft": ("nat", "dr"),
    "nft-dnat": ("nat", "dr", "tun"),
    "route": ("dr",),
    "py": ("dr", "tun"),
}
HASHING_SCHEDS = ("sh", "dh", "mh")


@dataclass(frozen=True, slots=True)
class Service:
    """What the lab balances: TCP `port` and UDP `udp_port` on the VIP, same real servers and weights."""

    vip: str
    port: int
    udp_port: int
    scheduler: str
    rips: tuple[str, ...]
    weights: tuple[int, ...]


def lb_run_available() -> bool:
    """True when `lb run` exists in this tree (lb/run.py or lb/run/)."""
    import importlib.util  # noqa: PLC0415

    return importlib.util.find_spec("lb.run") is not None


def default_balancer(mode: str) -> str:
    if lb_run_available():
        return "lb"
    return "nft" if mode in ("nat", "dr") else "py"


def check(balancer: str, mode: str) -> None:
    if balancer not in BALANCERS:
        raise ValueError(f"unknown balancer {balancer!r} (one of {', '.join(BALANCERS)})")
    if mode not in SUPPORTED[balancer]:
        ok = [b for b, modes in SUPPORTED.items() if mode in modes]
        raise ValueError(f"--balancer {balancer} cannot do {mode.upper()}; use one of {', '.join(ok)}")


def rules_text(topo: Topology, svc: Service) -> str:
    """The service as `ipvsadm-save -n` lines (what `lb run --rules` and `lbadm -R` read)."""
    lines = [f"-A -t {svc.vip}:{svc.port} -s {svc.scheduler}"]
    lines += [f"-a -t {svc.vip}:{svc.port} -r {rip}:{svc.port} {topo.fwd} -w {w}"
              for rip, w in zip(svc.rips, svc.weights, strict=True)]
    if svc.udp_port:
        lines.append(f"-A -u {svc.vip}:{svc.udp_port} -s {svc.scheduler}")
        lines += [f"-a -u {svc.vip}:{svc.udp_port} -r {rip}:{svc.udp_port} {topo.fwd} -w {w}"
                  for rip, w in zip(svc.rips, svc.weights, strict=True)]
    return "\n".join(lines) + "\n"


def _buckets(values: tuple[str, ...], weights: tuple[int, ...], scheduler: str) -> list[str]:
    """One bucket per unit of weight (weights ignored for unweighted rr); weight 0 = no bucket."""
    if scheduler in ("rr", *HASHING_SCHEDS):
        return [v for v, w in zip(values, weights, strict=True) if w > 0]
    return [v for v, w in zip(values, weights, strict=True) for _ in range(w)]


def _map(keys: list[str]) -> str:
    return ", ".join(f"{i} : {k}" for i, k in enumerate(keys))


def nft_script(topo: Topology, svc: Service, macs: tuple[str, ...] = ()) -> str:
    """nftables ruleset for the balancer namespace (table `pyvs`)."""
    if topo.mode == "nat":
        rips = _buckets(svc.rips, svc.weights, svc.scheduler)
        pick = "jhash ip saddr" if svc.scheduler in HASHING_SCHEDS else "numgen inc"
        to = f"dnat to {pick} mod {len(rips)} map {{ {_map(rips)} }}"
        rules = [f"ip daddr {svc.vip} tcp dport {svc.port} {to}"]
        if svc.udp_port:
            rules.append(f"ip daddr {svc.vip} udp dport {svc.udp_port} {to}")
        body = "\n".join(f"    {r}" for r in rules)
        return ("table ip pyvs {\n  chain pre {\n    type nat hook prerouting priority dstnat;\n"
                f"{body}\n  }}\n  chain post {{\n    type nat hook postrouting priority srcnat;\n  }}\n}}\n")
    if topo.mode == "dr":
        dev = topo.client_side.dev
        own = topo.mac_of(topo.client_side)
        keys = _buckets(macs, svc.weights, svc.scheduler)
        flow = "ip saddr" if svc.scheduler in HASHING_SCHEDS else "ip saddr . {l4} sport"
        rules = []
        for l4, port in (("tcp", svc.port), ("udp", svc.udp_port)):
            if port:
                pick = f"jhash {flow.format(l4=l4)} mod {len(keys)} map {{ {_map(keys)} }}"
                rules.append(f"ip daddr {svc.vip} {l4} dport {port} ether saddr set {own} "
                             f"ether daddr set {pick} fwd to {dev}")
        body = "\n".join(f"    {r}" for r in rules)
        hook = f"type filter hook ingress device {dev} priority 0;"
        return f"table netdev pyvs {{\n  chain in {{\n    {hook}\n{body}\n  }}\n}}\n"
    raise ValueError(f"nft cannot balance {topo.mode.upper()}")


def dnat_script(topo: Topology, svc: Service) -> str:
    """`nft-dnat`: the NAT-mode DNAT ruleset, whatever the topology."""
    return nft_script(replace(topo, mode="nat"), svc)


DNAT_TABLE = 100  # routing table of the router's source rule (nft-dnat in a topology with a router)


def _ip_in(addr: str, cidr: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(cidr, strict=False)


def dnat_return_routes(topo: Topology) -> list[tuple[str, list[str]]]:
    """(node, `ip` argv) that send the real servers' replies through the balancer, for `nft-dnat`.

    NAT: nothing (the servers' gateway is the balancer already).  A server on the balancer's subnet (DR)
    gets the balancer as its default gateway.  Otherwise (TUN) the node that is the servers' gateway gets
    one source rule per real server into table DNAT_TABLE, whose default route is the balancer."""
    lb_addr = topo.addr_of(topo.server_side)
    gw = {node: via for node, to, via in topo.routes if to == "default"}
    out: list[tuple[str, list[str]]] = []
    gw_node = ""
    for node, rip in zip(topo.servers, topo.rips, strict=True):
        via = gw.get(node, "")
        if not via or via == lb_addr:
            continue
        cidr = next((c for ep, c, _ in topo.addrs if ep.node == node and _ip_in(rip, c) and "/" in c), "")
        if cidr and _ip_in(lb_addr, cidr):
            out.append((node, ["route", "replace", "default", "via", lb_addr]))
            continue
        gw_node = next((ep.node for ep, c, _ in topo.addrs if c.split("/")[0] == via), "")
        if not gw_node:
            raise ValueError(f"nft-dnat: no node owns {node}'s gateway {via}")
        out.append((gw_node, ["rule", "add", "from", f"{rip}/32", "lookup", str(DNAT_TABLE),
                              "prio", str(DNAT_TABLE)]))
    if gw_node:
        out.append((gw_node, ["route", "replace", "default", "via", topo.addr_of(topo.client_side),
                              "table", str(DNAT_TABLE)]))
    return out


def route_argv(topo: Topology, svc: Service) -> list[str]:
    """`ip route` arguments of the DR ECMP route (run with `ip -n <lab>-lb`)."""
    dev = topo.server_side.dev
    argv = ["route", "replace", f"{svc.vip}/32"]
    for rip, w in zip(svc.rips, svc.weights, strict=True):
        if w > 0:
            argv += ["nexthop", "via", rip, "dev", dev, "weight", str(min(w, 256))]
    return argv


def route_sysctls(topo: Topology) -> list[tuple[str, int]]:
    dev = topo.server_side.dev
    return [("net.ipv4.ip_forward", 1), ("net.ipv4.fib_multipath_hash_policy", 1),
            ("net.ipv4.conf.all.send_redirects", 0), (f"net.ipv4.conf.{dev}.send_redirects", 0)]


def pyfwd_argv(topo: Topology, svc: Service, macs: tuple[str, ...]) -> list[str]:
    argv = [sys.executable, "-m", "lb.lab.pyfwd", "--mode", topo.mode, "--iface", topo.client_side.dev,
            "--vip", svc.vip, "--port", str(svc.port)]
    if svc.udp_port:
        argv += ["--port", str(svc.udp_port)]
    for rip, mac, w in zip(svc.rips, macs, svc.weights, strict=True):
        argv += ["--server", f"{rip},{mac}*{w}"]
    return argv


def lb_command() -> list[str]:
    """How to start the `lb` CLI: the console script next to this interpreter, else `python -m lb`."""
    exe = Path(sys.executable).parent / "lb"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("lb")
    return [found] if found else [sys.executable, "-m", "lb"]


def lbadm_command() -> list[str]:
    exe = Path(sys.executable).parent / "lbadm"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("lbadm")
    return [found] if found else [sys.executable, "-m", "lb.cli.ipvsadm"]


def lb_run_argv(topo: Topology, rules: Path, socket: Path, io: str, engine: str, *,
                ifaces: list[str] | None = None) -> list[str]:
    """`lb run` on the balancer's links (or on `ifaces`: the TAP devices that stand for them)."""
    argv = [*lb_command(), "run"]
    for dev in ifaces or topo.balancer_ifaces:
        argv += ["--iface", dev]
    return [*argv, "--rules", str(rules), "--socket", str(socket), "--io", io, "--engine", engine]
