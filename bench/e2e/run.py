"""End-to-end packet rate through the balancer namespace, side by side with the kernel (first version).

    sudo .venv/bin/python bench/e2e/run.py [--modes kernel,nft-dnat,lb-nat,lb-dr] [--seconds 2] [--out FILE]

Topology (own namespaces, nothing in the root namespace, 10.0.0.0/8 only):

    client 10.1.0.1 --c0~~l0-- balancer (l0 10.1.0.2, l1 10.2.0.1, l2 10.3.0.1) --l1~~r0-- real1 10.2.0.2
                                                                                  --l2~~r0-- real2 10.3.0.2
    VIP 10.1.0.100 udp/9

The generator (bench/e2e/udpgen.c: 64-byte UDP frames over 16 flows, paced sendmmsg, bounded duration) runs
pinned to CPU 0; the balancer runs on CPU 1.  Where the kernel's receive work runs is part of the setup and
is recorded per mode in the JSON ("placement"):
- kernel / nft-dnat: RPS on l0 = CPU 1: the forwarding softirq *is* the balancer, on its own core;
- lb modes: `lb run --cpus 1 --rps-cpus 1`: the process on CPU 1, the receive softirq of its ports (the copy
  into the AF_PACKET ring, the guard's ingress drop) steered to CPU 0, beside the generator;
- all modes: RPS on the real servers' r0 = CPU 0: the servers' receive work (here their netdev-ingress sink)
  leaves the balancer's core.  Without it, every frame a veth sends is received by its peer inside the
  sender's own send call (the kernel's forwarding softirq or lb's sendmmsg), i.e. on CPU 1.
The real servers drop the frames at netdev ingress (no ICMP back) and the received count is their links' rx
counters.  For each mode a paced search raises the offered rate until the loss reaches 0.5 %, then bisects;
the best rate with < 0.5 % loss is reported, with every point, as JSON.

Modes: kernel = plain IP forwarding to real1 (the practical limit); nft-dnat = nftables DNAT with numgen inc
round robin over both real servers (conntrack on); lb-nat / lb-dr = `lb run` (C engine) with rr over both
real servers, -m / -g; lb-nat-2w / lb-dr-2w = the same with `--workers 2` (the 16 flows come from 8 client
addresses, 10.1.0.11-18, so that the fanout by client address has something to spread; both workers are
pinned to CPU 1 as well (--cpus is inherited), so on this 2-core machine the question is only "not
slower"); a "-txr" suffix (lb-dr-txr, lb-nat-2w-txr) sends through a TPACKET_V3 TX ring (`--tx-ring`)
instead of sendmmsg.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VIP = "10.1.0.100"
PORT = 9
LOSS_MAX = 0.005


def sh(*argv: str, check: bool = True, input_text: str | None = None, timeout: float = 30) -> str:
    p = subprocess.run(list(argv), capture_output=True, text=True, input=input_text, timeout=timeout,
                       check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.returncode}: {p.stderr.strip()}")
    return p.stdout


class Topo:
    def __init__(self, tag: str) -> None:
        self.c, self.l, self.r1, self.r2 = (f"{tag}{x}" for x in ("c", "l", "r1", "r2"))
        self.all = [self.c, self.l, self.r1, self.r2]

    def up(self) -> None:
        for ns in self.all:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.c, "link", "add", "c0", "type", "veth", "peer", "name", "l0", "netns", self.l)
        sh("ip", "-n", self.l, "link", "add", "l1", "type", "veth", "peer", "name", "r0", "netns", self.r1)
        sh("ip", "-n", self.l, "link", "add", "l2", "type", "veth", "peer", "name", "r0", "netns", self.r2)
        for ns, dev, addr in ((self.c, "c0", "10.1.0.1/24"), (self.l, "l0", "10.1.0.2/24"),
                              (self.l, "l1", "10.2.0.1/24"), (self.l, "l2", "10.3.0.1/24"),
                              (self.r1, "r0", "10.2.0.2/24"), (self.r2, "r0", "10.3.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off",
               "gro", "off", check=False)
        sh("ip", "-n", self.c, "route", "add", "default", "via", "10.1.0.2")
        for i in range(8):
            sh("ip", "-n", self.c, "addr", "add", f"10.1.0.{11 + i}/24", "dev", "c0")
        sh("ip", "-n", self.r1, "route", "add", "default", "via", "10.2.0.1")
        sh("ip", "-n", self.r2, "route", "add", "default", "via", "10.3.0.1")
        for r in (self.r1, self.r2):
            sh("ip", "netns", "exec", r, "nft", "-f", "-", input_text=(
                "table netdev sink {\n chain in {\n  type filter hook ingress device \"r0\" priority 0;\n"
                f"  udp dport {PORT} counter drop\n }}\n}}\n"))
            # DR: the VIP on lo, never answered for by ARP (the usual LVS-DR real-server setup)
            sh("ip", "-n", r, "addr", "add", f"{VIP}/32", "dev", "lo")
            for k, v in (("net.ipv4.conf.all.arp_ignore", 1), ("net.ipv4.conf.all.arp_announce", 2)):
                sh("ip", "netns", "exec", r, "sysctl", "-q", "-w", f"{k}={v}")

    def rps(self, ns: str, dev: str, mask: str) -> None:
        """Steer dev's receive softirq (RPS) to the CPUs of mask (hex; "0" = off: the sender's CPU does it).
        `ip netns exec` mounts the namespace's own sysfs, so the path names the namespace's device."""
        sh("ip", "netns", "exec", ns, "sh", "-c", f"echo {mask} > /sys/class/net/{dev}/queues/rx-0/rps_cpus")

    def place(self, ingress: str, servers: str) -> None:
        """RPS on the balancer's ingress port l0 and on the real servers' r0 (see the module docstring)."""
        self.rps(self.l, "l0", ingress)
        for r in (self.r1, self.r2):
            self.rps(r, "r0", servers)

    def down(self) -> None:
        for ns in self.all:
            sh("ip", "netns", "del", ns, check=False)

    def rx(self) -> int:
        total = 0
        for r in (self.r1, self.r2):
            data = json.loads(sh("ip", "-n", r, "-s", "-j", "link", "show", "r0"))
            total += int(data[0]["stats64"]["rx"]["packets"])
        return total


class Mode:
    def __init__(self, topo: Topo, name: str, gen: str, args: argparse.Namespace) -> None:
        self.t, self.name, self.gen, self.args = topo, name, gen, args
        self.proc: subprocess.Popen[str] | None = None
        self.log = ""
        self.target = "10.2.0.2" if name == "kernel" else VIP
        self.tmp = Path(tempfile.mkdtemp(prefix="pyvs-bench-"))
        self.errf = open(self.tmp / "lb.err", "w+")  # noqa: SIM115 - closed in __exit__

    def errlog(self) -> str:
        return (self.tmp / "lb.err").read_text(errors="replace")

    def __enter__(self) -> Mode:
        t = self.t
        lb = self.name.startswith("lb-")
        self.placement = {"l0_rps": self.args.rps_lb_ingress if lb else self.args.rps_kernel_ingress,
                          "r0_rps": self.args.rps_servers, "lb_cpu": self.args.lb_cpu if lb else None}
        # lb modes: `lb run --cpus/--rps-cpus` place themselves (and restore l0 on exit)
        t.place("0" if lb else self.placement["l0_rps"], self.args.rps_servers)
        if self.name in ("kernel", "nft-dnat"):
            sh("ip", "netns", "exec", t.l, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        if self.name == "nft-dnat":
            sh("ip", "-n", t.l, "addr", "add", f"{VIP}/32", "dev", "l0")
            sh("ip", "netns", "exec", t.l, "nft", "-f", "-", input_text=(
                "table ip benchnat {\n chain pre {\n  type nat hook prerouting priority -100;\n"
                f"  ip daddr {VIP} udp dport {PORT} "
                "dnat to numgen inc mod 2 map { 0 : 10.2.0.2, 1 : 10.3.0.2 }\n"
                " }\n}\n"))
        if self.name.startswith("lb-"):
            flag = "-m" if self.name.startswith("lb-nat") else "-g"
            workers = "2" if "-2w" in self.name else "1"
            extra = ["--tx-ring"] if "-txr" in self.name else []
            rules = self.tmp / "rules"
            rules.write_text(f"-A -u {VIP}:{PORT} -s rr\n-a -u {VIP}:{PORT} -r 10.2.0.2:{PORT} {flag} -w 1\n"
                             f"-a -u {VIP}:{PORT} -r 10.3.0.2:{PORT} {flag} -w 1\n")
            env = dict(os.environ, PYTHONPATH=str(REPO))
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", t.l, sys.executable, "-m", "lb", "run", "--cpus", self.args.lb_cpu,
                 "--rps-cpus", self.args.rps_lb_ingress,
                 "--iface", "l0", "--iface", "l1", "--iface", "l2", "--rules", str(rules), "--socket", "none",
                 "--duration", "600", "--batch", str(self.args.batch), "--workers", workers, *extra,
                 *self.args.lb_arg],
                text=True, stderr=self.errf, stdout=subprocess.DEVNULL, env=env)
            # ready when both dests' next hops are resolved (the warm-up traffic makes the client ARP)
            deadline = time.monotonic() + 20
            while self.errlog().count(" is-at ") < 2 * int(workers):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: lb run not ready:\n{self.errlog()}")
                time.sleep(0.2)
            self.send(1000, 0.5)
            time.sleep(0.5)
        return self

    def send(self, rate: float, seconds: float) -> int:
        out = sh("taskset", "-c", "0", "ip", "netns", "exec", self.t.c, self.gen, self.target, str(PORT),
                 str(int(rate)), str(seconds), "16", "18", "20000", "10.1.0.11", "8", timeout=seconds + 20)
        return int(out.split()[1])

    def cpu_s(self) -> float:
        """user + system CPU seconds of the balancer's processes (lb modes; workers too), from /proc."""
        if self.proc is None:
            return 0.0
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError):
            pids += [int(x) for x in children.read_text().split()]
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def point(self, rate: float) -> dict[str, float]:
        before, cpu0 = self.t.rx(), self.cpu_s()
        sent = self.send(rate, self.args.seconds)
        time.sleep(0.3)
        got = self.t.rx() - before
        cpu = self.cpu_s() - cpu0
        loss = 1.0 - got / sent if sent else 1.0
        pt = {"offered_pps": round(sent / self.args.seconds), "sent": sent, "received": got,
              "loss": round(max(loss, 0.0), 5)}
        if self.proc is not None and got:
            # the balancer's own CPU per forwarded packet (softirq work for its sockets is not included)
            pt["lb_cpu_ns_per_pkt"] = round(cpu * 1e9 / got)
        extra = f"  lb cpu {pt['lb_cpu_ns_per_pkt']} ns/pkt" if "lb_cpu_ns_per_pkt" in pt else ""
        print(f"  {self.name:9s} {pt['offered_pps']:>9d} pps offered  loss {pt['loss'] * 100:6.2f} %{extra}",
              flush=True)
        return pt

    def passes(self, rate: float, points: list[dict[str, float]]) -> dict[str, float]:
        """One point, tried again once if it lost too much: the machine is shared, and one scheduling hiccup
        should not end a search (a rate counts as forwarded when one of the tries stays under the loss)."""
        pt = self.point(rate)
        points.append(pt)
        if pt["loss"] >= LOSS_MAX and self.args.retries > 0:
            again = self.point(rate)
            points.append(again)
            if again["loss"] < pt["loss"]:
                pt = again
        return pt

    def search(self) -> dict[str, object]:
        points: list[dict[str, float]] = []
        rate, good, bad = float(self.args.start), 0.0, 0.0
        while rate <= self.args.max_rate:
            pt = self.passes(rate, points)
            if pt["loss"] < LOSS_MAX:
                good = pt["offered_pps"]
                rate *= 2
            else:
                bad = rate
                break
        if bad:
            lo, hi = max(good, rate / 2), bad
            for _ in range(self.args.steps):
                mid = (lo + hi) / 2
                pt = self.passes(mid, points)
                if pt["loss"] < LOSS_MAX:
                    lo, good = mid, max(good, pt["offered_pps"])
                else:
                    hi = mid
        return {"best_pps": good, "points": points}

    def __exit__(self, *exc: object) -> None:
        t = self.t
        if self.proc is not None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log = self.errlog()
            self.proc = None
        sh("ip", "netns", "exec", t.l, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        sh("ip", "netns", "exec", t.l, "nft", "delete", "table", "ip", "benchnat", check=False)
        sh("ip", "-n", t.l, "addr", "del", f"{VIP}/32", "dev", "l0", check=False)
        self.errf.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="kernel,nft-dnat,lb-nat,lb-dr")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of one point")
    ap.add_argument("--start", type=float, default=50000, help="first offered rate")
    ap.add_argument("--max-rate", type=float, default=2_000_000)
    ap.add_argument("--steps", type=int, default=4, help="bisection steps after the first loss")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--retries", type=int, default=1, help="retry a lossy point once (shared machine)")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--lb-cpu", default="1", help="CPU list `lb run` is pinned to (lb run --cpus)")
    ap.add_argument("--lb-arg", action="append", default=[],
                    help="one more argument for `lb run` (repeat; e.g. --lb-arg=--ring-blocks=128)")
    ap.add_argument("--rps-lb-ingress", default="1",
                    help="RPS mask of l0 in lb modes (hex; 1 = CPU 0, the generator's: the ring "
                         "copy runs there)")
    ap.add_argument("--rps-kernel-ingress", default="2",
                    help="RPS mask of l0 in kernel/nft modes (2 = CPU 1: the forwarding softirq is "
                         "the balancer)")
    ap.add_argument("--rps-servers", default="1",
                    help="RPS mask of the real servers' r0 (1 = CPU 0: their receive work off the "
                         "balancer's CPU)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 4
    load_before = os.getloadavg()
    build = Path(tempfile.mkdtemp(prefix="pyvs-udpgen-"))
    gen = str(build / "udpgen")
    sh("gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", str(HERE / "udpgen.c"), "-o", gen)
    topo = Topo(f"pb{os.getpid() % 10000}")
    results: dict[str, object] = {}
    try:
        topo.up()
        for name in args.modes.split(","):
            print(f"mode {name}", flush=True)
            with Mode(topo, name, gen, args) as m:
                results[name] = m.search()
                results[name]["placement"] = m.placement  # type: ignore[index]
            if m.log:
                # the balancer's exit counters: ring drops (did not keep up) vs tx errors (egress full)
                results[name]["lb_counters"] = [ln for ln in m.log.splitlines() if ": rx " in ln]  # type: ignore[index]
                print("\n".join(results[name]["lb_counters"]), flush=True)  # type: ignore[index]
    finally:
        topo.down()
        shutil.rmtree(build, ignore_errors=True)
    kernel = results.get("kernel", {}).get("best_pps") if isinstance(results.get("kernel"), dict) else None
    nft = results.get("nft-dnat", {}).get("best_pps") if isinstance(results.get("nft-dnat"), dict) else None
    ratios = {}
    for name, r in results.items():
        best = r["best_pps"]  # type: ignore[index]
        if kernel:
            ratios[f"{name}/kernel"] = round(best / kernel, 3)
        if nft:
            ratios[f"{name}/nft-dnat"] = round(best / nft, 3)
    doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kernel": platform.release(),
           "cpus": os.cpu_count(), "frame_bytes": 64, "flows": 16, "loss_max": LOSS_MAX,
           "seconds_per_point": args.seconds,
           "loadavg_1_5_15": {"before": [round(x, 2) for x in load_before],
                              "after": [round(x, 2) for x in os.getloadavg()]},
           "placement_args": {"lb_cpu": args.lb_cpu, "rps_lb_ingress": args.rps_lb_ingress,
                              "rps_kernel_ingress": args.rps_kernel_ingress, "rps_servers": args.rps_servers},
           "results": results, "ratios": ratios}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name:9s} best {r['best_pps']:>9} pps")  # type: ignore[index]
    print(json.dumps(ratios, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
