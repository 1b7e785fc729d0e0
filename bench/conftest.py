"""Shared benchmark fixtures: a C core or a twin service with one virtual service of N dests, and flows.

Dests get weights 1..10 (cycling) and are added one by one as `ipvsadm -a` would; flows come from distinct
client addresses and ports, so the hashing schedulers spread them.  Every dest carries some load (dest i:
1 + i % 7 active and i % 5 inactive connections, set through the same accounting events on both engines), as
busy real servers do: with idle dests nq stops at the first one and lc/wlc ties decide everything, which would
measure the call, not the scheduler.  The C side is driven through the raw
cffi call (`lib.lb_sched_batch` on a prebuilt `struct lb_flow[]`) so that a benchmark measures the C
scheduler, not the Python conversion of each flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import pytest

from lb import model
from lb.core.core import EV_BIND_ACTIVE, EV_BIND_INACTIVE, Core, Flow
from lb.sched.ref import SCHEDULERS
from lb.sched.ref.base import RefService, SchedRng

VIP = model.ServiceKey(model.Proto.TCP, IPv4Address("10.255.0.1"), 80)


def dests(n: int) -> list[model.Dest]:
    base = int(IPv4Address("10.1.0.0"))
    return [model.Dest(IPv4Address(base + i + 1), 8080, model.Fwd.DROUTE, 1 + i % 10) for i in range(n)]


def load(i: int) -> tuple[int, int]:
    """(active, inactive) connections of the i-th dest added."""
    return 1 + i % 7, i % 5


def flows(n: int) -> list[Flow]:
    base = int(IPv4Address("10.2.0.0"))
    return [Flow(IPv4Address(base + (i * 2654435761) % 2**20), 1024 + i % 60000, VIP.addr, 80)
            for i in range(n)]


@dataclass
class CBench:
    core: Core
    run: Callable[[], int]  # one batch; returns the number of picks


@dataclass
class PyBench:
    svc: RefService
    run: Callable[[], int]


def make_c(sched: str, n_dests: int, n_flows: int) -> CBench:
    core = Core(conn_max=1024, svc_max=4, dest_max=max(4096, n_dests), rng_seed=1)
    core.add_service(model.Service(VIP, sched=sched))
    for d in dests(n_dests):
        core.add_dest(VIP, d)
    ids = {info.dest.key: info.id for info in core.dest_infos(VIP)}
    for i, d in enumerate(dests(n_dests)):
        active, inactive = load(i)
        for ev, k in ((EV_BIND_ACTIVE, active), (EV_BIND_INACTIVE, inactive)):
            for _ in range(k):
                core.dest_event(ids[d.key], ev)
    ffi, lib = core.ffi, core.lib
    buf: Any = ffi.new("struct lb_flow[]", n_flows)
    for i, f in enumerate(flows(n_flows)):
        c = buf[i]
        c.af = 2
        c.proto = 6
        ffi.memmove(c.saddr, f.saddr.packed, 4)
        ffi.memmove(c.daddr, f.daddr.packed, 4)
        c.sport = f.sport
        c.dport = f.dport
    out: Any = ffi.new("int32_t[]", n_flows)
    cfg = core.svc_cfg(VIP)

    def run() -> int:
        rc = int(lib.lb_sched_batch(core.ptr, cfg, buf, n_flows, out, 0))
        assert rc == n_flows
        return rc

    return CBench(core, run)


def make_py(sched: str, n_dests: int, n_flows: int) -> PyBench:
    svc = RefService(SCHEDULERS[sched](), 0, VIP)
    for d in dests(n_dests):
        svc.add_dest(d)
    for i, d in enumerate(dests(n_dests)):
        active, inactive = load(i)
        for ev, k in ((EV_BIND_ACTIVE, active), (EV_BIND_INACTIVE, inactive)):
            for _ in range(k):
                svc.event(d.key, ev)
    fl = flows(n_flows)
    rng = SchedRng(1)

    def run() -> int:
        for f in fl:
            svc.schedule(f, 0, rng)
        return len(fl)

    return PyBench(svc, run)


@pytest.fixture
def c_bench() -> Callable[[str, int, int], CBench]:
    return make_c


@pytest.fixture
def py_bench() -> Callable[[str, int, int], PyBench]:
    return make_py
