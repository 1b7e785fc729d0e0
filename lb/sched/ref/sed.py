"""Shortest expected delay (twin of csched/src/sched_sed.c, kernel ip_vs_sed.c).

A new connection sent to dest i expects a delay of (C_i + 1) / U_i: C_i its active connections (inactive
ones are ignored), U_i its weight (service rate), +1 for the new connection itself.  That +1 is the whole
difference from wlc: with no connections anywhere, wlc sees 0/w everywhere (a tie, the first dest wins)
while sed sees 1/w and picks the heaviest dest.

The loop is wlc's: the first usable dest (not OVERLOADed, weight > 0) starts as `least`; later dests are
skipped only when OVERLOADed; loh * dest.weight > doh * least.weight replaces; ties keep the earlier dest.
"""

from __future__ import annotations

from lb.sched.ref.base import DEST_F_OVERLOAD, FlowLike, RefDest, RefScheduler, RefService, SchedRng, usable


def sed_overhead(d: RefDest) -> int:
    return d.activeconns + 1


class ShortestExpectedDelay(RefScheduler):
    name = "sed"

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        least: RefDest | None = None
        loh = 0
        for d in svc.dests:
            if least is None:
                if usable(d):
                    least, loh = d, sed_overhead(d)
                continue
            if d.flags & DEST_F_OVERLOAD:
                continue
            doh = sed_overhead(d)
            if loh * d.weight > doh * least.weight:
                least, loh = d, doh
        return least
