"""Test that ladders mark exactly what changed, with reasons, and that the trace matcher follows connections.

- every lb_reason of csched/include/lb_reason.h has student prose, and nothing else does;
- diff_hop reports the NAT DNAT fields (IP dst, TTL, checksums, MACs) and nothing that stayed equal;
- an IPIP hop reports the outer header as added and the inner header as unchanged but for TTL/checksum;
- the text renderer marks changed fields with *…* when colour is off and uses ANSI when on;
- the trace matcher groups captured frames by the client's address:port across hops, builds one hop per
  distinct frame version between the nodes owning the MACs, and notices a DR reply bypassing the balancer.
"""

from __future__ import annotations

import re
from pathlib import Path

from scapy.all import IP, TCP, Ether, raw

from lb.lab.topology import Endpoint, load
from lb.teach import pcap, reasons, render_text
from lb.teach.ladder import Hop, Ladder, diff_hop
from lb.teach.trace import Point, collect, ladder_for

ROOT = Path(__file__).resolve().parents[2]


def test_every_reason_has_prose() -> None:
    text = (ROOT / "csched/include/lb_reason.h").read_text()
    names = re.findall(r"X\((\w+), \"", text)
    assert names and list(reasons.VERDICT_PROSE) == names
    assert all(len(v) > 30 for v in reasons.VERDICT_PROSE.values())


def _syn(src_mac: str, dst_mac: str, src: str, dst: str, ttl: int = 64) -> bytes:
    return raw(Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=ttl, id=7, flags="DF")
               / TCP(sport=40000, dport=80, flags="S", seq=1))


def test_diff_nat_request() -> None:
    before = Hop("client", "lb", "SYN", "x", _syn("02:00:0a:01:00:02", "02:00:0a:01:00:01", "10.1.0.2",
                                                   "10.10.0.100"))
    after = Hop("lb", "real1", "SYN", "y", _syn("02:00:0a:02:00:01", "02:00:0a:02:00:0b", "10.1.0.2",
                                                 "10.2.0.11", ttl=63))
    ladder = Ladder("nat", "t", [("client", "c"), ("lb", "b"), ("real1", "r")])
    ladder.add_hop(before)
    ladder.add_hop(after)
    diff_hop(before, after, "nat", "in")
    changed = {(c.layer, c.name) for c in after.changes}
    assert changed == {("Ethernet", "dst"), ("Ethernet", "src"), ("IPv4", "dst"), ("IPv4", "ttl"),
                       ("IPv4", "csum"), ("TCP", "csum")}
    dst = next(c for c in after.changes if c.name == "dst" and c.layer == "IPv4")
    assert (dst.old, dst.new) == ("10.10.0.100", "10.2.0.11") and dst.reason.startswith("DNAT")
    plain = render_text.render(ladder, color=False)
    assert "*dst=10.2.0.11*" in plain and "src=10.1.0.2 " in plain and "\x1b[" not in plain
    assert "IPv4.dst: 10.10.0.100 -> 10.2.0.11" in plain
    colored = render_text.render(ladder, color=True)
    assert "\x1b[1;33mdst=10.2.0.11\x1b[0m" in colored


def test_diff_ipip_adds_outer_header() -> None:
    inner = IP(src="10.1.0.2", dst="10.10.0.100", ttl=63, id=7, flags="DF") / TCP(sport=40000, dport=80,
                                                                                  flags="S", seq=1)
    before = Hop("client", "lb", "SYN", "x", _syn("02:00:0a:04:00:01", "02:00:0a:04:00:02", "10.1.0.2",
                                                   "10.10.0.100"))
    after = Hop("lb", "real1", "SYN", "y", raw(Ether(src="02:00:0a:04:00:02", dst="02:00:0a:04:00:01")
                                                / IP(src="10.4.0.2", dst="10.5.0.11", proto=4) / inner))
    for h in (before, after):
        h.headers = pcap.dissect(h.frame)
    diff_hop(before, after, "tun", "in")
    assert [layer for layer, _ in after.added] == ["IPv4 (outer)"]
    assert "IPIP" in after.added[0][1]
    assert {(c.layer, c.name) for c in after.changes} == {
        ("Ethernet", "dst"), ("Ethernet", "src"), ("IPv4 (inner)", "ttl"), ("IPv4 (inner)", "csum")}


def test_trace_matcher_dr(tmp_path: Path) -> None:
    topo = load("dr", 2)
    router_lan, lb_mac = "02:00:0a:03:00:01", "02:00:0a:03:00:02"
    rs_mac = topo.server_macs[1]
    client_syn = _syn("02:00:0a:01:00:02", "02:00:0a:01:00:01", "10.1.0.2", "10.10.0.100")
    at_lb = _syn(router_lan, lb_mac, "10.1.0.2", "10.10.0.100", ttl=63)
    to_rs = _syn(lb_mac, rs_mac, "10.1.0.2", "10.10.0.100", ttl=62)
    synack = raw(Ether(src=rs_mac, dst=router_lan) / IP(src="10.10.0.100", dst="10.1.0.2")
                 / TCP(sport=80, dport=40000, flags="SA"))
    synack_client = raw(Ether(src="02:00:0a:01:00:01", dst="02:00:0a:01:00:02")
                        / IP(src="10.10.0.100", dst="10.1.0.2", ttl=63)
                        / TCP(sport=80, dport=40000, flags="SA"))
    other = _syn("02:00:0a:01:00:02", "02:00:0a:01:00:01", "10.1.0.9", "10.10.0.100")
    captures = {
        "client:eth0": [(1.0, client_syn), (1.5, other), (4.0, synack_client)],
        "lb:eth0": [(2.0, at_lb), (2.1, to_rs)],
        "real2:eth0": [(2.2, to_rs), (3.0, synack)],
    }
    points = []
    for name, recs in captures.items():
        node, dev = name.split(":")
        pt = Point(Endpoint(node, dev), f"t-{node}", tmp_path / f"{node}.pcap")
        pt.records = [pcap.Record(ts, data) for ts, data in recs]
        points.append(pt)
    conns = collect(points, "10.1.0.2")
    assert list(conns) == [("10.1.0.2", 40000)]
    ladder = ladder_for(("10.1.0.2", 40000), conns[("10.1.0.2", 40000)], topo, "t")
    hops = [(h.src, h.dst, h.label.split()[0]) for h in ladder.hops]
    assert hops == [("client", "router", "SYN"), ("router", "lb", "SYN"), ("lb", "real2", "SYN"),
                    ("real2", "router", "SYN-ACK"), ("router", "client", "SYN-ACK")]
    lb_hop = ladder.hops[2]
    assert {(c.layer, c.name) for c in lb_hop.changes} >= {("Ethernet", "dst"), ("Ethernet", "src")}
    assert not any(c.layer == "IPv4" and c.name in ("src", "dst") for c in lb_hop.changes)
    assert "real2:eth0" in lb_hop.where and "lb:eth0" in lb_hop.where
    assert any("never passed the balancer" in n for n in ladder.notes)
