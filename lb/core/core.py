"""`Core`: the sole owner of one C `lb_core *` (argon2-cffi's low_level.py role).

Everything that configures the C core goes through here: services and destinations as `lb.model` objects are
converted to the C structs in one place (`_svc_cfg`, `_dest_cfg`), and every C return code passes through
`_check`, which turns `-errno` into `lb.errors.IpvsError` carrying ipvsadm's message for that operation.
Packet batches (lb/core/batch.py) and the connection table (lb/core/conn.py) use `Core.ffi/.lib/.ptr`.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from lb import model
from lb.core._ffi import ffi, lib
from lb.errors import IpvsError, Op

# Connection accounting events (LB_EV_* in lb_api.h).
EV_BIND_ACTIVE = lib.LB_EV_BIND_ACTIVE
EV_BIND_INACTIVE = lib.LB_EV_BIND_INACTIVE
EV_BIND_TEMPLATE = lib.LB_EV_BIND_TEMPLATE
EV_TO_INACTIVE = lib.LB_EV_TO_INACTIVE
EV_TO_ACTIVE = lib.LB_EV_TO_ACTIVE
EV_UNBIND_ACTIVE = lib.LB_EV_UNBIND_ACTIVE
EV_UNBIND_INACTIVE = lib.LB_EV_UNBIND_INACTIVE
EV_UNBIND_TEMPLATE = lib.LB_EV_UNBIND_TEMPLATE

DEST_F_AVAILABLE = lib.LB_DEST_F_AVAILABLE
DEST_F_OVERLOAD = lib.LB_DEST_F_OVERLOAD


@dataclass(frozen=True, slots=True)
class Flow:
    """A new connection as a scheduler sees it: client address:port → virtual address:port."""

    saddr: model.Addr
    sport: int
    daddr: model.Addr
    dport: int
    proto: model.Proto = model.Proto.TCP


@dataclass(frozen=True, slots=True)
class DestInfo:
    """A destination as the C core holds it: configuration, id, flags and connection counts."""

    id: int
    dest: model.Dest
    flags: int
    activeconns: int
    inactconns: int
    persistconns: int
    last_weight: int
    stats: model.Stats
    rates: model.Rates = field(default_factory=model.Rates)

    @property
    def overloaded(self) -> bool:
        return bool(self.flags & DEST_F_OVERLOAD)


def _af(addr: model.Addr) -> int:
    return socket.AF_INET6 if addr.version == 6 else socket.AF_INET


def _put_addr(field: Any, addr: model.Addr) -> None:
    raw = addr.packed
    ffi.memmove(field, raw + bytes(16 - len(raw)), 16)


def _get_addr(field: Any, af: int) -> model.Addr:
    raw = bytes(ffi.buffer(field, 16))
    return IPv6Address(raw) if af == socket.AF_INET6 else IPv4Address(raw[:4])


def _stats(s: Any) -> model.Stats:
    return model.Stats(s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes)


def _rates(r: Any) -> model.Rates:
    return model.Rates(r.cps, r.inpps, r.outpps, r.inbps, r.outbps)


class Core:
    """One balancer core (services, destinations, connection table) in C."""

    def __init__(self, conn_max: int = 65536, svc_max: int = 256, dest_max: int = 4096, hash_seed: int = 0,
                 rng_seed: int = 1) -> None:
        self.ffi = ffi
        self.lib = lib
        cfg = ffi.new("struct lb_core_cfg *", {"conn_max": conn_max, "svc_max": svc_max, "dest_max": dest_max,
                                               "hash_seed": hash_seed, "rng_seed": rng_seed})
        ptr = lib.lb_core_new(cfg)
        if ptr == ffi.NULL:
            raise MemoryError(
                f"lb_core_new failed (conn_max={conn_max}, svc_max={svc_max}, dest_max={dest_max})")
        self.ptr = ffi.gc(ptr, lib.lb_core_free)
        self.conn_max = conn_max
        self.svc_max = svc_max
        self.dest_max = dest_max
        self._cfg_cache: dict[model.ServiceKey, Any] = {}

    # ---- conversions: the only place model fields meet C fields ----

    @staticmethod
    def _svc_key_cfg(key: model.ServiceKey) -> Any:
        c = ffi.new("struct lb_svc_cfg *")
        c.af = _af(key.addr)
        c.proto = int(key.proto)
        _put_addr(c.addr, key.addr)
        c.port = key.port
        c.fwmark = key.fwmark
        return c

    @classmethod
    def _svc_cfg(cls, svc: model.Service) -> Any:
        c = cls._svc_key_cfg(svc.key)
        name = svc.sched.encode()
        if len(name) >= lib.LB_SCHED_NAME_MAX:
            raise IpvsError(Op.ADD_SERVICE, 2, f"scheduler name {svc.sched!r} too long")
        c.sched = name
        c.flags = svc.flags
        c.timeout = svc.timeout
        c.netmask = svc.netmask
        return c

    @staticmethod
    def _dest_cfg(dest: model.Dest | model.DestKey) -> Any:
        c = ffi.new("struct lb_dest_cfg *")
        c.af = _af(dest.addr)
        c.port = dest.port
        _put_addr(c.addr, dest.addr)
        if isinstance(dest, model.Dest):
            c.fwd = int(dest.fwd)
            c.weight = dest.weight
            c.u_threshold = dest.u_threshold
            c.l_threshold = dest.l_threshold
        return c

    def svc_cfg(self, key: model.ServiceKey) -> Any:
        """A cached `struct lb_svc_cfg *` naming service `key` (for batch calls)."""
        c = self._cfg_cache.get(key)
        if c is None:
            c = self._cfg_cache[key] = self._svc_key_cfg(key)
        return c

    @staticmethod
    def _check(op: Op, rc: int, detail: object = "") -> int:
        """rc, or IpvsError(op, -rc, str(detail)) when rc < 0 (detail is made a string only then: a
        10 000-service change set would otherwise spend ~0.2 s formatting keys nobody reads)."""
        if rc < 0:
            raise IpvsError(op, -rc, str(detail))
        return rc

    # ---- services ----

    def add_service(self, svc: model.Service) -> None:
        self._check(Op.ADD_SERVICE, lib.lb_svc_add(self.ptr, self._svc_cfg(svc)), svc.key)

    def edit_service(self, svc: model.Service) -> None:
        self._check(Op.EDIT_SERVICE, lib.lb_svc_edit(self.ptr, self._svc_cfg(svc)), svc.key)

    def del_service(self, key: model.ServiceKey) -> None:
        self._check(Op.DEL_SERVICE, lib.lb_svc_del(self.ptr, self._svc_key_cfg(key)), key)

    def flush(self) -> None:
        self._check(Op.FLUSH, lib.lb_svc_flush(self.ptr))

    def zero(self, key: model.ServiceKey | None = None) -> None:
        arg = ffi.NULL if key is None else self._svc_key_cfg(key)
        self._check(Op.ZERO, lib.lb_svc_zero(self.ptr, arg))

    def _service_from_info(self, info: Any) -> model.Service:
        c = info.cfg
        addr = _get_addr(c.addr, c.af)
        key = model.ServiceKey(model.Proto(c.proto), addr, c.port, c.fwmark)
        return model.Service(key, ffi.string(c.sched).decode(), c.flags, c.timeout, c.netmask)

    def _status_of(self, info: Any) -> model.ServiceStatus:
        svc = self._service_from_info(info)
        dests = tuple(model.DestStatus(d.dest, d.activeconns, d.inactconns, d.persistconns, d.stats, d.rates)
                      for d in self.dest_infos(svc.key))
        return model.ServiceStatus(svc, dests, _stats(info.stats), _rates(info.rates))

    def services(self) -> list[model.ServiceStatus]:
        """Every service with its destinations (kernel list order: newest first) and counters."""
        n = lib.lb_svc_list(self.ptr, ffi.NULL, 0)
        buf = ffi.new("struct lb_svc_info[]", max(n, 1))
        n = min(self._check(Op.GET_SERVICES, lib.lb_svc_list(self.ptr, buf, n)), n)
        return [self._status_of(buf[i]) for i in range(n)]

    def dest_view(self) -> list[tuple[model.ServiceKey, list[tuple[int, model.Addr, model.Fwd]]]]:
        """Every service's key with its dests' (id, address, forwarding method), list order, read straight
        from the C lists: what the run loop's next-hop and guard view needs after every change set,
        without building the counters and model objects of services() (0.6 s at 10 000 services)."""
        n = lib.lb_svc_list(self.ptr, ffi.NULL, 0)
        buf = ffi.new("struct lb_svc_info[]", max(n, 1))
        n = min(self._check(Op.GET_SERVICES, lib.lb_svc_list(self.ptr, buf, n)), n)
        dbuf, cap = ffi.new("struct lb_dest_info[]", 16), 16
        out = []
        for i in range(n):
            c = buf[i].cfg
            key = model.ServiceKey(model.Proto(c.proto), _get_addr(c.addr, c.af), c.port, c.fwmark)
            cfg = ffi.addressof(buf[i], "cfg")
            m = self._check(Op.GET_DESTS, lib.lb_dest_list(self.ptr, cfg, ffi.NULL, 0), key)
            if m > cap:
                dbuf, cap = ffi.new("struct lb_dest_info[]", m), m
            m = min(self._check(Op.GET_DESTS, lib.lb_dest_list(self.ptr, cfg, dbuf, m)), m)
            out.append((key, [(int(dbuf[j].id), _get_addr(dbuf[j].cfg.addr, dbuf[j].cfg.af),
                                model.Fwd(dbuf[j].cfg.fwd)) for j in range(m)]))
        return out

    def service_status(self, key: model.ServiceKey) -> model.ServiceStatus:
        """One service as services() shows it (IpvsError ESRCH when there is no such service)."""
        info = ffi.new("struct lb_svc_info *")
        self._check(Op.GET_SERVICE, lib.lb_svc_get(self.ptr, self._svc_key_cfg(key), info), key)
        return self._status_of(info)

    def estimate(self) -> None:
        """One 2-second step of the C rate estimator over every service and dest (ip_vs_est.c's timer)."""
        lib.lb_est_tick(self.ptr)

    def service_stats(self, key: model.ServiceKey) -> model.Stats:
        info = ffi.new("struct lb_svc_info *")
        self._check(Op.GET_SERVICE, lib.lb_svc_get(self.ptr, self._svc_key_cfg(key), info), key)
        return _stats(info.stats)

    # ---- destinations ----

    def add_dest(self, key: model.ServiceKey, dest: model.Dest) -> None:
        self._check(Op.ADD_DEST, lib.lb_dest_add(self.ptr, self._svc_key_cfg(key), self._dest_cfg(dest)))

    def edit_dest(self, key: model.ServiceKey, dest: model.Dest) -> None:
        self._check(Op.EDIT_DEST, lib.lb_dest_edit(self.ptr, self._svc_key_cfg(key), self._dest_cfg(dest)))

    def del_dest(self, key: model.ServiceKey, dkey: model.DestKey | model.Dest) -> None:
        self._check(Op.DEL_DEST, lib.lb_dest_del(self.ptr, self._svc_key_cfg(key), self._dest_cfg(dkey)))

    @staticmethod
    def _dest_info(d: Any) -> DestInfo:
        c = d.cfg
        dest = model.Dest(_get_addr(c.addr, c.af), c.port, model.Fwd(c.fwd), c.weight, c.u_threshold,
                          c.l_threshold)
        return DestInfo(d.id, dest, d.flags, d.activeconns, d.inactconns, d.persistconns, d.last_weight,
                        _stats(d.stats), _rates(d.rates))

    def dest_infos(self, key: model.ServiceKey) -> list[DestInfo]:
        """The service's destinations in the kernel's list order (newest first)."""
        cfg = self._svc_key_cfg(key)
        n = self._check(Op.GET_DESTS, lib.lb_dest_list(self.ptr, cfg, ffi.NULL, 0), key)
        buf = ffi.new("struct lb_dest_info[]", max(n, 1))
        n = min(self._check(Op.GET_DESTS, lib.lb_dest_list(self.ptr, cfg, buf, n)), n)
        return [self._dest_info(buf[i]) for i in range(n)]

    def dest_id(self, key: model.ServiceKey, dkey: model.DestKey | model.Dest) -> int | None:
        """The id of the service's dest `dkey`, or None when there is no such dest (or service)."""
        rc = lib.lb_dest_id(self.ptr, self._svc_key_cfg(key), self._dest_cfg(dkey))
        return int(rc) if rc >= 0 else None

    def dest_info(self, dest_id: int) -> DestInfo:
        out = ffi.new("struct lb_dest_info *")
        self._check(Op.GET_DESTS, lib.lb_dest_info_by_id(self.ptr, dest_id, out), f"dest id {dest_id}")
        return self._dest_info(out[0])

    def dest_event(self, dest_id: int, event: int) -> None:
        """Move a destination's connection counts as a connection event would (LB_EV_*)."""
        self._check(Op.EDIT_DEST, lib.lb_dest_conn_event(self.ptr, dest_id, event), f"dest id {dest_id}")

    def set_nexthop(self, dest_id: int, port: int, mac: bytes) -> None:
        self._check(Op.EDIT_DEST, lib.lb_dest_set_nexthop(self.ptr, dest_id, port, mac), f"dest id {dest_id}")

    def set_port(self, port: int, mac: bytes, ip4: IPv4Address | None, mtu: int) -> None:
        ip = ffi.NULL if ip4 is None else ip4.packed
        rc = lib.lb_port_set(self.ptr, port, mac, ip, mtu)
        if rc < 0:
            raise ValueError(f"bad port {port} (mac {mac.hex(':')}, ip {ip4}, mtu {mtu})")

    # ---- scheduling without packets ----

    def sched_batch(self, key: model.ServiceKey, flows: Sequence[Flow], now_ns: int = 0) -> list[int]:
        """The dest id the scheduler picks for each flow (-1: none available); no connection is created."""
        n = len(flows)
        buf = ffi.new("struct lb_flow[]", max(n, 1))
        for i, f in enumerate(flows):
            c = buf[i]
            c.af = _af(f.saddr)
            c.proto = int(f.proto)
            _put_addr(c.saddr, f.saddr)
            _put_addr(c.daddr, f.daddr)
            c.sport = f.sport
            c.dport = f.dport
        out = ffi.new("int32_t[]", max(n, 1))
        rc = lib.lb_sched_batch(self.ptr, self.svc_cfg(key), buf, n, out, now_ns)
        self._check(Op.GET_SERVICE, rc, key)
        return list(out[0:n])

    def tick(self, now_ns: int) -> None:
        lib.lb_core_tick(self.ptr, now_ns)
