"""End-to-end packet rate through the balancer namespace, side by side with the kernel.

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
- py-naive: `taskset -c 1` on the forwarder, RPS on l0 = CPU 0 (as for lb: the receive work beside the
  generator, the user-space work on its own core);
- all modes: RPS on the real servers' r0 = CPU 0: the servers' receive work (here their netdev-ingress sink)
  leaves the balancer's core.  Without it, every frame a veth sends is received by its peer inside the
  sender's own send call (the kernel's forwarding softirq or lb's sendmmsg), i.e. on CPU 1.
The real servers drop the frames at netdev ingress (no ICMP back): UDP to port 9 and IPIP (protocol 4, what
TUN sends; nobody decapsulates: counting needs no decap), each rule with its own counter; the received count
is their links' rx counters, and the sink's counters are recorded per mode ("sink") as a cross-check.

Two figures per mode:
- best_pps: a paced search raises the offered rate until the loss reaches 0.5 %, then bisects; the best rate
  with < 0.5 % loss, with every point;
- overload: the generator at full blast (udpgen rate 0) for --blast-seconds; delivered pps = the servers' rx
  counters over a window inside the blast (after a warm-up, before the end, so that neither the ramp nor a
  ring drained after the generator stopped is counted), offered pps = the client link's tx packets + tx
  drops over the same window (the generator's own average is kept as gen_pps).

Modes: kernel = plain IP forwarding to real1 (the practical limit); nft-dnat = nftables DNAT with numgen inc
round robin over both real servers (conntrack on); lb-nat / lb-dr / lb-tun = `lb run` (C engine, TPACKET_V2
RX ring) with rr over both real servers, -m / -g / -i.  Suffixes on an lb mode (combinable, see
lb_mode()): "-py" = `--engine python` (the Python twins, for scale: its search starts at --slow-start);
"-v3" = `--rx-ring v3` (TPACKET_V3 blocks, beside the V2 default); "-2w" = `--workers 2` (the 16 flows come
from 8 client addresses, 10.1.0.11-18, so that the fanout by client address has something to spread; both
workers are pinned to CPU 1 as well, so on this 2-core machine the question is only "not slower"); "-txr" =
a TPACKET_V3 TX ring (`--tx-ring`) instead of sendmmsg.  py-naive = the lab's naive Python forwarder
(lb/lab/pyfwd.py, DR: one AF_PACKET socket, recv + hash + send per frame): it sends each frame back out of
the link it came in on, so for this mode the balancer's three links are ports of one bridge (bbr0, with
l0's MAC and static FDB entries for the servers' MACs) and the forwarder listens on the bridge; it does
not answer ARP, so the client gets a permanent neighbour entry for the VIP; bridge and entry are removed
after the mode.  Its search starts at --slow-start too.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VIP = "10.1.0.100"
PORT = 9
LOSS_MAX = 0.005
BRIDGE = "bbr0"
BASE_MODES = {"lb-nat": "-m", "lb-dr": "-g", "lb-tun": "-i"}
SUFFIXES = ("-py", "-v3", "-2w", "-txr")
OTHER_MODES = ("kernel", "nft-dnat", "py-naive")


# ---- pure parts (unit-tested) ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LbMode:
    """How one lb mode runs `lb run`: its forwarding flag, worker count and extra arguments."""

    flag: str
    workers: int = 1
    extra: list[str] = field(default_factory=list)
    slow: bool = False   # the Python engine: the search starts low


def lb_mode(name: str) -> LbMode:
    """`lb-nat-py` -> LbMode("-m", 1, ["--engine", "python"], slow=True); ValueError on an unknown name."""
    base = next((b for b in BASE_MODES if name == b or name.startswith(b + "-")), None)
    if base is None:
        raise ValueError(f"unknown mode {name!r}")
    rest = name[len(base):]
    extra: list[str] = []
    workers, slow = 1, False
    while rest:
        suf = next((x for x in SUFFIXES if rest.startswith(x)), None)
        if suf is None:
            raise ValueError(f"unknown suffix {rest!r} in mode {name!r} (one of {', '.join(SUFFIXES)})")
        rest = rest[len(suf):]
        if suf == "-py":
            extra += ["--engine", "python"]
            slow = True
        elif suf == "-v3":
            extra += ["--rx-ring", "v3"]
        elif suf == "-2w":
            workers = 2
        else:
            extra.append("--tx-ring")
    return LbMode(BASE_MODES[base], workers, extra, slow)


def check_modes(names: list[str]) -> list[str]:
    """The modes of --modes, each checked (ValueError names the first unknown one)."""
    for n in names:
        if n not in OTHER_MODES:
            lb_mode(n)
    return names


def parse_gen(out: str) -> tuple[int, float]:
    """udpgen's "sent N seconds T errors E" -> (N, T)."""
    words = out.split()
    return int(words[words.index("sent") + 1]), float(words[words.index("seconds") + 1])


def parse_sink(doc: dict[str, Any]) -> dict[str, int]:
    """`nft -j list table netdev sink` -> packets per counted rule ("udp", "ipip")."""
    out = {"udp": 0, "ipip": 0}
    for item in doc.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not rule:
            continue
        text = json.dumps(rule.get("expr", []))
        pkts = next((int(e["counter"]["packets"]) for e in rule.get("expr", [])
                     if isinstance(e, dict) and "counter" in e), 0)
        key = "ipip" if '"field": "protocol"' in text else "udp"   # ip protocol 4 vs udp dport
        out[key] += pkts
    return out


def overload_point(sent: int, gen_seconds: float, got: int, window_s: float,
                   offered_in_window: int | None = None) -> dict[str, float]:
    """The overload figure: delivered = the servers' rx over the window; offered = what the client's link
    took over the same window (tx packets + tx drops: a veth counts a frame its peer's backlog refused as a
    tx drop), else the generator's average; loss from the two."""
    if offered_in_window is not None and window_s:
        offered = offered_in_window / window_s
    else:
        offered = sent / gen_seconds if gen_seconds else 0.0
    delivered = got / window_s if window_s else 0.0
    out = {"offered_pps": round(offered), "delivered_pps": round(delivered), "sent": sent,
           "gen_pps": round(sent / gen_seconds) if gen_seconds else 0,
           "received_in_window": got, "window_s": round(window_s, 3), "gen_seconds": round(gen_seconds, 3),
           "loss": round(max(0.0, 1.0 - delivered / offered), 5) if offered else 1.0}
    if offered_in_window is not None:
        out["offered_in_window"] = offered_in_window
    return out


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
            # the sink: UDP to the port (NAT, DR) and IPIP (TUN: nothing decapsulates here; the rx counters
            # count the frames, this rule keeps the kernel from answering "protocol unreachable")
            sh("ip", "netns", "exec", r, "nft", "-f", "-", input_text=(
                "table netdev sink {\n chain in {\n  type filter hook ingress device \"r0\" priority 0;\n"
                f"  udp dport {PORT} counter drop\n  ip protocol 4 counter drop\n }}\n}}\n"))
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

    def mac(self, ns: str, dev: str) -> str:
        return str(json.loads(sh("ip", "-n", ns, "-j", "link", "show", dev))[0]["address"])

    def bridge_up(self) -> None:
        """py-naive: l0, l1, l2 as ports of one bridge with l0's MAC (the client's neighbour entry for its
        gateway stays right) and static FDB entries for the servers (no flooding of the forwarded frames)."""
        mac = self.mac(self.l, "l0")
        sh("ip", "-n", self.l, "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "-n", self.l, "link", "set", BRIDGE, "address", mac)
        for dev in ("l0", "l1", "l2"):
            sh("ip", "-n", self.l, "link", "set", dev, "master", BRIDGE)
        sh("ip", "-n", self.l, "link", "set", BRIDGE, "up")
        for r, dev in ((self.r1, "l1"), (self.r2, "l2")):
            sh("bridge", "-n", self.l, "fdb", "replace", self.mac(r, "r0"), "dev", dev, "master", "static")
        # the VIP is on the client's subnet, so the client asks for it by ARP; lb answers for its VIPs, the
        # naive forwarder does not: the client gets a permanent entry (the bridge's MAC) for this mode
        sh("ip", "-n", self.c, "neigh", "replace", VIP, "lladdr", mac, "dev", "c0", "nud", "permanent")

    def bridge_down(self) -> None:
        sh("ip", "-n", self.c, "neigh", "del", VIP, "dev", "c0", check=False)
        sh("ip", "-n", self.l, "link", "del", BRIDGE, check=False)

    def down(self) -> None:
        for ns in self.all:
            sh("ip", "netns", "del", ns, check=False)

    def rx(self) -> int:
        total = 0
        for r in (self.r1, self.r2):
            data = json.loads(sh("ip", "-n", r, "-s", "-j", "link", "show", "r0"))
            total += int(data[0]["stats64"]["rx"]["packets"])
        return total

    def offered(self) -> int:
        """Frames the client's link has taken so far: tx packets + tx drops (refused by l0's backlog)."""
        tx = json.loads(sh("ip", "-n", self.c, "-s", "-j", "link", "show", "c0"))[0]["stats64"]["tx"]
        return int(tx["packets"]) + int(tx.get("dropped", 0))

    def sink(self) -> dict[str, int]:
        total = {"udp": 0, "ipip": 0}
        for r in (self.r1, self.r2):
            got = parse_sink(json.loads(sh("ip", "netns", "exec", r, "nft", "-j", "list", "table", "netdev",
                                           "sink")))
            for k, v in got.items():
                total[k] += v
        return total


class Mode:
    def __init__(self, topo: Topo, name: str, gen: str, args: argparse.Namespace) -> None:
        self.t, self.name, self.gen, self.args = topo, name, gen, args
        self.proc: subprocess.Popen[str] | None = None
        self.log = ""
        self.target = "10.2.0.2" if name == "kernel" else VIP
        self.lb = lb_mode(name) if name.startswith("lb-") else None
        self.slow = name == "py-naive" or (self.lb is not None and self.lb.slow)
        self.tmp = Path(tempfile.mkdtemp(prefix="pyvs-bench-"))
        self.errf = open(self.tmp / "lb.err", "w+")  # noqa: SIM115 - closed in __exit__
        self.sink0: dict[str, int] = {}
        self.placement: dict[str, object] = {}

    def errlog(self) -> str:
        return (self.tmp / "lb.err").read_text(errors="replace")

    def _wait_ready(self, what: str, count: int) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 20
        while self.errlog().count(what) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: balancer not ready:\n{self.errlog()}")
            time.sleep(0.2)

    def __enter__(self) -> Mode:
        try:
            return self._setup()
        except BaseException:
            self.__exit__()
            raise

    def _setup(self) -> Mode:
        t, a = self.t, self.args
        user = self.lb is not None or self.name == "py-naive"   # a user-space balancer on CPU 1
        self.placement = {"l0_rps": a.rps_lb_ingress if user else a.rps_kernel_ingress,
                          "r0_rps": a.rps_servers, "lb_cpu": a.lb_cpu if user else None,
                          "generator_cpu": "0"}
        if self.name == "py-naive":
            self.placement["bridge"] = BRIDGE
        # lb modes: `lb run --cpus/--rps-cpus` place themselves (and restore l0 on exit)
        t.place("0" if self.lb is not None else str(self.placement["l0_rps"]), a.rps_servers)
        if self.name in ("kernel", "nft-dnat"):
            sh("ip", "netns", "exec", t.l, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        if self.name == "nft-dnat":
            sh("ip", "-n", t.l, "addr", "add", f"{VIP}/32", "dev", "l0")
            sh("ip", "netns", "exec", t.l, "nft", "-f", "-", input_text=(
                "table ip benchnat {\n chain pre {\n  type nat hook prerouting priority -100;\n"
                f"  ip daddr {VIP} udp dport {PORT} "
                "dnat to numgen inc mod 2 map { 0 : 10.2.0.2, 1 : 10.3.0.2 }\n"
                " }\n}\n"))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        if self.name == "py-naive":
            t.bridge_up()
            argv = [sys.executable, "-m", "lb.lab.pyfwd", "--mode", "dr", "--iface", BRIDGE, "--vip", VIP,
                    "--port", str(PORT), "--server", f"10.2.0.2,{t.mac(t.r1, 'r0')}*1",
                    "--server", f"10.3.0.2,{t.mac(t.r2, 'r0')}*1"]
            self.proc = subprocess.Popen(["ip", "netns", "exec", t.l, "taskset", "-c", a.lb_cpu, *argv],
                                         text=True, stderr=subprocess.STDOUT, stdout=self.errf, env=env)
            self._wait_ready("pyfwd dr on", 1)
        if self.lb is not None:
            rules = self.tmp / "rules"
            f = self.lb.flag
            rules.write_text(f"-A -u {VIP}:{PORT} -s rr\n-a -u {VIP}:{PORT} -r 10.2.0.2:{PORT} {f} -w 1\n"
                             f"-a -u {VIP}:{PORT} -r 10.3.0.2:{PORT} {f} -w 1\n")
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", t.l, sys.executable, "-m", "lb", "run", "--cpus", a.lb_cpu,
                 "--rps-cpus", a.rps_lb_ingress,
                 "--iface", "l0", "--iface", "l1", "--iface", "l2", "--rules", str(rules), "--socket", "none",
                 "--duration", "600", "--batch", str(a.batch), "--workers", str(self.lb.workers),
                 *self.lb.extra, *a.lb_arg],
                text=True, stderr=self.errf, stdout=subprocess.DEVNULL, env=env)
            # ready when both dests' next hops are resolved (the warm-up traffic makes the client ARP)
            self._wait_ready(" is-at ", 2 * self.lb.workers)
        if self.proc is not None:
            self.send(1000, 0.5)
            time.sleep(0.5)
        self.sink0 = t.sink()
        return self

    def gen_argv(self, rate: float, seconds: float) -> list[str]:
        return ["taskset", "-c", "0", "ip", "netns", "exec", self.t.c, self.gen, self.target, str(PORT),
                str(int(rate)), str(seconds), "16", "18", "20000", "10.1.0.11", "8"]

    def send(self, rate: float, seconds: float) -> int:
        return parse_gen(sh(*self.gen_argv(rate, seconds), timeout=seconds + 20))[0]

    def cpu_s(self) -> float:
        """user + system CPU seconds of the balancer's processes (lb modes; workers too), from /proc."""
        if self.proc is None:
            return 0.0
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            # `ip netns exec` execs the program, so proc.pid is the balancer; its workers are its children
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
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
        start = self.args.slow_start if self.slow else self.args.start
        rate, good, bad = float(start), 0.0, 0.0
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

    def overload(self) -> dict[str, float]:
        """The generator at full blast; delivered pps over a window inside the blast (module docstring)."""
        secs = self.args.blast_seconds
        warm = min(0.5, secs / 4)
        cpu0 = self.cpu_s()
        gen = subprocess.Popen(self.gen_argv(0, secs), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        try:
            time.sleep(warm)
            tx0, rx0, t0 = self.t.offered(), self.t.rx(), time.monotonic()
            time.sleep(max(0.1, secs - warm - 0.4))
            tx1, rx1, t1 = self.t.offered(), self.t.rx(), time.monotonic()
            out, err = gen.communicate(timeout=secs + 20)
        finally:
            if gen.poll() is None:
                gen.kill()
                gen.wait()
        if gen.returncode != 0:
            raise RuntimeError(f"udpgen: {gen.returncode}: {err.strip()}")
        sent, gen_s = parse_gen(out)
        pt = overload_point(sent, gen_s, rx1 - rx0, t1 - t0, tx1 - tx0)
        time.sleep(0.3)
        if self.proc is not None and rx1 > rx0:
            pt["lb_cpu_s"] = round(self.cpu_s() - cpu0, 3)
        print(f"  {self.name:9s} overload: offered {pt['offered_pps']:>9.0f} pps, delivered "
              f"{pt['delivered_pps']:>9.0f} pps (loss {pt['loss'] * 100:.1f} %)", flush=True)
        return pt

    def __exit__(self, *exc: object) -> None:
        t = self.t
        with contextlib.suppress(Exception):
            now = t.sink()
            self.sink_delta = {k: now[k] - self.sink0.get(k, 0) for k in now}
        if self.proc is not None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log = self.errlog()
            self.proc = None
        if self.name == "py-naive":
            t.bridge_down()
        sh("ip", "netns", "exec", t.l, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        sh("ip", "netns", "exec", t.l, "nft", "delete", "table", "ip", "benchnat", check=False)
        sh("ip", "-n", t.l, "addr", "del", f"{VIP}/32", "dev", "l0", check=False)
        self.errf.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def ratios_of(results: dict[str, Any]) -> dict[str, float]:
    """best_pps and overload delivered pps of every mode over kernel's and nft-dnat's (pure)."""
    def val(mode: str, key: str) -> float | None:
        r = results.get(mode)
        if not isinstance(r, dict):
            return None
        v = r.get("best_pps") if key == "best" else (r.get("overload") or {}).get("delivered_pps")
        return float(v) if v else None
    out: dict[str, float] = {}
    for name in results:
        for key, tag in (("best", ""), ("overload", "@overload")):
            mine = val(name, key)
            if mine is None:
                continue
            for ref in ("kernel", "nft-dnat"):
                base = val(ref, key)
                if base:
                    out[f"{name}/{ref}{tag}"] = round(mine / base, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--modes", default="kernel,nft-dnat,lb-nat,lb-dr")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of one point")
    ap.add_argument("--start", type=float, default=50000, help="first offered rate")
    ap.add_argument("--slow-start", type=float, default=4000,
                    help="first offered rate of the Python modes (lb-*-py, py-naive)")
    ap.add_argument("--max-rate", type=float, default=2_000_000)
    ap.add_argument("--steps", type=int, default=4, help="bisection steps after the first loss")
    ap.add_argument("--blast-seconds", type=float, default=2.0,
                    help="duration of the overload point (generator at full blast); 0 = none")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--retries", type=int, default=1, help="retry a lossy point once (shared machine)")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--prefix", default="pb", help="namespace name prefix (the pid is appended)")
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
    args = ap.parse_args(argv)
    try:
        modes = check_modes([m for m in args.modes.split(",") if m])
    except ValueError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 4
    load_before = os.getloadavg()
    t_start = time.monotonic()
    build = Path(tempfile.mkdtemp(prefix="pyvs-udpgen-"))
    gen = str(build / "udpgen")
    sh("gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", str(HERE / "udpgen.c"), "-o", gen)
    topo = Topo(f"{args.prefix}{os.getpid() % 10000}")
    results: dict[str, Any] = {}
    try:
        topo.up()
        for name in modes:
            print(f"mode {name}", flush=True)
            t0 = time.monotonic()
            try:
                with Mode(topo, name, gen, args) as m:
                    res: dict[str, Any] = m.search()
                    if args.blast_seconds > 0:
                        res["overload"] = m.overload()
                    res["placement"] = m.placement
                res["sink"] = getattr(m, "sink_delta", {})
            except (RuntimeError, subprocess.SubprocessError, OSError) as e:
                # one failing mode is reported, the others still run
                print(f"  {name} failed: {e}", file=sys.stderr, flush=True)
                results[name] = {"error": str(e)[:2000]}
                continue
            res["wall_s"] = round(time.monotonic() - t0, 1)
            if m.log:
                # the balancer's exit counters: ring drops (did not keep up) vs tx errors (egress full)
                res["lb_counters"] = [ln for ln in m.log.splitlines() if ": rx " in ln or "pyfwd: sent" in ln]
                print("\n".join(res["lb_counters"]), flush=True)
            results[name] = res
    finally:
        topo.down()
        shutil.rmtree(build, ignore_errors=True)
    ratios = ratios_of(results)
    doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kernel": platform.release(),
           "cpus": os.cpu_count(), "frame_bytes": 64, "flows": 16, "loss_max": LOSS_MAX,
           "seconds_per_point": args.seconds, "blast_seconds": args.blast_seconds,
           "wall_s": round(time.monotonic() - t_start, 1),
           "loadavg_1_5_15": {"before": [round(x, 2) for x in load_before],
                              "after": [round(x, 2) for x in os.getloadavg()]},
           "placement_args": {"lb_cpu": args.lb_cpu, "rps_lb_ingress": args.rps_lb_ingress,
                              "rps_kernel_ingress": args.rps_kernel_ingress, "rps_servers": args.rps_servers,
                              "generator_cpu": "0"},
           "results": results, "ratios": ratios}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:9s} failed")
            continue
        ov = r.get("overload", {}).get("delivered_pps", "—")
        print(f"{name:9s} best {r['best_pps']:>9} pps   overload {ov:>9} pps")
    print(json.dumps(ratios, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
