"""The connection table in plain Python: the readable twin of csched/src/conn.c, schedule.c, proto_tcp.c and
proto_udp.c (kernel ip_vs_conn.c, ip_vs_core.c ip_vs_schedule / ip_vs_sched_persist, ip_vs_proto_tcp.c,
ip_vs_proto_udp.c).

What a connection-table entry is, and what happens to it:

* A packet from a client to a virtual service is looked up by (proto, client addr:port, VIP:port).  A miss
  schedules a new conn: TCP only on a SYN without RST; never for client port 20 (active FTP data).
* A *persistent* service (-p) first looks for a template <proto, client & netmask, 0, VIP, vport> (vport 0
  for a port-zero or FTP service).  A template whose dest is no longer available is invalidated (moved to
  ports 65535, left to run out its time) and a new one is made; otherwise its dest is reused, whatever the
  scheduler would say.  Each new conn "uses" its template, which restarts the template's timer.
* A new conn is bound to its dest as *inactive* (the kernel's dest conn_flags always carry INACTIVE).  The
  TCP state machine moves it to active when it enters SYN_SENT, SYN_RECV, SYNACK or ESTABLISHED, and back
  when it leaves them.  UDP conns stay inactive.  Templates count in persistconns.
* Every packet re-arms the conn's timer with its state's timeout (ESTABLISHED 900 s, FIN_WAIT 120 s, UDP
  300 s: `ipvsadm --set`).  When a timer fires, a template that still controls conns is re-armed for
  another timeout; anything else is unlinked and its dest unbound.
* A SYN that finds a conn in TIME_WAIT or CLOSE which is not controlled by a template expires that conn
  and schedules afresh (conn_reuse_mode 1).
* The table has a fixed capacity; a new entry beyond it is refused and counted.

Expiry order follows the C timer wheel: entries due by `now` go in order of their 2**24-ns tick, and within
one tick conns before templates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from lb import model
from lb.sched.ref.base import (
    DEST_F_AVAILABLE,
    EV_BIND_INACTIVE,
    EV_BIND_TEMPLATE,
    EV_TO_ACTIVE,
    EV_TO_INACTIVE,
    EV_UNBIND_ACTIVE,
    EV_UNBIND_INACTIVE,
    EV_UNBIND_TEMPLATE,
    RefDest,
    RefFlow,
    RefService,
    SchedRng,
)

NS = 1_000_000_000
WHEEL_SHIFT = 24
FTPPORT = 21
FTPDATA = 20

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

CONN_F_HASHED = 0x0040
CONN_F_NOOUTPUT = 0x0080
CONN_F_INACTIVE = 0x0100
CONN_F_TEMPLATE = 0x1000
CONN_F_ONE_PACKET = 0x2000

# ---- the TCP state machine (kernel ip_vs_proto_tcp.c) ----

NONE, ES, SS, SR, FW, TW, CL, CW, LA, LI, SA = range(11)
TCP_STATE_NAMES = (
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
)
#: Seconds per state; ESTABLISHED and FIN_WAIT are replaced by `ipvsadm --set` values.
TCP_TIMEOUTS = (2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120)
#: States in which a conn counts as active on its dest.
TCP_ACTIVE = frozenset({ES, SS, SR, SA})

#: Next state by direction, then event (syn, fin, ack, rst), then current state (NONE..SYNACK order).
_INPUT = (
    (SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR),
    (CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW),
    (ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES),
    (CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR),
)
_OUTPUT = (
    (SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR),
    (TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW),
    (ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES),
    (CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL),
)
_INPUT_ONLY = (
    (SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR),
    (CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW),
    (ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES),
    (CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL),
)


def tcp_event(flags: int) -> int | None:
    """The row a segment selects: rst, then syn, then fin, then ack; None for none of them."""
    if flags & TCP_RST:
        return 3
    if flags & TCP_SYN:
        return 0
    if flags & TCP_FIN:
        return 1
    if flags & TCP_ACK:
        return 2
    return None


@dataclass(slots=True, eq=False)
class RefConn:
    """One entry (conn or template).  Addresses are ipaddress objects, ports host order."""

    proto: int
    caddr: model.Addr
    cport: int
    vaddr: model.Addr
    vport: int
    daddr: model.Addr
    dport: int
    dest: RefDest | None
    fwd: model.Fwd
    flags: int
    seq: int
    state: int = NONE
    timeout_s: int = 3
    expires: int = 0
    control: RefConn | None = None
    n_control: int = 0

    @property
    def template(self) -> bool:
        return bool(self.flags & CONN_F_TEMPLATE)


def _mask(addr: model.Addr, netmask: int) -> model.Addr:
    if isinstance(addr, IPv4Address):
        return IPv4Address(int(addr) & netmask)
    plen = min(netmask, 128)
    bits = ((1 << plen) - 1) << (128 - plen) if plen else 0
    return IPv6Address(int(addr) & bits)


@dataclass(slots=True)
class RefConnTable:
    """The twin table.  `services` maps each ServiceKey to its RefService (the scheduler twins)."""

    conn_max: int
    services: dict[model.ServiceKey, RefService] = field(default_factory=dict)
    timeouts: model.Timeouts = field(default_factory=model.Timeouts)
    rng: SchedRng = field(default_factory=SchedRng)
    entries: dict[int, RefConn] = field(default_factory=dict)
    conns: dict[tuple[int, model.Addr, int, model.Addr, int], RefConn] = field(default_factory=dict)
    templates: dict[tuple[int, model.Addr, model.Addr, int], RefConn] = field(default_factory=dict)
    refused: int = 0
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    # ---- dests: the trash (kernel ip_vs_trash_get_dest) ----

    def del_dest(self, key: model.ServiceKey, dkey: model.DestKey | model.Dest) -> None:
        """`ipvsadm -d`: the dest is unlinked; conns bound to it keep it (and its counts) alive."""
        self.services[key].del_dest(dkey)

    def add_dest(self, key: model.ServiceKey, dest: model.Dest) -> RefDest:
        """`ipvsadm -a`: a dest deleted while conns still use it comes back with its counts, as in C."""
        svc = self.services[key]
        for c in self.entries.values():
            d = c.dest
            if (
                d is not None
                and d.key == dest.key
                and d not in svc.dests
                and self.find_service(RefFlow(c.caddr, c.cport, c.vaddr, c.vport, model.Proto(c.proto)))
                is svc
            ):
                RefService._update(d, dest, add=True)
                svc.dests.insert(0, d)
                svc.scheduler.add_dest(svc, d)
                return d
        return svc.add_dest(dest)

    # ---- lookups ----

    def find_service(self, flow: RefFlow) -> RefService | None:
        """The service for (proto, VIP, port), else a port-zero service on that VIP (ip_vs_service_find)."""
        svc = self.services.get(model.ServiceKey(flow.proto, flow.daddr, flow.dport))
        if svc is None and flow.dport != 0:
            svc = self.services.get(model.ServiceKey(flow.proto, flow.daddr, 0))
        return svc

    def lookup_in(self, flow: RefFlow) -> RefConn | None:
        return self.conns.get((int(flow.proto), flow.saddr, flow.sport, flow.daddr, flow.dport))

    # ---- entries ----

    def _new(  # noqa: PLR0917 - the fields of ip_vs_conn_new
        self,
        proto: int,
        caddr: model.Addr,
        cport: int,
        vaddr: model.Addr,
        vport: int,
        dest: RefDest,
        dport: int,
        flags: int,
        now: int,
    ) -> RefConn | None:
        if len(self.entries) >= self.conn_max:
            self.refused += 1
            return None
        flags |= CONN_F_INACTIVE
        if dest.fwd != model.Fwd.MASQ:
            flags |= CONN_F_NOOUTPUT
        if proto != int(model.Proto.UDP):
            flags &= ~CONN_F_ONE_PACKET
        if not flags & CONN_F_ONE_PACKET:
            flags |= CONN_F_HASHED
        c = RefConn(
            proto,
            caddr,
            cport,
            vaddr,
            vport,
            dest.addr,
            dport,
            dest,
            dest.fwd,
            flags,
            next(self._seq),
            expires=now + 3 * NS,
        )
        dest.account(EV_BIND_TEMPLATE if c.template else EV_BIND_INACTIVE)
        self.entries[c.seq] = c
        if c.template:
            self.templates[(proto, caddr, vaddr, vport)] = c
        elif flags & CONN_F_HASHED:
            self.conns[(proto, caddr, cport, vaddr, vport)] = c
        return c

    def _release(self, c: RefConn) -> None:
        if c.template:
            if self.templates.get((c.proto, c.caddr, c.vaddr, c.vport)) is c:
                del self.templates[(c.proto, c.caddr, c.vaddr, c.vport)]
        elif self.conns.get((c.proto, c.caddr, c.cport, c.vaddr, c.vport)) is c:
            del self.conns[(c.proto, c.caddr, c.cport, c.vaddr, c.vport)]
        if c.control is not None:
            c.control.n_control -= 1
            c.control = None
        if c.dest is not None:
            if c.template:
                c.dest.account(EV_UNBIND_TEMPLATE)
            else:
                c.dest.account(EV_UNBIND_INACTIVE if c.flags & CONN_F_INACTIVE else EV_UNBIND_ACTIVE)
            c.dest = None
        del self.entries[c.seq]

    def _expire_one(self, c: RefConn) -> None:
        if c.n_control:
            c.expires += c.timeout_s * NS  # still controls conns: another round (expire_later)
        else:
            self._release(c)

    def expire(self, now: int) -> None:
        """Everything due by `now`, in tick order, conns before templates within a tick."""
        while True:
            due = [c for c in self.entries.values() if c.expires <= now]
            if not due:
                return
            self._expire_one(min(due, key=lambda c: (c.expires >> WHEEL_SHIFT, c.template, c.seq)))

    def flush(self) -> None:
        for c in [c for c in self.entries.values() if not c.template]:
            self._release(c)
        for c in list(self.entries.values()):
            self._release(c)

    # ---- state machines ----

    def tcp_timeout(self, state: int) -> int:
        if state == ES:
            return self.timeouts.tcp
        if state == FW:
            return self.timeouts.tcpfin
        return TCP_TIMEOUTS[state]

    def state(self, c: RefConn, direction: int, flags: int, now: int) -> None:
        """One packet of c: direction 0 = client->server, 1 = server->client."""
        if c.proto == int(model.Proto.TCP):
            table = _OUTPUT if direction else _INPUT
            if c.flags & CONN_F_NOOUTPUT:
                if direction:
                    c.flags &= ~CONN_F_NOOUTPUT
                else:
                    table = _INPUT_ONLY
            ev = tcp_event(flags)
            new = CL if ev is None else table[ev][c.state]
            if new != c.state and c.dest is not None:
                if not c.flags & CONN_F_INACTIVE and new not in TCP_ACTIVE:
                    c.dest.account(EV_TO_INACTIVE)
                    c.flags |= CONN_F_INACTIVE
                elif c.flags & CONN_F_INACTIVE and new in TCP_ACTIVE:
                    c.dest.account(EV_TO_ACTIVE)
                    c.flags &= ~CONN_F_INACTIVE
            c.state = new
            c.timeout_s = self.tcp_timeout(new)
        else:
            c.state = 0
            c.timeout_s = self.timeouts.udp
        c.expires = now + c.timeout_s * NS

    # ---- scheduling (ip_vs_schedule, ip_vs_sched_persist) ----

    def _sched_persist(self, svc: RefService, flow: RefFlow, now: int) -> RefConn | None:
        proto = int(flow.proto)
        snet = _mask(flow.saddr, svc.netmask)
        vport = flow.dport if flow.dport == svc.key.port and svc.key.port != FTPPORT else 0
        ct = self.templates.get((proto, snet, flow.daddr, vport))
        if ct is not None and not (ct.dest is not None and ct.dest.flags & DEST_F_AVAILABLE):
            # ip_vs_check_template: invalidate (ports 65535) and let it run out its time
            del self.templates[(proto, snet, flow.daddr, vport)]
            ct.cport, ct.vport, ct.dport = 0, 0xFFFF, 0xFFFF
            self.templates.setdefault((proto, snet, flow.daddr, 0xFFFF), ct)
            ct = None
        if ct is None:
            dest = svc.schedule(flow, now, self.rng)
            if dest is None:
                return None
            tdport = dest.port if flow.dport == svc.key.port and svc.key.port != FTPPORT else 0
            ct = self._new(proto, snet, 0, flow.daddr, vport, dest, tdport, CONN_F_TEMPLATE, now)
            if ct is None:
                return None
            ct.timeout_s = svc.timeout
            ct.expires = now + svc.timeout * NS
        dest = ct.dest
        assert dest is not None
        dport = dest.port if flow.dport == svc.key.port and dest.port else flow.dport
        cp = self._new(
            proto,
            flow.saddr,
            flow.sport,
            flow.daddr,
            flow.dport,
            dest,
            dport,
            self._onepacket(svc, flow),
            now,
        )
        ct.expires = now + ct.timeout_s * NS  # the template was used: its timer restarts
        if cp is None:
            return None
        cp.control = ct
        ct.n_control += 1
        return cp

    @staticmethod
    def _onepacket(svc: RefService, flow: RefFlow) -> int:
        return CONN_F_ONE_PACKET if svc.flags & model.SVC_F_ONEPACKET and flow.proto == model.Proto.UDP else 0

    def schedule(self, svc: RefService, flow: RefFlow, now: int) -> RefConn | None:
        if flow.sport == FTPDATA:
            return None
        if svc.flags & model.SVC_F_PERSISTENT:
            return self._sched_persist(svc, flow, now)
        if flow.dport != svc.key.port:
            return None  # port zero services need persistence
        dest = svc.schedule(flow, now, self.rng)
        if dest is None:
            return None
        return self._new(
            int(flow.proto),
            flow.saddr,
            flow.sport,
            flow.daddr,
            flow.dport,
            dest,
            dest.port or flow.dport,
            self._onepacket(svc, flow),
            now,
        )

    # ---- the batch calls, as lb_conn_batch_schedule / lb_conn_batch_reply ----

    def packet_in(self, flow: RefFlow, flags: int, now: int) -> RefDest | None:
        tcp = flow.proto == model.Proto.TCP
        cp = self.lookup_in(flow)
        if cp is not None and tcp and flags & TCP_SYN and cp.control is None and cp.state in (TW, CL):
            if not cp.n_control:
                self._release(cp)  # conn_reuse_mode: a new connection on an old tuple
            cp = None
        if cp is None:
            if tcp and (flags & TCP_RST or not flags & TCP_SYN):
                return None
            svc = self.find_service(flow)
            if svc is None:
                return None
            cp = self.schedule(svc, flow, now)
            if cp is None:
                return None
        self.state(cp, 0, flags if tcp else 0, now)
        dest = cp.dest
        if cp.flags & CONN_F_ONE_PACKET:
            self._release(cp)
        return dest

    def batch_schedule(self, flows: list[RefFlow], flags: list[int] | None, now: int) -> list[RefDest | None]:
        self.expire(now)
        return [self.packet_in(f, TCP_SYN if flags is None else flags[i], now) for i, f in enumerate(flows)]

    def batch_reply(self, flows: list[RefFlow], flags: list[int] | None, now: int) -> list[RefDest | None]:
        self.expire(now)
        out: list[RefDest | None] = []
        for i, f in enumerate(flows):
            c = self.lookup_in(f)
            if c is None:
                out.append(None)
                continue
            tcp = f.proto == model.Proto.TCP
            self.state(c, 1, (TCP_ACK if flags is None else flags[i]) if tcp else 0, now)
            out.append(c.dest)
        return out

    # ---- dump ----

    def dump(self, now: int) -> list[model.ConnInfo]:
        """As ConnTable.dump: entries past their time left out unless they still control conns."""
        rows = []
        for c in self.entries.values():
            if now >= c.expires and not c.n_control:
                continue
            ms = 0 if now >= c.expires else (c.expires - now) // 1_000_000
            name = "NONE" if c.template else (TCP_STATE_NAMES[c.state] if c.proto == 6 else "UDP")
            rows.append(
                model.ConnInfo(
                    model.Proto(c.proto),
                    c.caddr,
                    c.cport,
                    c.vaddr,
                    c.vport,
                    c.daddr,
                    c.dport,
                    name,
                    ms / 1000.0,
                    c.fwd,
                    c.flags,
                    c.template,
                )
            )
        return rows
