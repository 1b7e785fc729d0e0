"""Destination hashing (twin of csched/src/sched_dh.c, kernel ip_vs_dh.c).

A table of 256 buckets maps the packet's destination address to a dest.  Weights play no part in the
filling: the dests (list order, newest first) are dealt one bucket each, round and round
(ip_vs_dh_reassign, on dest add/delete; the kernel has no upd_dest hook and needs none).

Lookup: bucket = hash_32(ntohl(addr_fold(daddr)), 8).  The dest there is refused when it is not
available, has weight <= 0, or is OVERLOADed; there is no fallback.
"""

from __future__ import annotations

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

TAB_BITS = 8
TAB_SIZE = 1 << TAB_BITS


class DestinationHashing(RefScheduler):
    name = "dh"

    def init_service(self, svc: RefService) -> None:
        dests = svc.dests
        svc.sched_data = [dests[i % len(dests)] for i in range(TAB_SIZE)] if dests else [None] * TAB_SIZE

    def done_service(self, svc: RefService) -> None:
        svc.sched_data = None

    def add_dest(self, svc: RefService, dest: RefDest) -> None:
        self.init_service(svc)

    def del_dest(self, svc: RefService, dest: RefDest) -> None:
        self.init_service(svc)

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        table: list[RefDest | None] = svc.sched_data
        d = table[hash_32(addr_fold(svc_af(svc.key), flow.daddr), TAB_BITS)]
        if d is None or not d.flags & DEST_F_AVAILABLE or d.weight <= 0 or d.flags & DEST_F_OVERLOAD:
            return None
        return d
