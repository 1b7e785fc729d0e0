"""Locality-based least-connection (twin of csched/src/sched_lblc.c, kernel ip_vs_lblc.c).

A per-service cache maps a packet's destination address to the dest last chosen for it:

1. Look the address up (1024 buckets, bucket = hash_32(ntohl(addr_fold), 10)).  On a hit, stamp the
   entry's lastuse = now and keep its dest if it is available, has weight > 0 and is not "overloaded"
   in lblc's sense: more active connections than its weight while some dest of the service has fewer
   than half its weight (activeconns * 2 < weight).
2. Otherwise pick the weighted least-connection dest (wlc's rule: OVERLOADed dests skipped, the first
   candidate must have weight > 0, load = ((active << 8) + inactive) / weight, ties keep the earlier)
   and cache it.  Replacing an entry unlinks the old one *without* lowering the table's entry counter
   and counts the new one (the kernel's counter creeps up; its overflow collector reads it).

Aging (ip_vs_lblc_check_expire, a timer every 60 s): every 30th run a full sweep drops entries unused for
lblc_expiration (24 h: dropped when now >= lastuse + 24 h); otherwise, when the counter exceeds 16384,
a sweep from the bucket after the rover drops entries unused for 6 minutes, bucket by bucket, until
(entries - 16384) * 4 / 3 (at most 8192) are gone; with 16384 or fewer, the run only counts.

Time is ns; the kernel's jiffies become ns (HZ = 1e9).  The timer is armed the first time the table sees
a time (schedule or tick) and every later schedule/tick first replays the firings due by then, each at
its own time (at most 10080 of them: after a longer gap the oldest are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lb import model
from lb.sched.ref.base import (
    DEST_F_AVAILABLE,
    DEST_F_OVERLOAD,
    FlowLike,
    RefDest,
    RefScheduler,
    RefService,
    SchedRng,
    hash_32,
)
from lb.sched.ref.hashing import addr_fold, svc_af

NS_PER_S = 1_000_000_000
CHECK_EXPIRE_INTERVAL = 60 * NS_PER_S
ENTRY_TIMEOUT = 6 * 60 * NS_PER_S
DEFAULT_EXPIRATION = 24 * 60 * 60 * NS_PER_S
COUNT_FOR_FULL_EXPIRATION = 30
TAB_BITS = 10
TAB_SIZE = 1 << TAB_BITS
TAB_MASK = TAB_SIZE - 1
MAX_SIZE = TAB_SIZE * 16
MAX_CATCHUP = 10080
#: More live entries than this and no new entry is made (the kernel's failed allocation; memory bound).
HARD_MAX = 1 << 20


def weighted_least_conn(svc: RefService) -> RefDest | None:
    """__ip_vs_lblc_schedule / __ip_vs_lblcr_schedule."""
    least: RefDest | None = None
    loh = 0
    for d in svc.dests:
        if d.flags & DEST_F_OVERLOAD:
            continue
        if least is None:
            if d.weight > 0:
                least, loh = d, d.conn_overhead()
            continue
        doh = d.conn_overhead()
        if loh * d.weight > doh * least.weight:
            least, loh = d, doh
    return least


def locality_overloaded(dest: RefDest, svc: RefService) -> bool:
    """lblc/lblcr is_overloaded: over its weight in active conns while another dest is under half."""
    return dest.activeconns > dest.weight and any(d.activeconns * 2 < d.weight for d in svc.dests)


def rebind_revived(entry_dests: list[RefDest], svc: RefService, dest: RefDest) -> None:
    """A dest re-added while an entry still holds its old self is the same dest to the C core (revived
    from the trash): point such references at the new object."""
    for i, d in enumerate(entry_dests):
        if d is not dest and d.addr == dest.addr and d.port == dest.port and d not in svc.dests:
            entry_dests[i] = dest


@dataclass(slots=True, eq=False)
class LblcEntry:
    addr: model.Addr
    dest: RefDest
    lastuse: int


@dataclass(slots=True, eq=False)
class LocalityTable:
    """The per-service table and its timer, shared by lblc and lblcr (entries differ)."""

    #: Bucket chains, newest first; LblcEntry (lblc) or LblcrEntry (lblcr).
    buckets: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(TAB_SIZE)])
    entries: int = 0
    live: int = 0
    rover: int = 0
    counter: int = 1
    timer_armed: bool = False
    next_check: int = 0

    @staticmethod
    def hashkey(af: int, addr: model.Addr) -> int:
        return hash_32(addr_fold(af, addr), TAB_BITS)

    def sweep(self, now: int, age: int, goal: int | None) -> None:
        """Drop entries with now >= lastuse + age, bucket by bucket after the rover; stop after a
        bucket once the goal (if any) is met."""
        j = self.rover
        for _ in range(TAB_SIZE):
            j = (j + 1) & TAB_MASK
            keep = []
            for en in self.buckets[j]:
                if now < en.lastuse + age:
                    keep.append(en)
                    continue
                self.live -= 1
                self.entries -= 1
                if goal is not None:
                    goal -= 1
            self.buckets[j] = keep
            if goal is not None and goal <= 0:
                break
        self.rover = j

    def check_expire(self, now: int) -> None:
        if self.counter % COUNT_FOR_FULL_EXPIRATION == 0:
            self.sweep(now, DEFAULT_EXPIRATION, None)
            self.counter = 1
            return
        if self.entries <= MAX_SIZE:
            self.counter += 1
            return
        goal = min((self.entries - MAX_SIZE) * 4 // 3, MAX_SIZE // 2)
        self.sweep(now, ENTRY_TIMEOUT, goal)

    def run_timers(self, now: int) -> None:
        if not self.timer_armed:
            self.timer_armed = True
            self.next_check = now + CHECK_EXPIRE_INTERVAL
            return
        if now < self.next_check:
            return
        due = (now - self.next_check) // CHECK_EXPIRE_INTERVAL + 1
        if due > MAX_CATCHUP:
            self.next_check += (due - MAX_CATCHUP) * CHECK_EXPIRE_INTERVAL
        while self.next_check <= now:
            self.check_expire(self.next_check)
            self.next_check += CHECK_EXPIRE_INTERVAL


class LocalityBasedLeastConnection(RefScheduler):
    name = "lblc"

    def init_service(self, svc: RefService) -> None:
        svc.sched_data = LocalityTable()

    def done_service(self, svc: RefService) -> None:
        svc.sched_data = None

    def add_dest(self, svc: RefService, dest: RefDest) -> None:
        t: LocalityTable = svc.sched_data
        for bucket in t.buckets:
            for en in bucket:
                held = [en.dest]
                rebind_revived(held, svc, dest)
                en.dest = held[0]

    def tick(self, svc: RefService, now: int) -> None:
        svc.sched_data.run_timers(now)

    @staticmethod
    def lookup(svc: RefService, addr: model.Addr) -> LblcEntry | None:
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
            d = en.dest
            if d.flags & DEST_F_AVAILABLE and d.weight > 0 and not locality_overloaded(d, svc):
                return d
        dest = weighted_least_conn(svc)
        if dest is None:
            return None
        # ip_vs_lblc_new: keep a same-dest entry; else unlink the old one (counter not lowered) and add.
        bucket = t.buckets[t.hashkey(svc_af(svc.key), flow.daddr)]
        if en is not None:
            if en.dest is dest:
                return dest
            bucket.remove(en)
            t.live -= 1
        if t.live >= HARD_MAX:
            return dest
        bucket.insert(0, LblcEntry(flow.daddr, dest, now))
        t.entries += 1
        t.live += 1
        return dest
