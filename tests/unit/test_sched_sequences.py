"""Test that pick sequences worked out by hand from the kernel sources come out of both engines.

Each case runs the C core and the Python twin side by side and expects the same hand-derived sequence.
Servers are named A, B, C, D (10.0.0.11 …); `ipvsadm -a` order matters because the kernel links each new
dest at the head of the list, so after adding A, B, C the list is C, B, A.
- rr: newest first; the cursor survives adds and moves to its predecessor when its dest is deleted.
- wrr: the state left by one-by-one adds (cw = 1 after the first add) vs a list bound all at once (-E -s).
- lc/wlc: overhead (active << 8) + inactive, strict comparisons, ties to the earlier dest.
- sed vs nq: the +1 and nq's idle shortcut; weight 0 quiesced; OVERLOAD from -x/-y with its hysteresis.
- fo: highest weight, newest on ties; ovf: active connections > weight overflows.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from lb import model
from lb.core.core import Core, Flow
from lb.sched.ref import SCHEDULERS
from lb.sched.ref.base import (
    DEST_F_OVERLOAD,
    EV_BIND_ACTIVE,
    EV_BIND_INACTIVE,
    EV_UNBIND_ACTIVE,
    RefService,
    SchedRng,
)

NAMES = {"A": 11, "B": 12, "C": 13, "D": 14}
KEY = model.ServiceKey(model.Proto.TCP, IPv4Address("10.255.0.1"), 80)


def _addr(name: str) -> IPv4Address:
    return IPv4Address(f"10.0.0.{NAMES[name]}")


class Both:
    """The same service in the C core and in the twin model."""

    def __init__(self, sched: str) -> None:
        self.sched = sched
        self.core = Core(conn_max=1024, svc_max=2, dest_max=16)
        self.core.add_service(model.Service(KEY, sched=sched))
        self.ref = RefService(SCHEDULERS[sched](), 0, KEY)
        self.rng = SchedRng(1)
        self.n = 0

    def dest(self, name: str, weight: int = 1, u: int = 0, lo: int = 0) -> model.Dest:
        return model.Dest(_addr(name), 80, model.Fwd.DROUTE, weight, u, lo)

    def add(self, name: str, weight: int = 1, u: int = 0, lo: int = 0) -> None:
        self.core.add_dest(KEY, self.dest(name, weight, u, lo))
        self.ref.add_dest(self.dest(name, weight, u, lo))

    def edit(self, name: str, weight: int = 1, u: int = 0, lo: int = 0) -> None:
        self.core.edit_dest(KEY, self.dest(name, weight, u, lo))
        self.ref.edit_dest(self.dest(name, weight, u, lo))

    def delete(self, name: str) -> None:
        self.core.del_dest(KEY, self.dest(name).key)
        self.ref.del_dest(self.dest(name).key)

    def rebind(self, sched: str) -> None:
        self.core.edit_service(model.Service(KEY, sched=sched))
        self.ref.set_scheduler(SCHEDULERS[sched]())

    def _id(self, name: str) -> int:
        for d in self.core.dest_infos(KEY):
            if d.dest.addr == _addr(name):
                return d.id
        raise KeyError(name)

    def event(self, name: str, ev: int, times: int = 1) -> None:
        for _ in range(times):
            self.core.dest_event(self._id(name), ev)
            self.ref.event(self.dest(name).key, ev)

    def overloaded(self, name: str) -> bool:
        c = next(d for d in self.core.dest_infos(KEY) if d.dest.addr == _addr(name))
        r = self.ref.find(self.dest(name).key)
        assert r is not None
        assert bool(c.flags & DEST_F_OVERLOAD) == bool(r.flags & DEST_F_OVERLOAD)
        return bool(c.flags & DEST_F_OVERLOAD)

    def picks(self, n: int, bind: bool = False) -> str:
        """n picks, as a string of names ('-' = none); bind=True makes each pick an active connection."""
        by_addr = {v: k for k, v in NAMES.items()}
        out = []
        for _ in range(n):
            self.n += 1
            flow = Flow(IPv4Address("10.1.0.1") + self.n, 1024 + self.n, KEY.addr, 80)
            cid = self.core.sched_batch(KEY, [flow])[0]
            rd = self.ref.schedule(flow, 0, self.rng)
            c = "-" if cid < 0 else by_addr[int(self.core.dest_info(cid).dest.addr.packed[3])]
            r = "-" if rd is None else by_addr[int(rd.addr.packed[3])]
            assert c == r, f"C picked {c}, twin picked {r}"
            out.append(c)
            if bind and c != "-":
                self.event(c, EV_BIND_ACTIVE)
        return "".join(out)


# ---- rr ----

def test_rr_newest_first() -> None:
    s = Both("rr")
    for n in "ABC":
        s.add(n)
    assert s.picks(6) == "CBACBA"


def test_rr_cursor_survives_add_and_moves_back_on_delete() -> None:
    s = Both("rr")
    for n in "ABC":
        s.add(n)
    assert s.picks(2) == "CB"  # cursor on B
    s.delete("B")  # cursor moves to B's predecessor C; the walk continues after C: A
    assert s.picks(2) == "AC"
    s.add("D")  # list D, C, A; cursor on C; next after C is A, then wrap to D
    assert s.picks(3) == "ADC"


def test_rr_quiescent_and_all_unavailable() -> None:
    s = Both("rr")
    for n in "ABC":
        s.add(n)
    s.edit("B", weight=0)  # quiesced: skipped
    assert s.picks(4) == "CACA"
    s.edit("A", weight=0)
    s.edit("C", weight=0)
    assert s.picks(2) == "--"


# ---- wrr ----

def test_wrr_432_added_one_by_one() -> None:
    # add A(4): di=4, mw=1, cw 0 -> 1.  add B(3): di=1, mw=4, cw stays 1.  add C(2): the same.
    # List C, B, A.  cw=1: C B A; cw wraps to mw=4: A; cw=3: B A; cw=2: C B A; then cw=1 again.
    s = Both("wrr")
    s.add("A", 4)
    s.add("B", 3)
    s.add("C", 2)
    assert s.picks(18) == "CBAABACBA" * 2


def test_wrr_432_bound_all_at_once() -> None:
    # Dests exist before wrr is bound (-E -s wrr): init sets cw = mw = 4 at once.
    # List C(2), B(3), A(4): cw=4: A; cw=3: B A; cw=2: C B A; cw=1: C B A.
    s = Both("rr")
    s.add("A", 4)
    s.add("B", 3)
    s.add("C", 2)
    s.rebind("wrr")
    assert s.picks(9) == "ABACBACBA"


def test_wrr_gcd_step() -> None:
    # add A(4): di=4, mw=1, cw=1.  add B(2): di=2, mw=4-1=3, cw=1 -> (1/2)*2+1 = 1.
    # List B(2), A(4).  cw=1: B A; cw=-1 -> mw=3: A; cw=1: B A; ...
    s = Both("wrr")
    s.add("A", 4)
    s.add("B", 2)
    assert s.picks(8) == "BAABAABA"


def test_wrr_edit_resets_cursor() -> None:
    s = Both("rr")
    s.add("A", 2)
    s.add("B", 1)
    s.rebind("wrr")  # list B(1), A(2); di=1, mw=2, cw=2
    assert s.picks(2) == "AB"  # cw=2: A; cw=1: B (cursor B)
    s.edit("B", 1)  # any change: cl back to the head, cw=1 stays (not > mw)
    assert s.picks(3) == "BAA"  # cw=1 from the head: B A; then cw=2: A


def test_wrr_all_zero_and_overloaded() -> None:
    s = Both("wrr")
    s.add("A", 0)
    assert s.picks(2) == "--"  # mw = 0: no destination
    s.edit("A", 2, u=1)
    assert s.picks(1) == "A"
    s.event("A", EV_BIND_ACTIVE)  # 1 conn >= u=1: OVERLOADed
    assert s.overloaded("A")
    assert s.picks(2) == "--"


# ---- lc / wlc ----

def test_lc_ties_and_overhead() -> None:
    s = Both("lc")
    s.add("A")
    s.add("B")
    assert s.picks(1) == "B"  # all 0: first in list (newest) wins
    s.event("B", EV_BIND_ACTIVE)  # B: 256
    s.event("A", EV_BIND_INACTIVE, times=255)  # A: 255
    assert s.picks(1) == "A"
    s.event("A", EV_BIND_INACTIVE)  # A: 256 = B: tie, B is first
    assert s.picks(1) == "B"


def test_wlc_weighted_and_ties() -> None:
    s = Both("wlc")
    s.add("A", 2)
    s.add("B", 4)  # list B, A
    s.event("A", EV_BIND_ACTIVE)  # 256 / 2
    s.event("B", EV_BIND_ACTIVE, times=2)  # 512 / 4: equal load -> B (earlier) keeps it
    assert s.picks(1) == "B"
    s.event("B", EV_BIND_INACTIVE)  # 513 / 4 > 256 / 2 -> A
    assert s.picks(1) == "A"
    s.edit("A", 0)  # quiesced: never picked even when idle
    s.event("A", EV_UNBIND_ACTIVE)
    assert s.picks(2) == "BB"


# ---- sed vs nq ----

def test_sed_vs_nq() -> None:
    # Weights A=1, B=3; list B, A; every pick becomes an active connection.
    # sed: (a+1)/w: B 1/3 vs A 1/1 -> B; 2/3 -> B; 3/3 vs 1/1 tie -> B; 4/3 vs 1/1 -> A.
    sed = Both("sed")
    sed.add("A", 1)
    sed.add("B", 3)
    assert sed.picks(4, bind=True) == "BBBA"
    # nq: B idle -> B; then A is idle -> A at once; then sed's rule: B 2/3 vs A 2/1 -> B; 3/3 vs 2/1 -> B.
    nq = Both("nq")
    nq.add("A", 1)
    nq.add("B", 3)
    assert nq.picks(4, bind=True) == "BABB"


def test_wlc_vs_sed_on_empty_servers() -> None:
    # No connections: wlc sees 0/w everywhere (first in list wins), sed sees 1/w (heaviest wins).
    wlc, sed = Both("wlc"), Both("sed")
    for s in (wlc, sed):
        s.add("A", 5)
        s.add("B", 1)
    assert wlc.picks(1) == "B"
    assert sed.picks(1) == "A"


# ---- OVERLOAD hysteresis (-x upper, -y lower) ----

def test_overload_with_lower_threshold() -> None:
    s = Both("rr")
    s.add("A", 1, u=4, lo=2)
    s.add("B")
    s.event("A", EV_BIND_ACTIVE, times=3)
    assert not s.overloaded("A")
    s.event("A", EV_BIND_ACTIVE)  # 4 >= u: OVERLOAD
    assert s.overloaded("A")
    assert s.picks(2) == "BB"
    s.event("A", EV_UNBIND_ACTIVE)  # 3: not < l=2
    s.event("A", EV_UNBIND_ACTIVE)  # 2: not < 2
    assert s.overloaded("A")
    s.event("A", EV_UNBIND_ACTIVE)  # 1 < 2: cleared
    assert not s.overloaded("A")
    assert "A" in s.picks(2)


def test_overload_without_lower_threshold_clears_below_three_quarters() -> None:
    s = Both("rr")
    s.add("A", 1, u=4)
    s.event("A", EV_BIND_ACTIVE, times=4)
    assert s.overloaded("A")
    s.event("A", EV_UNBIND_ACTIVE)  # 3 * 4 = 12, not < 3 * 4
    assert s.overloaded("A")
    s.event("A", EV_UNBIND_ACTIVE)  # 2 * 4 = 8 < 12: cleared
    assert not s.overloaded("A")


def test_raising_upper_threshold_clears_overload() -> None:
    s = Both("wlc")
    s.add("A", 1, u=2)
    s.event("A", EV_BIND_ACTIVE, times=2)
    assert s.overloaded("A")
    assert s.picks(1) == "-"
    s.edit("A", 1, u=3)  # raised: OVERLOAD lifted at once
    assert not s.overloaded("A")
    assert s.picks(1) == "A"


# ---- fo / ovf ----

def test_fo_highest_weight_newest_on_ties() -> None:
    s = Both("fo")
    s.add("A", 5)
    s.add("B", 5)
    s.add("C", 1)
    assert s.picks(2) == "BB"  # list C, B, A: B is met before A
    s.edit("B", 0)
    assert s.picks(1) == "A"
    s.edit("A", 5, u=1)
    s.event("A", EV_BIND_ACTIVE)
    assert s.picks(1) == "C"  # A OVERLOADed, B quiesced


def test_ovf_overflows_after_weight_plus_one_active() -> None:
    s = Both("ovf")
    s.add("A", 2)
    s.add("B", 1)
    # A is eligible while active <= 2, so it takes 3 connections, then B takes 2, then nothing.
    assert s.picks(6, bind=True) == "AAABB-"


def test_last_weight_keeps_latest_nonzero_weight() -> None:
    # __ip_vs_update_dest: last_weight takes the weight on add, and on edits only when it is not 0.
    s = Both("rr")
    s.add("A", 3)
    s.edit("A", 0)
    assert s.core.dest_infos(KEY)[0].last_weight == s.ref.dests[0].last_weight == 3
    s.edit("A", 5)
    assert s.core.dest_infos(KEY)[0].last_weight == s.ref.dests[0].last_weight == 5
