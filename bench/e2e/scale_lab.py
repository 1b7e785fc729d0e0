"""End-to-end scaling sweep in the lab: packets/s and new flows/s as services, dests and connections grow.

    sudo .venv/bin/python bench/e2e/scale_lab.py [--quick] [--reps 3] [--sweeps services,dests,conns]
                                                 [--balancers lb-nat,nft-linear,nft-map] [--out FILE]

bench/e2e/scaling.py measures the C data path without a network; this one measures the whole path in the
namespaces of bench/e2e/run.py (its `Topo`, placement and rx counters, imported), side by side with the
two nftables models a Kubernetes user meets, so that the curves show what grows with the configuration:

- lb-nat / lb-dr: `lb run` (C engine), configured with ONE `lbadm -R` of ipvsadm-save text (timed);
- nft-linear: the kube-proxy iptables model: one DNAT rule per service, tried in order (traffic goes to the
  LAST service, the worst case), and for a service with k dests the `-m statistic --mode random
  --probability 1/(k-j)` cascade, written as `numgen random mod (k-j) 0` rules (iptables-nft would emit
  the same kind of rules; the `iptables` binary is not installed here);
- nft-map: the flat kernel answer: `dnat to ip daddr . udp dport map @svc` (one hash lookup for any number
  of services) and `numgen random mod k map {...}` for k dests; loaded with ONE `nft -f` (timed).
NAT happens in conntrack's first packet only: later packets of a flow reuse the binding and never walk the
nat chain again, so the linear rules show in new flows/s, not in established pps.

Sweeps (64-byte UDP frames from bench/e2e/udpgen_scale.c, raw socket, pinned to CPU 0; the balancer on CPU 1):
- services 1 / 10 / 100 / 1 000 / 10 000 (VIPs 10.200.0.1 + i, port 9, one dest each): established pps over
  --flows 5-tuples to the last service, new flows/s (every packet a new 5-tuple = a new lb conn and a new
  conntrack entry), and (full run) established pps spread over all services;
- dests 1 / 10 / 100 / 1 000 on one service (/32s 10.2.x.y and 10.3.x.y on the two real servers, rr in lb);
- conns 10^3 / 10^4 / 10^5 / 10^6 concurrent flows on one service with two dests: one paced warm-up pass
  over all N tuples, then established pps cycling through them (lb run --conn-max 2N).  conntrack cannot be
  resized from inside a namespace on this kernel (nf_conntrack_max and nf_conntrack_buckets are read-only
  outside the initial namespace), so nft points above its nf_conntrack_max are measured and flagged:
  there the table evicts and re-creates entries rather than holding N flows.
Each figure is an overload blast of --seconds (the generator as fast as its socket takes frames) and the
delivered rate = frames counted at the real servers' links / seconds; repeated --reps times (median, min,
max in bench/report_scale.py).  conntrack is flushed before every nft new-flow blast; lb gets a fresh
process per point.  Everything lives in namespaces bs<pid>{c,l,r1,r2}, removed in `finally`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from run import PORT, Topo, sh  # noqa: E402  (bench/e2e/run.py: topology, placement, rx counters)

VIP_BASE = IPv4Address("10.200.0.1")        # service i = VIP_BASE + i, udp port PORT
SRC_BASE = IPv4Address("10.64.0.0")         # generator sources: 10.64.0.0/12 (routed back via the client)
SRC_NET = "10.64.0.0/12"
NSRC = 1 << 20
NPORTS = 60000
SPORT_BASE = 1024
NEW_FLOW_STRIDE = 1 << 26                   # tuple offset between two new-flow blasts (never reused)
SERVER_NETS = ("10.2", "10.3")              # real server 1 / 2 (run.py's r0 subnets, widened to /16)
SERVER_ADDRS = (IPv4Address("10.2.0.2"), IPv4Address("10.3.0.2"))
NFT_TABLE = "bsnat"

FULL = {"services": [1, 10, 100, 1000, 10000], "dests": [1, 10, 100, 1000],
        "conns": [1000, 10000, 100000, 1000000]}
QUICK = {"services": [1, 1000], "dests": [1, 100], "conns": [1000, 100000]}
BALANCERS = ("lb-nat", "lb-dr", "lb-nat-rules", "nft-linear", "nft-map")


# ---- configuration text (pure) -------------------------------------------------------------------------
def vip(i: int) -> IPv4Address:
    """Address of service i (0-based)."""
    return VIP_BASE + i


def dest_addr(j: int) -> IPv4Address:
    """Address of dest j in the dests sweep: even j on real server 1, odd on real server 2, 250 per /24
    from x.y.1.1 up (x.y.0.0/24 is the link subnet of run.py's topology)."""
    idx = j // 2
    return IPv4Address(f"{SERVER_NETS[j % 2]}.{1 + idx // 250}.{1 + idx % 250}")


@dataclass(frozen=True, slots=True)
class Layout:
    """Services and their dests for one sweep point."""

    services: list[tuple[IPv4Address, list[IPv4Address]]] = field(default_factory=list)

    @property
    def dest_addrs(self) -> list[IPv4Address]:
        seen: dict[IPv4Address, None] = {}
        for _, ds in self.services:
            for d in ds:
                seen.setdefault(d)
        return list(seen)

    @property
    def n_dests(self) -> int:
        return sum(len(ds) for _, ds in self.services)


def layout(sweep: str, x: int) -> Layout:
    """services: x services with one dest each (alternating between the two real servers); dests: one
    service with x dests (/32s on the real servers); conns: one service with the two real servers."""
    if sweep == "services":
        return Layout([(vip(i), [SERVER_ADDRS[i % 2]]) for i in range(x)])
    if sweep == "dests":
        return Layout([(vip(0), [dest_addr(j) for j in range(x)])])
    if sweep == "conns":
        return Layout([(vip(0), list(SERVER_ADDRS))])
    raise ValueError(f"unknown sweep {sweep!r}")


def lb_rules(lay: Layout, fwd: str = "-m", sched: str = "rr") -> str:
    """ipvsadm-save text for `lbadm -R`."""
    lines = []
    for v, ds in lay.services:
        lines.append(f"-A -u {v}:{PORT} -s {sched}")
        lines += [f"-a -u {v}:{PORT} -r {d}:{PORT} {fwd} -w 1" for d in ds]
    return "\n".join(lines) + "\n"


def _cascade(v: IPv4Address, ds: Sequence[IPv4Address]) -> list[str]:
    """kube-proxy's endpoint cascade: rule j taken with probability 1/(k-j), the last one always."""
    k = len(ds)
    rules = [f"ip daddr {v} udp dport {PORT} numgen random mod {k - j} 0 dnat to {d}"
             for j, d in enumerate(ds[:-1])]
    rules.append(f"ip daddr {v} udp dport {PORT} dnat to {ds[-1]}")
    return rules


def nft_linear(lay: Layout) -> str:
    """The iptables model: services tried one rule after the other, endpoints by a random cascade."""
    rules: list[str] = []
    for v, ds in lay.services:
        rules += _cascade(v, ds)
    body = "\n".join(f"    {r}" for r in rules)
    return (f"table ip {NFT_TABLE} {{\n  chain pre {{\n    type nat hook prerouting priority -100;\n"
            f"{body}\n  }}\n}}\n")


def nft_map(lay: Layout) -> str:
    """The flat model: one map lookup by (VIP, port) for one-dest services, a verdict map to a per-service
    chain with a numgen map for services with more dests."""
    single = [(v, ds[0]) for v, ds in lay.services if len(ds) == 1]
    multi = [(i, v, ds) for i, (v, ds) in enumerate(lay.services) if len(ds) > 1]
    out = [f"table ip {NFT_TABLE} {{"]
    out.append("  map svc {\n    type ipv4_addr . inet_service : ipv4_addr")
    if single:
        out.append("    elements = { " + ", ".join(f"{v} . {PORT} : {d}" for v, d in single) + " }")
    out.append("  }")
    for i, _v, ds in multi:
        elems = ", ".join(f"{j} : {d}" for j, d in enumerate(ds))
        out.append(f"  chain svc{i} {{\n    dnat to numgen random mod {len(ds)} map {{ {elems} }}\n  }}")
    out.append("  map svcv {\n    type ipv4_addr . inet_service : verdict")
    if multi:
        out.append("    elements = { " + ", ".join(f"{v} . {PORT} : goto svc{i}" for i, v, _ in multi) + " }")
    out.append("  }")
    out.append("  chain pre {\n    type nat hook prerouting priority -100;")
    out.append("    ip daddr . udp dport vmap @svcv")
    out.append("    dnat to ip daddr . udp dport map @svc")
    out.append("  }\n}")
    return "\n".join(out) + "\n"


def gen_argv(gen: str, *, mac: str, dst: IPv4Address, seconds: float, flows: int, ndst: int = 1,
             rate: float = 0, count: int = 0, offset: int = 0, iface: str = "c0") -> list[str]:
    """udpgen_scale's command line: frames on the client's iface to the balancer's MAC (flows 0 = every
    packet a new 5-tuple)."""
    argv = [gen, "-i", iface, "-m", mac, "-d", str(dst), "-n", str(ndst), "-p", str(PORT),
            "-r", f"{rate:.0f}", "-t", f"{seconds:g}",
            "-f", str(flows), "-s", str(SRC_BASE), "-S", str(NSRC), "-P", str(SPORT_BASE), "-N", str(NPORTS),
            "-o", str(offset)]
    if count:
        argv += ["-c", str(count)]
    return argv


_GEN_RE = re.compile(r"sent (\d+) seconds ([0-9.]+) errors (\d+)")


def parse_gen(text: str) -> tuple[int, float, int]:
    """(sent, seconds, errors) from udpgen_scale's last line."""
    m = _GEN_RE.search(text)
    if m is None:
        raise ValueError(f"no generator summary in {text!r}")
    return int(m.group(1)), float(m.group(2)), int(m.group(3))


_ISAT_RE = re.compile(r"neigh: dest \S+ \(id (\d+)\) .*is-at")


def resolved_dest_ids(log: str) -> set[int]:
    """Dest ids whose next hop `lb run` has resolved (its `neigh: dest … (id N) … is-at` lines)."""
    return {int(m.group(1)) for m in _ISAT_RE.finditer(log)}


def neigh_batch(dev: str, addrs: Sequence[IPv4Address], mac: str) -> str:
    """`ip -batch` text: permanent neighbour entries, so neither lb nor the kernel ARPs for 1000 dests."""
    return "".join(f"neigh replace {a} lladdr {mac} dev {dev} nud permanent\n" for a in addrs)


def addr_batch(dev: str, addrs: Sequence[IPv4Address]) -> str:
    return "".join(f"addr add {a}/32 dev {dev}\n" for a in addrs)


# ---- the lab --------------------------------------------------------------------------------------------
@dataclass
class Ctx:
    topo: Topo
    gen: str
    args: argparse.Namespace
    tmp: Path
    next_offset: int = NEW_FLOW_STRIDE
    ct_max: int = 0
    ct_writable: bool = False
    mac: str = ""
    #: every `lb run` started, stopped again in main's finally whatever happened
    procs: list[subprocess.Popen[str]] = field(default_factory=list)


def nsx(ns: str, *argv: str, **kw: Any) -> str:
    return sh("ip", "netns", "exec", ns, *argv, **kw)


def ip_batch(ns: str, text: str) -> None:
    if text:
        sh("ip", "-n", ns, "-force", "-batch", "-", input_text=text, check=False, timeout=60)


def prepare(ctx: Ctx) -> None:
    """Routes and addresses the sweeps need on top of run.py's topology (all inside our namespaces)."""
    t = ctx.topo
    sh("ip", "-n", t.c, "route", "add", "10.200.0.0/16", "via", "10.1.0.2")
    ctx.mac = json.loads(sh("ip", "-n", t.l, "-j", "link", "show", "l0"))[0]["address"]
    sh("ip", "-n", t.l, "route", "add", SRC_NET, "via", "10.1.0.1")
    sh("ip", "-n", t.l, "route", "add", "10.2.0.0/16", "dev", "l1")
    sh("ip", "-n", t.l, "route", "add", "10.3.0.0/16", "dev", "l2")
    for k, v in (("net.ipv4.conf.all.rp_filter", 0), ("net.ipv4.conf.l0.rp_filter", 0),
                 ("net.ipv4.neigh.default.gc_thresh3", 8192), ("net.ipv4.neigh.default.gc_thresh2", 4096)):
        nsx(t.l, "sysctl", "-q", "-w", f"{k}={v}", check=False)
    for ns in (t.r1, t.r2):
        nsx(ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", check=False)
    # every dest address the dests sweep may use, on the two real servers, and known to the balancer
    addrs = [dest_addr(j) for j in range(max(ctx.args.dests, default=1))]
    for s, (ns, dev) in enumerate(((t.r1, "l1"), (t.r2, "l2"))):
        mine = [a for a in addrs if str(a).startswith(SERVER_NETS[s] + ".")]
        ip_batch(ns, addr_batch("r0", mine))
        mac = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "r0"))[0]["address"]
        ip_batch(t.l, neigh_batch(dev, [*mine, SERVER_ADDRS[s]], mac))
    try:
        ctx.ct_max = int(nsx(t.l, "cat", "/proc/sys/net/netfilter/nf_conntrack_max").strip())
    except (RuntimeError, ValueError):
        ctx.ct_max = 0
    # can this namespace size conntrack?  (writing the same value back changes nothing where it can)
    ctx.ct_writable = bool(ctx.ct_max) and not nsx(
        t.l, "sh", "-c",
        f"echo {ctx.ct_max} > /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo ro",
        check=False).strip()


def send(ctx: Ctx, argv: list[str], seconds: float) -> tuple[int, float, int]:
    out = sh("taskset", "-c", ctx.args.gen_cpu, "ip", "netns", "exec", ctx.topo.c, *argv,
             timeout=seconds + 30)
    return parse_gen(out)


def blast(ctx: Ctx, **kw: Any) -> dict[str, float]:
    """One overload blast; delivered = frames counted at the real servers' links / blast seconds."""
    before = ctx.topo.rx()
    secs_ = ctx.args.seconds
    sent, secs, errors = send(ctx, gen_argv(ctx.gen, mac=ctx.mac, seconds=secs_, **kw), secs_)
    time.sleep(0.2)
    got = ctx.topo.rx() - before
    return {"sent": sent, "received": got, "seconds": secs, "gen_errors": errors,
            "offered_pps": round(sent / secs) if secs else 0,
            "delivered_pps": round(got / secs) if secs else 0}


class Balancer:
    """One balancer configured for one sweep point (context manager)."""

    def __init__(self, ctx: Ctx, name: str, lay: Layout, conn_max: int) -> None:
        self.ctx, self.name, self.lay, self.conn_max = ctx, name, lay, conn_max
        self.proc: subprocess.Popen[str] | None = None
        self.config_s = 0.0
        self.ready_s = 0.0
        self.log = ""
        self.errpath = ctx.tmp / f"{name}.err"

    @property
    def is_lb(self) -> bool:
        return self.name.startswith("lb-")

    def errlog(self) -> str:
        return self.errpath.read_text(errors="replace") if self.errpath.exists() else ""

    def __enter__(self) -> Balancer:
        try:
            self._setup()
        except BaseException:
            self.__exit__()     # a failed start must not leave `lb run` behind
            raise
        return self

    def _setup(self) -> None:
        t, a = self.ctx.topo, self.ctx.args
        if self.is_lb:
            t.place("0", a.rps_servers)
            self._start_lb()
        else:
            t.place(a.rps_kernel_ingress, a.rps_servers)
            nsx(t.l, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            nsx(t.l, "conntrack", "-F", check=False)
            text = nft_linear(self.lay) if self.name == "nft-linear" else nft_map(self.lay)
            t0 = time.monotonic()
            nsx(t.l, "nft", "-f", "-", input_text=text, timeout=120)
            self.config_s = time.monotonic() - t0

    def _start_lb(self) -> None:
        """lb-nat / lb-dr: start `lb run` empty, then ONE `lbadm -R` over its control socket (timed);
        lb-nat-rules: `lb run --rules FILE --socket none` (config_s = process start until it runs)."""
        t, a = self.ctx.topo, self.ctx.args
        sock = self.ctx.tmp / f"{self.name}.sock"
        rules = lb_rules(self.lay, "-g" if self.name == "lb-dr" else "-m")
        static = self.name.endswith("-rules")
        rules_file = self.ctx.tmp / f"{self.name}.rules"
        rules_file.write_text(rules)
        cfg = ["--rules", str(rules_file), "--socket", "none"] if static else ["--socket", str(sock)]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        errf = self.errpath.open("w")
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", t.l, sys.executable, "-m", "lb.cli.main", "run",
                 "--svc-max", str(max(256, 2 * len(self.lay.services))),
                 "--dest-max", str(max(4096, 2 * self.lay.n_dests)),
                 "--cpus", a.lb_cpu,
                 "--rps-cpus", a.rps_lb_ingress, "--iface", "l0", "--iface", "l1", "--iface", "l2",
                 *cfg, "--duration", "600", "--batch", "64",
                 "--conn-max", str(self.conn_max), *a.lb_arg],
                text=True, stderr=errf, stdout=subprocess.DEVNULL, env=env)
            self.ctx.procs.append(self.proc)
        finally:
            errf.close()
        deadline = time.monotonic() + 120
        while not (static or sock.exists()) or "running" not in self.errlog():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: lb run did not start:\n{self.errlog()}")
            time.sleep(0.1)
        if static:
            self.config_s = time.monotonic() - t0
        # let lb learn the two real servers' MACs from their ARP requests now: a next hop already in its
        # table resolves every dest behind it at once (else lb asks the kernel once per dest, ~6 ms each)
        for ns, gw in ((t.r1, "10.2.0.1"), (t.r2, "10.3.0.1")):
            sh("ip", "-n", ns, "neigh", "flush", "dev", "r0", check=False)
            nsx(ns, "ping", "-c", "1", "-W", "1", gw, check=False)
        if not static:
            t0 = time.monotonic()
            sh("ip", "netns", "exec", t.l, sys.executable, "-m", "lb.cli.ipvsadm", "--socket", str(sock),
               "-R", input_text=rules, timeout=300)
            self.config_s = time.monotonic() - t0
        t0 = time.monotonic()
        # ready when every dest's next hop is resolved (permanent neighbour entries: no ARP needed)
        want = self.lay.n_dests
        deadline = time.monotonic() + 60
        while len(resolved_dest_ids(self.errlog())) < want:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {len(resolved_dest_ids(self.errlog()))}/{want} next hops "
                                   f"resolved:\n{self.errlog()[-3000:]}")
            time.sleep(0.2)
        self.ready_s = time.monotonic() - t0

    def flush(self) -> None:
        """Before a new-flow blast: an empty conntrack table for nft (lb's table is sized for the run)."""
        if not self.is_lb:
            nsx(self.ctx.topo.l, "conntrack", "-F", check=False)

    def __exit__(self, *exc: object) -> None:
        t = self.ctx.topo
        if self.proc is not None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log = self.errlog()
            self.proc = None
        nsx(t.l, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0", check=False)
        nsx(t.l, "nft", "delete", "table", "ip", NFT_TABLE, check=False)
        nsx(t.l, "conntrack", "-F", check=False)


def lb_counters(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if ": rx " in ln or ("conn" in ln.lower() and "full" in ln.lower())]


def measure_point(ctx: Ctx, sweep: str, x: int, name: str) -> dict[str, Any]:
    a = ctx.args
    lay = layout(sweep, x)
    flows = x if sweep == "conns" else a.flows
    conn_max = max(65536, 2 * flows) if sweep == "conns" else a.lb_conn_max
    last = lay.services[-1][0]
    pt: dict[str, Any] = {"sweep": sweep, "x": x, "balancer": name, "flows": flows, "pps": [],
                          "new_per_s": [], "pps_spread": [], "blasts": []}
    if sweep == "conns" and name.startswith("nft") and ctx.ct_max and flows > ctx.ct_max:
        pt["over_ct_max"] = True
    with Balancer(ctx, name, lay, conn_max) as b:
        pt["config_s"] = round(b.config_s, 4)
        pt["ready_s"] = round(b.ready_s, 3)
        # warm-up: every tuple once, paced (conns: N tuples), plus the first ARP/neighbour work
        # (slow enough for the slowest balancer's new-flow rate, so that the tuples really are established:
        # nft-linear makes ~15 k conntrack entries/s behind 10 000 rules here)
        rate = a.warm_rate_conns if sweep == "conns" else a.warm_rate
        send(ctx, gen_argv(ctx.gen, mac=ctx.mac, dst=last, seconds=60, flows=flows, rate=rate, count=flows),
             60)
        if sweep == "services" and a.spread and x > 1:
            send(ctx, gen_argv(ctx.gen, mac=ctx.mac, dst=vip(0), ndst=x, seconds=60, flows=max(x, a.flows),
                               rate=rate, count=max(x, a.flows)), 60)
        time.sleep(0.2)
        for _ in range(a.reps):
            r = blast(ctx, dst=last, flows=flows)
            pt["pps"].append(r["delivered_pps"])
            pt["blasts"].append({"kind": "established", **r})
            if sweep != "conns":
                b.flush()
                r = blast(ctx, dst=last, flows=0, offset=ctx.next_offset)
                ctx.next_offset += NEW_FLOW_STRIDE
                pt["new_per_s"].append(r["delivered_pps"])
                pt["blasts"].append({"kind": "new", **r})
            if sweep == "services" and a.spread and x > 1:
                r = blast(ctx, dst=vip(0), ndst=x, flows=max(x, a.flows))
                pt["pps_spread"].append(r["delivered_pps"])
                pt["blasts"].append({"kind": "spread", **r})
    if b.log:
        pt["lb_counters"] = lb_counters(b.log)
    new = f" new {pt['new_per_s']}" if pt["new_per_s"] else ""
    spread = f" spread {pt['pps_spread']}" if pt["pps_spread"] else ""
    print(f"  {sweep:8s} {x:>8,} {name:10s} config {pt['config_s']:.3f} s  pps {pt['pps']}{new}{spread}",
          flush=True)
    return pt


def runs_in(sweep: str, balancer: str) -> bool:
    """nft-map adds nothing in the conns sweep (established flows never reach the nat chain: both nft
    models show conntrack's figure); lb-nat-rules is there to tell the control plane's cost from the data
    path's, which only the services sweep needs."""
    if balancer == "nft-map":
        return sweep != "conns"
    if balancer == "lb-nat-rules":
        return sweep == "services"
    return True


@contextmanager
def lab(tag: str) -> Iterator[Topo]:
    topo = Topo(tag)
    try:
        topo.up()
        yield topo
    finally:
        topo.down()


def parse_list(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def build_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke: 2 points per sweep, lb-nat + nft-linear, "
                    "1 rep, 0.5 s blasts")
    ap.add_argument("--sweeps", default="services,dests,conns")
    ap.add_argument("--balancers", default=None,
                    help=f"comma list of {', '.join(BALANCERS)} (default lb-nat,lb-nat-rules,nft-linear,"
                         "nft-map; --quick lb-nat,nft-linear; see runs_in() for which sweeps skip which)")
    ap.add_argument("--services", type=parse_list, default=None, help="points, e.g. 1,10,100")
    ap.add_argument("--dests", type=parse_list, default=None)
    ap.add_argument("--conns", type=parse_list, default=None)
    ap.add_argument("--reps", type=int, default=None, help="repetitions per point (default 3; --quick 1)")
    ap.add_argument("--seconds", type=float, default=None, help="blast length (default 1.0; --quick 0.5)")
    ap.add_argument("--flows", type=int, default=1000, help="established 5-tuples (services/dests sweeps)")
    ap.add_argument("--warm-rate", type=float, default=10000,
                    help="paced rate of the warm-up pass over the established tuples (services, dests)")
    ap.add_argument("--warm-rate-conns", type=float, default=150000,
                    help="the same for the conns sweep (up to 10^6 tuples on a one-service config)")
    ap.add_argument("--spread", action=argparse.BooleanOptionalAction, default=None,
                    help="services sweep: also blast over all services (default: on, off with --quick)")
    ap.add_argument("--lb-conn-max", type=int, default=1 << 22,
                    help="lb run --conn-max for the services/dests sweeps (room for every new-flow blast)")
    ap.add_argument("--lb-arg", action="append", default=[], help="one more `lb run` argument (repeat)")
    ap.add_argument("--gen-cpu", default="0")
    ap.add_argument("--lb-cpu", default="1")
    ap.add_argument("--rps-lb-ingress", default="2",
                    help="RPS mask of l0 in lb modes (2 = CPU 1: the balancer namespace's whole work on "
                         "one core, as for nft; bench/e2e/run.py uses 1)")
    ap.add_argument("--rps-kernel-ingress", default="2")
    ap.add_argument("--rps-servers", default="1")
    ap.add_argument("--out", default=str(HERE / "scale_lab.json"))
    args = ap.parse_args(argv)
    q = args.quick
    points = QUICK if q else FULL
    args.services = args.services or points["services"]
    args.dests = args.dests or points["dests"]
    args.conns = args.conns or points["conns"]
    args.reps = args.reps or (1 if q else 3)
    args.seconds = args.seconds or (0.5 if q else 1.0)
    default = "lb-nat,nft-linear" if q else "lb-nat,lb-nat-rules,nft-linear,nft-map"
    args.balancers = args.balancers or default
    args.spread = (not q) if args.spread is None else args.spread
    bad = [b for b in args.balancers.split(",") if b not in BALANCERS]
    if bad:
        ap.error(f"unknown balancer(s) {bad}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = build_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 4
    t_start = time.monotonic()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="pyvs-bs-"))
    gen = str(tmp / "udpgen_scale")
    sh("gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", str(HERE / "udpgen_scale.c"), "-o", gen)
    balancers = args.balancers.split(",")
    results: dict[str, list[dict[str, Any]]] = {}
    ctx: Ctx | None = None
    try:
        with lab(f"bs{os.getpid() % 10000}") as topo:
            ctx = Ctx(topo, gen, args, tmp)
            prepare(ctx)
            for sweep in args.sweeps.split(","):
                xs = {"services": args.services, "dests": args.dests, "conns": args.conns}[sweep]
                print(f"sweep {sweep}: {xs}", flush=True)
                for x in xs:
                    for name in balancers:
                        if not runs_in(sweep, name):
                            continue
                        results.setdefault(sweep, []).append(measure_point(ctx, sweep, x, name))
    finally:
        for proc in ctx.procs if ctx else []:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kernel": platform.release(),
           "cpus": os.cpu_count(), "frame_bytes": 64, "quick": args.quick, "reps": args.reps,
           "seconds_per_blast": args.seconds, "flows": args.flows, "balancers": balancers,
           "conntrack": {"max": ctx.ct_max if ctx else 0,
                         "writable_in_netns": ctx.ct_writable if ctx else False},
           "placement": {"gen_cpu": args.gen_cpu, "lb_cpu": args.lb_cpu,
                         "rps_lb_ingress": args.rps_lb_ingress,
                         "rps_kernel_ingress": args.rps_kernel_ingress, "rps_servers": args.rps_servers},
           "loadavg_1_5_15": {"before": [round(x, 2) for x in load_before],
                              "after": [round(x, 2) for x in os.getloadavg()]},
           "wall_s": round(time.monotonic() - t_start, 1), "results": results}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out} in {doc['wall_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
