"""Weighted failover (twin of csched/src/sched_fo.c, kernel ip_vs_fo.c).

All new connections go to the dest with the highest weight that is not OVERLOADed; weight 0 never
qualifies.  The test is a strict '>', so among equal weights the first in the list (the newest) wins.
Fail over by lowering the primary's weight (or letting -x mark it OVERLOADed): the next-highest takes over.
"""

from __future__ import annotations

from lb.sched.ref.base import DEST_F_OVERLOAD, FlowLike, RefDest, RefScheduler, RefService, SchedRng


class WeightedFailover(RefScheduler):
    name = "fo"

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        best: RefDest | None = None
        hw = 0
        for d in svc.dests:
            if not (d.flags & DEST_F_OVERLOAD) and d.weight > hw:
                best, hw = d, d.weight
        return best
