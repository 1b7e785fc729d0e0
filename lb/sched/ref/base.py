"""The model the Python scheduler twins run on: dests, a service, the scheduler base class, the PRNG.

This is the plain-Python mirror of what the C schedulers see (csched/include/lb_types.h, lb_sched.h,
csched/src/service.c), which itself mirrors the kernel (include/net/ip_vs.h, net/netfilter/ipvs/ip_vs_ctl.c
`__ip_vs_update_dest` / `__ip_vs_unlink_dest`, ip_vs_conn.c `ip_vs_bind_dest` / `ip_vs_unbind_dest`):

- `RefDest`: one real server with its weight, thresholds, flags (AVAILABLE, OVERLOAD) and connection counts.
- `RefService`: a virtual service holding its dests **newest first** (the kernel links a new dest at the head
  of `svc->destinations`), calling its scheduler's hooks exactly where the kernel calls them.
- `RefScheduler`: the hooks a scheduler may implement (the kernel's `struct ip_vs_scheduler`).
- `SchedRng`: the scheduler PRNG shared bit for bit with the C core (`twos`), a splitmix64.
- `hash_32`: the kernel's multiplicative hash (include/linux/hash.h), used by sh/dh/lblc/lblcr.

A twin never reads a clock or a global RNG: `now` (ns) and the `SchedRng` are passed to `schedule`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from lb import model
from lb.errors import IpvsError, Op

# ---- flags and events: the values of csched/include/lb_api.h (checked by tests/unit/test_registry.py) ----

#: dest->flags bits (kernel IP_VS_DEST_F_*).
DEST_F_AVAILABLE = 0x0001
DEST_F_OVERLOAD = 0x0002

#: Connection accounting events (lb_api.h LB_EV_*): what binding/unbinding a connection or a protocol
#: state change does to a dest's counters.
EV_BIND_ACTIVE = 0
EV_BIND_INACTIVE = 1
EV_BIND_TEMPLATE = 2
EV_TO_INACTIVE = 3
EV_TO_ACTIVE = 4
EV_UNBIND_ACTIVE = 5
EV_UNBIND_INACTIVE = 6
EV_UNBIND_TEMPLATE = 7

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF

# ---- the kernel's hash_32 (include/linux/hash.h) ----

#: GOLDEN_RATIO_32 of include/linux/hash.h.
GOLDEN_RATIO_32 = 0x61C88647


def hash_32(val: int, bits: int) -> int:
    """The kernel's `hash_32(val, bits)`: multiply by GOLDEN_RATIO_32 (mod 2^32), keep the top `bits` bits."""
    return ((val * GOLDEN_RATIO_32) & U32) >> (32 - bits)


# ---- the scheduler PRNG (C: csched/src/sched_twos.c twos_random_u32) ----


class SchedRng:
    """The scheduler PRNG: splitmix64 over a 64-bit state, exactly as the C core steps `core->rng`.

    One draw (`next_u64`): state += 0x9E3779B97F4A7C15 (mod 2^64); z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31).
    A 32-bit draw (`next_u32`, the kernel's get_random_u32 stand-in) is the high half of one 64-bit draw.
    The initial state is the core's `rng_seed`, or 0x9E3779B97F4A7C15 when the seed is 0 (lb_core_new).
    """

    INCREMENT = 0x9E3779B97F4A7C15

    def __init__(self, seed: int = 1) -> None:
        self.state = (seed & U64) or self.INCREMENT

    def next_u64(self) -> int:
        self.state = (self.state + self.INCREMENT) & U64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
        return z ^ (z >> 31)

    def next_u32(self) -> int:
        return self.next_u64() >> 32


# ---- flows ----


class FlowLike(Protocol):
    """What a scheduler reads of a new connection (lb.core.core.Flow and `RefFlow` both fit)."""

    @property
    def saddr(self) -> model.Addr: ...
    @property
    def sport(self) -> int: ...
    @property
    def daddr(self) -> model.Addr: ...
    @property
    def dport(self) -> int: ...
    @property
    def proto(self) -> model.Proto: ...


@dataclass(frozen=True, slots=True)
class RefFlow:
    """A new connection: client address:port → virtual address:port (same fields as lb.core.core.Flow)."""

    saddr: model.Addr
    sport: int
    daddr: model.Addr
    dport: int
    proto: model.Proto = model.Proto.TCP


# ---- destinations ----


@dataclass(slots=True, eq=False)
class RefDest:
    """A real server as the schedulers see it (kernel struct ip_vs_dest)."""

    addr: model.Addr
    port: int
    weight: int = 1
    u_threshold: int = 0
    l_threshold: int = 0
    fwd: model.Fwd = model.Fwd.DROUTE
    flags: int = 0
    activeconns: int = 0
    inactconns: int = 0
    persistconns: int = 0
    #: The latest weight set by an add, or by an edit with a non-zero weight (sh/mh keep quiesced dests).
    last_weight: int = 0
    #: Per-dest scheduler state, if a scheduler wants some (C: dest->sched_data).
    sched_data: Any = None

    @property
    def key(self) -> model.DestKey:
        return model.DestKey(self.addr, self.port)

    @property
    def overloaded(self) -> bool:
        return bool(self.flags & DEST_F_OVERLOAD)

    @property
    def totalconns(self) -> int:
        """Active + inactive (kernel ip_vs_dest_totalconns); templates are not counted."""
        return self.activeconns + self.inactconns

    def conn_overhead(self) -> int:
        """The kernel's ip_vs_dest_conn_overhead: an active connection costs 256 inactive ones.

        `(activeconns << 8) + inactconns` — lc, wlc and twos compare dests by this number.
        """
        return (self.activeconns << 8) + self.inactconns

    def __str__(self) -> str:
        if self.addr.version == 6:
            return f"[{self.addr}]:{self.port}"
        return f"{self.addr}:{self.port}"

    # -- connection accounting, as csched/src/service.c lb_dest_account (kernel ip_vs_bind_dest/unbind) --

    def _overload_after_bind(self) -> None:
        # Bind: at or above the upper threshold the dest becomes OVERLOADed.
        if self.u_threshold != 0 and self.totalconns >= self.u_threshold:
            self.flags |= DEST_F_OVERLOAD

    def _overload_after_unbind(self) -> None:
        # Unbind: the hysteresis.  With a lower threshold, OVERLOAD clears below it; with only an upper
        # threshold, below 3/4 of it; with no threshold at all, at once.
        if self.l_threshold != 0:
            if self.totalconns < self.l_threshold:
                self.flags &= ~DEST_F_OVERLOAD
        elif self.u_threshold != 0:
            if self.totalconns * 4 < self.u_threshold * 3:
                self.flags &= ~DEST_F_OVERLOAD
        else:
            self.flags &= ~DEST_F_OVERLOAD

    def account(self, event: int) -> None:
        """Apply one LB_EV_* event (ValueError, and no change, when a counter would go below zero)."""
        if (event in (EV_TO_INACTIVE, EV_UNBIND_ACTIVE) and self.activeconns == 0) or (
            event in (EV_TO_ACTIVE, EV_UNBIND_INACTIVE) and self.inactconns == 0) or (
            event == EV_UNBIND_TEMPLATE and self.persistconns == 0):
            raise ValueError(f"event {event} would take a counter of {self} below zero")
        if event == EV_BIND_ACTIVE:
            self.activeconns += 1
            self._overload_after_bind()
        elif event == EV_BIND_INACTIVE:
            self.inactconns += 1
            self._overload_after_bind()
        elif event == EV_BIND_TEMPLATE:
            self.persistconns += 1
            self._overload_after_bind()
        elif event == EV_TO_INACTIVE:  # the protocol left ESTABLISHED: no threshold check (kernel)
            self.activeconns -= 1
            self.inactconns += 1
        elif event == EV_TO_ACTIVE:
            self.inactconns -= 1
            self.activeconns += 1
        elif event == EV_UNBIND_ACTIVE:
            self.activeconns -= 1
            self._overload_after_unbind()
        elif event == EV_UNBIND_INACTIVE:
            self.inactconns -= 1
            self._overload_after_unbind()
        elif event == EV_UNBIND_TEMPLATE:
            self.persistconns -= 1
            self._overload_after_unbind()
        else:
            raise ValueError(f"unknown connection event {event}")


# ---- the scheduler interface ----


class RefScheduler:
    """Base class of the twins: the kernel's struct ip_vs_scheduler (C: struct lb_sched_ops).

    Hooks are called as ip_vs_ctl.c calls them: `init_service` when the scheduler is bound to a service
    (dests may already exist, after `-E -s`), `done_service` when unbound, `add_dest` after a new dest was
    linked at the head of the list, `del_dest` after a dest was unlinked, `upd_dest` after an edit.
    Per-service state goes in `svc.sched_data`.  `schedule` returns the dest or None ("no destination
    available").  The defaults do nothing.
    """

    #: The scheduler's name, as `ipvsadm -s` takes it.
    name: ClassVar[str] = ""
    #: Which SVC_F_SCHED1..3 bits (-b flags) the scheduler understands (C: flags_ok).
    flags_ok: ClassVar[int] = 0

    def init_service(self, svc: RefService) -> None:
        """Bind to `svc`: build per-service state from the dests it already has."""

    def done_service(self, svc: RefService) -> None:
        """Unbind from `svc`: drop per-service state."""

    def add_dest(self, svc: RefService, dest: RefDest) -> None:
        """`dest` was just linked at the head of `svc.dests`."""

    def del_dest(self, svc: RefService, dest: RefDest) -> None:
        """`dest` was just unlinked from `svc.dests`."""

    def upd_dest(self, svc: RefService, dest: RefDest) -> None:
        """`dest`'s weight or thresholds were just changed."""

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        """Pick a dest for a new connection `flow` at time `now` (ns), or None."""
        raise NotImplementedError

    def tick(self, svc: RefService, now: int) -> None:
        """Timer work (lblc/lblcr table aging) at time `now` (ns)."""


# ---- the service ----


@dataclass(slots=True, eq=False)
class RefService:
    """A virtual service with its dests in the kernel's list order (newest first) and its scheduler.

    Adds, edits and deletes apply the same rules as csched/src/service.c (kernel __ip_vs_update_dest):
    errors raise lb.errors.IpvsError with the same (op, errno) as lb.core.core.Core.
    """

    scheduler: RefScheduler
    flags: int = 0
    key: model.ServiceKey = field(
        default_factory=lambda: model.ServiceKey(model.Proto.TCP, model.parse_addr("10.0.0.100"), 80))
    timeout: int = 0
    netmask: int = model.V4_FULL_MASK
    dests: list[RefDest] = field(default_factory=list)
    sched_data: Any = None

    def __post_init__(self) -> None:
        self.scheduler.init_service(self)

    def __iter__(self) -> Iterator[RefDest]:
        return iter(self.dests)

    @property
    def num_dests(self) -> int:
        return len(self.dests)

    def find(self, key: model.DestKey) -> RefDest | None:
        for d in self.dests:
            if d.addr == key.addr and d.port == key.port:
                return d
        return None

    def set_scheduler(self, scheduler: RefScheduler) -> None:
        """`ipvsadm -E -s`: bind the new scheduler (init first), then unbind the old one."""
        old, old_data = self.scheduler, self.sched_data
        self.sched_data = None
        self.scheduler = scheduler
        scheduler.init_service(self)
        new_data = self.sched_data
        self.scheduler, self.sched_data = old, old_data
        old.done_service(self)
        self.scheduler, self.sched_data = scheduler, new_data

    @staticmethod
    def _check(op: Op, dest: model.Dest) -> None:
        if dest.weight < 0 or dest.weight > 0x7FFFFFFF:
            raise IpvsError(op, errno.ERANGE, f"weight {dest.weight}")
        if dest.l_threshold > dest.u_threshold:
            raise IpvsError(op, errno.ERANGE, f"l_threshold {dest.l_threshold} > {dest.u_threshold}")
        if dest.fwd not in (model.Fwd.MASQ, model.Fwd.TUNNEL, model.Fwd.DROUTE):
            raise IpvsError(op, errno.EINVAL, f"forwarding method {dest.fwd}")

    @staticmethod
    def _update(d: RefDest, dest: model.Dest, add: bool) -> None:
        # kernel __ip_vs_update_dest: last_weight keeps the latest non-zero weight (any weight on add).
        if add or dest.weight != 0:
            d.last_weight = dest.weight
        d.weight = dest.weight
        d.fwd = dest.fwd
        d.flags |= DEST_F_AVAILABLE
        # Removing or raising the upper threshold lifts OVERLOAD at once.
        if dest.u_threshold == 0 or dest.u_threshold > d.u_threshold:
            d.flags &= ~DEST_F_OVERLOAD
        d.u_threshold = dest.u_threshold
        d.l_threshold = dest.l_threshold

    def add_dest(self, dest: model.Dest) -> RefDest:
        """`ipvsadm -a`: link a new dest at the head of the list, then the scheduler's add_dest."""
        self._check(Op.ADD_DEST, dest)
        if self.find(dest.key) is not None:
            raise IpvsError(Op.ADD_DEST, errno.EEXIST, str(dest.key))
        d = RefDest(dest.addr, dest.port)
        self._update(d, dest, add=True)
        self.dests.insert(0, d)
        self.scheduler.add_dest(self, d)
        return d

    def edit_dest(self, dest: model.Dest) -> RefDest:
        """`ipvsadm -e`: new weight/thresholds/forwarding, then the scheduler's upd_dest."""
        self._check(Op.EDIT_DEST, dest)
        d = self.find(dest.key)
        if d is None:
            raise IpvsError(Op.EDIT_DEST, errno.ENOENT, str(dest.key))
        self._update(d, dest, add=False)
        self.scheduler.upd_dest(self, d)
        return d

    def del_dest(self, key: model.DestKey | model.Dest) -> RefDest:
        """`ipvsadm -d`: unlink (no longer AVAILABLE), then the scheduler's del_dest.

        The C core keeps a deleted dest "in the trash" while connections reference it; dests driven only by
        connection events (as here) hold no reference, so they are simply gone.
        """
        d = self.find(model.DestKey(key.addr, key.port))
        if d is None:
            raise IpvsError(Op.DEL_DEST, errno.ENOENT, str(key))
        self.dests.remove(d)
        d.flags &= ~DEST_F_AVAILABLE
        self.scheduler.del_dest(self, d)
        return d

    def event(self, key: model.DestKey | RefDest, event: int) -> None:
        """Apply a connection event (LB_EV_*) to one dest (C: Core.dest_event)."""
        d = key if isinstance(key, RefDest) else self.find(key)
        if d is None:
            raise IpvsError(Op.EDIT_DEST, errno.ENOENT, str(key))
        d.account(event)

    def schedule(self, flow: FlowLike, now: int = 0, rng: SchedRng | None = None) -> RefDest | None:
        """The scheduler's pick for a new connection (C: one element of lb_sched_batch)."""
        return self.scheduler.schedule(self, flow, now, rng if rng is not None else SchedRng())

    def tick(self, now: int) -> None:
        self.scheduler.tick(self, now)


def usable(d: RefDest) -> bool:
    """Not OVERLOADed and weight > 0: the test most schedulers apply to each dest."""
    return not (d.flags & DEST_F_OVERLOAD) and d.weight > 0
