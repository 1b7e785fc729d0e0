"""Test that the C core's rate estimator (csched/src/estimator.c) reports what the Python twin does.

The twin (lb/estimator.py) is fed the core's own counters at every 2-second step; the C estimator is
stepped by `Core.estimate()` at the same moments.  Rates of the service and of each dest must be equal
after every step, through bursts, silences, zeroing and a dest added part-way (a block starts at its
counters of the moment it was added, so the twin learns it at once too).
"""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from lb import model
from lb.core.conn import ConnTable
from lb.core.core import Core, Flow
from lb.estimator import Estimator

VIP = IPv4Address("10.0.0.1")
K = model.ServiceKey(model.Proto.TCP, VIP, 80)


def _dest(i: int) -> model.Dest:
    return model.Dest(IPv4Address(f"10.0.1.{i + 1}"), 80, model.Fwd.MASQ, 1)


def _blocks(core: Core) -> dict[object, model.Stats]:
    (svc,) = core.services()
    out: dict[object, model.Stats] = {("svc",): svc.stats}
    for d in svc.dests:
        out[("dest", str(d.dest.addr))] = d.stats
    return out


def _c_rates(core: Core) -> dict[object, model.Rates]:
    (svc,) = core.services()
    out: dict[object, model.Rates] = {("svc",): svc.rates}
    for d in svc.dests:
        out[("dest", str(d.dest.addr))] = d.rates
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.sampled_from(["none", "zero", "add"])), min_size=1,
                max_size=25))
def test_c_estimator_matches_the_python_twin(steps: list[tuple[int, str]]) -> None:
    core = Core(conn_max=1 << 15, svc_max=4, dest_max=16)
    core.add_service(model.Service(K, "rr"))
    core.add_dest(K, _dest(0))
    twin = Estimator()
    twin.step({})                                  # nothing yet: the blocks start below
    for key, stats in _blocks(core).items():
        twin.sample(0.0, {key: stats})
    table = ConnTable(core)
    sport, added = 1024, 1
    for n, event in steps:
        if n:
            table.batch_schedule([Flow(IPv4Address("10.9.0.1"), (sport + i) % 65536, VIP, 80)
                                  for i in range(n)], now_ns=1)
            sport += n
        if event == "zero":
            core.zero(K)
            twin.zero(lambda _k: True)
        elif event == "add" and added < 8:
            core.add_dest(K, _dest(added))
            added += 1
            blocks = _blocks(core)
            twin.sample(0.0, blocks)              # the new block starts at its counters now, as in C
        core.estimate()
        twin.step(_blocks(core))
        c = _c_rates(core)
        for key in c:
            assert c[key] == twin.rates(key), (key, c[key], twin.rates(key))


def test_rates_of_a_steady_load_converge_to_the_rate() -> None:
    core = Core(conn_max=1 << 15, svc_max=4, dest_max=16)
    core.add_service(model.Service(K, "rr"))
    core.add_dest(K, _dest(0))
    table = ConnTable(core)
    for step in range(40):                          # 60 new connections per 2 s = 30/s
        table.batch_schedule([Flow(IPv4Address("10.9.0.2"), 2000 + step * 60 + i, VIP, 80)
                              for i in range(60)], now_ns=1)
        core.estimate()
    (svc,) = core.services()
    assert svc.rates.cps == 30 and svc.dests[0].rates.cps == 30


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 1400)), min_size=1, max_size=12))
def test_packet_and_byte_rates_match_the_twin(steps: list[tuple[int, int]]) -> None:
    """Frames through lb_process_batch move inpkts/inbytes; their rates (other shifts) match too."""
    from scapy.layers.inet import IP, UDP  # noqa: PLC0415
    from scapy.layers.l2 import Ether  # noqa: PLC0415

    from lb.core.batch import PacketBatch, process_batch  # noqa: PLC0415

    core = Core(conn_max=1 << 15, svc_max=4, dest_max=16)
    key = model.ServiceKey(model.Proto.UDP, VIP, 53)
    core.set_port(0, bytes.fromhex("020000000001"), IPv4Address("10.0.0.2"), 1500)
    core.set_port(1, bytes.fromhex("020000000002"), IPv4Address("10.0.2.2"), 1500)
    core.add_service(model.Service(key, "rr"))
    core.add_dest(key, model.Dest(IPv4Address("10.0.2.10"), 53, model.Fwd.DROUTE, 1))
    core.set_nexthop(core.dest_infos(key)[0].id, 1, bytes.fromhex("020000000003"))
    twin = Estimator()
    blocks = {"svc": core.services()[0].stats}
    twin.sample(0.0, blocks)
    batch = PacketBatch(capacity=64, stride=2048)
    for n, size in steps:
        batch.clear()
        for i in range(n):
            frame = (Ether(src="02:00:00:00:00:09", dst="02:00:00:00:00:01")
                     / IP(src="10.9.0.1", dst=str(VIP)) / UDP(sport=1000 + i, dport=53) / (b"x" * size))
            batch.add(bytes(frame), 0)
        process_batch(core, batch, now_ns=1)
        core.estimate()
        (svc,) = core.services()
        twin.step({"svc": svc.stats})
        assert svc.rates == twin.rates("svc")
    (svc,) = core.services()
    assert svc.stats.inpkts == sum(n for n, _ in steps)
