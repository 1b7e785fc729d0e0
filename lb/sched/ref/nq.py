"""Never queue (twin of csched/src/sched_nq.c, kernel ip_vs_nq.c).

sed with a shortcut: walking the list (OVERLOADed and weight-0 dests skipped), the first dest with no
active connection is taken at once — an idle server is better than waiting for a fast one.  If none is
idle, the smallest (activeconns + 1) / weight wins as in sed, ties keeping the earlier dest.
So where sed with weights 3 and 1 sends the first three connections to the heavy dest, nq sends the
second one to the idle light dest.
"""

from __future__ import annotations

from lb.sched.ref.base import DEST_F_OVERLOAD, FlowLike, RefDest, RefScheduler, RefService, SchedRng


class NeverQueue(RefScheduler):
    name = "nq"

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        least: RefDest | None = None
        loh = 0
        for d in svc.dests:
            if d.flags & DEST_F_OVERLOAD or d.weight == 0:
                continue
            doh = d.activeconns + 1
            if d.activeconns == 0:
                return d  # idle: take it
            if least is None or loh * d.weight > doh * least.weight:
                least, loh = d, doh
        return least
