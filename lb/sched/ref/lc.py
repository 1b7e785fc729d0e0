"""Least-connection (twin of csched/src/sched_lc.c, kernel ip_vs_lc.c).

The dest with the smallest overhead (activeconns << 8) + inactconns wins: one active connection weighs as
much as 256 inactive ones.  OVERLOADed dests and weight 0 (quiesced) are skipped; otherwise the weight plays
no part.  The comparison is a strict '<', so on a tie the dest met first — the newest — wins.
"""

from __future__ import annotations

from lb.sched.ref.base import DEST_F_OVERLOAD, FlowLike, RefDest, RefScheduler, RefService, SchedRng


class LeastConnection(RefScheduler):
    name = "lc"

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        least: RefDest | None = None
        loh = 0
        for d in svc.dests:
            if d.flags & DEST_F_OVERLOAD or d.weight == 0:
                continue
            doh = d.conn_overhead()
            if least is None or doh < loh:
                least, loh = d, doh
        return least
