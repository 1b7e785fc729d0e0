"""Power of two choices (twin of csched/src/sched_twos.c, kernel ip_vs_twos.c).

Draw two dests at random, each with probability proportional to its weight, and keep the less loaded one
(load = overhead / weight, overhead = (activeconns << 8) + inactconns).

1. Usable dests: not OVERLOADed, weight > 0.  total = sum of their weights + 1.
2. r1, r2 = two draws in [0, total) from the scheduler PRNG (`SchedRng.next_u64() % total`; the kernel
   uses get_random_u32_below, pyvs a seeded splitmix64 shared with C so that picks are reproducible).
3. Walk the usable dests in list order subtracting each weight from r1 and r2; choice N is the first dest
   at which rN <= 0.  (A draw of 0 picks the first usable dest; so does a draw equal to its weight.)
4. Choice 2 replaces choice 1 only when strictly less loaded: weight2 * overhead1 > weight1 * overhead2.
"""

from __future__ import annotations

from lb.sched.ref.base import FlowLike, RefDest, RefScheduler, RefService, SchedRng, usable


class TwoChoices(RefScheduler):
    name = "twos"

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        candidates = [d for d in svc.dests if usable(d)]
        if not candidates:
            return None
        total = sum(d.weight for d in candidates) + 1
        r1 = rng.next_u64() % total
        r2 = rng.next_u64() % total
        choice1: RefDest | None = None
        choice2: RefDest | None = None
        for d in candidates:
            r1 -= d.weight
            r2 -= d.weight
            if r1 <= 0 and choice1 is None:
                choice1 = d
            if r2 <= 0 and choice2 is None:
                choice2 = d
            if choice1 is not None and choice2 is not None:
                break
        assert choice1 is not None  # r1 <= sum of the weights, so the walk always gets there
        if choice2 is not None and (
                choice2.weight * choice1.conn_overhead() > choice1.weight * choice2.conn_overhead()):
            return choice2
        return choice1
