"""ConfigState: the balancer's configuration, changed atomically (the kernel's ip_vs_ctl.c for pyvs).

Every change set (one lbadm command, a whole `-R` file, `load_rules`) goes through `apply(changes)`:
1. validate: the changes are played on a copy of the model, with the kernel's checks and errnos in the
   kernel's order (EEXIST before a bad scheduler on -A, ESRCH before anything on dest commands, ...); the
   first failure raises `IpvsError` and nothing has been touched;
2. apply: each change is made on the C core, and its inverse is recorded;
3. on any failure in 2 (a table that turns out full: ENOMEM), the inverses run in reverse order, so the
   core is back where it was, and the error is raised.
Counters cannot be restored by an undo: a `-Z` applied before a later failure stays applied, and a service
re-created by an undo starts with fresh counters (the connection table is never touched by an undo).

The model view (services in the order they were added, dests newest first as the kernel lists them, the
timeouts) lives here; live numbers (counters, connection counts) are read from the core, rates from the
estimator that `tick(now)` feeds.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lb import model
from lb.config import Change, parse_rules_checked
from lb.errors import IpvsError, Op
from lb.estimator import Estimator

Undo = Callable[[], None]


@dataclass
class ApplyResult:
    """What an applied change set did: ids of dests added or edited (the run loop resolves their next hops),
    and of dests that left their service."""

    changed_dest_ids: list[int] = field(default_factory=list)
    removed_dest_ids: list[int] = field(default_factory=list)


def _unusable_dest_addr(addr: model.Addr) -> bool:
    return addr.is_multicast or addr.is_unspecified or (addr.version == 4 and str(addr) == "255.255.255.255")


class _Model:
    """The configuration as plain data (copyable for validation)."""

    def __init__(self) -> None:
        self.services: dict[model.ServiceKey, model.Service] = {}
        self.dests: dict[model.ServiceKey, list[model.Dest]] = {}
        self.timeouts = model.Timeouts()

    def copy(self) -> _Model:
        m = _Model()
        m.services = dict(self.services)
        m.dests = {k: list(v) for k, v in self.dests.items()}
        m.timeouts = self.timeouts
        return m

    def find_dest(self, key: model.ServiceKey, dkey: model.DestKey) -> int:
        for i, d in enumerate(self.dests[key]):
            if d.key == dkey:
                return i
        return -1


class ConfigState:
    """The configuration of one Core, with atomic change sets."""

    def __init__(self, core: Any, sched_names: Iterable[str] | None = None) -> None:
        self.core = core
        self._m = _Model()
        self.lock = threading.RLock()
        #: bumped by every apply: a change set validated at one version needs no second validation at it
        self.version = 0
        if sched_names is None:
            lib, ffi = core.lib, core.ffi
            sched_names = [ffi.string(lib.lb_sched_name(i)).decode() for i in range(lib.lb_sched_count())]
        self.sched_names = frozenset(sched_names)
        self.svc_max: int = getattr(core, "svc_max", 1 << 30)
        self.estimator = Estimator()
        # The C core keeps its own estimator (csched/src/estimator.c, stepped by `core.estimate()`), so a
        # tick costs microseconds at 10 000 services; other cores (the Python engine) use lb/estimator.py.
        self._native_est = callable(getattr(core, "estimate", None))
        self._est_due: float | None = None
        self._read_core()
        with contextlib.suppress(Exception):      # a core without the conn table API keeps the defaults
            self._m.timeouts = get_core_timeouts(core) or self._m.timeouts

    # ---- the model view ----

    def _read_core(self) -> None:
        """Adopt whatever the core already holds (a Core configured before this state existed)."""
        for st in self.core.services():
            self._m.services[st.service.key] = st.service
            self._m.dests[st.service.key] = [d.dest for d in st.dests]

    @property
    def timeouts(self) -> model.Timeouts:
        return self._m.timeouts

    def services(self) -> list[model.Service]:
        return list(self._m.services.values())

    def dests(self, key: model.ServiceKey) -> list[model.Dest]:
        return list(self._m.dests.get(key, ()))

    def _with_rates(self, st: model.ServiceStatus) -> model.ServiceStatus:
        """The core's view of one service, with the model's service and (Python estimator) the rates."""
        key = st.service.key
        svc = self._m.services.get(key, st.service)
        if self._native_est:
            return model.ServiceStatus(svc, st.dests, st.stats, st.rates)
        dests = tuple(model.DestStatus(d.dest, d.activeconns, d.inactconns, d.persistconns, d.stats,
                                       self.estimator.rates(("dest", key, d.dest.key))) for d in st.dests)
        return model.ServiceStatus(svc, dests, st.stats, self.estimator.rates(("svc", key)))

    def status(self) -> list[model.ServiceStatus]:
        """Every service with dests, counters (from the core) and rates (from the estimator)."""
        with self.lock:
            out = [self._with_rates(st) for st in self.core.services()]
            order = {k: i for i, k in enumerate(self._m.services)}
            out.sort(key=lambda s: order.get(s.service.key, len(order)))
            return out

    def service_status(self, key: model.ServiceKey) -> model.ServiceStatus:
        """One service as status() shows it (IpvsError ESRCH when there is none)."""
        with self.lock:
            if key not in self._m.services:
                raise IpvsError(Op.GET_SERVICE, errno.ESRCH, str(key))
            return self._with_rates(self.core.service_status(key))

    def status_iter(self) -> Iterator[model.ServiceStatus]:
        """status(), one service at a time, so that a caller can hand the data plane back between
        services (the control socket streams a 10 000-service listing this way).  The services listed
        are those configured when the iteration starts, in status() order; one deleted before its turn
        is left out, and each service is a consistent view of itself (the list as a whole is not a
        snapshot, as the kernel's netlink dump is not one either)."""
        with self.lock:
            keys = list(self._m.services)
        for key in keys:
            try:
                yield self.service_status(key)
            except IpvsError as e:
                if e.errno != errno.ESRCH:
                    raise

    def tick(self, now_s: float) -> None:
        """Feed the rate estimator (call every second or so; it steps every 2 s, ip_vs_est.c's timer)."""
        if self._native_est:
            with self.lock:
                if self._est_due is None:
                    self._est_due = now_s + self.estimator.interval_s
                elif now_s >= self._est_due:
                    self.core.estimate()
                    self._est_due = now_s + self.estimator.interval_s
            return
        with self.lock:
            samples: dict[Any, model.Stats] = {}
            for st in self.core.services():
                key = st.service.key
                samples[("svc", key)] = st.stats
                for d in st.dests:
                    samples[("dest", key, d.dest.key)] = d.stats
            self.estimator.sample(now_s, samples)

    # ---- validation (kernel checks, kernel errnos, kernel order) ----

    def _validate_one(self, m: _Model, c: Change) -> None:
        k = c.kind
        if k == "add_service":
            assert c.service is not None
            svc = c.service
            if svc.key in m.services:
                raise IpvsError(Op.ADD_SERVICE, errno.EEXIST, str(svc.key))
            self._check_service(Op.ADD_SERVICE, svc)
            if len(m.services) >= self.svc_max:
                raise IpvsError(Op.ADD_SERVICE, errno.ENOMEM, "service table full")
            m.services[svc.key] = svc
            m.dests[svc.key] = []
        elif k == "edit_service":
            assert c.service is not None
            if c.service.key not in m.services:
                raise IpvsError(Op.EDIT_SERVICE, errno.ESRCH, str(c.service.key))
            self._check_service(Op.EDIT_SERVICE, c.service)
            m.services[c.service.key] = c.service
        elif k == "del_service":
            assert c.key is not None
            if c.key not in m.services:
                raise IpvsError(Op.DEL_SERVICE, errno.ESRCH, str(c.key))
            del m.services[c.key]
            del m.dests[c.key]
        elif k == "flush":
            m.services.clear()
            m.dests.clear()
        elif k == "zero":
            if c.key is not None and c.key not in m.services:
                raise IpvsError(Op.ZERO, errno.ESRCH, str(c.key))
        elif k in ("add_dest", "edit_dest", "del_dest"):
            self._validate_dest(m, c)
        elif k == "set_timeout":
            assert c.timeouts is not None
            t, old = c.timeouts, m.timeouts
            m.timeouts = model.Timeouts(t.tcp or old.tcp, t.tcpfin or old.tcpfin, t.udp or old.udp)
        else:
            raise IpvsError(Op.EDIT_SERVICE, errno.EINVAL, f"unknown change {k!r}")

    def _check_service(self, op: Op, svc: model.Service) -> None:
        if svc.sched not in self.sched_names or svc.pe_name:
            raise IpvsError(op, errno.ENOENT, f"scheduler {svc.sched!r} / pe {svc.pe_name!r}")
        if svc.key.is_v6 and svc.persistent and not 1 <= svc.netmask <= 128:
            raise IpvsError(op, errno.EINVAL, "IPv6 netmask")

    def _validate_dest(self, m: _Model, c: Change) -> None:
        op = {"add_dest": Op.ADD_DEST, "edit_dest": Op.EDIT_DEST, "del_dest": Op.DEL_DEST}[c.kind]
        assert c.key is not None and c.dest is not None
        d = c.dest
        svc = m.services.get(c.key)
        if svc is None:
            raise IpvsError(op, errno.ESRCH, str(c.key))
        i = m.find_dest(c.key, d.key)
        if c.kind == "del_dest":
            if i < 0:
                raise IpvsError(op, errno.ENOENT, str(d.key))
            del m.dests[c.key][i]
            return
        if d.weight < 0 or (d.l_threshold > d.u_threshold):
            raise IpvsError(op, errno.ERANGE, "weight or thresholds")
        if _unusable_dest_addr(d.addr):
            raise IpvsError(op, errno.EINVAL, f"{d.addr} is not a unicast address")
        if d.addr.version != svc.key.addr.version and d.fwd != model.Fwd.TUNNEL:
            raise IpvsError(op, errno.EINVAL, "address family differs and the dest is not a tunnel")
        if c.kind == "add_dest":
            if i >= 0:
                raise IpvsError(op, errno.EEXIST, str(d.key))
            m.dests[c.key].insert(0, d)
        else:
            if i < 0:
                raise IpvsError(op, errno.ENOENT, str(d.key))
            m.dests[c.key][i] = d

    def validate(self, changes: Sequence[Change]) -> None:
        """Raise the error the first failing change would get; change nothing."""
        for _ in self.validate_iter(changes, len(changes) or 1):
            pass

    def validate_iter(self, changes: Sequence[Change], step: int) -> Iterator[int]:
        """validate(), yielding after every `step` changes so that a caller can hand the data plane back.
        It works on a copy of the model taken at the start; the version it validated against is the one
        in force when it started (apply(validated=...) validates again if another change set landed since)."""
        with self.lock:
            m = self._m.copy()
        for i, c in enumerate(changes, 1):
            with self.lock:
                self._validate_one(m, c)
            if i % step == 0 and i < len(changes):
                yield i

    # ---- applying ----

    def _dest_id(self, key: model.ServiceKey, dkey: model.DestKey) -> int | None:
        find = getattr(self.core, "dest_id", None)
        if find is not None:
            return find(key, dkey)  # type: ignore[no-any-return]
        for info in self.core.dest_infos(key):
            if info.dest.key == dkey:
                return int(info.id)
        return None

    def _readd(self, svc: model.Service, dests: Sequence[model.Dest]) -> None:
        self.core.add_service(svc)
        for d in reversed(dests):      # oldest first, so the core's newest-first order comes back
            self.core.add_dest(svc.key, d)

    def _apply_one(self, c: Change, undo: list[Undo], result: ApplyResult) -> None:
        core, m = self.core, self._m
        k = c.kind
        if k == "add_service":
            assert c.service is not None
            svc = c.service
            core.add_service(svc)
            undo.append(lambda: core.del_service(svc.key))
            m.services[svc.key] = svc
            m.dests[svc.key] = []
        elif k == "edit_service":
            assert c.service is not None
            new, old = c.service, m.services[c.service.key]
            core.edit_service(new)
            undo.append(lambda: core.edit_service(old))
            m.services[new.key] = new
        elif k == "del_service":
            assert c.key is not None
            key = c.key
            old_svc, old_dests = m.services[key], list(m.dests[key])
            result.removed_dest_ids.extend(i for i in (self._dest_id(key, d.key) for d in old_dests)
                                           if i is not None)
            core.del_service(key)
            undo.append(lambda: self._readd(old_svc, old_dests))
            del m.services[key]
            del m.dests[key]
            self.estimator.forget(lambda e: e[1] == key)
        elif k == "flush":
            saved = [(s, list(m.dests[s.key])) for s in m.services.values()]
            core.flush()

            def unflush() -> None:
                for s, ds in saved:
                    self._readd(s, ds)
            undo.append(unflush)
            m.services.clear()
            m.dests.clear()
            self.estimator.forget(lambda e: True)
        elif k == "zero":
            core.zero(c.key)
            zkey = c.key
            self.estimator.zero(lambda e: zkey is None or e[1] == zkey)
        elif k == "add_dest":
            assert c.key is not None and c.dest is not None
            key, d = c.key, c.dest
            core.add_dest(key, d)
            undo.append(lambda: core.del_dest(key, d.key))
            m.dests[key].insert(0, d)
            did = self._dest_id(key, d.key)
            if did is not None:
                result.changed_dest_ids.append(did)
        elif k == "edit_dest":
            assert c.key is not None and c.dest is not None
            key, d = c.key, c.dest
            i = m.find_dest(key, d.key)
            old_d = m.dests[key][i]
            core.edit_dest(key, d)
            undo.append(lambda: core.edit_dest(key, old_d))
            m.dests[key][i] = d
            did = self._dest_id(key, d.key)
            if did is not None:
                result.changed_dest_ids.append(did)
        elif k == "del_dest":
            assert c.key is not None and c.dest is not None
            key, dk = c.key, c.dest.key
            i = m.find_dest(key, dk)
            old_d = m.dests[key][i]
            did = self._dest_id(key, dk)
            core.del_dest(key, dk)
            undo.append(lambda: core.add_dest(key, old_d))
            del m.dests[key][i]
            if did is not None:
                result.removed_dest_ids.append(did)
            self.estimator.forget(lambda e: e[0] == "dest" and e[1] == key and e[2] == dk)
        elif k == "set_timeout":
            assert c.timeouts is not None
            t, old_t = c.timeouts, m.timeouts
            new_t = model.Timeouts(t.tcp or old_t.tcp, t.tcpfin or old_t.tcpfin, t.udp or old_t.udp)
            set_core_timeouts(core, new_t)
            undo.append(lambda: set_core_timeouts(core, old_t))
            m.timeouts = new_t

    def apply(self, changes: Sequence[Change], validated: int | None = None) -> ApplyResult:
        """Validate, then apply all changes, or none (see the module docstring).  `validated`: the version
        at which the caller already validated exactly these changes (validate_iter); the validation is
        skipped when no other change set has landed since."""
        with self.lock:
            if validated is None or validated != self.version:
                self.validate(changes)
            self.version += 1
            saved = self._m.copy()
            undo: list[Undo] = []
            result = ApplyResult()
            try:
                for c in changes:
                    self._apply_one(c, undo, result)
            except BaseException:
                for u in reversed(undo):
                    with contextlib.suppress(Exception):   # best effort: keep undoing the rest
                        u()
                self._m = saved
                raise
            # a dest removed and re-added in one change set is "changed", not "removed"
            result.removed_dest_ids = [i for i in result.removed_dest_ids if i not in result.changed_dest_ids]
            return result

    def apply_text(self, text: str) -> ApplyResult:
        """Apply ipvsadm-save text atomically (ConfigError names a bad line)."""
        return self.apply(parse_rules_checked(text))


def _conn_table(core: Any) -> Any:
    """lb.core.conn.ConnTable over `core` (None when the connection table module is not there)."""
    try:
        conn = importlib.import_module("lb.core.conn")
    except ModuleNotFoundError:
        return None
    cls = getattr(conn, "ConnTable", None)
    return cls(core) if cls is not None else None


def set_core_timeouts(core: Any, t: model.Timeouts) -> None:
    """Hand the protocol timeouts to the connection table (`ConnTable.set_timeouts`, ipvsadm --set)."""
    table = _conn_table(core)
    if table is not None:
        table.set_timeouts(t)


def get_core_timeouts(core: Any) -> model.Timeouts | None:
    table = _conn_table(core)
    return table.get_timeouts() if table is not None else None


def load_rules(core: Any, text: str, state: ConfigState | None = None) -> list[int]:
    """Apply ipvsadm-save text to `core` atomically; returns the ids of dests added or edited.

    For the run loop (lb run --rules FILE): with `state` None a ConfigState is built over the core's current
    contents.  Raises ConfigError (bad line) or IpvsError (refused change); then nothing changed.
    """
    st = state if state is not None else ConfigState(core)
    return st.apply_text(text).changed_dest_ids
