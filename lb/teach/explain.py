"""`lb explain`: one sample connection per forwarding mode, pushed through the real data plane, as a ladder.

The sample uses the lab's addresses (netns/<mode>.toml): a client, a balancer holding VIP 10.10.0.100:80 and
three real servers.  A few earlier clients open connections first (through the same engine), so the
scheduler decides with real connection counts; then the client's SYN goes in, the engine schedules it,
creates the connection and rewrites the frame; the chosen real server's SYN-ACK comes back (through the
balancer for NAT, straight to the client for DR and TUN).  Every rewritten frame is what the engine emitted;
this module only builds the frames a client and a server stack would send and describes the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from lb import model
from lb.teach import pcap, reasons
from lb.teach.engine import Datapath, DestLoad, PortCfg, Result, open_datapath
from lb.teach.ladder import Hop, Ladder, diff_hop
from lb.teach.sched_explain import explain_pick

MODES = ("nat", "dr", "tun")
VIP = "10.10.0.100"
VPORT = 80
CLIENT_IP = "10.1.0.2"
CLIENT_MAC = "02:00:0a:01:00:02"
CLIENT_PORT = 40000
T0_NS = 1_000_000_000
_FWD = {"nat": model.Fwd.MASQ, "dr": model.Fwd.DROUTE, "tun": model.Fwd.TUNNEL}
#: Weights of real1..real3: unequal, so that weighted schedulers have something to weigh.
WEIGHTS = (1, 2, 1)
#: Earlier clients (10.1.0.10 ...) that open connections before the sample; the first `WARM_CLOSED` of
#: them also close again (FIN), so some connections are inactive when the sample arrives.
WARM_CLIENTS = 5
WARM_CLOSED = 2


@dataclass(frozen=True, slots=True)
class Topo:
    """Addresses and MACs of one mode's lab (netns/<mode>.toml), for N real servers."""

    mode: str
    ports: tuple[PortCfg, ...]
    in_port: int                 # where client requests reach the balancer
    in_src_mac: str              # who hands requests to the balancer (client or router)
    rips: tuple[str, ...]
    nexthops: tuple[tuple[int, str], ...]    # per real server: (balancer port, next-hop MAC)
    server_macs: tuple[str, ...]
    reply_gw_mac: str            # where a real server sends its replies (balancer for NAT, router otherwise)
    via: str                     # one phrase: how requests reach the balancer

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"real{i + 1}" for i in range(len(self.rips)))


def topo_for(mode: str, servers: int = 3) -> Topo:
    """The lab topology's addresses (see the ASCII diagrams in netns/<mode>.toml)."""
    idx = range(1, servers + 1)
    if mode == "nat":
        return Topo(mode, (PortCfg("eth0", "02:00:0a:01:00:01", "10.1.0.1"),
                           PortCfg("eth1", "02:00:0a:02:00:01", "10.2.0.1")),
                    0, CLIENT_MAC, tuple(f"10.2.0.{10 + i}" for i in idx),
                    tuple((1, f"02:00:0a:02:00:{10 + i:02x}") for i in idx),
                    tuple(f"02:00:0a:02:00:{10 + i:02x}" for i in idx), "02:00:0a:02:00:01",
                    "the client's default route (10.1.0.1 is the balancer)")
    if mode == "dr":
        return Topo(mode, (PortCfg("eth0", "02:00:0a:03:00:02", "10.3.0.2"),), 0, "02:00:0a:03:00:01",
                    tuple(f"10.3.0.{10 + i}" for i in idx),
                    tuple((0, f"02:00:0a:03:00:{10 + i:02x}") for i in idx),
                    tuple(f"02:00:0a:03:00:{10 + i:02x}" for i in idx), "02:00:0a:03:00:01",
                    "the router (route to the VIP via the balancer 10.3.0.2)")
    if mode == "tun":
        return Topo(mode, (PortCfg("eth0", "02:00:0a:04:00:02", "10.4.0.2"),), 0, "02:00:0a:04:00:01",
                    tuple(f"10.5.0.{10 + i}" for i in idx),
                    tuple((0, "02:00:0a:04:00:01") for _ in idx),
                    tuple(f"02:00:0a:05:00:{10 + i:02x}" for i in idx), "02:00:0a:05:00:01",
                    "the router (route to the VIP via the balancer 10.4.0.2)")
    raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")


@dataclass(slots=True)
class _Run:
    dp: Datapath
    topo: Topo
    now: int = T0_NS
    log: list[str] = field(default_factory=list)

    def send(self, frame: bytes, port: int) -> Result:
        self.now += 1_000_000
        return self.dp.process(frame, port, self.now)


def _client_frame(topo: Topo, cip: str, cport: int, *, flags: int, seq: int, ack: int, ident: int) -> bytes:
    opts = b"\x02\x04\x05\xb4\x01\x03\x03\x07" if flags == pcap.TCP_SYN else b""
    return pcap.tcp_frame(topo.in_src_mac, topo.ports[topo.in_port].mac, cip, VIP, sport=cport, dport=VPORT,
                          flags=flags, seq=seq, ack=ack, ttl=64 if topo.mode == "nat" else 63, ident=ident,
                          options=opts)


def _server_reply(topo: Topo, i: int, cip: str, cport: int, *, flags: int, seq: int, ack: int) -> bytes:
    """What real server i's TCP stack sends back: NAT from its RIP to the balancer (its gateway), DR/TUN
    from the VIP it holds locally straight to the router."""
    src = topo.rips[i] if topo.mode == "nat" else VIP
    opts = b"\x02\x04\x05\xb4\x01\x03\x03\x07" if flags & pcap.TCP_SYN else b""
    return pcap.tcp_frame(topo.server_macs[i], topo.reply_gw_mac, src, cip, sport=VPORT, dport=cport,
                          flags=flags, seq=seq, ack=ack, ttl=64, ident=0, options=opts)


def _picked(topo: Topo, res: Result) -> int | None:
    """Which real server an emitted request frame goes to (from the rewritten frame itself)."""
    if res.verdict != "TX":
        return None
    hdrs = pcap.dissect(res.frame)
    ips = [h for h in hdrs if h.layer.startswith("IPv4")]
    if topo.mode == "nat" and ips:
        dst = str(ips[0].raw["dst"])
        return topo.rips.index(dst) if dst in topo.rips else None
    if topo.mode == "tun" and ips:
        dst = str(ips[0].raw["dst"])
        return topo.rips.index(dst) if dst in topo.rips else None
    mac = str(hdrs[0].raw["dst"])
    return topo.server_macs.index(mac) if mac in topo.server_macs else None


def _warm_up(run: _Run) -> None:
    """Earlier clients open (and some close) connections through the engine, to give the scheduler real
    connection counts to decide with."""
    topo = run.topo
    syn, ack, fin = pcap.TCP_SYN, pcap.TCP_ACK, pcap.TCP_FIN | pcap.TCP_ACK
    for k in range(WARM_CLIENTS):
        cip, cport = f"10.1.0.{10 + k}", 50000 + k

        def client(flags: int, seq: int, ackno: int, ident: int, *, cip: str = cip,
                   cport: int = cport) -> None:
            frame = _client_frame(topo, cip, cport, flags=flags, seq=seq, ack=ackno, ident=ident)
            run.send(frame, topo.in_port)

        first = run.send(_client_frame(topo, cip, cport, flags=syn, seq=1000, ack=0, ident=0x100 + k),
                         topo.in_port)
        i = _picked(topo, first)
        if i is None:
            continue
        back = topo.nexthops[i][0]
        if topo.mode == "nat":
            run.send(_server_reply(topo, i, cip, cport, flags=syn | ack, seq=5000, ack=1001), back)
        client(ack, 1001, 5001, 0x200 + k)
        if k < WARM_CLOSED:
            client(fin, 1001, 5001, 0x300 + k)
            if topo.mode == "nat":
                run.send(_server_reply(topo, i, cip, cport, flags=fin, seq=5001, ack=1002), back)
            client(ack, 1002, 5002, 0x400 + k)


def _loads_text(loads: list[DestLoad], names: dict[str, str]) -> str:
    return ", ".join(f"{names.get(d.addr, d.addr)} w={d.weight} active={d.activeconns} "
                     f"inactive={d.inactconns}" for d in loads)


def build(mode: str, scheduler: str = model.DEFAULT_SCHED, engine: str | None = None,
          servers: int = 3) -> Ladder:
    """Run the sample connection for `mode` through the data plane and return its ladder."""
    topo = topo_for(mode, servers)
    dp = open_datapath(engine)
    key = model.ServiceKey(model.Proto.TCP, IPv4Address(VIP), VPORT)
    service = model.Service(key, sched=scheduler)
    dests = [model.Dest(IPv4Address(rip), VPORT, _FWD[mode], WEIGHTS[i % len(WEIGHTS)])
             for i, rip in enumerate(topo.rips)]
    dp.setup(service, dests, topo.ports, topo.nexthops)
    run = _Run(dp, topo)
    _warm_up(run)

    summary = reasons.MODE_SUMMARY[mode]
    names = dict(zip(topo.rips, topo.names, strict=True))
    nodes = [("client", f"client {CLIENT_IP}"), ("lb", f"balancer (VIP {VIP})")]
    nodes += [(n, f"{n} {rip}") for n, rip in zip(topo.names, topo.rips, strict=True)]
    ladder = Ladder(mode, f"lb explain --mode {mode} --scheduler {scheduler}: {summary['name']}", nodes,
                    source=f"every frame the balancer emits below was rewritten by {dp.source}")

    # 1. the client's SYN as it reaches the balancer
    syn = _client_frame(topo, CLIENT_IP, CLIENT_PORT, flags=pcap.TCP_SYN, seq=1, ack=0, ident=0x1c46)
    in_link = f"balancer port {topo.ports[topo.in_port].name} (request arrives via {topo.via})"
    h1 = ladder.add_hop(Hop("client", "lb", "SYN (client opens a connection to the VIP)", in_link, syn))
    loads = dp.dest_loads()
    res = run.send(syn, topo.in_port)
    picked = _picked(topo, res)
    ladder.add_step("lb", "service lookup",
                    f"TCP {VIP}:{VPORT} is a virtual service (scheduler {scheduler}, {len(dests)} real "
                    f"servers, forwarding {_FWD[mode].ipvsadm_name}); the SYN matches no connection yet, so "
                    "it is scheduled")
    ladder.add_step("lb", f"scheduler {scheduler}",
                    explain_pick(scheduler, loads, None if picked is None else topo.rips[picked], names,
                                 flow=(CLIENT_IP, CLIENT_PORT, VIP, VPORT)))
    if res.verdict != "TX" or picked is None:
        ladder.add_step("lb", "verdict", f"{res.verdict} {res.reason}: {reasons.VERDICT_PROSE[res.reason]}")
        return ladder
    rs = topo.names[picked]
    conn = dp.conn(CLIENT_IP, CLIENT_PORT, VIP, VPORT, run.now)
    if conn is not None:
        ladder.add_step("lb", "connection",
                        f"new entry {CLIENT_IP}:{CLIENT_PORT} -> {VIP}:{VPORT} -> {conn.daddr}:{conn.dport}, "
                        f"forwarding {conn.fwd}, state {conn.state} (expires in {conn.timeout_s:g} s); "
                        f"later packets of this connection skip the scheduler")
    ladder.add_step("lb", "rewrite", _rewrite_text(mode, topo, picked))
    out_port = topo.ports[res.out_port].name if res.out_port < len(topo.ports) else str(res.out_port)
    h2 = ladder.add_hop(Hop("lb", rs, "SYN (forwarded to the chosen real server)",
                            f"balancer port {out_port} -> {rs}", res.frame))
    diff_hop(h1, h2, mode, "in")
    if mode == "tun":
        ladder.add_step(rs, "decapsulation",
                        f"{rs} sees protocol 4 addressed to its RIP {topo.rips[picked]}, strips the outer "
                        "header (ipip module or `lb tun-decap`) and hands the inner packet, addressed to "
                        "the VIP it holds locally, to its TCP stack")
    elif mode == "dr":
        ladder.add_step(rs, "delivery",
                        f"the frame carries {rs}'s MAC but the IP destination is still the VIP: {rs} "
                        f"accepts it because it holds {VIP} on lo (and does not answer ARP for it: "
                        f"arp_ignore=1, arp_announce=2)")

    # 2. the reply
    synack = _server_reply(topo, picked, CLIENT_IP, CLIENT_PORT, flags=pcap.TCP_SYN | pcap.TCP_ACK, seq=7000,
                           ack=2)
    if mode == "nat":
        h3 = ladder.add_hop(Hop(rs, "lb", "SYN-ACK (reply, to the real server's default gateway)",
                                f"{rs} -> balancer port {topo.ports[topo.nexthops[picked][0]].name}", synack,
                                note="the real server answers from its own address: it knows nothing of "
                                     "the VIP"))
        res2 = run.send(synack, topo.nexthops[picked][0])
        conn2 = dp.conn(CLIENT_IP, CLIENT_PORT, VIP, VPORT, run.now)
        ladder.add_step("lb", "connection lookup (reply direction)",
                        f"{topo.rips[picked]}:{VPORT} -> {CLIENT_IP}:{CLIENT_PORT} matches the entry by its "
                        f"reply tuple" + (f"; state now {conn2.state}" if conn2 is not None else ""))
        if res2.verdict != "TX":
            ladder.add_step("lb", "verdict",
                            f"{res2.verdict} {res2.reason}: {reasons.VERDICT_PROSE[res2.reason]}")
            return ladder
        ladder.add_step("lb", "rewrite", "nat reply: source RIP:rport -> VIP:vport (SNAT), TTL - 1, "
                                         "checksums adjusted; sent back out of the client-side port")
        h4 = ladder.add_hop(Hop("lb", "client", "SYN-ACK (to the client, from the VIP)",
                                f"balancer port {topo.ports[res2.out_port].name} -> client", res2.frame))
        diff_hop(h3, h4, mode, "out")
    else:
        ladder.add_hop(Hop(rs, "client", "SYN-ACK (reply straight to the client, source = VIP)",
                           f"{rs} -> router -> client (never through the balancer)", synack,
                           note=f"{rs} answers from the VIP it received the packet on, so the client sees "
                                "the address it connected to; the balancer never sees this packet"))
    ladder.notes.extend([
        f"traffic through the balancer: {summary['crosses']}",
        f"request: {summary['request']}",
        f"reply: {summary['reply']}",
        f"real servers need: {summary['needs']}",
        f"fits: {summary['fits']}",
    ])
    return ladder


def _rewrite_text(mode: str, topo: Topo, i: int) -> str:
    rip, port = topo.rips[i], topo.nexthops[i][0]
    if mode == "nat":
        return (f"masq (NAT): destination {VIP}:{VPORT} -> {rip}:{VPORT}, TTL - 1, IP and TCP checksums "
                f"adjusted incrementally; out of port {topo.ports[port].name} to {topo.nexthops[i][1]}")
    if mode == "dr":
        return (f"droute (DR): Ethernet destination -> {topo.nexthops[i][1]} (real{i + 1}), source -> the "
                f"balancer's MAC; the IP packet keeps VIP and ports (TTL - 1)")
    return (f"tunnel (TUN): a new outer IPv4 header {topo.ports[port].ip} -> {rip}, protocol 4, wraps the "
            f"client's packet; out of port {topo.ports[port].name} to the router {topo.nexthops[i][1]}")
