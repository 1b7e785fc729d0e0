"""Weighted least-connection, ipvsadm's default (twin of csched/src/sched_wlc.c, kernel ip_vs_wlc.c).

Load = overhead / weight, overhead = (activeconns << 8) + inactconns.  Without floats, "dest is less
loaded than least" is written loh * dest.weight > doh * least.weight.

1. The first dest that is not OVERLOADed and has weight > 0 starts as `least`.
2. Every later dest that is not OVERLOADed is compared; a strictly smaller load replaces `least`.  A later
   weight-0 dest is compared too, but loh * 0 > doh * w never holds, so it cannot win.
Ties keep the earlier (newer) dest.
"""

from __future__ import annotations

from lb.sched.ref.base import DEST_F_OVERLOAD, FlowLike, RefDest, RefScheduler, RefService, SchedRng, usable


class WeightedLeastConnection(RefScheduler):
    name = "wlc"

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        least: RefDest | None = None
        loh = 0
        for d in svc.dests:
            if least is None:
                if usable(d):
                    least, loh = d, d.conn_overhead()
                continue
            if d.flags & DEST_F_OVERLOAD:
                continue
            doh = d.conn_overhead()
            if loh * d.weight > doh * least.weight:
                least, loh = d, doh
        return least
