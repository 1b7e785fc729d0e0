"""`lb trace`: capture real requests at every hop of a running lab and render them as a ladder.

Runs as root next to a lab made by `lb lab up` (state in /run/pyvs/labs/<name>/).  It starts one `tcpdump -w`
per link inside the lab's namespaces (client link, each balancer port, each real server link; bounded by
packet count and by `timeout`, started and ended by PID), sends N HTTP requests from the client namespace,
then reads the pcaps back, keeps the frames of each traced connection (matched by the client's address and
port, which no forwarding mode rewrites: NAT changes the other end, DR nothing, TUN wraps it), and turns every
distinct version of the SYN and SYN-ACK into a hop between the nodes that own its MAC addresses.

The balancer's own steps come from the running data plane: before the requests, `lb trace` arms the
balancer's trace ring over its control socket (the `trace` request: the next N new connections from the
lab's client to the VIP), and afterwards reads one record per connection: the service lookup, the dests'
weights and connection counts as the scheduler found them, its pick, the connection's state change and the
fields the rewrite changed.  The step says whether that pick agrees with where the capture saw the SYN go.
Only when the balancer cannot be asked (no socket, another engine, an older daemon) or kept no record for a
connection, the captured SYN is replayed through a fresh data plane loaded with the lab's rules, and the
step says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from lb import model
from lb.core.trace import TraceRecord
from lb.daemon import protocol as proto
from lb.daemon.client import Client
from lb.errors import LbError
from lb.lab.state import LabState, lab_dir
from lb.lab.topology import Endpoint, Topology, load
from lb.teach import pcap, reasons, render_html, render_text
from lb.teach.engine import DestLoad, EngineUnavailableError, PortCfg, open_datapath
from lb.teach.ladder import FieldChange, Hop, Ladder, Step, diff_hop
from lb.teach.sched_explain import explain_pick

MAX_COUNT = 50


@dataclass(slots=True)
class Point:
    """One capture point: a link end inside a lab namespace."""

    ep: Endpoint
    ns: str
    path: Path
    on_balancer_link: bool = False
    proc: subprocess.Popen[bytes] | None = None
    records: list[pcap.Record] = field(default_factory=list)

    @property
    def name(self) -> str:
        mark = " (balancer link)" if self.on_balancer_link else ""
        return f"{self.ep.node}:{self.ep.dev}{mark}"


def far_end(topo: Topology, ep: Endpoint) -> Endpoint:
    """The other end of the link `ep` is on (a packet socket's own transmissions may bypass taps on its
    interface, so the balancer's output is captured on the wire's far end, as `lb lab` does)."""
    for a, b, _bridge in topo.links:
        if a == ep:
            return b
        if b == ep:
            return a
    return ep


def capture_points(topo: Topology) -> list[tuple[Endpoint, bool]]:
    """Where to capture, and whether the point is on a balancer link: the client's link, the far end of
    every balancer port, every real server's link."""
    eps = [(topo.client_if, False)]
    for dev in topo.balancer_ifaces:
        other = far_end(topo, Endpoint(topo.balancer, dev))
        if other == topo.client_if:
            eps[0] = (other, True)
        else:
            eps.append((other, True))
    eps += [(Endpoint(s, "eth0"), False) for s in topo.servers]
    return eps


@contextlib.contextmanager
def capturing(points: list[Point], max_packets: int, timeout_s: float) -> Iterator[None]:
    """tcpdump on every point while the block runs; always stopped (by PID) afterwards."""
    try:
        for pt in points:
            argv = ["ip", "netns", "exec", pt.ns, "timeout", str(int(timeout_s) + 1), "tcpdump", "-i",
                    pt.ep.dev, "-n", "-U", "--immediate-mode", "-s", "262", "-c", str(max_packets),
                    "-w", str(pt.path), "tcp or proto 4"]
            pt.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        for pt in points:
            assert pt.proc is not None and pt.proc.stderr is not None
            os.set_blocking(pt.proc.stderr.fileno(), False)
            seen = b""
            while b"listening on" not in seen:
                chunk = pt.proc.stderr.read() or b""
                seen += chunk
                if pt.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tcpdump on {pt.name} did not start: {seen.decode(errors='replace')}")
                time.sleep(0.05)
        yield
    finally:
        time.sleep(0.3)
        for pt in points:
            if pt.proc is not None and pt.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pt.proc.pid, signal.SIGINT)
        for pt in points:
            if pt.proc is not None:
                try:
                    pt.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pt.proc.kill()
                    pt.proc.wait(timeout=3)
        for pt in points:
            pt.records = list(pcap.read_pcap(pt.path)) if pt.path.exists() else []


def send_requests(state: LabState, count: int, timeout_s: float) -> str:
    """N HTTP requests from the client namespace (lb.lab.client, bounded)."""
    ns = f"{state.name}-client"
    argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "lb.lab.client", "get", f"http://{state.vip}:80/",
            "--count", str(count)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 4 * count, check=False)
    return r.stdout


@dataclass(slots=True)
class Seen:
    """One frame at one capture point."""

    point: str
    rec: pcap.Record
    headers: list[pcap.Header]


def _mac_owners(topo: Topology) -> dict[str, str]:
    owners = {mac.lower(): dev.node for dev, _, mac in topo.addrs if mac}
    for node, mac in zip(topo.servers, topo.server_macs, strict=True):
        if mac:
            owners[mac.lower()] = node
    return owners


def _client_key(headers: list[pcap.Header], client_ip: str) -> tuple[str, int] | None:
    ft = pcap.five_tuple(headers)
    if ft is None or ft.proto != pcap.IPPROTO_TCP:
        return None
    if ft.src == client_ip:
        return ft.src, ft.sport
    if ft.dst == client_ip:
        return ft.dst, ft.dport
    return None


def _tcp(headers: list[pcap.Header]) -> pcap.Header | None:
    return next((h for h in headers if h.layer == "TCP"), None)


def collect(points: list[Point], client_ip: str) -> dict[tuple[str, int], list[Seen]]:
    """Frames per connection (client address:port), over every capture point, in time order."""
    conns: dict[tuple[str, int], list[Seen]] = {}
    for pt in points:
        for rec in pt.records:
            hdrs = pcap.dissect(rec.data)
            key = _client_key(hdrs, client_ip)
            if key is not None:
                conns.setdefault(key, []).append(Seen(pt.name, rec, hdrs))
    for seen in conns.values():
        seen.sort(key=lambda s: s.rec.ts)
    return conns


def _diff(prev: list[pcap.Header], cur: list[pcap.Header], mode: str, direction: str,
          actor: str) -> tuple[list[FieldChange], list[tuple[str, str]], list[str]]:
    hop = Hop("", "", "", "", b"", headers=cur)
    before = Hop("", "", "", "", b"", headers=prev)
    diff_hop(before, hop, mode, direction)
    if actor not in ("lb",):
        hop.changes = [FieldChange(c.layer, c.name, c.old, c.new,
                                   f"{actor} forwarded it like any router (new MACs, TTL - 1)"
                                   if c.name != "csum" else "checksum follows the TTL change")
                       for c in hop.changes]
        hop.added = [(layer, f"added by {actor}") for layer, _ in hop.added]
    return hop.changes, hop.added, hop.removed


def ladder_for(conn: tuple[str, int], seen: list[Seen], topo: Topology, lab: str) -> Ladder:
    """The SYN and SYN-ACK of one connection, one hop per distinct frame version, in time order."""
    owners = _mac_owners(topo)
    node_ids: list[str] = ["client"]
    if "router" in topo.nodes:
        node_ids.append("router")
    node_ids.append(topo.balancer)
    node_ids += topo.servers
    labels = {"client": f"client {conn[0]}", "router": "router", topo.balancer: f"balancer (VIP {topo.vip})"}
    labels.update({s: f"{s} {rip}" for s, rip in zip(topo.servers, topo.rips, strict=True)})
    summary = reasons.MODE_SUMMARY[topo.mode]
    ladder = Ladder(topo.mode, f"lb trace --lab {lab}: connection {conn[0]}:{conn[1]} ({summary['name']})",
                    [(n, labels.get(n, n)) for n in node_ids],
                    source="frames captured with tcpdump at every hop of the running lab")
    kinds = (("SYN", pcap.TCP_SYN, "in"), ("SYN-ACK", pcap.TCP_SYN | pcap.TCP_ACK, "out"))
    for label, want, direction in kinds:
        versions: list[tuple[bytes, list[Seen]]] = []
        for s in seen:
            tcp = _tcp(s.headers)
            if tcp is None or int(tcp.raw["flags"]) & 0x3F != want:
                continue
            if versions and versions[-1][0] == s.rec.data:
                versions[-1][1].append(s)
                continue
            if any(v[0] == s.rec.data for v in versions):
                continue        # a retransmission or a second look at an earlier version
            versions.append((s.rec.data, [s]))
        prev: Hop | None = None
        pairs: set[tuple[str, str]] = set()
        retrans = 0
        for data, where in versions:
            hdrs = where[0].headers
            src = owners.get(str(hdrs[0].raw["src"]), "?")
            dst = owners.get(str(hdrs[0].raw["dst"]), "?")
            if (src, dst) in pairs:
                retrans += 1            # the same hop again with a new IP id: a retransmission
                continue
            pairs.add((src, dst))
            hop = ladder.add_hop(Hop(src, dst, f"{label} ({'request' if direction == 'in' else 'reply'})",
                                     "capture " + ", ".join(dict.fromkeys(s.point for s in where)), data))
            if prev is not None:
                changes, added, removed = _diff(prev.headers, hop.headers, topo.mode, direction, prev.dst)
                hop.changes, hop.added, hop.removed = changes, added, removed
            prev = hop
        if retrans:
            copies = "copy" if retrans == 1 else "copies"
            ladder.notes.append(f"{label}: {retrans} retransmitted {copies} not shown")
        if direction == "in" and prev is not None and prev.dst == topo.balancer:
            ladder.notes.append("the SYN reached the balancer but never left it: is `lb run` still running "
                                "in the lab (lb lab status)?")
        if direction == "out" and prev is not None and topo.mode in ("dr", "tun"):
            passed = any(s.point.endswith("(balancer link)") for _, w in versions for s in w)
            ladder.notes.append("the reply " + ("DID pass the balancer (unexpected for this mode)" if passed
                                                else "never passed the balancer: no capture there saw it"))
    if any("?" in (h.src, h.dst) for h in ladder.hops):
        ladder.nodes.append(("?", "unknown MAC"))
    ladder.notes.append(f"request: {summary['request']}")
    ladder.notes.append(f"reply: {summary['reply']}")
    return ladder


_RULE_A = re.compile(r"-A\s+-t\s+(\S+):(\d+)\s+-s\s+(\S+)")
_RULE_R = re.compile(r"-a\s+-t\s+\S+\s+-r\s+(\S+):(\d+)\s+(-[gmi])\s+-w\s+(\d+)")


class Replay:
    """The lab's rules loaded into a fresh data plane; the traced SYNs are replayed through it in order, so
    its decisions follow the same sequence (a lab that served other requests before is ahead of it)."""

    def __init__(self, topo: Topology, lab: str) -> None:
        self.topo = topo
        self.error = ""
        self.sched = ""
        self.dp = None
        rules = lab_dir(lab) / "rules"
        if not rules.exists():
            self.error = "the lab's balancer is not pyvs (no rules file)"
            return
        text = rules.read_text(encoding="utf-8")
        a = _RULE_A.search(text)
        if a is None:
            self.error = "no TCP service in the lab's rules"
            return
        fwd = {"-m": model.Fwd.MASQ, "-g": model.Fwd.DROUTE, "-i": model.Fwd.TUNNEL}
        dests = [model.Dest(IPv4Address(m[0]), int(m[1]), fwd[m[2]], int(m[3]))
                 for m in _RULE_R.findall(text)]
        self.vip, self.vport, self.sched = a[1], int(a[2]), a[3]
        try:
            self.dp = open_datapath()
        except EngineUnavailableError as exc:
            self.error = str(exc)
            return
        ports = [PortCfg(dev, topo.mac_of(Endpoint(topo.balancer, dev)) or "02:00:00:00:00:01",
                         topo.addr_of(Endpoint(topo.balancer, dev)) or "10.0.0.1")
                 for dev in topo.balancer_ifaces]
        out_port = len(ports) - 1 if topo.mode == "nat" else 0
        nexthops = [(out_port, mac) for mac in topo.server_macs]
        key = model.ServiceKey(model.Proto.TCP, IPv4Address(self.vip), self.vport)
        self.dp.setup(model.Service(key, sched=self.sched), dests, ports, nexthops)
        self.now = 1_000_000_000

    def _picked(self, frame: bytes) -> str | None:
        hdrs = pcap.dissect(frame)
        if self.topo.mode == "dr":
            mac = str(hdrs[0].raw["dst"])
            pairs = zip(self.topo.rips, self.topo.server_macs, strict=True)
            return next((r for r, m in pairs if m == mac), None)
        ips = [h for h in hdrs if h.layer.startswith("IPv4")]
        return str(ips[0].raw["dst"]) if ips else None

    def step_text(self, syn: bytes, live: str | None) -> str:
        """The decision for one captured SYN (as it arrived at the balancer), with its source."""
        if self.dp is None:
            return f"not shown: {self.error}"
        loads = self.dp.dest_loads()
        self.now += 1_000_000
        res = self.dp.process(syn, 0, self.now)
        picked = self._picked(res.frame) if res.verdict == "TX" else None
        names = dict(zip(self.topo.rips, self.topo.servers, strict=True))
        ft = pcap.five_tuple(pcap.dissect(syn))
        flow = (ft.src, ft.sport, ft.dst, ft.dport) if ft else ("?", 0, self.vip, self.vport)
        agree = ""
        if live is not None and picked is not None:
            agree = (f"; the live balancer also sent it to {live}" if names.get(picked) == live else
                     f"; the live balancer sent it to {live} (it had served other connections before)")
        return (f"source: replay of the captured SYN through {self.dp.source}, loaded with the lab's rules "
                f"(the live balancer's internal state is not visible from outside); verdict {res.verdict} "
                f"{res.reason}{agree}\n" + explain_pick(self.sched, loads, picked, names, flow=flow))


class LiveTrace:
    """The running balancer's trace ring, over the lab's control socket: armed before the requests, read
    after them.  `error` says why it is not available (then the decision falls back to a replay)."""

    def __init__(self, socket: Path | str | None) -> None:
        self.socket = str(socket) if socket else None
        self.error = "" if socket else "the lab's balancer has no control socket"
        self.after = 0
        self.records: dict[tuple[str, int], TraceRecord] = {}

    def _call(self, args: dict[str, object]) -> dict[str, object] | None:
        if self.error:
            return None
        try:
            with Client(self.socket, timeout_s=3.0) as c:
                result = c.call("trace", args)
        except LbError as exc:
            self.error = str(exc).splitlines()[0]
            return None
        return result if isinstance(result, dict) else None

    def arm(self, count: int, client_ip: str, vip: str) -> bool:
        res = self._call(proto.trace_request("arm", count=count, client=client_ip, vip=vip))
        if res is None:
            return False
        after = res.get("after", 0)
        self.after = after if isinstance(after, int) else 0
        return True

    def collect(self) -> None:
        """Read this arming's records (then stop the ring, whatever it still had to trace)."""
        res = self._call(proto.trace_request("read", after=self.after))
        self._call(proto.trace_request("stop"))
        raw = res.get("records", []) if res is not None else []
        for d in raw if isinstance(raw, list) else []:
            rec = TraceRecord.from_dict(d)
            self.records[(rec.client, rec.cport)] = rec


def live_step_text(rec: TraceRecord, names: dict[str, str], live: str | None) -> str:
    """The balancer's steps for one connection from its trace record (multi-line prose)."""
    proto_name = {6: "TCP", 17: "UDP"}.get(rec.proto, str(rec.proto))
    lines = [f"source: the live balancer's data plane (trace ring record #{rec.seq}, written while it "
             "handled this SYN)",
             f"service lookup: {proto_name} {rec.vaddr}:{rec.vport} -> service #{rec.svc_id}, scheduler "
             f"{rec.sched}, {rec.num_dests} real server{'s' if rec.num_dests != 1 else ''}"]
    loads = [DestLoad(d.addr, d.port, d.weight, d.activeconns, d.inactconns, d.overloaded) for d in rec.dests]
    picked = rec.conn_daddr or None
    if rec.template_hit:
        who = f"{names.get(rec.conn_daddr, '')} {rec.conn_daddr}".strip()
        lines.append(f"persistence: an existing template for this client chose {who} (the scheduler did not "
                     "run); the loads at that moment:")
    flow = (rec.client, rec.cport, rec.vaddr, rec.vport)
    lines.append("scheduler (numbers as the balancer saw them, before it picked): " +
                 explain_pick(rec.sched, loads, picked, names, flow=flow))
    if rec.num_dests > len(rec.dests):
        lines.append(f"(only the first {len(rec.dests)} of {rec.num_dests} real servers are in the record)")
    if rec.dest_id >= 0:
        lines.append(f"connection: new, {rec.state_before} -> {rec.state_after}, forwarding {rec.fwd_name} "
                     f"to {rec.conn_daddr}:{rec.conn_dport}")
    changed = ", ".join(rec.changed) if rec.changed else "nothing"
    if rec.verdict == "TX":
        lines.append(f"rewrite: changed {changed}; sent on port {rec.out_port} to {rec.eth_dst} "
                     f"(IP destination {rec.out_daddr}, {rec.len_in} -> {rec.len_out} bytes)")
    else:
        lines.append(f"verdict {rec.verdict}: {reasons_text(rec.reason)}")
    if live is not None and picked is not None:
        node = names.get(picked)
        lines.append(f"wire: the capture saw the SYN go to {live}: "
                     + ("agrees with the record" if node == live else f"DISAGREES with the record ({node})"))
    return "\n".join(lines)


def reasons_text(reason: str) -> str:
    from lb.core.batch import REASON_NAMES, REASON_TEXTS  # noqa: PLC0415 - the C core's own reason texts

    return dict(zip(REASON_NAMES, REASON_TEXTS, strict=True)).get(reason, reason)


def ladders_with_decisions(conns: dict[tuple[str, int], list[Seen]], topo: Topology,
                           lab: str, live_trace: LiveTrace | None = None) -> list[Ladder]:
    """One ladder per traced connection (in time order), each with the balancer's decision step placed
    after the SYN's arrival at the balancer: from the live trace record when there is one, else from a
    replay (which says so)."""
    replay: Replay | None = None
    names = dict(zip(topo.rips, topo.servers, strict=True))
    records = live_trace.records if live_trace is not None else {}
    ladders = []
    for key in sorted(conns, key=lambda k: conns[k][0].rec.ts):
        ladder = ladder_for(key, conns[key], topo, lab)
        hops = ladder.hops
        arrive = next((h for h in hops if h.dst == topo.balancer), None)
        if arrive is not None:
            leave = next((h for h in hops if h.src == topo.balancer and h.index > arrive.index), None)
            # the real server the SYN reached (past a router, as in the TUN lab), else the next hop
            reached = next((h.dst for h in hops if h.index > arrive.index and h.dst in topo.servers), None)
            live = reached or (leave.dst if leave is not None else None)
            pos = ladder.events.index(arrive) + 1
            rec = records.get(key)
            if rec is not None:
                step = Step(topo.balancer, f"scheduler {rec.sched} (live)", live_step_text(rec, names, live))
            else:
                if replay is None:
                    replay = Replay(topo, lab)
                why = (live_trace.error if live_trace is not None and live_trace.error else
                       "the balancer kept no trace record for this connection")
                step = Step(topo.balancer, f"scheduler {replay.sched or '?'} (replay)",
                            f"not from the live balancer: {why}\n" + replay.step_text(arrive.frame, live))
            ladder.events.insert(pos, step)
        ladders.append(ladder)
    return ladders


def run_trace(lab: str, count: int, timeout_s: float, pcap_dir: str | None) -> list[Ladder]:
    """Capture `count` requests in lab `lab` at every hop and return their ladders (root)."""
    state = LabState.load(lab)
    if state is None or not state.namespaces:
        raise LookupError(f"lab {lab!r} is not up (start one: `lb lab up --mode nat|dr|tun --name {lab}`)")
    count = max(1, min(MAX_COUNT, count))
    topo = load(state.mode, state.servers)
    client_ip = topo.addr_of(topo.client_if)
    with tempfile.TemporaryDirectory(prefix="lb-trace-") as tmp:
        points = [Point(ep, f"{state.name}-{ep.node}", Path(tmp) / f"{ep.node}-{ep.dev}.pcap", on_lb)
                  for ep, on_lb in capture_points(topo)]
        live_trace = LiveTrace(state.socket if state.socket.exists() else None)
        with capturing(points, max_packets=40 * count + 40, timeout_s=timeout_s):
            live_trace.arm(count, client_ip, state.vip)
            try:
                out = send_requests(state, count, timeout_s)
            finally:
                live_trace.collect()
        conns = collect(points, client_ip)
        if pcap_dir:
            d = Path(pcap_dir)
            d.mkdir(parents=True, exist_ok=True)
            for pt in points:
                recs = [r for r in pt.records if _client_key(pcap.dissect(r.data), client_ip) in conns]
                pcap.write_pcap(d / f"{pt.ep.node}-{pt.ep.dev}.pcap", recs)
    if not conns:
        raise RuntimeError(f"no traced connection seen (client output: {out.strip()[:200]})")
    return ladders_with_decisions(conns, topo, state.name, live_trace)


def main(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("lb trace: needs root (it captures inside the lab's namespaces)", file=sys.stderr)
        return 2
    try:
        ladders = run_trace(args.lab, args.count, args.timeout, args.pcap_dir)
    except (LookupError, RuntimeError) as exc:
        print(f"lb trace: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, RuntimeError) else 2
    color = args.color == "always" or (args.color == "auto" and render_text.want_color(sys.stdout))
    sys.stdout.write("\n".join(render_text.render(la, color) for la in ladders))
    if args.html:
        html = render_html.page(ladders, f"lb trace --lab {args.lab}")
        Path(args.html).write_text(html, encoding="utf-8")
    return 0
