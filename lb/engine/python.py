"""The data path in plain Python: the twin of csched/src/process.c (kernel ip_vs_core.c ip_vs_in / ip_vs_out).

One frame goes:
1. parse (lb/fwd/parse.py) - Ethernet, IPv4, TCP/UDP/ICMP, with a verdict for anything broken or not ours;
2. ICMP errors -> `_icmp` (ip_vs_in_icmp / ip_vs_out_icmp), other ICMP -> the slow path;
3. the connection table (lb/conn/ref.py): a client->VIP packet of a known conn, or a real server's reply of a
   NAT conn;
4. a miss: the service for (proto, VIP, port) or PASS; TCP must be a SYN without RST; schedule
   (lb/sched/ref); no dest -> ICMP port unreachable, table full -> DROP;
5. the conn's protocol state, the counters, then its transmitter (lb/fwd/nat.py, dr.py, tun.py).

Differences from the C core that do not show in frames: the reply lookup scans the table (C hashes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address

from lb import model
from lb.conn.ref import CL, CONN_F_ONE_PACKET, FTPDATA, TW, RefConn, RefConnTable
from lb.fwd import BY_FWD, icmp
from lb.fwd.parse import (
    AF_INET6,
    IP_DF,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_IPIP,
    IPPROTO_TCP,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Pkt,
    Reason,
    Verdict,
    get16,
    parse,
)
from lb.fwd.xmit import MAX_PORTS
from lb.sched.ref import RefDest, RefFlow, RefService, SchedRng, service_from_model
from lb.sched.ref.base import DEST_F_AVAILABLE

STRIDE_MIN = 128
STRIDE_DEFAULT = 2048
EXPIRE_SHIFT = 24


@dataclass(slots=True)
class Port:
    """A balancer port (struct lb_port)."""

    mac: bytes = bytes(6)
    ip: bytes = bytes(4)
    mtu: int = 1500


@dataclass(slots=True)
class Counters:
    """Per service / per dest counters (struct lb_stats)."""

    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0

    def as_model(self) -> model.Stats:
        return model.Stats(self.conns, self.inpkts, self.outpkts, self.inbytes, self.outbytes)


@dataclass(slots=True)
class Hop:
    """A dest's next hop as the transmitters read it."""

    nh_port: int = -1
    nh_mac: bytes = bytes(6)


@dataclass(slots=True)
class ConnView:
    """What a transmitter reads of a connection (lb.fwd.xmit.ConnLike) for one packet."""

    vaddr: bytes
    vport: int
    daddr: bytes
    dport: int
    fwd: int
    cl_port: int
    cl_mac: bytes
    xdest: Hop | None


@dataclass(frozen=True, slots=True)
class Result:
    """One frame's outcome: verdict, reason, egress port (TX) and the frame as it leaves."""

    verdict: Verdict
    reason: Reason
    out_port: int
    frame: bytes


@dataclass
class PythonEngine:
    """Services, dests, ports, connections and counters, with `process` mirroring lb_process_batch."""

    conn_max: int = 65536
    rng_seed: int = 1
    ports: list[Port] = field(default_factory=lambda: [Port() for _ in range(MAX_PORTS)])
    hops: dict[RefDest, Hop] = field(default_factory=dict)
    dest_stats: dict[RefDest, Counters] = field(default_factory=dict)
    dest_svc: dict[RefDest, model.ServiceKey] = field(default_factory=dict)
    svc_stats: dict[model.ServiceKey, Counters] = field(default_factory=dict)
    client_side: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    reason_count: list[int] = field(default_factory=lambda: [0] * len(Reason))
    verdict_count: list[int] = field(default_factory=lambda: [0] * len(Verdict))

    def __post_init__(self) -> None:
        self.table = RefConnTable(self.conn_max, rng=SchedRng(self.rng_seed))
        self._expire_tick = -1
        self._out: dict[tuple[int, model.Addr, int, model.Addr, int], RefConn] = {}

    # ---- configuration (the same calls as lb.core.core.Core) ----

    def add_service(self, svc: model.Service) -> None:
        self.table.services[svc.key] = service_from_model(svc)
        self.svc_stats[svc.key] = Counters()

    def service(self, key: model.ServiceKey) -> RefService:
        return self.table.services[key]

    def add_dest(self, key: model.ServiceKey, dest: model.Dest) -> RefDest:
        d = self.table.services[key].add_dest(dest)
        self.hops[d] = Hop()
        self.dest_stats[d] = Counters()
        self.dest_svc[d] = key
        return d

    def del_dest(self, key: model.ServiceKey, dkey: model.DestKey) -> None:
        """`ipvsadm -d`: the dest leaves the service; its conns keep it (not available) until they end."""
        self.table.services[key].del_dest(dkey)

    def dest(self, key: model.ServiceKey, dkey: model.DestKey) -> RefDest:
        d = self.table.services[key].find(dkey)
        if d is None:
            raise KeyError(dkey)
        return d

    def set_port(self, port: int, mac: bytes, ip4: IPv4Address | None, mtu: int) -> None:
        self.ports[port] = Port(bytes(mac), ip4.packed if ip4 is not None else bytes(4), mtu)

    def set_nexthop(self, key: model.ServiceKey, dkey: model.DestKey, port: int, mac: bytes) -> None:
        self.hops[self.dest(key, dkey)] = Hop(port, bytes(mac))

    # ---- the batch call ----

    def process(
        self, frames: Sequence[tuple[bytes, int]], now_ns: int, stride: int = STRIDE_DEFAULT
    ) -> list[Result]:
        """Each (frame, in_port) through the data path, as lb_process_batch does with one slab slot each."""
        if stride < STRIDE_MIN or stride > 65535:
            raise ValueError(f"stride {stride} out of range")
        # at most one expiry pass per 2^24 ns, as process.c (lookups expire what they find past its time)
        tick = now_ns >> EXPIRE_SHIFT
        if tick != self._expire_tick:
            self._expire_tick = tick
            self.table.expire(now_ns)
        out = []
        for frame, in_port in frames:
            buf = bytearray(stride)
            n = min(len(frame), stride)
            buf[:n] = frame[:n]
            p = Pkt(buf, n, stride, in_port)
            if in_port >= MAX_PORTS:
                p.set_verdict(Verdict.DROP, Reason.NO_ROUTE)
            else:
                self._process_one(p, now_ns)
            self.reason_count[p.reason] += 1
            self.verdict_count[p.verdict] += 1
            if p.verdict == Verdict.TX:
                out.append(Result(p.verdict, p.reason, p.out_port, bytes(buf[: p.length])))
            else:
                out.append(Result(p.verdict, p.reason, 0, bytes(buf[:n])))
        if len(self.client_side) > 2 * self.conn_max:
            self.client_side = {
                c.seq: self.client_side[c.seq]
                for c in self.table.entries.values()
                if c.seq in self.client_side
            }
            self._out = {k: c for k, c in self._out.items() if self.table.entries.get(c.seq) is c}
        return out

    def reason_counts(self) -> dict[str, int]:
        """Packets per reason name (lb_reason_count)."""
        return {r.name: self.reason_count[r] for r in Reason}

    def stats(self) -> dict[model.ServiceKey, model.Stats]:
        """Each service's counters."""
        return {k: c.as_model() for k, c in self.svc_stats.items()}

    # ---- one frame ----

    @staticmethod
    def _flow(p: Pkt) -> RefFlow:
        return RefFlow(ip_address(p.saddr), p.sport, ip_address(p.daddr), p.dport, model.Proto(p.proto))

    def _alive(self, c: RefConn | None, now: int) -> RefConn | None:
        """As conn.c's lookups do: an entry found past its time is expired there and then, and not found
        (unless it survives, as a template still controlling conns does)."""
        if c is not None and c.expires <= now:
            self.table.expire(now)
            if self.table.conns.get((c.proto, c.caddr, c.cport, c.vaddr, c.vport)) is not c:
                return None
        return c

    def _lookup_in(self, flow: RefFlow, now: int) -> RefConn | None:
        """A client's packet (client:cport -> VIP:vport) to its conn (lb_conn_lookup_in)."""
        return self._alive(self.table.lookup_in(flow), now)

    def _lookup_out(  # noqa: PLR0917 - the reply tuple, as lb_conn_lookup_out's key
        self, proto: int, saddr: bytes, sport: int, daddr: bytes, dport: int, now: int
    ) -> RefConn | None:
        """A real server's packet (RIP:rport -> client:cport) to its conn (lb_conn_lookup_out): the reply
        index kept beside the twin table, checked against it (the entry must still be hashed there)."""
        c = self._out.get((proto, ip_address(saddr), sport, ip_address(daddr), dport))
        if c is None or self.table.conns.get((c.proto, c.caddr, c.cport, c.vaddr, c.vport)) is not c:
            return None
        return self._alive(c, now)

    def _view(self, c: RefConn) -> ConnView:
        port, mac = self.client_side.get(c.seq, (0, bytes(6)))
        hop = self.hops.get(c.dest) if c.dest is not None else None
        return ConnView(c.vaddr.packed, c.vport, c.daddr.packed, c.dport, int(c.fwd), port, mac, hop)

    def _stats(self, c: RefConn, nbytes: int, inbound: bool) -> None:
        d = c.dest
        if d is None or not d.flags & DEST_F_AVAILABLE:
            return
        for s in (self.dest_stats[d], self.svc_stats[self.dest_svc[d]]):
            if inbound:
                s.inpkts += 1
                s.inbytes += nbytes
            else:
                s.outpkts += 1
                s.outbytes += nbytes

    @staticmethod
    def _tcp_flags_bad(f: int) -> bool:
        if f & (TCP_SYN | TCP_FIN) == TCP_SYN | TCP_FIN or f & (TCP_SYN | TCP_RST) == TCP_SYN | TCP_RST:
            return True
        return f & 0x3F == 0

    def _conn_packet(self, p: Pkt, c: RefConn, direction: int, now: int) -> None:
        if p.proto == IPPROTO_TCP and self._tcp_flags_bad(p.tcp_flags):
            p.set_verdict(Verdict.DROP, Reason.TCP_FLAGS)
            return
        if direction == 0 and c.dest is not None and not c.dest.flags & DEST_F_AVAILABLE:
            # ip_vs_in: the dest was removed (it lingers for its conns): silently drop, keep the timer
            p.set_verdict(Verdict.DROP, Reason.NO_DEST)
            return
        self.table.state(c, direction, p.tcp_flags, now)
        method = BY_FWD.get(int(c.fwd))
        self._stats(c, p.ip_len, inbound=direction == 0)
        xmit = None if method is None else (method.xmit_in if direction == 0 else method.xmit_reply)
        if xmit is None:
            p.set_verdict(Verdict.PASS, Reason.SLOW_PATH)
            return
        xmit(self.ports, p, self._view(c))
        if c.flags & CONN_F_ONE_PACKET:
            self.table._release(c)

    def _process_one(self, p: Pkt, now: int) -> None:
        # step 3
        if not parse(p):
            return
        if p.proto == IPPROTO_ICMP:
            self._icmp(p, now)
            return
        if p.proto == IPPROTO_ICMPV6:
            self._icmp6(p, now)
            return
        # step 4
        flow = self._flow(p)
        c = self._lookup_in(flow, now)
        if (
            c is not None
            and p.proto == IPPROTO_TCP
            and p.tcp_flags & TCP_SYN
            and c.control is None
            and c.state in (TW, CL)
        ):
            if not c.n_control:
                self.table._release(c)
            c = None
        if c is not None:
            self._conn_packet(p, c, 0, now)
            return
        c = self._lookup_out(p.proto, p.saddr, p.sport, p.daddr, p.dport, now)
        if c is not None and c.fwd == model.Fwd.MASQ:
            self._conn_packet(p, c, 1, now)
            return
        # step 5
        svc = self.table.find_service(flow)
        if svc is None:
            p.set_verdict(Verdict.PASS, Reason.NO_SERVICE)
            return
        if p.proto == IPPROTO_TCP:
            if self._tcp_flags_bad(p.tcp_flags):
                p.set_verdict(Verdict.DROP, Reason.TCP_FLAGS)
                return
            if not p.tcp_flags & TCP_SYN or p.tcp_flags & TCP_RST:
                p.set_verdict(Verdict.DROP, Reason.NOT_SYN)
                return
        # steps 6-7
        refused = self.table.refused
        c = self.table.schedule(svc, flow, now)
        if c is None:
            if flow.sport == FTPDATA:
                p.set_verdict(Verdict.PASS, Reason.NO_SERVICE)
            elif self.table.refused != refused:
                p.set_verdict(Verdict.DROP, Reason.CONN_FULL)
            elif p.af == AF_INET6:
                icmp.icmp6_send(
                    p, icmp.ICMP6_DEST_UNREACH, icmp.ICMP6_PORT_UNREACH, 0, p.daddr, Reason.NO_DEST
                )
            else:
                icmp.icmp4_send(p, icmp.ICMP_DEST_UNREACH, icmp.ICMP_PORT_UNREACH, 0, p.daddr, Reason.NO_DEST)
            return
        self.client_side[c.seq] = (p.in_port, bytes(p.buf[6:12]))
        self._out[(c.proto, c.daddr, c.dport, c.caddr, c.cport)] = c
        if c.dest is not None:
            self.dest_stats[c.dest].conns += 1
        self.svc_stats[svc.key].conns += 1
        self._conn_packet(p, c, 0, now)

    def _icmp(self, p: Pkt, now: int) -> None:
        """ip_vs_in_icmp / ip_vs_out_icmp (twin of csched/src/icmp.c lb_icmp4_process)."""
        b = p.buf
        if b[p.l4_off] not in icmp.ICMP_ERRORS:
            p.set_verdict(Verdict.PASS, Reason.SLOW_PATH)
            return
        p.set_verdict(Verdict.PASS, Reason.ICMP_UNTRACKED)
        hdr = icmp.quoted_header(p)
        if hdr is None:
            return
        q, qihl, qlen = hdr
        if b[q + 9] == IPPROTO_IPIP:
            self._icmp_ipip(p, q, qihl, qlen, now)
            return
        found = icmp.quoted_key(p, q, qihl)
        if found is None:
            return
        proto, saddr, daddr, sport, dport = found
        inbound = True
        c = self._lookup_in(
            RefFlow(IPv4Address(saddr), sport, IPv4Address(daddr), dport, model.Proto(proto)),
            now,
        )
        if c is None:
            c = self._lookup_out(proto, saddr, sport, daddr, dport, now)
            if c is None or c.fwd != model.Fwd.MASQ:
                return
            inbound = False
        if not icmp.icmp_csum_ok(p):
            p.set_verdict(Verdict.DROP, Reason.PARSE_CSUM)
            return
        p.icmp_err = True
        view = self._view(c)
        self._stats(c, p.ip_len, inbound=inbound)
        if not inbound:
            self._icmp_nat_out(p, view, q, qihl)
            return
        if c.fwd == model.Fwd.MASQ:
            self._icmp_nat_in(p, view, q, qihl)
            return
        method = BY_FWD.get(int(c.fwd))
        if method is None:
            p.set_verdict(Verdict.PASS, Reason.SLOW_PATH)
            return
        method.xmit_in(self.ports, p, view)

    def _icmp6(self, p: Pkt, now: int) -> None:
        """ip_vs_in_icmp_v6 / ip_vs_out_icmp_v6 (twin of csched/src/icmp.c lb_icmp6_process)."""
        from lb.fwd import xmit  # noqa: PLC0415

        b, ip, ic = p.buf, p.l3_off, p.l4_off
        if not 1 <= b[ic] <= 4:  # informational (NDP, echo): the slow path
            p.set_verdict(Verdict.PASS, Reason.SLOW_PATH)
            return
        p.set_verdict(Verdict.PASS, Reason.ICMP_UNTRACKED)
        found = icmp.quoted6_key(p)
        if found is None:
            return
        q, proto, saddr, daddr, sport, dport = found
        inbound = True
        c = self._lookup_in(
            RefFlow(ip_address(saddr), sport, ip_address(daddr), dport, model.Proto(proto)),
            now,
        )
        if c is None:
            c = self._lookup_out(proto, saddr, sport, daddr, dport, now)
            if c is None or c.fwd != model.Fwd.MASQ:
                return
            inbound = False
        if icmp.icmp6_csum(b, ip, ic, p.ip_len - 40) != 0:
            p.set_verdict(Verdict.DROP, Reason.PARSE_CSUM)
            return
        p.icmp_err = True
        view = self._view(c)
        self._stats(c, p.ip_len, inbound=inbound)
        if not inbound:
            port = view.cl_port if view.cl_port < MAX_PORTS else 0
            if not xmit.hop6(p, None) or not xmit.mtu6(p, self.ports[port].mtu, None):
                return
            icmp.nat6_rewrite(p, q, view, inbound=False)
            xmit.l2(self.ports, p, port, view.cl_mac)
            return
        if c.fwd == model.Fwd.MASQ:
            dest = view.xdest
            if dest is None or not xmit.nexthop(p, dest):
                return
            if not xmit.hop6(p, None) or not xmit.mtu6(p, self.ports[dest.nh_port].mtu, None):
                return
            icmp.nat6_rewrite(p, q, view, inbound=True)
            xmit.l2(self.ports, p, dest.nh_port, dest.nh_mac)
            return
        method = BY_FWD.get(int(c.fwd))
        if method is None:
            p.set_verdict(Verdict.PASS, Reason.SLOW_PATH)
            return
        method.xmit_in(self.ports, p, view)

    def _icmp_ipip(self, p: Pkt, q: int, qihl: int, qlen: int, now: int) -> None:
        """A real server's error about one of our IPIP packets, re-sent to the client (ip_vs_in_icmp)."""
        b, ip, ic = p.buf, p.l3_off, p.l4_off
        own = self.ports[p.in_port].ip
        if bytes(b[ip + 16 : ip + 20]) != own or own == bytes(4):
            return
        found = icmp.ipip_inner(p, q, qihl, qlen)
        if found is None:
            return
        inner, inlen, proto, saddr, daddr, sport, dport = found
        c = self._lookup_in(
            RefFlow(IPv4Address(saddr), sport, IPv4Address(daddr), dport, model.Proto(proto)),
            now,
        )
        if c is None:
            return
        if not icmp.icmp_csum_ok(p):
            p.set_verdict(Verdict.DROP, Reason.PARSE_CSUM)
            return
        icmp_type, code = b[ic], b[ic + 1]
        info = int.from_bytes(b[ic + 4 : ic + 8], "big")
        if icmp_type == icmp.ICMP_DEST_UNREACH and code == icmp.ICMP_FRAG_NEEDED:
            mtu = get16(b, ic + 6)
            if not get16(b, inner + 6) & IP_DF:
                p.set_verdict(Verdict.DROP, Reason.MTU)  # the client does not do PMTUD
                return
            hop = self.hops.get(c.dest) if c.dest is not None else None
            if hop is not None and 0 <= hop.nh_port < MAX_PORTS:
                mtu = min(mtu, self.ports[hop.nh_port].mtu)
            if mtu > 68 + 20:
                mtu -= 20
            info = mtu
        self._stats(c, inlen, inbound=False)
        b[ip : ip + inlen] = b[inner : inner + inlen]
        p.ip_len = inlen
        port, mac = self.client_side.get(c.seq, (0, bytes(6)))
        port = port if port < MAX_PORTS else 0
        icmp.icmp4_send(p, icmp_type, code, info, daddr, Reason.OK)
        if p.verdict == Verdict.TX:
            b[0:6] = mac
            b[6:12] = self.ports[port].mac
            p.out_port = port

    def _icmp_nat_in(self, p: Pkt, cp: ConnView, q: int, qihl: int) -> None:
        from lb.fwd import xmit  # noqa: PLC0415 - keep the import graph of lb.fwd one-way

        dest = cp.xdest
        if dest is None or not xmit.nexthop(p, dest):
            return
        port = dest.nh_port
        if not xmit.ttl(p, bytes(4)) or not xmit.mtu(p, self.ports[port].mtu, bytes(4)):
            return
        icmp.nat_rewrite(p, q, qihl, cp, inbound=True)
        xmit.l2(self.ports, p, port, dest.nh_mac)

    def _icmp_nat_out(self, p: Pkt, cp: ConnView, q: int, qihl: int) -> None:
        from lb.fwd import xmit  # noqa: PLC0415

        port = cp.cl_port if cp.cl_port < MAX_PORTS else 0
        if p.buf[p.l3_off + 8] <= 1:
            p.set_verdict(Verdict.DROP, Reason.TTL)
            return
        if not xmit.mtu(p, self.ports[port].mtu, bytes(4)):
            return
        p.buf[p.l3_off + 8] -= 1
        icmp.nat_rewrite(p, q, qihl, cp, inbound=False)
        xmit.l2(self.ports, p, port, cp.cl_mac)


__all__ = ["ConnView", "Counters", "Hop", "Port", "PythonEngine", "Result"]
