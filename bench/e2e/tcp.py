"""End-to-end TCP benchmarks through the lab: connections/s, keep-alive requests/s, bulk throughput, latency.

    sudo .venv/bin/python bench/e2e/tcp.py [--cases lb-nat,lb-dr,...] [--seconds 5] [--reps 3] [--out FILE]

Each case builds one lab (`lb.lab.lab.Lab`, own namespaces, nothing in the root namespace) with 2 real
servers and one balancer, then measures through the VIP from the client namespace:

- conn_per_s   wrk -t1 -c32, header `Connection: close` (every request a new TCP connection);
- req_per_s    wrk -t1 -c32 keep-alive;
- lat_p50_us / lat_p99_us   wrk -t1 -c1 --latency keep-alive (one request in flight: request/response time);
- gbit_per_s   iperf3 -t N to real1 (one TCP stream; the balancer sends port 5201 to real1 only, because
               iperf3's control and data connections must reach the same server).

The real servers answer HTTP with `httpsrv` (bench/e2e/httpsrv.c, epoll, on port 8080; the lab's Python
httpd on port 80 would be the bottleneck) and run `iperf3 -s` on 5201; both are wrapped in `timeout` and
recorded in the lab state, so `lb lab down` (or the `with` block) ends them.  wrk runs pinned to CPU 0 and
`lb run` is pinned to CPU 1; the kernel balancers (route, nft) do their work in softirq wherever it lands.

Cases (the balancer namespace is the same in each mode's topology):
  lb-nat, lb-dr, lb-tun   `lb run` (C engine, AF_PACKET), rr over both real servers (-m / -g / -i)
  lb-nat-py               the same NAT with `--engine python` (for scale; wrk only, short)
  py-naive                the lab's naive Python forwarder (lb/lab/pyfwd.py, `--balancer py`), DR topology,
                          restarted on the benchmark's HTTP port (wrk only, short, like lb-nat-py)
  route                   the kernel's own IP forwarding: ECMP route to the VIP (DR topology) = the limit
  nft-nat                 nftables DNAT, `numgen inc` over both real servers, conntrack (kube-proxy style)
  nft-dr                  nftables netdev ingress MAC rewrite + fwd (DR topology)
  nft-nat-dr, nft-nat-tun the same nftables DNAT in the DR and TUN topologies (lab balancer `nft-dnat`:
                          the real servers' replies are routed back through the balancer, as DNAT needs), so
                          that lb-dr and lb-tun are compared with DNAT over the same hops (router, switch)
  route-offload, nft-nat-offload   route / nft-nat with the lab links' offloads back at the kernel's veth
                          defaults (TX checksum on, hence TSO/GSO across veth): what running with offloads
                          off costs the kernel itself (the -offload cases over their plain ones)
The client namespace runs as a load generator (`tune_client`: tcp_tw_reuse=1, ports 1024-65535; without
them wrk's own TIME_WAITs exhaust its ports within a few runs and conn/s collapses in every mode).
Every figure is repeated --reps times; the JSON keeps all repetitions (bench/report.py takes median, min,
max and the ratios to `route`, `nft-nat` and the same-topology DNAT case).  The lab links have TX checksum
offload (hence TSO/GSO) off,
as the lab builds them (lb/lab/netns.py: `ethtool -K <dev> tx off` on both ends of every veth); the
-offload cases turn it back on (`ethtool -K <dev> tx on`, inside the lab's own namespaces only) once the lab
is up.  The JSON records `ethtool -k` of the balancer's client-side link per case.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lb.lab import balancer as bal  # noqa: E402
from lb.lab.lab import Lab, LabSpec  # noqa: E402

HTTP_PORT = 8080
IPERF_PORT = 5201
SERVER_LIFETIME = 900  # seconds: the servers' own upper bound (timeout), the lab ends them sooner


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    mode: str
    balancer: str
    engine: str = "c"
    light: bool = False  # wrk figures only, short (slow engines)
    offload: bool = False  # the lab links' TX checksum offload (and so TSO/GSO) back on


CASES: dict[str, Case] = {c.name: c for c in (
    Case("route", "dr", "route"),
    Case("nft-nat", "nat", "nft"),
    Case("nft-dr", "dr", "nft"),
    Case("lb-nat", "nat", "lb"),
    Case("lb-dr", "dr", "lb"),
    Case("lb-tun", "tun", "lb"),
    Case("lb-nat-py", "nat", "lb", engine="python", light=True),
    Case("py-naive", "dr", "py", light=True),
    Case("route-offload", "dr", "route", offload=True),
    Case("nft-nat-offload", "nat", "nft", offload=True),
    Case("nft-nat-dr", "dr", "nft-dnat"),
    Case("nft-nat-tun", "tun", "nft-dnat"),
)}
DEFAULT_CASES = ("route,nft-nat,nft-nat-dr,nft-nat-tun,nft-dr,lb-nat,lb-dr,lb-tun,lb-nat-py,py-naive,"
                 "route-offload,nft-nat-offload")


def build_httpsrv(tmp: Path) -> Path:
    exe = tmp / "httpsrv"
    subprocess.run(["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", str(HERE / "httpsrv.c"),
                    "-o", str(exe)], check=True)
    return exe


# ---- output parsing (pure; unit-tested) -------------------------------------------------------------
_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/sec, socket errors, non-2xx count and (with --latency) the p50/p99 in microseconds."""
    out: dict[str, float] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["req_per_s"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = float(sum(int(x) for x in m.groups())) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = float(m.group(1)) if m else 0.0
    for pct, key in (("50", "lat_p50_us"), ("99", "lat_p99_us")):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        if m:
            out[key] = float(m.group(1)) * _UNITS[m.group(2)]
    return out


def parse_iperf3(doc: dict[str, Any]) -> float:
    """Received bits/s of an `iperf3 -J` client run, in Gbit/s."""
    return float(doc["end"]["sum_received"]["bits_per_second"]) / 1e9


def offload_argv(dev: str, on: bool) -> list[str]:
    """`ethtool -K` for one veth end: TX checksum offload on (the kernel's veth default; TSO/GSO follow it)
    or off (what the lab does)."""
    return ["ethtool", "-K", dev, "tx", "on" if on else "off"]


def link_ends(lab: Lab) -> list[tuple[str, str]]:
    """(node, dev) of both ends of every veth of the lab."""
    return [(ep.node, ep.dev) for a, b, _ in lab.topo.links for ep in (a, b)]


def set_offloads(lab: Lab, on: bool) -> None:
    for node, dev in link_ends(lab):
        lab.exec(node, offload_argv(dev, on))


# ---- the balancer's extra services --------------------------------------------------------------------
def restart_pyfwd(lab: Lab, log: Path) -> None:
    """The lab's pyfwd forwards the lab's own ports; run one for the benchmark's HTTP port instead (one
    forwarder, so the figure is one Python process's).  No iperf3 port: pyfwd hashes per connection, and
    iperf3's control and data connections must reach one server (py-naive is a light case, wrk only)."""
    t = lab.topo
    if lab.balancer_proc is not None:
        lab.net.stop(lab.balancer_proc)
    svc = bal.Service(t.vip, HTTP_PORT, 0, "rr", tuple(t.rips), lab.service.weights)
    log.unlink(missing_ok=True)

    def text() -> str:
        return log.read_text(errors="replace") if log.exists() else ""
    lab.balancer_proc = lab.net.spawn(t.balancer, "balancer", bal.pyfwd_argv(t, svc, tuple(t.server_macs)),
                                      log=log)
    deadline = time.monotonic() + 15
    while "pyfwd " not in text():
        if lab.balancer_proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"pyfwd did not start: {text()}")
        time.sleep(0.05)


def configure(lab: Lab, log_dir: Path | None = None) -> None:
    """Add VIP:8080 (rr over every real server) and VIP:5201 (real1 only) to whatever balances the lab."""
    t, b = lab.topo, lab.spec.balancer
    vip, rips, lbn = t.vip, t.rips, t.balancer
    if b == "lb":
        lines = [f"-A -t {vip}:{HTTP_PORT} -s rr"]
        lines += [f"-a -t {vip}:{HTTP_PORT} -r {r}:{HTTP_PORT} {t.fwd} -w 1" for r in rips]
        lines += [f"-A -t {vip}:{IPERF_PORT} -s rr",
                  f"-a -t {vip}:{IPERF_PORT} -r {rips[0]}:{IPERF_PORT} {t.fwd} -w 1"]
        r = lab.lbadm(["-R"], input_text="\n".join(lines) + "\n")
        if r.returncode != 0:
            raise RuntimeError(f"lbadm -R: {r.stderr.strip()}")
    elif b == "nft-dnat" or (b == "nft" and t.mode == "nat"):
        rmap = ", ".join(f"{i} : {r}" for i, r in enumerate(rips))
        lab.net.nft(lbn, (
            "table ip pyvsbench {\n  chain pre {\n    type nat hook prerouting priority dstnat;\n"
            f"    ip daddr {vip} tcp dport {HTTP_PORT} dnat to numgen inc mod {len(rips)} map {{ {rmap} }}\n"
            f"    ip daddr {vip} tcp dport {IPERF_PORT} dnat to {rips[0]}\n"
            "  }\n  chain post {\n    type nat hook postrouting priority srcnat;\n  }\n}\n"))
    elif b == "nft" and t.mode == "dr":
        dev = t.client_side.dev
        own = t.mac_of(t.client_side)
        mmap = ", ".join(f"{i} : {m}" for i, m in enumerate(t.server_macs))
        lab.net.nft(lbn, (
            "table netdev pyvsbench {\n  chain in {\n"
            f"    type filter hook ingress device {dev} priority -10;\n"
            f"    ip daddr {vip} tcp dport {HTTP_PORT} ether saddr set {own} ether daddr set "
            f"jhash ip saddr . tcp sport mod {len(rips)} map {{ {mmap} }} fwd to {dev}\n"
            f"    ip daddr {vip} tcp dport {IPERF_PORT} ether saddr set {own} ether daddr set "
            f"{t.server_macs[0]} fwd to {dev}\n  }}\n}}\n"))
    elif b == "py":
        restart_pyfwd(lab, (log_dir or Path(tempfile.gettempdir())) / f"{lab.spec.name}-pyfwd.log")
    elif b == "route":
        # the ECMP route to the VIP already carries :8080; :5201 goes to real1 by a policy rule
        lab.net.run_ip(lbn, "route", "add", f"{vip}/32", "via", rips[0], "dev", t.server_side.dev,
                       "table", "100")
        lab.net.run_ip(lbn, "rule", "add", "ipproto", "tcp", "dport", str(IPERF_PORT), "lookup", "100",
                       "prio", "100")
    else:
        raise ValueError(f"no benchmark configuration for balancer {b} in {t.mode}")


# The client is a load generator: wrk closes its socket as soon as a `Connection: close` response is
# read, often before the server's FIN arrives, so the client keeps a TIME_WAIT per connection (60 s).
# connect() prefers even ports, so about 14 000 of them (half the default 32768-60999 range) fill up in
# a few seconds at 8 k conn/s; after that every connect() scans the full half and conn/s collapses to a
# few hundred until the TIME_WAITs expire.  That is the load generator running out of ports, not the
# balancer; every load-test guide sets these two on the generating host.  Client namespace only.
CLIENT_SYSCTLS = (("net.ipv4.tcp_tw_reuse", "1"), ("net.ipv4.ip_local_port_range", "1024 65535"))


def tune_client(lab: Lab) -> dict[str, str]:
    """Apply CLIENT_SYSCTLS in the lab's client namespace; return what the client then reports."""
    for key, value in CLIENT_SYSCTLS:
        lab.net.sysctl("client", key, value)
    r = lab.exec("client", ["sysctl", "-n", *(k for k, _ in CLIENT_SYSCTLS)], check=False)
    return dict(zip((k for k, _ in CLIENT_SYSCTLS), (" ".join(x.split()) for x in r.stdout.splitlines()),
                    strict=False))


def pin_balancer(lab: Lab) -> None:
    """`lb run` (all threads, and its worker processes) on CPU 1; wrk goes on CPU 0."""
    if lab.balancer_proc is None or (os.cpu_count() or 1) < 2:
        return
    pids = [lab.balancer_proc.pid]
    with contextlib.suppress(OSError):
        pids += [int(x) for x in Path(f"/proc/{pids[0]}/task/{pids[0]}/children").read_text().split()]
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], capture_output=True, check=False)


def offloads(lab: Lab) -> dict[str, str]:
    ep = lab.topo.client_side
    r = lab.exec(ep.node, ["ethtool", "-k", ep.dev], check=False)
    return parse_offloads(r.stdout)


OFFLOAD_KEYS = ("tx-checksumming", "tcp-segmentation-offload", "tx-tcp-segmentation",
                "generic-segmentation-offload", "generic-receive-offload")


def parse_offloads(text: str) -> dict[str, str]:
    """The offload lines of `ethtool -k` that matter here.  `tx-tcp-segmentation` is the real TSO state:
    the `tcp-segmentation-offload` summary can still say "on" after `tx off` has switched TSO off."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k.strip() in OFFLOAD_KEYS:
            out[k.strip()] = v.strip()
    return out


class Runner:
    def __init__(self, lab: Lab, seconds: float) -> None:
        self.lab, self.seconds = lab, seconds
        self.url = f"http://{lab.topo.vip}:{HTTP_PORT}/"

    def wrk(self, conns: int, close: bool, latency: bool = False,
            seconds: float | None = None) -> dict[str, float]:
        d = seconds or self.seconds
        argv = ["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(d))}s", "--timeout", "2s"]
        if close:
            argv += ["-H", "Connection: close"]
        if latency:
            argv.append("--latency")
        r = self.lab.exec("client", [*argv, self.url], timeout=d + 30, check=False)
        res = parse_wrk(r.stdout)
        if "req_per_s" not in res:
            raise RuntimeError(f"wrk: exit {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
        return res

    def iperf(self) -> float:
        d = max(1, round(self.seconds))
        r = self.lab.exec("client", ["taskset", "-c", "0", "iperf3", "-c", self.lab.topo.vip, "-p",
                                     str(IPERF_PORT), "-t", str(d), "-J"], timeout=d + 30, check=False)
        try:
            return parse_iperf3(json.loads(r.stdout))
        except (ValueError, KeyError) as e:
            raise RuntimeError(f"iperf3: exit {r.returncode}: {r.stdout[-400:]} {r.stderr.strip()}") from e


def run_case(case: Case, exe: Path, args: argparse.Namespace) -> dict[str, Any]:
    name = f"{args.prefix[:3]}{os.getpid() % 1000:03d}{list(CASES).index(case.name)}"  # lab names: 1-8 chars
    spec = LabSpec(mode=case.mode, servers=2, balancer=case.balancer, engine=case.engine, name=name,
                   extra_lb_args=["--conn-max", str(args.conn_max)] if case.balancer == "lb" else [])
    res: dict[str, Any] = {"mode": case.mode, "balancer": case.balancer, "engine": case.engine,
                           "offload": case.offload, "reps": {}}
    t0 = time.monotonic()
    with Lab.up(spec) as lab:
        lifetime = str(SERVER_LIFETIME)
        for node in lab.topo.servers:
            lab.net.spawn(node, "httpsrv", ["timeout", lifetime, str(exe), str(HTTP_PORT), node, lifetime],
                          log=Path(tempfile.gettempdir()) / f"{name}-{node}-httpsrv.log")
        lab.net.spawn(lab.topo.servers[0], "iperf3",
                      ["timeout", lifetime, "iperf3", "-s", "-p", str(IPERF_PORT)],
                      log=Path(tempfile.gettempdir()) / f"{name}-iperf3.log")
        if case.offload:
            set_offloads(lab, on=True)
        res["client_sysctls"] = tune_client(lab)
        configure(lab, Path(tempfile.gettempdir()))
        pin_balancer(lab)
        res["offloads"] = offloads(lab)
        run = Runner(lab, args.seconds if not case.light else min(args.seconds, 2.0))
        time.sleep(0.5)
        run.wrk(4, close=False, seconds=1)  # warm-up: neighbours, first conns
        reps = 1 if case.light else args.reps
        figures: dict[str, list[float]] = {"conn_per_s": [], "req_per_s": [], "lat_p50_us": [],
                                           "lat_p99_us": [], "gbit_per_s": [], "errors": []}
        for i in range(reps):
            c = run.wrk(32, close=True)
            k = run.wrk(32, close=False)
            figures["conn_per_s"].append(c["req_per_s"])
            figures["req_per_s"].append(k["req_per_s"])
            figures["errors"].append(c["socket_errors"] + k["socket_errors"] + c["non_2xx"] + k["non_2xx"])
            if not case.light:
                lat = run.wrk(1, close=False, latency=True)
                figures["lat_p50_us"].append(lat.get("lat_p50_us", 0.0))
                figures["lat_p99_us"].append(lat.get("lat_p99_us", 0.0))
                figures["gbit_per_s"].append(run.iperf())
            print(f"  {case.name:9s} rep {i + 1}: " + "  ".join(
                f"{k} {v[-1]:.4g}" for k, v in figures.items() if v), flush=True)
        res["reps"] = {k: v for k, v in figures.items() if v}
    res["wall_s"] = round(time.monotonic() - t0, 1)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=DEFAULT_CASES, help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of one wrk / iperf3 run")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every figure")
    ap.add_argument("--conn-max", type=int, default=1 << 20, help="lb run connection table size")
    ap.add_argument("--out", default=str(HERE / "tcp.json"))
    ap.add_argument("--prefix", default="bt", help="lab name prefix, up to 3 characters (the pid follows)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 4
    names = [c for c in args.cases.split(",") if c]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    for tool in ("wrk", "iperf3", "gcc", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: skipping the TCP benchmarks", file=sys.stderr)
            return 4
    tmp = Path(tempfile.mkdtemp(prefix="pyvs-tcp-"))
    results: dict[str, Any] = {}
    try:
        exe = build_httpsrv(tmp)
        for n in names:
            print(f"case {n}", flush=True)
            try:
                results[n] = run_case(CASES[n], exe, args)
            except Exception as e:  # one failing case is reported, the others still run
                print(f"  {n} failed: {e}", file=sys.stderr, flush=True)
                results[n] = {"error": str(e)[:2000]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {"kind": "tcp", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "kernel": platform.release(), "cpus": os.cpu_count(), "seconds": args.seconds, "reps": args.reps,
           "wrk": "wrk -t1 -c32 (close / keep-alive), -c1 --latency", "results": results}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
