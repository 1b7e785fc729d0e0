"""Test that every C scheduler picks exactly what its Python twin picks.

- For each scheduler of the C registry that has a twin (sh/dh/mh/lblc/lblcr join as their twins land),
  hypothesis draws a service (IPv4 or IPv6, scheduler flags it accepts) and a sequence of operations:
  dest adds (1-20 dests, weights including 0, -x/-y thresholds), edits, deletes, connection events
  (LB_EV_*), scheduler re-binds (-E -s), timer ticks, and batches of picks for random clients.
- After every operation both engines hold the same dests in the same (newest-first) order with the same
  weights, flags (OVERLOAD hysteresis) and connection counts.
- Every pick of lb_sched_batch equals the twin's pick (the same dest, or none), batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb import model
from lb.core.core import Core, Flow
from lb.errors import IpvsError
from lb.sched import c_schedulers
from lb.sched.ref import SCHEDULERS
from lb.sched.ref.base import RefDest, RefService, SchedRng

PARITY_NAMES = [s.name for s in c_schedulers() if s.name in SCHEDULERS]
FLAGS_OK = {s.name: s.flags_ok for s in c_schedulers()}
RNG_SEED = 12345


@dataclass(frozen=True)
class Add:
    idx: int
    weight: int
    u: int
    l_: int


@dataclass(frozen=True)
class Edit:
    idx: int
    weight: int
    u: int
    l_: int


@dataclass(frozen=True)
class Del:
    idx: int


@dataclass(frozen=True)
class Event:
    idx: int
    ev: int


@dataclass(frozen=True)
class Picks:
    clients: tuple[tuple[int, int, int], ...]  # (client index, source port, daddr index)
    dt_s: int


@dataclass(frozen=True)
class Rebind:
    pass


@dataclass(frozen=True)
class Tick:
    dt_s: int


N_ADDRS = 20

#: Mostly a few dests (so that edits, deletes and events hit existing ones), sometimes up to 20.
dest_index = st.one_of(st.integers(0, 5), st.integers(0, N_ADDRS - 1))
weights = st.one_of(st.integers(0, 5), st.integers(0, 100), st.sampled_from([0, 1, 2, 65535, 2**31 - 1]))


@st.composite
def thresholds(draw: st.DrawFn) -> tuple[int, int]:
    u = draw(st.sampled_from([0, 0, 0, 1, 2, 3, 4, 8]))
    lo = draw(st.integers(0, u)) if u else 0
    return u, lo


#: How often each operation is drawn (picks and deletes often enough to hit rr's cursor-delete case).
OP_MIX = ["add"] * 3 + ["edit"] + ["del"] * 2 + ["event"] * 4 + ["picks"] * 4 + ["rebind", "tick"]


@st.composite
def ops(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(OP_MIX))
    idx = draw(dest_index)
    if kind in ("add", "edit"):
        u, lo = draw(thresholds())
        return (Add if kind == "add" else Edit)(idx, draw(weights), u, lo)
    if kind == "del":
        return Del(idx)
    if kind == "event":
        return Event(idx, draw(st.integers(0, 7)))
    if kind == "picks":
        client = st.tuples(st.integers(0, 2**16 - 1), st.integers(1, 65535), st.integers(0, 3))
        clients = draw(st.lists(client, min_size=1, max_size=12))
        return Picks(tuple(clients), draw(st.integers(0, 400)))
    if kind == "rebind":
        return Rebind()
    return Tick(draw(st.integers(0, 400)))


@st.composite
def scenarios(draw: st.DrawFn, name: str) -> tuple[bool, int, list[object]]:
    v6 = draw(st.integers(0, 4)) == 0
    flags = (draw(st.integers(0, 7)) << 3) & FLAGS_OK[name]
    # Start with a few adds so that most sequences schedule over real sets.
    first = draw(st.lists(st.builds(Add, dest_index, weights, st.just(0), st.just(0)),
                          min_size=2, max_size=8))
    rest = draw(st.lists(ops(), min_size=10, max_size=35))
    return v6, flags, [*first, *rest]


def dest_addr(v6: bool, idx: int) -> model.Addr:
    return IPv6Address(f"2001:db8::{idx + 1:x}") if v6 else IPv4Address(f"10.1.0.{idx + 1}")


def client_addr(v6: bool, n: int) -> model.Addr:
    return IPv6Address(f"2001:db8:c::{n:x}") if v6 else IPv4Address(f"10.2.{n >> 8}.{n & 255}")


def vip(v6: bool, n: int = 0) -> model.Addr:
    return IPv6Address(f"2001:db8:f::{n + 1:x}") if v6 else IPv4Address(f"10.0.0.{100 + n}")


class Pair:
    """One service in the C core and the same service in the twin model, driven in lockstep."""

    def __init__(self, name: str, v6: bool, flags: int) -> None:
        self.name = name
        self.v6 = v6
        self.key = model.ServiceKey(model.Proto.TCP, vip(v6), 80)
        self.svc = model.Service(self.key, sched=name, flags=flags)
        self.core = Core(conn_max=1024, svc_max=4, dest_max=64, rng_seed=RNG_SEED)
        self.core.add_service(self.svc)
        self.ref = RefService(SCHEDULERS[name](), flags, self.key)
        self.rng = SchedRng(RNG_SEED)
        self.now_ns = 10**9
        self.ids: dict[model.DestKey, int] = {}

    def dest(self, idx: int, weight: int = 1, u: int = 0, lo: int = 0) -> model.Dest:
        return model.Dest(dest_addr(self.v6, idx), 8080, model.Fwd.MASQ, weight, u, lo)

    def refresh_ids(self) -> None:
        self.ids = {d.dest.key: d.id for d in self.core.dest_infos(self.key)}

    def apply(self, op: object) -> None:
        if isinstance(op, Add | Edit):
            d = self.dest(op.idx, op.weight, op.u, op.l_)
            exists = self.ref.find(d.key) is not None
            if isinstance(op, Add):
                if exists:
                    with pytest.raises(IpvsError):
                        self.core.add_dest(self.key, d)
                    return
                self.core.add_dest(self.key, d)
                self.ref.add_dest(d)
            else:
                if not exists:
                    with pytest.raises(IpvsError):
                        self.core.edit_dest(self.key, d)
                    return
                self.core.edit_dest(self.key, d)
                self.ref.edit_dest(d)
            self.refresh_ids()
        elif isinstance(op, Del):
            key = self.dest(op.idx).key
            if self.ref.find(key) is None:
                with pytest.raises(IpvsError):
                    self.core.del_dest(self.key, key)
                return
            self.core.del_dest(self.key, key)
            self.ref.del_dest(key)
            self.refresh_ids()
        elif isinstance(op, Event):
            rd = self.ref.find(self.dest(op.idx).key)
            if rd is None:
                return
            try:
                rd.account(op.ev)
            except ValueError:
                with pytest.raises(IpvsError):
                    self.core.dest_event(self.ids[rd.key], op.ev)
                return
            self.core.dest_event(self.ids[rd.key], op.ev)
        elif isinstance(op, Rebind):
            other = "wlc" if self.name == "rr" else "rr"
            self.core.edit_service(self.svc.replace(sched=other))
            self.ref.set_scheduler(SCHEDULERS[other]())
            self.core.edit_service(self.svc)
            self.ref.set_scheduler(SCHEDULERS[self.name]())
        elif isinstance(op, Tick):
            self.now_ns += op.dt_s * 10**9
            self.core.tick(self.now_ns)
            self.ref.tick(self.now_ns)
        elif isinstance(op, Picks):
            self.now_ns += op.dt_s * 10**9
            self.check_picks(op)
        self.check_state()

    def check_state(self) -> None:
        c = [(d.dest.key, d.dest.weight, d.last_weight, d.flags, d.activeconns, d.inactconns, d.persistconns)
             for d in self.core.dest_infos(self.key)]
        r = [(d.key, d.weight, d.last_weight, d.flags, d.activeconns, d.inactconns, d.persistconns)
             for d in self.ref.dests]
        assert c == r

    def check_picks(self, op: Picks) -> None:
        flows = [Flow(client_addr(self.v6, n), sport, vip(self.v6, dn), 80) for n, sport, dn in op.clients]
        by_id = {v: k for k, v in self.ids.items()}
        got = [by_id.get(i) if i >= 0 else None for i in self.core.sched_batch(self.key, flows, self.now_ns)]
        want: list[model.DestKey | None] = []
        for f in flows:
            d: RefDest | None = self.ref.schedule(f, self.now_ns, self.rng)
            want.append(d.key if d is not None else None)
        assert got == want, f"{self.name}: flows {flows}"


@pytest.mark.parametrize("name", PARITY_NAMES)
def test_c_and_twin_pick_the_same(name: str) -> None:
    @given(scenarios(name))
    def run(scenario: tuple[bool, int, list[object]]) -> None:
        v6, flags, seq = scenario
        pair = Pair(name, v6, flags)
        for op in seq:
            pair.apply(op)

    run()


def test_parity_covers_my_schedulers() -> None:
    """The schedulers whose C and twin this suite must always cover."""
    assert {"rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "twos"} <= set(PARITY_NAMES)
