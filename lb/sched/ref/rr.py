"""Round-robin: every usable dest in turn, in list order (twin of csched/src/sched_rr.c, kernel ip_vs_rr.c).

A dest is usable when it is not OVERLOADed and its weight is above 0 (weight 0 = quiesced: it keeps its
connections but gets no new ones).  The scheduler keeps a cursor: the dest picked last, or "the head" before
the first pick.  A pick walks on from the cursor to the end of the list, then (unless the cursor was the
head) from the start of the list up to the cursor's own dest, and takes the first usable dest.

Order matters: the kernel links each new dest at the head of the list, so servers added A, B, C are
visited C, B, A.  A dest added later lands in front of the others, so a cursor in the middle of the list
only reaches it after wrapping round.

When the cursor's dest is deleted, the cursor moves back to that dest's predecessor (the kernel reads it as
p->next->prev of the unlinked entry), so the next pick continues with the dest that followed the deleted one.
"""

from __future__ import annotations

from dataclasses import dataclass

from lb.sched.ref.base import FlowLike, RefDest, RefScheduler, RefService, SchedRng, usable


@dataclass(slots=True)
class RrState:
    """The cursor (None = the list head) and its predecessor (None = the head)."""

    cursor: RefDest | None = None
    prev: RefDest | None = None


def _state(svc: RefService) -> RrState:
    state = svc.sched_data
    assert isinstance(state, RrState)
    return state


def _remember_prev(svc: RefService, st: RrState) -> None:
    if st.cursor is None:
        st.prev = None
        return
    i = svc.dests.index(st.cursor)
    st.prev = svc.dests[i - 1] if i > 0 else None


class RoundRobin(RefScheduler):
    name = "rr"

    def init_service(self, svc: RefService) -> None:
        svc.sched_data = RrState()

    def done_service(self, svc: RefService) -> None:
        svc.sched_data = None

    def add_dest(self, svc: RefService, dest: RefDest) -> None:
        _remember_prev(svc, _state(svc))

    def del_dest(self, svc: RefService, dest: RefDest) -> None:
        st = _state(svc)
        if st.cursor is dest:
            st.cursor = st.prev
        _remember_prev(svc, st)

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        st = _state(svc)
        dests = svc.dests
        start = 0 if st.cursor is None else dests.index(st.cursor) + 1
        # After the cursor to the end; then, if the cursor is a dest, from the start up to and including it.
        order = dests[start:] + (dests[:start] if st.cursor is not None else [])
        for d in order:
            if usable(d):
                st.cursor = d
                _remember_prev(svc, st)
                return d
        return None
