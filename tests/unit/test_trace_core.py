"""Test that the C core's trace ring shows the data plane's own decisions for new connections.

- a wlc service with three dests under known loads, tracing armed for a client, a batch of SYNs through
  lb.core.batch.process_batch: one record per SYN, each with the dests' weights and active/inactive counts
  as the scheduler found them, so the wlc pick (smallest (active * 256 + inactive) / weight, first in list
  order on a tie) can be checked by hand, and each record's pick is the dest the rewritten frame went to;
- the record says the connection went NONE -> SYN_RECV, NAT, and which fields the rewrite changed;
- another client's SYNs and packets of known connections are not recorded; disarmed, nothing is;
- records survive a JSON round trip; the daemon's versioned `trace` request arms, reads and stops it.
"""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from ipaddress import IPv4Address, ip_address

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from lb import model
from lb.core.batch import VERDICT_TX, PacketBatch, process_batch
from lb.core.core import Core
from lb.core.trace import Tracer, TraceRecord
from lb.daemon import protocol as p
from lb.daemon.server import Server
from lb.errors import ProtocolError
from lb.state import ConfigState

LB0_MAC, LB1_MAC, CLIENT_MAC = "02:00:00:00:01:00", "02:00:00:00:01:01", "02:00:00:00:00:02"
CIP, OTHER, VIP = "10.0.0.2", "10.0.0.3", "10.0.0.100"
KEY = model.ServiceKey(model.Proto.TCP, IPv4Address(VIP), 80)
#: (RIP, weight, active conns already there) - added in this order, so the list (newest first) is C, B, A
DESTS = (("10.1.0.11", 1, 1), ("10.1.0.12", 2, 1), ("10.1.0.13", 3, 2))


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _core() -> Core:
    core = Core(conn_max=4096, svc_max=8, dest_max=16)
    core.set_port(0, _mac(LB0_MAC), IPv4Address("10.0.0.1"), 1500)
    core.set_port(1, _mac(LB1_MAC), IPv4Address("10.1.0.1"), 1500)
    core.add_service(model.Service(KEY, "wlc"))
    for i, (rip, weight, _) in enumerate(DESTS):
        core.add_dest(KEY, model.Dest(ip_address(rip), 8080, model.Fwd.MASQ, weight=weight))
        info = next(d for d in core.dest_infos(KEY) if str(d.dest.addr) == rip)
        core.set_nexthop(info.id, 1, bytes([2, 0, 0, 0, 2, 0x11 + i]))
    for info in core.dest_infos(KEY):
        active = next(a for rip, _, a in DESTS if rip == str(info.dest.addr))
        for _ in range(active):
            core.dest_event(info.id, 0)  # LB_EV_BIND_ACTIVE: a load without packets
    return core


def _syn(src: str, sport: int, flags: str = "S") -> bytes:
    return bytes(Ether(dst=LB0_MAC, src=CLIENT_MAC) / IP(src=src, dst=VIP, ttl=64) /
                 TCP(sport=sport, dport=80, flags=flags, seq=1000))


def _wlc(rec: TraceRecord) -> int:
    """ip_vs_wlc.c's rule over the record's snapshot, by hand."""
    usable = [d for d in rec.dests if d.weight > 0 and not d.overloaded]
    best = usable[0]
    for d in usable[1:]:
        if Fraction(d.overhead, d.weight) < Fraction(best.overhead, best.weight):
            best = d
    return best.id


def test_wlc_batch_records_are_checkable_by_hand() -> None:
    core = _core()
    tracer = Tracer(core)
    after = tracer.arm(6, client=CIP, vip=VIP, vport=80)
    batch = PacketBatch(16)
    batch.add(_syn(CIP, 40000))
    batch.add(_syn(OTHER, 5000))                     # another client: scheduled, not traced
    for i in range(1, 6):
        batch.add(_syn(CIP, 40000 + i))
    batch.add(_syn(CIP, 40000, "A"))                 # a known connection's ACK: not a new one
    assert process_batch(core, batch, 1_000_000_000) == 8
    recs = tracer.read(after)
    assert [r.cport for r in recs] == [40000 + i for i in range(6)]
    assert tracer.remaining() == 0
    by_id = {d.id: str(d.dest.addr) for d in core.dest_infos(KEY)}

    # the first traced SYN by hand: list order (newest first) C (weight 3, 2 active), B (2, 1), A (1, 1);
    # overheads / weight: 512/3 = 170.7, 256/2 = 128, 256/1 = 256 -> B
    first = recs[0]
    assert [(d.addr, d.weight) for d in first.dests] == [("10.1.0.13", 3), ("10.1.0.12", 2), ("10.1.0.11", 1)]
    assert [(d.activeconns, d.inactconns) for d in first.dests] == [(2, 0), (1, 0), (1, 0)]
    assert by_id[first.dest_id] == "10.1.0.12"
    for rec in recs:
        assert rec.sched == "wlc" and rec.num_dests == 3 and len(rec.dests) == 3
        assert rec.dest_id == _wlc(rec), rec
        assert rec.picked is not None and rec.conn_daddr == rec.picked.addr == by_id[rec.dest_id]
        assert rec.conn_dport == 8080 and rec.fwd_name == "MASQ"
        assert (rec.state_before, rec.state_after) == ("NONE", "SYN_RECV")
        assert (rec.verdict, rec.reason) == ("TX", "OK")
        assert rec.out_daddr == rec.conn_daddr
        assert {"ip.dst", "l4.dport", "l4.csum", "ip.csum", "eth.dst"} <= set(rec.changed)
        assert "ip.src" not in rec.changed and "ipip.added" not in rec.changed
    # the wire agrees: each traced frame left for the record's dest
    frames = list(batch)
    for i, rec in zip((0, 2, 3, 4, 5, 6), recs, strict=True):
        verdict, _, _, frame = frames[i]
        assert verdict == VERDICT_TX
        assert str(IP(frame[14:]).dst) == rec.conn_daddr
    # from the second record on (the other client came between the first two), each snapshot is the
    # previous one plus the previous pick's new connection
    for prev, cur in itertools.pairwise(recs[1:]):
        for a, b in zip(prev.dests, cur.dests, strict=True):
            grew = (b.activeconns + b.inactconns) - (a.activeconns + a.inactconns)
            assert grew == (1 if a.id == prev.dest_id else 0)


def test_off_records_nothing_and_json_round_trip() -> None:
    core = _core()
    tracer = Tracer(core)
    batch = PacketBatch(4)
    batch.add(_syn(CIP, 41000))
    process_batch(core, batch, 1_000)
    assert tracer.read() == []
    tracer.arm(1)
    batch.clear()
    batch.add(_syn(CIP, 41001))
    batch.add(_syn(CIP, 41002))
    process_batch(core, batch, 2_000)
    recs = tracer.read()
    assert [r.cport for r in recs] == [41001]
    again = TraceRecord.from_dict(json.loads(json.dumps(recs[0].to_dict())))
    assert again == recs[0]


def test_daemon_trace_request() -> None:
    core = _core()
    server = Server(ConfigState(core), "/nonexistent/never-bound.sock")
    armed = server.dispatch("trace", p.trace_request("arm", count=2, client=CIP))
    assert armed["tv"] == p.TRACE_VERSION and armed["remaining"] == 2
    batch = PacketBatch(4)
    for port in (42000, 42001, 42002):
        batch.add(_syn(CIP, port))
    process_batch(core, batch, 5_000)
    line = server.handle_line(p.request(3, "trace", p.trace_request("read", after=armed["after"])))
    reply = json.loads(line)
    assert reply["ok"], reply
    recs = [TraceRecord.from_dict(r) for r in reply["result"]["records"]]
    assert [r.cport for r in recs] == [42000, 42001]
    assert reply["result"]["remaining"] == 0
    server.dispatch("trace", p.trace_request("arm", count=5))
    assert server.dispatch("trace", p.trace_request("stop"))["remaining"] == 0
    with pytest.raises(ProtocolError):
        p.trace_args({"tv": 99, "action": "read"})
    with pytest.raises(ProtocolError):
        p.trace_args({"tv": 1, "action": "arm", "count": -1})
    with pytest.raises(ProtocolError):
        p.trace_args({"tv": 1, "action": "arm", "client": "10.0.0.2", "vip": "fd00::1"})
    bad = json.loads(server.handle_line(p.request(4, "trace", {"tv": 1, "action": "explode"})))
    assert not bad["ok"]


def test_daemon_trace_needs_the_c_core() -> None:
    class FakeCore:
        def services(self) -> list[model.ServiceStatus]:
            return []

    server = Server(ConfigState(FakeCore(), sched_names=model.SCHEDULERS), "/nonexistent/never-bound.sock")
    reply = json.loads(server.handle_line(p.request(1, "trace", p.trace_request("read"))))
    assert not reply["ok"] and "C data plane" in reply["error"]["message"]
