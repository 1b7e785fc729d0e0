"""`PyCore`: the Python engine behind the same control interface as the C `lb.core.core.Core`.

`lb run --engine python` processes frames with `PythonEngine` (lb/engine/python.py).  To let `lbadm` configure
and list that engine, `PyCore` gives it the methods ConfigState (lb/state.py), the control socket server
(lb/daemon/server.py), the worker snapshots (lb/io/workers.py) and the run loop (lb/io/loop.py) call on a
`Core`: add/edit/delete services and dests, flush, zero, `services()`, `dest_infos()`, dest ids, next hops,
ports, `tick`, `sched_batch`, `--set` timeouts, the connection table for `-c`.

The rules are csched/src/service.c's, checked in the same order and refused with the same
`IpvsError(op, errno)` (the kernel's ip_vs_ctl.c order; tests/unit/test_engine_control.py runs every command
through both and compares):

- a service is found by (family, protocol, address, port), a firewall-mark service by (family, mark) alone,
  and it is reported as the C core holds it: mark services as TCP on the zero address, port 0, and every
  service with the HASHED flag set;
- services sit in slots (lowest free slot first, `svc_max` of them), and are listed in slot order; dests too
  (`dest_max` slots shared by all services); a dest's slot number is its id (what the next-hop resolver and
  ApplyResult use);
- `ipvsadm -d` (and `-D`, `-C`) unlinks a dest: it is no longer AVAILABLE, but while connections still point
  at it, it stays "in the trash" with its counts, stats and slot; `-a` of the same address:port on the same
  service brings it back as it was (the kernel's ip_vs_trash_get_dest).  A trashed dest nothing points at any
  more is freed the next time slots are looked at;
- `--set` refuses a timeout above INT_MAX / HZ (EINVAL) and leaves a 0 value unchanged.

ConfigState still calls two things through `core.lib` (the scheduler names, and the timeouts via
`lb.core.conn.ConnTable`): `PyCore.lib`/`PyCore.ffi` are two small stand-ins that answer exactly those calls
from this engine.  `ptr` is None: there is no C core (so `lb trace` says it needs the C data plane).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from lb import model
from lb.core.core import DestInfo, Flow
from lb.engine.python import Counters, Hop, PythonEngine
from lb.errors import IpvsError, Op
from lb.fwd.parse import Reason, Verdict
from lb.fwd.xmit import MAX_PORTS
from lb.sched.ref import SCHEDULERS, RefDest, RefFlow, RefService, service_from_model
from lb.sched.ref.base import (
    DEST_F_AVAILABLE,
    EV_BIND_ACTIVE,
    EV_UNBIND_TEMPLATE,
)

#: csched/include/lb_api.h LB_SCHED_NAME_MAX (a name must fit with its NUL).
SCHED_NAME_MAX = 16
#: conn.c LB_TIMEOUT_MAX: the kernel refuses timeouts above INT_MAX / HZ (HZ 250).
TIMEOUT_MAX = 2147483647 // 250


def _zero_addr(v6: bool) -> model.Addr:
    return IPv6Address(0) if v6 else IPv4Address(0)


def core_key(key: model.ServiceKey) -> model.ServiceKey:
    """The key as the C core stores it: a mark service is (TCP, zero address of its family, 0, mark)."""
    if key.fwmark:
        return model.ServiceKey(model.Proto.TCP, _zero_addr(key.is_v6), 0, key.fwmark)
    return key


class _Ffi:
    """What lb.state / lb.core.conn.ConnTable ask of `core.ffi` (out-parameters and C strings)."""

    @staticmethod
    def new(ctype: str, init: Any = None) -> list[Any]:
        del ctype
        return [0 if init is None else init]

    @staticmethod
    def string(value: Any) -> bytes:
        return bytes(value)


class _Lib:
    """What lb.state / ConnTable call through `core.lib`, answered from the Python engine."""

    def __init__(self, core: PyCore) -> None:
        self._core = core
        self._names = [n.encode() for n in SCHEDULERS]

    def lb_sched_count(self) -> int:
        return len(self._names)

    def lb_sched_name(self, i: int) -> bytes:
        return self._names[i]

    def lb_timeout_set(self, ptr: Any, tcp: int, tcpfin: int, udp: int) -> int:
        del ptr
        try:
            self._core.set_timeouts(model.Timeouts(tcp, tcpfin, udp))
        except IpvsError as exc:
            return -exc.errno
        return 0

    def lb_timeout_get(self, ptr: Any, tcp: list[int], tcpfin: list[int], udp: list[int]) -> None:
        del ptr
        t = self._core.get_timeouts()
        tcp[0], tcpfin[0], udp[0] = t.tcp, t.tcpfin, t.udp


class PyCore:
    """A `PythonEngine` configured and listed like `lb.core.core.Core`."""

    ptr = None

    def __init__(self, engine: PythonEngine | None = None, *, conn_max: int = 65536, svc_max: int = 256,
                 dest_max: int = 4096, rng_seed: int = 1) -> None:
        self.engine = engine if engine is not None else PythonEngine(conn_max=conn_max, rng_seed=rng_seed)
        self.conn_max = self.engine.conn_max
        self.svc_max = svc_max
        self.dest_max = dest_max
        self.ffi = _Ffi()
        self.lib = _Lib(self)
        #: slot -> service (list order = slot order, as lb_svc_list)
        self._svc_slots: dict[int, RefService] = {}
        #: slot (dest id) -> dest, linked or in the trash
        self._dest_slots: dict[int, RefDest] = {}
        self._dest_ids: dict[RefDest, int] = {}
        #: the service object a dest was linked to (a trashed dest comes back only to that one)
        self._owner: dict[RefDest, RefService] = {}
        for key, svc in list(self.engine.table.services.items()):   # an engine configured before
            self._svc_slots[len(self._svc_slots)] = svc
            for d in reversed(svc.dests):
                self._take_id(d, svc, key)

    @property
    def sched_names(self) -> list[str]:
        return list(SCHEDULERS)

    # ---- lookups ----

    def _find(self, op: Op, key: model.ServiceKey) -> RefService:
        svc = self.engine.table.services.get(core_key(key))
        if svc is None:
            raise IpvsError(op, errno.ESRCH, str(key))
        return svc

    def _referenced(self) -> set[int]:
        return {id(c.dest) for c in self.engine.table.entries.values() if c.dest is not None}

    def _sweep(self) -> None:
        """Free trashed dests that no connection points at any more (lb_dest_put)."""
        trash = [d for d in self._dest_slots.values() if not d.flags & DEST_F_AVAILABLE]
        if not trash:
            return
        used = self._referenced()
        for d in trash:
            if id(d) not in used:
                self._free(d)

    def _free(self, d: RefDest) -> None:
        del self._dest_slots[self._dest_ids.pop(d)]
        self._owner.pop(d, None)
        self.engine.hops.pop(d, None)
        self.engine.dest_stats.pop(d, None)
        self.engine.dest_svc.pop(d, None)

    def _take_id(self, d: RefDest, svc: RefService, key: model.ServiceKey) -> int:
        i = next(i for i in range(self.dest_max + 1) if i not in self._dest_slots)
        self._dest_slots[i] = d
        self._dest_ids[d] = i
        self._owner[d] = svc
        self.engine.hops.setdefault(d, Hop())
        self.engine.dest_stats.setdefault(d, Counters())
        self.engine.dest_svc[d] = key
        return i

    def _by_id(self, op: Op, dest_id: int) -> RefDest:
        self._sweep()
        d = self._dest_slots.get(dest_id)
        if d is None:
            raise IpvsError(op, errno.ENOENT, f"dest id {dest_id}")
        return d

    # ---- services ----

    @staticmethod
    def _check_service(svc: model.Service) -> None:
        """svc_cfg_check, then the scheduler lookup (Core converts the name first: too long is ENOENT)."""
        if len(svc.sched.encode()) >= SCHED_NAME_MAX:
            raise IpvsError(Op.ADD_SERVICE, errno.ENOENT, f"scheduler name {svc.sched!r} too long")
        if svc.key.is_v6 and svc.persistent and not 1 <= svc.netmask <= 128:
            raise IpvsError(Op.ADD_SERVICE, errno.EINVAL, "IPv6 netmask")

    @staticmethod
    def _user_flags(flags: int) -> int:
        return flags & ~model.SVC_F_HASHED

    def add_service(self, svc: model.Service) -> None:
        self._check_service(svc)
        if svc.sched not in SCHEDULERS:
            raise IpvsError(Op.ADD_SERVICE, errno.ENOENT, svc.sched)
        key = core_key(svc.key)
        if key in self.engine.table.services:
            raise IpvsError(Op.ADD_SERVICE, errno.EEXIST, str(svc.key))
        slot = next((i for i in range(self.svc_max) if i not in self._svc_slots), None)
        if slot is None:
            raise IpvsError(Op.ADD_SERVICE, errno.ENOMEM, "service table full")
        ref = service_from_model(svc.replace(key=key, flags=self._user_flags(svc.flags)))
        self._svc_slots[slot] = ref
        self.engine.table.services[key] = ref
        self.engine.svc_stats[key] = Counters()

    def edit_service(self, svc: model.Service) -> None:
        try:
            self._check_service(svc)
        except IpvsError as exc:
            if exc.errno == errno.EINVAL:
                raise IpvsError(Op.EDIT_SERVICE, exc.errno, str(svc.key)) from None
            raise
        if svc.sched not in SCHEDULERS:
            raise IpvsError(Op.EDIT_SERVICE, errno.ENOENT, svc.sched)
        ref = self._find(Op.EDIT_SERVICE, svc.key)
        if ref.scheduler.name != svc.sched:
            ref.set_scheduler(SCHEDULERS[svc.sched]())
        ref.flags = self._user_flags(svc.flags)
        ref.timeout = svc.timeout
        ref.netmask = svc.netmask

    def _destroy(self, key: model.ServiceKey, ref: RefService) -> None:
        """__ip_vs_del_service: unbind the scheduler, move every dest to the trash (no del_dest hooks)."""
        ref.scheduler.done_service(ref)
        ref.sched_data = None
        used = self._referenced()
        for d in list(ref.dests):
            d.flags &= ~DEST_F_AVAILABLE
            if id(d) not in used:
                self._free(d)
        ref.dests.clear()
        del self.engine.table.services[key]
        del self.engine.svc_stats[key]
        slot = next(i for i, s in self._svc_slots.items() if s is ref)
        del self._svc_slots[slot]

    def del_service(self, key: model.ServiceKey) -> None:
        self._destroy(core_key(key), self._find(Op.DEL_SERVICE, key))

    def flush(self) -> None:
        for slot in sorted(self._svc_slots):
            ref = self._svc_slots[slot]
            self._destroy(ref.key, ref)

    def zero(self, key: model.ServiceKey | None = None) -> None:
        e = self.engine
        if key is not None:
            ref = self._find(Op.ZERO, key)
            e.svc_stats[ref.key] = Counters()
            for d in ref.dests:
                e.dest_stats[d] = Counters()
            return
        for k in e.svc_stats:
            e.svc_stats[k] = Counters()
        for d in self._dest_slots.values():
            e.dest_stats[d] = Counters()

    def _service_model(self, ref: RefService) -> model.Service:
        return model.Service(ref.key, ref.scheduler.name, ref.flags | model.SVC_F_HASHED, ref.timeout,
                             ref.netmask)

    def _dest_info(self, d: RefDest) -> DestInfo:
        dest = model.Dest(d.addr, d.port, model.Fwd(d.fwd), d.weight, d.u_threshold, d.l_threshold)
        return DestInfo(self._dest_ids[d], dest, d.flags, d.activeconns, d.inactconns, d.persistconns,
                        d.last_weight, self.engine.dest_stats[d].as_model())

    def _status_of(self, ref: RefService) -> model.ServiceStatus:
        dests = tuple(model.DestStatus(i.dest, i.activeconns, i.inactconns, i.persistconns, i.stats)
                      for i in (self._dest_info(d) for d in ref.dests))
        return model.ServiceStatus(self._service_model(ref), dests, self.engine.svc_stats[ref.key].as_model())

    def services(self) -> list[model.ServiceStatus]:
        """Every service (slot order) with its dests (newest first) and counters, as Core.services."""
        return [self._status_of(self._svc_slots[slot]) for slot in sorted(self._svc_slots)]

    def dest_view(self) -> list[tuple[model.ServiceKey, list[tuple[int, model.Addr, model.Fwd]]]]:
        """As Core.dest_view: every service's key with its dests' (id, address, forwarding method)."""
        out = []
        for slot in sorted(self._svc_slots):
            ref = self._svc_slots[slot]
            infos = [self._dest_info(d) for d in ref.dests]
            out.append((self._service_model(ref).key, [(i.id, i.dest.addr, i.dest.fwd) for i in infos]))
        return out

    def service_status(self, key: model.ServiceKey) -> model.ServiceStatus:
        """One service as services() shows it (IpvsError ESRCH when there is no such service)."""
        return self._status_of(self._find(Op.GET_SERVICE, key))

    def service_stats(self, key: model.ServiceKey) -> model.Stats:
        return self.engine.svc_stats[self._find(Op.GET_SERVICE, key).key].as_model()

    # ---- destinations ----

    def add_dest(self, key: model.ServiceKey, dest: model.Dest) -> None:
        ref = self._find(Op.ADD_DEST, key)
        RefService._check(Op.ADD_DEST, dest)
        if ref.find(dest.key) is not None:
            raise IpvsError(Op.ADD_DEST, errno.EEXIST, str(dest.key))
        self._sweep()
        for d in self._dest_slots.values():
            if not d.flags & DEST_F_AVAILABLE and self._owner.get(d) is ref and d.key == dest.key:
                # back from the trash with its counts, stats, next hop and id (ip_vs_trash_get_dest)
                RefService._update(d, dest, add=True)
                ref.dests.insert(0, d)
                ref.scheduler.add_dest(ref, d)
                return
        if len(self._dest_slots) >= self.dest_max:
            raise IpvsError(Op.ADD_DEST, errno.ENOMEM, "dest table full")
        d = ref.add_dest(dest)
        self._take_id(d, ref, ref.key)

    def edit_dest(self, key: model.ServiceKey, dest: model.Dest) -> None:
        self._find(Op.EDIT_DEST, key).edit_dest(dest)

    def del_dest(self, key: model.ServiceKey, dkey: model.DestKey | model.Dest) -> None:
        ref = self._find(Op.DEL_DEST, key)
        d = ref.del_dest(dkey)
        if id(d) not in self._referenced():
            self._free(d)

    def dest_infos(self, key: model.ServiceKey) -> list[DestInfo]:
        """The service's dests in list order (newest first)."""
        return [self._dest_info(d) for d in self._find(Op.GET_DESTS, key).dests]

    def dest_info(self, dest_id: int) -> DestInfo:
        return self._dest_info(self._by_id(Op.GET_DESTS, dest_id))

    def dest_event(self, dest_id: int, event: int) -> None:
        d = self._by_id(Op.EDIT_DEST, dest_id)
        if not EV_BIND_ACTIVE <= event <= EV_UNBIND_TEMPLATE:
            raise IpvsError(Op.EDIT_DEST, errno.EINVAL, f"event {event}")
        try:
            d.account(event)
        except ValueError as exc:
            raise IpvsError(Op.EDIT_DEST, errno.EINVAL, str(exc)) from None

    def set_nexthop(self, dest_id: int, port: int, mac: bytes | None) -> None:
        d = self._by_id(Op.EDIT_DEST, dest_id)
        if not -1 <= port < MAX_PORTS:
            raise IpvsError(Op.EDIT_DEST, errno.EINVAL, f"port {port}")
        old = self.engine.hops.get(d, Hop())
        self.engine.hops[d] = Hop(port, bytes(mac) if mac is not None else old.nh_mac)

    def set_port(self, port: int, mac: bytes, ip4: IPv4Address | None, mtu: int) -> None:
        if not 0 <= port < MAX_PORTS or len(mac) != 6:
            raise ValueError(f"bad port {port} (mac {bytes(mac).hex(':')}, ip {ip4}, mtu {mtu})")
        self.engine.set_port(port, mac, ip4, mtu)

    # ---- timeouts and the connection table ----

    def set_timeouts(self, t: model.Timeouts) -> None:
        """`ipvsadm --set tcp tcpfin udp` (0 leaves a value unchanged)."""
        if max(t.tcp, t.tcpfin, t.udp) > TIMEOUT_MAX or min(t.tcp, t.tcpfin, t.udp) < 0:
            raise IpvsError(Op.SET_TIMEOUT, errno.EINVAL, str(t))
        old = self.engine.table.timeouts
        new = model.Timeouts(t.tcp or old.tcp, t.tcpfin or old.tcpfin, t.udp or old.udp)
        self.engine.table.timeouts = new

    def get_timeouts(self) -> model.Timeouts:
        return self.engine.table.timeouts

    def conns(self, now_ns: int) -> list[model.ConnInfo]:
        """The connection table as `ipvsadm -Lnc` sees it at now_ns (ConnTable.dump)."""
        return self.engine.table.dump(now_ns)

    def conns_now(self) -> list[model.ConnInfo]:
        """`conns` at time.monotonic_ns(), the clock the run loop passes the engine (the Server's `conns`)."""
        return self.conns(time.monotonic_ns())

    # ---- scheduling, timers, packets ----

    def sched_batch(self, key: model.ServiceKey, flows: Sequence[Flow], now_ns: int = 0) -> list[int]:
        """The dest id the scheduler picks for each flow (-1: none); no conn is made (lb_sched_batch)."""
        ref = self._find(Op.GET_SERVICE, key)
        rng = self.engine.table.rng
        out = []
        for f in flows:
            d = ref.schedule(RefFlow(f.saddr, f.sport, f.daddr, f.dport, f.proto), now_ns, rng)
            out.append(-1 if d is None else self._dest_ids[d])
        return out

    def tick(self, now_ns: int) -> None:
        """lb_core_tick: scheduler timers (slot order), then expiry."""
        for slot in sorted(self._svc_slots):
            self._svc_slots[slot].tick(now_ns)
        self.engine.table.expire(now_ns)

    def process(self, frame: bytearray, in_port: int, now_ns: int) -> tuple[int, int, int]:
        """One frame through the engine for lb.io.loop.PyDataplane: (verdict, out port, length); the frame
        is replaced by what leaves (TX)."""
        res = self.engine.process([(bytes(frame), in_port)], now_ns)[0]
        if res.verdict == Verdict.TX:
            frame[:] = res.frame
            return int(Verdict.TX), res.out_port, len(res.frame)
        return int(res.verdict), in_port, len(frame)

    def metric_families(self) -> list[Any]:
        """lb.metrics.core_families for this engine: packets by reason, connection-table fill."""
        from lb.metrics import Family  # noqa: PLC0415 - only a --metrics balancer needs it

        t = self.engine.table
        templates = sum(1 for c in t.entries.values() if c.template)
        return [
            Family("pyvs_packets_by_reason_total", "counter",
                   "Packets by verdict reason (drops: NO_DEST, CONN_FULL, ...; see `lb explain`)",
                   [({"reason": r.name}, self.engine.reason_count[r]) for r in Reason]),
            Family("pyvs_conn_table_entries", "gauge", "Connection table entries (conns + templates)",
                   [({}, len(t.entries))]),
            Family("pyvs_conn_table_templates", "gauge", "Persistence templates in the table",
                   [({}, templates)]),
            Family("pyvs_conn_table_capacity", "gauge", "Connection table capacity", [({}, t.conn_max)]),
            Family("pyvs_conn_table_refused_total", "counter", "New connections refused: table full",
                   [({}, t.refused)]),
        ]


__all__ = ["PyCore", "core_key"]
