"""The trace ring of the C core (csched/src/trace.c), typed: arm it, read back what the data plane decided.

`Tracer(core).arm(count, client=..., vip=..., vport=...)` traces the next `count` new connections matching the
filter; `read(after)` returns `TraceRecord`s: the flow, the service's scheduler, every dest of the service in
list order with the numbers the scheduler compared (weight, active, inactive, flags, snapshotted before it
ran), the pick, the connection's state before and after the packet, the forwarding method and which header
fields the transmitter changed.  Records are plain JSON-able values (`to_dict`/`from_dict`) so the daemon
can hand them to `lb trace`.  One cffi call per arm/read; nothing here runs on the packet path.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Any

from lb import model
from lb.core._ffi import ffi, lib
from lb.core.batch import REASON_NAMES

if TYPE_CHECKING:
    from lb.core.core import Core

RING = int(lib.LB_TRACE_RING)
DESTS_MAX = int(lib.LB_TRACE_DESTS_MAX)

#: LB_TRACE_CH_* bits and the header field each stands for (the names the teaching ladder uses).
CHANGE_BITS: tuple[tuple[int, str], ...] = (
    (lib.LB_TRACE_CH_ETH_DST, "eth.dst"),
    (lib.LB_TRACE_CH_ETH_SRC, "eth.src"),
    (lib.LB_TRACE_CH_IP_SADDR, "ip.src"),
    (lib.LB_TRACE_CH_IP_DADDR, "ip.dst"),
    (lib.LB_TRACE_CH_IP_TTL, "ip.ttl"),
    (lib.LB_TRACE_CH_IP_CSUM, "ip.csum"),
    (lib.LB_TRACE_CH_SPORT, "l4.sport"),
    (lib.LB_TRACE_CH_DPORT, "l4.dport"),
    (lib.LB_TRACE_CH_L4_CSUM, "l4.csum"),
    (lib.LB_TRACE_CH_ENCAP, "ipip.added"),
    (lib.LB_TRACE_CH_ICMP, "icmp.error"),
)
VERDICTS = {lib.LB_VERDICT_DROP: "DROP", lib.LB_VERDICT_TX: "TX", lib.LB_VERDICT_PASS: "PASS"}
DEST_F_AVAILABLE = int(lib.LB_DEST_F_AVAILABLE)
DEST_F_OVERLOAD = int(lib.LB_DEST_F_OVERLOAD)


def _addr(field: Any, af: int) -> str:
    raw = bytes(ffi.buffer(field, 16))
    return str(IPv6Address(raw) if af == socket.AF_INET6 else IPv4Address(raw[:4]))


def _mac(field: Any) -> str:
    return ":".join(f"{b:02x}" for b in bytes(ffi.buffer(field, 6)))


@dataclass(frozen=True, slots=True)
class TraceDest:
    """One dest of the service as the scheduler found it, before it picked."""

    id: int
    addr: str
    port: int
    weight: int
    activeconns: int
    inactconns: int
    flags: int

    @property
    def overloaded(self) -> bool:
        return bool(self.flags & DEST_F_OVERLOAD)

    @property
    def overhead(self) -> int:
        """ip_vs_dest_conn_overhead: active * 256 + inactive (what lc/wlc compare)."""
        return (self.activeconns << 8) + self.inactconns


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """What the data plane did with the first packet of one traced connection."""

    seq: int
    now_ns: int
    proto: int
    tcp_flags: int
    client: str
    cport: int
    vaddr: str
    vport: int
    in_port: int
    svc_id: int
    sched: str
    svc_flags: int
    num_dests: int
    dests: tuple[TraceDest, ...]
    template_hit: bool
    dest_id: int
    fwd: int
    state_before: str
    state_after: str
    conn_daddr: str
    conn_dport: int
    verdict: str
    reason: str
    out_port: int
    changed: tuple[str, ...]
    eth_dst: str
    eth_src: str
    out_daddr: str
    len_in: int
    len_out: int

    @property
    def picked(self) -> TraceDest | None:
        """The chosen dest as the snapshot shows it (None: no pick, or beyond the snapshot)."""
        return next((d for d in self.dests if d.id == self.dest_id), None)

    @property
    def fwd_name(self) -> str:
        try:
            return model.Fwd(self.fwd).name
        except ValueError:
            return str(self.fwd)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f: getattr(self, f) for f in self.__slots__}
        out["dests"] = [{f: getattr(d, f) for f in d.__slots__} for d in self.dests]
        out["changed"] = list(self.changed)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TraceRecord:
        args = dict(d)
        args["dests"] = tuple(TraceDest(**x) for x in d["dests"])
        args["changed"] = tuple(d["changed"])
        return cls(**args)


def _state(proto: int, state: int) -> str:
    return str(ffi.string(lib.lb_conn_state_name(proto, state)).decode())


def record_from_c(r: Any) -> TraceRecord:
    af = int(r.af)
    dests = tuple(TraceDest(int(x.id), _addr(x.addr, int(x.af)), int(x.port), int(x.weight),
                            int(x.activeconns), int(x.inactconns), int(x.flags))
                  for x in r.dests[0:int(r.n_snap)])
    tx = int(r.verdict) == lib.LB_VERDICT_TX
    return TraceRecord(
        seq=int(r.seq), now_ns=int(r.now_ns), proto=int(r.proto), tcp_flags=int(r.tcp_flags),
        client=_addr(r.saddr, af), cport=int(r.sport), vaddr=_addr(r.daddr, af), vport=int(r.dport),
        in_port=int(r.in_port), svc_id=int(r.svc_id), sched=ffi.string(r.sched).decode(),
        svc_flags=int(r.svc_flags), num_dests=int(r.num_dests), dests=dests,
        template_hit=bool(r.template_hit),
        dest_id=int(r.dest_id), fwd=int(r.fwd), state_before=_state(int(r.proto), int(r.state_before)),
        state_after=_state(int(r.proto), int(r.state_after)),
        conn_daddr=_addr(r.conn_daddr, af) if int(r.dest_id) >= 0 else "", conn_dport=int(r.conn_dport),
        verdict=VERDICTS.get(int(r.verdict), str(int(r.verdict))),
        reason=REASON_NAMES[int(r.reason)] if int(r.reason) < len(REASON_NAMES) else str(int(r.reason)),
        out_port=int(r.out_port), changed=tuple(name for bit, name in CHANGE_BITS if int(r.changed) & bit),
        eth_dst=_mac(r.eth_dst) if tx else "", eth_src=_mac(r.eth_src) if tx else "",
        out_daddr=_addr(r.out_daddr, socket.AF_INET if int(r.changed) & lib.LB_TRACE_CH_ENCAP else af)
        if tx else "",
        len_in=int(r.len_in), len_out=int(r.len_out))


class Tracer:
    """The trace ring of one Core."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._buf = ffi.new("struct lb_trace_rec[]", RING)

    def arm(self, count: int, client: str | None = None, vip: str | None = None, vport: int = 0) -> int:
        """Trace the next `count` new connections (0: stop) from `client` to `vip`:`vport` (None/0: any).
        Returns the sequence number to read after for this arming's records."""
        if not 0 <= count <= 0xFFFFFFFF or not 0 <= vport <= 0xFFFF:
            raise ValueError("count or vport out of range")
        addrs = [ip_address(a) if a else None for a in (client, vip)]
        versions = {a.version for a in addrs if a is not None}
        if len(versions) > 1:
            raise ValueError("client and vip must be of the same address family")
        af = 0 if not versions else (socket.AF_INET6 if versions == {6} else socket.AF_INET)
        raw = [ffi.NULL if a is None else ffi.new("uint8_t[16]", a.packed + bytes(16 - len(a.packed)))
               for a in addrs]
        rc = int(lib.lb_trace_arm(self.core.ptr, count, af, raw[0], raw[1], vport))
        if rc < 0:
            raise OSError(-rc, f"lb_trace_arm: {rc}")
        return rc

    def stop(self) -> None:
        self.arm(0)

    def remaining(self) -> int:
        return int(lib.lb_trace_remaining(self.core.ptr))

    def read(self, after: int = 0) -> list[TraceRecord]:
        """Records with seq > after still in the ring (the ring keeps the last RING), oldest first."""
        n = int(lib.lb_trace_read(self.core.ptr, after, self._buf, RING))
        if n < 0:
            raise OSError(-n, f"lb_trace_read: {n}")
        return [record_from_c(self._buf[i]) for i in range(n)]


__all__ = ["CHANGE_BITS", "DESTS_MAX", "RING", "TraceDest", "TraceRecord", "Tracer", "record_from_c"]
