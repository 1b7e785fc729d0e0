"""Source hashing (twin of csched/src/sched_sh.c, kernel ip_vs_sh.c).

A table of 256 buckets maps a client address (plus its port with sh-port) to a dest.

Filling (ip_vs_sh_reassign, on every dest add/delete/edit): walk the dests in list order (newest first),
giving each `weight` consecutive buckets, round and round until all 256 are set.  The walk moves on
when `++count >= weight`, so a weight-0 dest still takes one bucket per round (and is refused later).
Weights 2 (A, added first) and 1 (B, added second): list B, A -> buckets B A A B A A ... (B gets 86).

Lookup: bucket = hash_32(port + ntohl(addr_fold), 8), where port is the client's source port with
sh-port (TCP/UDP/SCTP only) and 0 otherwise.  The dest there is refused when unavailable (weight <= 0
or OVERLOAD).  With sh-fallback, the kernel tries offsets roffset = (i + bucket) % 256 for i = 0..255,
each fed back into the hash as `(roffset + hash) & 255`: the probes are (i + 2 * bucket) & 255.  An
empty bucket ends the walk.
"""

from __future__ import annotations

from lb.sched.ref.base import (
    DEST_F_OVERLOAD,
    U32,
    FlowLike,
    RefDest,
    RefScheduler,
    RefService,
    SchedRng,
    hash_32,
)
from lb.sched.ref.hashing import addr_fold, flow_port, svc_af

SVC_F_SCHED_SH_FALLBACK = 0x0008
SVC_F_SCHED_SH_PORT = 0x0010
TAB_BITS = 8
TAB_SIZE = 1 << TAB_BITS
TAB_MASK = TAB_SIZE - 1


def unavailable(d: RefDest) -> bool:
    return d.weight <= 0 or bool(d.flags & DEST_F_OVERLOAD)


def fill_weighted(dests: list[RefDest], size: int) -> list[RefDest | None]:
    """ip_vs_sh_reassign: `weight` consecutive buckets per dest (at least one), in list order, cycling."""
    if not dests:
        return [None] * size
    table: list[RefDest | None] = []
    i = count = 0
    while len(table) < size:
        d = dests[i]
        table.append(d)
        count += 1
        if count >= d.weight:
            i = (i + 1) % len(dests)
            count = 0
    return table


class SourceHashing(RefScheduler):
    name = "sh"
    flags_ok = SVC_F_SCHED_SH_FALLBACK | SVC_F_SCHED_SH_PORT

    def init_service(self, svc: RefService) -> None:
        svc.sched_data = fill_weighted(svc.dests, TAB_SIZE)

    def done_service(self, svc: RefService) -> None:
        svc.sched_data = None

    def add_dest(self, svc: RefService, dest: RefDest) -> None:
        self.init_service(svc)

    def del_dest(self, svc: RefService, dest: RefDest) -> None:
        self.init_service(svc)

    def upd_dest(self, svc: RefService, dest: RefDest) -> None:
        self.init_service(svc)

    @staticmethod
    def hashkey(fold: int, port: int, offset: int) -> int:
        return (offset + hash_32((port + fold) & U32, TAB_BITS)) & TAB_MASK

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        table: list[RefDest | None] = svc.sched_data
        fold = addr_fold(svc_af(svc.key), flow.saddr)
        port = flow_port(svc.flags, SVC_F_SCHED_SH_PORT, flow.proto, flow.sport)
        ihash = self.hashkey(fold, port, 0)
        d = table[ihash]
        if d is None:
            return None
        if not unavailable(d):
            return d
        if not svc.flags & SVC_F_SCHED_SH_FALLBACK:
            return None
        for offset in range(TAB_SIZE):
            roffset = (offset + ihash) % TAB_SIZE
            d = table[self.hashkey(fold, port, roffset)]
            if d is None:
                break
            if not unavailable(d):
                return d
        return None
