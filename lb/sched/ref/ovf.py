"""Overflow-connection (twin of csched/src/sched_ovf.c, kernel ip_vs_ovf.c).

Like fo, the highest weight wins (first in list on ties), but the weight is also a budget of active
connections: a dest whose activeconns exceed its weight is skipped, so traffic overflows to the next
dest.  Note the test is activeconns > weight, so a dest of weight w takes w + 1 active connections before
it overflows.  OVERLOADed and weight-0 dests are skipped.  Only active connections count (UDP, which has
no ESTABLISHED state, overflows poorly).
"""

from __future__ import annotations

from lb.sched.ref.base import DEST_F_OVERLOAD, FlowLike, RefDest, RefScheduler, RefService, SchedRng


class Overflow(RefScheduler):
    name = "ovf"

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        best: RefDest | None = None
        hw = 0
        for d in svc.dests:
            w = d.weight
            if d.flags & DEST_F_OVERLOAD or d.activeconns > w or w == 0:
                continue
            if best is None or w > hw:
                best, hw = d, w
        return best
