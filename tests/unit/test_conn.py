"""Test that the connection table (C, through lb.core.conn.ConnTable) follows the kernel by hand-worked cases.

- a TCP handshake on a DR service: SYN -> SYN_RECV (60 s, active), ACK -> ESTABLISHED (900 s), FIN -> FIN_WAIT
  (120 s, inactive);
- `--set 100 0 0` changes the ESTABLISHED timeout from the next packet, `--timeout` reads it back, and values
  above the kernel's limit are refused;
- an ESTABLISHED conn is gone from the dump at t0 + 901 s and its dest's counts are back to zero;
- a full table refuses new conns, counts them, and keeps serving the old ones;
- persistence: same client -> same dest within the timeout, a fresh pick after it; a /24 netmask groups
  clients;
- a SYN on a TIME_WAIT conn is rescheduled (conn_reuse_mode 1); on a persistent service it is not;
- the dump of the twin (lb.conn.ref) matches the C dump in the handshake case.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lb import model
from lb.conn.ref import NS, RefConnTable
from lb.core.conn import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, ConnTable
from lb.core.core import Core, Flow
from lb.errors import IpvsError
from lb.sched.ref import RefFlow, service_from_model

VIP = IPv4Address("10.0.0.100")
T0 = 1000 * NS


def _setup(svc: model.Service, n: int = 2, fwd: model.Fwd = model.Fwd.DROUTE,
           conn_max: int = 1024) -> tuple[Core, ConnTable]:
    core = Core(conn_max=conn_max, svc_max=4, dest_max=16)
    core.add_service(svc)
    for i in range(n):
        core.add_dest(svc.key, model.Dest(IPv4Address(f"10.0.1.{i + 1}"), 8080, fwd, 1))
    return core, ConnTable(core)


def _svc(persistent: bool = False, proto: model.Proto = model.Proto.TCP,
         netmask: int = 0xFFFFFFFF) -> model.Service:
    return model.Service(model.ServiceKey(proto, VIP, 80), "rr", model.SVC_F_PERSISTENT if persistent else 0,
                         timeout=300 if persistent else 0, netmask=netmask)


def _flow(host: str, port: int, proto: model.Proto = model.Proto.TCP) -> Flow:
    return Flow(IPv4Address(host), port, VIP, 80, proto)


def test_handshake_states_timeouts_and_counts() -> None:
    core, table = _setup(_svc(), n=1)
    f = _flow("10.0.2.1", 40000)
    (d,) = table.batch_schedule([f], [TCP_SYN], T0)
    (c,) = table.dump(T0)
    assert (c.state, c.expires_s, c.dport, c.fwd) == ("SYN_RECV", 60.0, 8080, model.Fwd.DROUTE)
    assert (core.dest_info(d).activeconns, core.dest_info(d).inactconns) == (1, 0)
    table.batch_schedule([f], [TCP_ACK], T0 + NS)
    assert [(c.state, c.expires_s) for c in table.dump(T0 + NS)] == [("ESTABLISHED", 900.0)]
    table.batch_schedule([f], [TCP_FIN | TCP_ACK], T0 + 2 * NS)
    assert [(c.state, c.expires_s) for c in table.dump(T0 + 2 * NS)] == [("FIN_WAIT", 120.0)]
    assert (core.dest_info(d).activeconns, core.dest_info(d).inactconns) == (0, 1)


def test_twin_dump_matches_c() -> None:
    svc = _svc()
    _, table = _setup(svc, n=1)
    ref_svc = service_from_model(svc)
    ref_svc.add_dest(model.Dest(IPv4Address("10.0.1.1"), 8080, model.Fwd.DROUTE, 1))
    twin = RefConnTable(conn_max=1024, services={svc.key: ref_svc})
    for i, flags in enumerate([TCP_SYN, TCP_ACK, TCP_ACK | 0x08, TCP_FIN | TCP_ACK]):
        table.batch_schedule([_flow("10.0.2.1", 40000)], [flags], T0 + i * NS)
        twin.batch_schedule([RefFlow(IPv4Address("10.0.2.1"), 40000, VIP, 80)], [flags], T0 + i * NS)
        assert table.dump(T0 + i * NS) == twin.dump(T0 + i * NS)


def test_set_timeouts() -> None:
    _, table = _setup(_svc(), n=1)
    assert table.get_timeouts() == model.Timeouts(900, 120, 300)
    f = _flow("10.0.2.1", 40000)
    table.batch_schedule([f], [TCP_SYN], T0)
    table.batch_schedule([f], [TCP_ACK], T0)
    table.set_timeouts(model.Timeouts(100, 0, 0))
    assert table.get_timeouts() == model.Timeouts(100, 120, 300)
    assert table.dump(T0)[0].expires_s == 900.0  # unchanged until its next packet
    table.batch_schedule([f], [TCP_ACK], T0 + NS)
    assert table.dump(T0 + NS)[0].expires_s == 100.0
    with pytest.raises(IpvsError):
        table.set_timeouts(model.Timeouts(10**8, 0, 0))


def test_established_expires_at_901s() -> None:
    core, table = _setup(_svc(), n=1)
    f = _flow("10.0.2.1", 40000)
    (d,) = table.batch_schedule([f], [TCP_SYN], T0)
    table.batch_schedule([f], [TCP_ACK], T0)
    assert len(table.dump(T0 + 899 * NS)) == 1
    assert table.dump(T0 + 901 * NS) == []
    table.expire(T0 + 901 * NS)
    assert table.stats().entries == 0
    info = core.dest_info(d)
    assert (info.activeconns, info.inactconns) == (0, 0)
    assert table.batch_lookup([f], T0 + 901 * NS) == [-1]


def test_full_table_refuses_and_counts() -> None:
    _, table = _setup(_svc(proto=model.Proto.UDP), n=1, conn_max=8)
    flows = [_flow(f"10.0.3.{i}", 1000, model.Proto.UDP) for i in range(1, 11)]
    picks = table.batch_schedule(flows, None, T0)
    assert picks[:8] == [picks[0]] * 8 and picks[0] >= 0
    assert picks[8:] == [-1, -1]
    s = table.stats()
    assert (s.entries, s.refused, s.capacity) == (8, 2, 8)
    assert table.batch_schedule(flows[:1], None, T0 + NS) == [picks[0]]
    assert [c.state for c in table.dump(T0)][:1] == ["UDP"]


def test_persistence_same_client_same_dest_then_fresh_pick() -> None:
    _, table = _setup(_svc(persistent=True), n=2, fwd=model.Fwd.MASQ)
    first = table.batch_schedule([_flow("10.0.5.1", 1000)], None, T0)[0]
    again = table.batch_schedule([_flow("10.0.5.1", 1001), _flow("10.0.5.1", 1002)], None, T0 + 10 * NS)
    assert again == [first, first]  # rr alone would alternate
    other = table.batch_schedule([_flow("10.0.5.2", 1000)], None, T0 + 10 * NS)[0]
    assert other != first  # /32: another client is another template
    templates = [c for c in table.dump(T0 + 10 * NS) if c.template]
    assert len(templates) == 2 and all(c.state == "NONE" and c.cport == 0 for c in templates)
    # all conns (SYN_RECV, 60 s) and the templates (300 s after their last use) are gone by then
    table.expire(T0 + 400 * NS)
    assert table.stats().entries == 0
    # without its template the client is a fresh pick: rr's next dest after a newcomer took `first`
    assert table.batch_schedule([_flow("10.0.5.3", 1000)], None, T0 + 400 * NS)[0] == first
    assert table.batch_schedule([_flow("10.0.5.1", 1003)], None, T0 + 400 * NS)[0] == other


def test_persistence_netmask_groups_a_24() -> None:
    _, table = _setup(_svc(persistent=True, netmask=0xFFFFFF00), n=3)
    picks = table.batch_schedule([_flow(f"10.0.6.{i}", 2000 + i) for i in range(1, 20)], None, T0)
    assert len(set(picks)) == 1
    assert table.batch_schedule([_flow("10.0.7.1", 2000)], None, T0)[0] != picks[0]


def test_conn_reuse_reschedules_time_wait() -> None:
    _, table = _setup(_svc(), n=2, fwd=model.Fwd.MASQ)
    f = _flow("10.0.8.1", 5555)
    d1 = table.batch_schedule([f], [TCP_SYN], T0)[0]
    table.batch_schedule([f], [TCP_ACK], T0)
    table.batch_reply([f], [TCP_FIN | TCP_ACK], T0 + NS)  # output fin: ESTABLISHED -> FIN_WAIT
    table.batch_schedule([f], [TCP_FIN | TCP_ACK], T0 + NS)  # input fin: FIN_WAIT -> TIME_WAIT
    assert [c.state for c in table.dump(T0 + NS)] == ["TIME_WAIT"]
    d2 = table.batch_schedule([f], [TCP_SYN], T0 + 2 * NS)[0]
    assert d2 not in (d1, -1)
    assert [c.state for c in table.dump(T0 + 2 * NS)] == ["SYN_RECV"]


def test_no_reuse_for_persistent_conns() -> None:
    _, table = _setup(_svc(persistent=True), n=2, fwd=model.Fwd.MASQ)
    f = _flow("10.0.8.1", 5555)
    d1 = table.batch_schedule([f], [TCP_SYN], T0)[0]
    table.batch_schedule([f], [TCP_RST], T0)  # SYN_RECV + rst (input) -> SYN_RECV; make it CLOSE via ack/rst
    table.batch_schedule([f], [TCP_ACK], T0)
    table.batch_schedule([f], [TCP_RST], T0)
    assert [c.state for c in table.dump(T0) if not c.template] == ["CLOSE"]
    assert table.batch_schedule([f], [TCP_SYN], T0 + NS)[0] == d1
    assert table.stats().created == 2  # the template and the one conn, reused
