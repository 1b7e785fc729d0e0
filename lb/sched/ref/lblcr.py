"""Locality-based least-connection with replication (twin of csched/src/sched_lblcr.c, kernel ip_vs_lblcr.c).

Like lblc, but a destination address maps to a *set* of dests (newest first):

1. On a hit: stamp lastuse = now; take the set's weighted least-connection member (OVERLOADed members
   skipped; it must be available, and the first candidate must have weight > 0).  If the set has more than
   one member and has not changed for lblcr_expiration (24 h: now > lastmod + 24 h), drop its weighted
   most-connection member (among weight > 0; lastmod = now).  Use the least member unless missing or
   overloaded in lblc's sense; then pick the service's weighted least-connection dest, add it to the set
   (if not already there; lastmod = now) and use it.
2. On a miss: pick the service's weighted least-connection dest and make an entry {dest}.

Table aging and the time model are lblc's (lb/sched/ref/lblc.py, LocalityTable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lb import model
from lb.sched.ref.base import (
    DEST_F_AVAILABLE,
    DEST_F_OVERLOAD,
    FlowLike,
    RefDest,
    RefScheduler,
    RefService,
    SchedRng,
)
from lb.sched.ref.hashing import svc_af
from lb.sched.ref.lblc import (
    DEFAULT_EXPIRATION,
    HARD_MAX,
    LocalityTable,
    locality_overloaded,
    rebind_revived,
    weighted_least_conn,
)


@dataclass(slots=True, eq=False)
class LblcrEntry:
    addr: model.Addr
    lastuse: int
    #: The dest set, newest first (list_add).
    dests: list[RefDest] = field(default_factory=list)
    lastmod: int = 0

    def insert(self, dest: RefDest, now: int, check: bool = True) -> None:
        """ip_vs_dest_set_insert."""
        if check and any(d is dest for d in self.dests):
            return
        self.dests.insert(0, dest)
        self.lastmod = now

    def erase(self, dest: RefDest, now: int) -> None:
        """ip_vs_dest_set_erase."""
        for i, d in enumerate(self.dests):
            if d is dest:
                del self.dests[i]
                self.lastmod = now
                return

    def least(self) -> RefDest | None:
        """ip_vs_dest_set_min."""
        least: RefDest | None = None
        loh = 0
        for d in self.dests:
            if d.flags & DEST_F_OVERLOAD:
                continue
            if least is None:
                if d.weight > 0 and d.flags & DEST_F_AVAILABLE:
                    least, loh = d, d.conn_overhead()
                continue
            doh = d.conn_overhead()
            if loh * d.weight > doh * least.weight and d.flags & DEST_F_AVAILABLE:
                least, loh = d, doh
        return least

    def most(self) -> RefDest | None:
        """ip_vs_dest_set_max."""
        most: RefDest | None = None
        moh = 0
        for d in self.dests:
            if most is None:
                if d.weight > 0:
                    most, moh = d, d.conn_overhead()
                continue
            doh = d.conn_overhead()
            if moh * d.weight < doh * most.weight and d.weight > 0:
                most, moh = d, doh
        return most


class LocalityBasedLeastConnectionReplication(RefScheduler):
    name = "lblcr"

    def init_service(self, svc: RefService) -> None:
        svc.sched_data = LocalityTable()

    def done_service(self, svc: RefService) -> None:
        svc.sched_data = None

    def add_dest(self, svc: RefService, dest: RefDest) -> None:
        t: LocalityTable = svc.sched_data
        for bucket in t.buckets:
            for en in bucket:
                rebind_revived(en.dests, svc, dest)

    def tick(self, svc: RefService, now: int) -> None:
        svc.sched_data.run_timers(now)

    @staticmethod
    def lookup(svc: RefService, addr: model.Addr) -> LblcrEntry | None:
        t: LocalityTable = svc.sched_data
        for en in t.buckets[t.hashkey(svc_af(svc.key), addr)]:
            if en.addr == addr:
                return en  # type: ignore[no-any-return]
        return None

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        t: LocalityTable = svc.sched_data
        t.run_timers(now)
        en = self.lookup(svc, flow.daddr)
        if en is not None:
            en.lastuse = now
            dest = en.least()
            if len(en.dests) > 1 and now > en.lastmod + DEFAULT_EXPIRATION:
                m = en.most()
                if m is not None:
                    en.erase(m, now)
            if dest is not None and not locality_overloaded(dest, svc):
                return dest
            dest = weighted_least_conn(svc)
            if dest is None:
                return None
            en.insert(dest, now)
            return dest
        dest = weighted_least_conn(svc)
        if dest is None:
            return None
        if t.live >= HARD_MAX:
            return dest
        en = LblcrEntry(flow.daddr, now)
        en.insert(dest, now, check=False)
        t.buckets[t.hashkey(svc_af(svc.key), flow.daddr)].insert(0, en)
        t.entries += 1
        t.live += 1
        return dest
