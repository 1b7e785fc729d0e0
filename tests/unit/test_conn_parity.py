"""Test that the C connection table and its Python twin (lb.conn.ref) agree.

- random sequences of packets (clients, ports, TCP flags, replies), time steps and dest adds/deletes/weight
  changes go through `lb_conn_batch_schedule` / `lb_conn_batch_reply` and through `RefConnTable`;
- after every step both pick the same dest for every flow, show the same dump (states, flags, remaining time)
  and the same active / inactive / persistent counts on every dest;
- this holds for plain and persistent (-p, /24 netmask) services, NAT and DR dests, TCP and UDP.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from lb import model
from lb.conn.ref import NS, RefConnTable
from lb.core.conn import ConnTable
from lb.core.core import Core, Flow
from lb.sched.ref import RefFlow, service_from_model

VIP = IPv4Address("10.0.0.100")
FLAGS = st.sampled_from([0x02, 0x10, 0x11, 0x04, 0x12, 0x18, 0x01, 0x00, 0x02, 0x10])

step = st.one_of(
    st.tuples(st.just("pkt"), st.integers(0, 5), st.integers(0, 3), FLAGS),
    st.tuples(st.just("reply"), st.integers(0, 5), st.integers(0, 3), FLAGS),
    st.tuples(st.just("time"), st.integers(1, 400), st.just(0), st.just(0)),
    st.tuples(st.just("weight"), st.integers(0, 3), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("del"), st.integers(0, 3), st.just(0), st.just(0)),
    st.tuples(st.just("add"), st.integers(0, 3), st.just(0), st.just(0)),
)


def _key(c: model.ConnInfo) -> tuple[object, ...]:
    return (
        c.proto,
        c.caddr,
        c.cport,
        c.vaddr,
        c.vport,
        c.daddr,
        c.dport,
        c.state,
        c.expires_s,
        c.fwd,
        c.flags,
        c.template,
    )


@settings(max_examples=60, deadline=None)
@given(
    sched=st.sampled_from(["rr", "wlc", "lc", "wrr"]),
    persistent=st.booleans(),
    proto=st.sampled_from([model.Proto.TCP, model.Proto.UDP]),
    fwd=st.sampled_from([model.Fwd.MASQ, model.Fwd.DROUTE]),
    steps=st.lists(step, min_size=1, max_size=40),
)
def test_c_and_twin_agree(
    sched: str, persistent: bool, proto: model.Proto, fwd: model.Fwd, steps: list[tuple[str, int, int, int]]
) -> None:
    svc = model.Service(
        model.ServiceKey(proto, VIP, 80),
        sched,
        model.SVC_F_PERSISTENT if persistent else 0,
        timeout=200 if persistent else 0,
        netmask=0xFFFFFF00,
    )
    core = Core(conn_max=4096, svc_max=4, dest_max=32)
    table = ConnTable(core)
    core.add_service(svc)
    ref_svc = service_from_model(svc)
    twin = RefConnTable(conn_max=4096, services={svc.key: ref_svc})
    dests = [model.Dest(IPv4Address(f"10.0.1.{i + 1}"), 8080, fwd, 1) for i in range(4)]
    present = [False] * 4
    for i in range(3):
        core.add_dest(svc.key, dests[i])
        ref_svc.add_dest(dests[i])
        present[i] = True
    now = 5 * NS
    for kind, a, b, flags in steps:
        if kind == "time":
            now += a * NS
            continue
        if kind in ("pkt", "reply"):
            saddr = IPv4Address(f"10.0.{2 + a // 3}.{1 + a}")
            flow = Flow(saddr, 1024 + b, VIP, 80, proto)
            rflow = RefFlow(saddr, 1024 + b, VIP, 80, proto)
            if kind == "pkt":
                got = table.batch_schedule([flow], [flags], now)[0]
                want = twin.batch_schedule([rflow], [flags], now)[0]
            else:
                got = table.batch_reply([flow], [flags], now)[0]
                want = twin.batch_reply([rflow], [flags], now)[0]
            got_addr = core.dest_info(got).dest.addr if got >= 0 else None
            assert got_addr == (want.addr if want is not None else None)
        elif kind == "weight" and present[a]:
            d = dests[a].replace(weight=b)
            core.edit_dest(svc.key, d)
            ref_svc.edit_dest(d)
        elif kind == "del" and present[a]:
            core.del_dest(svc.key, dests[a])
            twin.del_dest(svc.key, dests[a])
            present[a] = False
        elif kind == "add" and not present[a]:
            core.add_dest(svc.key, dests[a])
            twin.add_dest(svc.key, dests[a])
            present[a] = True
        table.expire(now)
        twin.expire(now)
        assert sorted(map(_key, table.dump(now))) == sorted(map(_key, twin.dump(now)))
        for info in core.dest_infos(svc.key):
            rd = ref_svc.find(info.dest.key)
            assert rd is not None
            assert (info.activeconns, info.inactconns, info.persistconns) == (
                rd.activeconns,
                rd.inactconns,
                rd.persistconns,
            )
