"""Weighted round-robin (twin of csched/src/sched_wrr.c, kernel ip_vs_wrr.c).

The scheduler makes passes over the dest list.  In each pass a dest is picked if its weight is at least the
current weight `cw` (and it is not OVERLOADed); after a pass `cw` drops by `di`, the gcd of the positive
weights.  Passes start at `mw` = max weight - (di - 1), so the last pass runs at cw = 1 and also catches a
dest whose weight is not a multiple of di.  With weights 4, 3, 2 (di = 1, mw = 4) one cycle is
cw=4: the 4; cw=3: the 4 and the 3; cw=2: the 4, the 3 and the 2; cw=1: all three again — 4:3:2 picks.

The state (the kernel's struct ip_vs_wrr_mark) is `cl` (last pick, None = list head), `cw`, `mw`, `di`.
Every add, delete or edit of a dest recomputes di and mw, moves `cl` back to the head, and fixes `cw`:
cw becomes mw if it is now above mw (or was 0); otherwise, when di > 1, cw is rounded down to a multiple of
di plus one.  So a service built dest by dest (A, then B, then C) continues from the state the earlier adds
left, which is why `ipvsadm -a` order shows up in the pick sequence.

Weight-0 dests count for nothing in di but do count in the max (they never pass the `>= cw` test).
When every weight is 0, mw is 0 and nothing is picked.  When every positive-weight dest is OVERLOADed
the loop stops after one full pass at cw = 1 over every dest.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from lb.sched.ref.base import DEST_F_OVERLOAD, FlowLike, RefDest, RefScheduler, RefService, SchedRng


@dataclass(slots=True)
class WrrMark:
    cl: RefDest | None  # last pick, None = the list head
    cw: int  # current weight
    mw: int  # max weight - (di - 1)
    di: int  # gcd of the positive weights (1 if none)


def gcd_weight(svc: RefService) -> int:
    g = 0
    for d in svc.dests:
        if d.weight > 0:
            g = gcd(d.weight, g) if g > 0 else d.weight
    return g or 1


def max_weight(svc: RefService) -> int:
    return max([0, *(d.weight for d in svc.dests)])


def _mark(svc: RefService) -> WrrMark:
    m = svc.sched_data
    assert isinstance(m, WrrMark)
    return m


class WeightedRoundRobin(RefScheduler):
    name = "wrr"

    def init_service(self, svc: RefService) -> None:
        di = gcd_weight(svc)
        mw = max_weight(svc) - (di - 1)
        svc.sched_data = WrrMark(cl=None, cw=mw, mw=mw, di=di)

    def done_service(self, svc: RefService) -> None:
        svc.sched_data = None

    def _dest_changed(self, svc: RefService) -> None:
        m = _mark(svc)
        m.cl = None
        m.di = gcd_weight(svc)
        m.mw = max_weight(svc) - (m.di - 1)
        if m.cw > m.mw or m.cw == 0:
            m.cw = m.mw
        elif m.di > 1:
            m.cw = (m.cw // m.di) * m.di + 1  # C division of positive ints: floor

    def add_dest(self, svc: RefService, dest: RefDest) -> None:
        self._dest_changed(svc)

    def del_dest(self, svc: RefService, dest: RefDest) -> None:
        self._dest_changed(svc)

    def upd_dest(self, svc: RefService, dest: RefDest) -> None:
        self._dest_changed(svc)

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        m = _mark(svc)
        if m.mw == 0:
            return None
        dests = svc.dests
        last = m.cl
        pos = -1 if m.cl is None else dests.index(m.cl)  # walk starts after this index
        stop: RefDest | None = None
        last_pass = restarted = False
        while True:
            for i in range(pos + 1, len(dests)):
                d = dests[i]
                if not (d.flags & DEST_F_OVERLOAD) and d.weight >= m.cw:
                    m.cl = d
                    return d
                if d is stop:
                    m.cl = d
                    return None  # every dest was checked at cw = 1: all overloaded
            pos = -1  # back at the head
            m.cw -= m.di
            if m.cw <= 0:
                m.cw = m.mw
                if last_pass or last is None:
                    m.cl = None
                    return None
                restarted = True
            last_pass = m.cw <= m.di
            if last_pass and restarted and last is not None:
                # The first cw = 1 walk only covered the dests after `last`; cover the rest up to it.
                stop = last
