"""`ConnTable`: the C connection table (csched/include/lb_api_conn.h) as typed Python.

`dump` gives `model.ConnInfo` rows with the kernel's state names (what /proc/net/ip_vs_conn and `ipvsadm -Lnc`
print); `set_timeouts`/`get_timeouts` are `ipvsadm --set` / `--timeout`; the batch calls drive the table
without packets (one cffi crossing per batch): `batch_schedule` (lookup, conn reuse, schedule on a miss, state
transition), `batch_reply` (the NAT reply direction), `batch_lookup` (read-only).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from lb import model
from lb.core.core import Core, Flow
from lb.errors import IpvsError, Op

AF_INET6 = 10

#: TCP header flag bits (what the tcp_flags arguments hold).
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10

#: Kernel IP_VS_CONN_F_* bits that dumps carry.
CONN_F_HASHED = 0x0040
CONN_F_NOOUTPUT = 0x0080
CONN_F_INACTIVE = 0x0100
CONN_F_TEMPLATE = 0x1000
CONN_F_ONE_PACKET = 0x2000


@dataclass(frozen=True, slots=True)
class ConnStats:
    """Counters of the table (lb_conn_get_stats)."""

    entries: int
    templates: int
    refused: int
    created: int
    expired: int
    capacity: int
    entry_size: int
    buckets: int
    bytes: int


def _addr(raw: bytes, af: int) -> model.Addr:
    return IPv6Address(raw) if af == AF_INET6 else IPv4Address(raw[:4])


class ConnTable:
    """The connection table of one `Core`."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.ffi = core.ffi
        self.lib = core.lib
        self._flow_buf: Any = None
        self._flow_cap = 0

    # ---- flows ----

    def _flows(self, flows: Sequence[Flow]) -> Any:
        n = len(flows)
        if n > self._flow_cap:
            self._flow_cap = max(n, 1)
            self._flow_buf = self.ffi.new("struct lb_flow[]", self._flow_cap)
        buf = self._flow_buf
        for i, f in enumerate(flows):
            c = buf[i]
            c.af = AF_INET6 if f.saddr.version == 6 else 2
            c.proto = int(f.proto)
            s, d = f.saddr.packed, f.daddr.packed
            self.ffi.memmove(c.saddr, s + bytes(16 - len(s)), 16)
            self.ffi.memmove(c.daddr, d + bytes(16 - len(d)), 16)
            c.sport = f.sport
            c.dport = f.dport
        return buf

    def _flags(self, flags: Sequence[int] | None, n: int) -> Any:
        if flags is None:
            return self.ffi.NULL
        if len(flags) != n:
            raise ValueError(f"{len(flags)} tcp flags for {n} flows")
        return self.ffi.new("uint8_t[]", list(flags) or [0])

    # ---- batches ----

    def batch_schedule(
        self, flows: Sequence[Flow], flags: Sequence[int] | None = None, now_ns: int = 0
    ) -> list[int]:
        """Each flow's packet inbound: the dest id its conn is bound to, -1 when none (see lb_api_conn.h)."""
        n = len(flows)
        out = self.ffi.new("int32_t[]", max(n, 1))
        self.lib.lb_conn_batch_schedule(
            self.core.ptr, self._flows(flows), n, out, self._flags(flags, n), now_ns
        )
        return list(out[0:n])

    def batch_reply(
        self, flows: Sequence[Flow], flags: Sequence[int] | None = None, now_ns: int = 0
    ) -> list[int]:
        """A reply (dest → client) for each flow's conn: dest id, -1 when the conn is not there."""
        n = len(flows)
        out = self.ffi.new("int32_t[]", max(n, 1))
        self.lib.lb_conn_batch_reply(self.core.ptr, self._flows(flows), n, out, self._flags(flags, n), now_ns)
        return list(out[0:n])

    def batch_lookup(self, flows: Sequence[Flow], now_ns: int = 0) -> list[int]:
        """Read-only inbound lookups: dest id or -1."""
        n = len(flows)
        out = self.ffi.new("int32_t[]", max(n, 1))
        self.lib.lb_conn_batch_lookup(self.core.ptr, self._flows(flows), n, out, now_ns)
        return list(out[0:n])

    def expire(self, now_ns: int, budget: int = 0xFFFFFFFF) -> int:
        """Expire what is due at now_ns (at most budget entries); returns how many went."""
        return int(self.lib.lb_conn_expire_now(self.core.ptr, now_ns, budget))

    def flush(self) -> None:
        self.lib.lb_conn_flush(self.core.ptr)

    # ---- dump ----

    def state_name(self, proto: int, state: int, flags: int) -> str:
        if flags & CONN_F_TEMPLATE:
            return "NONE"  # the kernel's template state (ip_vs_ctpl_state_name_table)
        return str(self.ffi.string(self.lib.lb_conn_state_name(proto, state)).decode())

    def info(self, c: Any) -> model.ConnInfo:
        """One `struct lb_conn_info` as a model.ConnInfo."""
        proto = model.Proto(c.proto) if c.proto in (6, 17, 132) else model.Proto.TCP
        return model.ConnInfo(
            proto=proto,
            caddr=_addr(bytes(self.ffi.buffer(c.caddr, 16)), c.af),
            cport=c.cport,
            vaddr=_addr(bytes(self.ffi.buffer(c.vaddr, 16)), c.af),
            vport=c.vport,
            daddr=_addr(bytes(self.ffi.buffer(c.daddr, 16)), c.af),
            dport=c.dport,
            state=self.state_name(c.proto, c.state, c.flags),
            expires_s=c.expires_ms / 1000.0,
            fwd=model.Fwd(c.fwd),
            flags=c.flags,
            template=bool(c.flags & CONN_F_TEMPLATE),
        )

    def dump(self, now_ns: int = 0) -> list[model.ConnInfo]:
        """The table as `ipvsadm -Lnc` sees it at now_ns (entries past their time left out)."""
        return list(self.iter_dump(now_ns))

    def iter_dump(self, now_ns: int = 0, chunk: int = 1024) -> Iterator[model.ConnInfo]:
        """dump(), read from the core `chunk` entries at a time as it is consumed (the control socket
        streams `-c` this way, handing the data plane back in between).  The cursor is a slot index, so
        entries created or expired meanwhile may be in or out, but none is listed twice."""
        buf = self.ffi.new("struct lb_conn_info[]", chunk)
        cursor = self.ffi.new("uint64_t *", 0)
        while True:
            n = self.lib.lb_conn_dump(self.core.ptr, cursor, buf, chunk, now_ns)
            if n == 0:
                return
            yield from [self.info(buf[i]) for i in range(n)]

    # ---- timeouts and counters ----

    def set_timeouts(self, t: model.Timeouts) -> None:
        """`ipvsadm --set tcp tcpfin udp` (0 leaves a value unchanged)."""
        rc = self.lib.lb_timeout_set(self.core.ptr, t.tcp, t.tcpfin, t.udp)
        if rc < 0:
            raise IpvsError(Op.SET_TIMEOUT, -rc, str(t))

    def get_timeouts(self) -> model.Timeouts:
        tcp = self.ffi.new("uint32_t *")
        fin = self.ffi.new("uint32_t *")
        udp = self.ffi.new("uint32_t *")
        self.lib.lb_timeout_get(self.core.ptr, tcp, fin, udp)
        return model.Timeouts(tcp[0], fin[0], udp[0])

    def stats(self) -> ConnStats:
        s = self.ffi.new("struct lb_conn_stats *")
        self.lib.lb_conn_get_stats(self.core.ptr, s)
        return ConnStats(
            s.entries,
            s.templates,
            s.refused,
            s.created,
            s.expired,
            s.capacity,
            s.entry_size,
            s.buckets,
            s.bytes,
        )
