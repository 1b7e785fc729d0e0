"""Test that the C packet path and the Python twin engine agree byte for byte.

Thousands of generated frames (scapy-built, then some of them mangled) go through lb_process_batch (via
lb/core/batch.py) and lb/engine/python.py with the same configuration (tests/packets.py):
- every frame gets the same verdict, reason and egress port in both, and the same bytes (TX frames as they
  leave; other frames as they were left in their slot);
- the flows cover every forwarding mode (NAT with port translation, UDP NAT, DR, TUN), both directions (client
  requests, real-server replies), ICMP errors quoting tracked and unknown flows from either side, the
  balancer's own ICMP errors (TTL, MTU, no destination), IPv6 (NAT both ways, DR, TUN, hop limit, extension
  headers), ARP/echo/unknown services, and broken input
  (truncated, bytes flipped);
- afterwards the per-reason counters and the per-service counters are equal.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import packets as P  # noqa: N812 - Cilium-style short name for the packet table
import pytest
from fwd_engines import CEngine, PyEngine
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Ether

from lb import model

CPORTS = (40000, 40001, 40002, 20, 33333)
SVC_PORTS = (P.NAT_PORT, P.DR_PORT, P.TUN_PORT, P.NODEST_PORT, P.NOROUTE_PORT, 9999)
FLAGS = ("S", "S", "A", "PA", "FA", "R", "SA", "SF", "SR", 0, "S")
RS_SPORT = {P.NAT_PORT: P.NAT_RPORT, P.UDP_PORT: P.UDP_PORT}


def _ip(rng: random.Random, src: str, dst: str) -> IP:
    opts = [IPOption_NOP()] * rng.choice((0, 0, 0, 4, 8))
    return IP(
        src=src,
        dst=dst,
        ttl=rng.choice((64, 64, 2, 1, 0, 255)),
        id=rng.randrange(65536),
        flags=rng.choice(("DF", "DF", 0)),
        tos=rng.randrange(256),
        options=opts,
    )


def _payload(rng: random.Random) -> bytes:
    return bytes(rng.choice((0, 0, 10, 100, 600, 1460, 1480, 1600)))


def _client_tcp(rng: random.Random) -> bytes:
    dport = rng.choice(SVC_PORTS)
    seg = TCP(sport=rng.choice(CPORTS), dport=dport, flags=rng.choice(FLAGS), seq=rng.randrange(1 << 32))
    return bytes(P.client(rng.choice((None, None, 5))) / _ip(rng, P.CIP, P.VIP) / seg / _payload(rng))


def _client_udp(rng: random.Random) -> bytes:
    udp = UDP(sport=rng.choice(CPORTS), dport=rng.choice((P.UDP_PORT, P.UDP_PORT, 54)))
    if rng.random() < 0.2:
        udp.chksum = 0
    return bytes(P.client() / _ip(rng, P.CIP, P.VIP) / udp / _payload(rng))


def _reply(rng: random.Random) -> bytes:
    vport = rng.choice((P.NAT_PORT, P.UDP_PORT, P.DR_PORT))
    sport = RS_SPORT.get(vport, vport)
    l4 = (
        TCP(sport=sport, dport=rng.choice(CPORTS), flags=rng.choice(("SA", "A", "FA", "R", "PA")))
        if vport != P.UDP_PORT
        else UDP(sport=sport, dport=rng.choice(CPORTS))
    )
    return bytes(P.from_rs1() / _ip(rng, P.RIP1, P.CIP) / l4 / _payload(rng))


def _icmp_error(rng: random.Random) -> bytes:
    cport = rng.choice(CPORTS)
    if rng.random() < 0.25:  # from the real server about one of our IPIP packets
        inner = IP(src=P.CIP, dst=P.VIP, ttl=63, flags=rng.choice(("DF", 0)), tos=rng.randrange(256)) / TCP(
            sport=cport, dport=rng.choice((P.TUN_PORT, P.NAT_PORT)), flags="S"
        )
        quoted = IP(src=P.LB1_IP, dst=P.RIP1, proto=4, flags="DF") / inner
        outer = P.from_rs1() / IP(src=P.RIP1, dst=rng.choice((P.LB1_IP, P.LB1_IP, P.CIP)), ttl=64)
        icmp = ICMP(
            type=rng.choice((3, 3, 11)), code=rng.choice((4, 4, 1)), nexthopmtu=rng.choice((1400, 60, 1500))
        )
        return bytes(outer / icmp / bytes(quoted)[: rng.choice((60, 48, 44, 600))])
    if rng.random() < 0.5:  # from the real server, quoting what it got from the client
        quoted = IP(src=P.CIP, dst=P.RIP1, ttl=63) / TCP(sport=cport, dport=rng.choice((P.NAT_RPORT, 81)))
        outer = P.from_rs1() / IP(src=P.RIP1, dst=P.CIP, ttl=rng.choice((64, 1)))
    else:  # from the client side, quoting one of our replies
        vport = rng.choice((P.NAT_PORT, P.UDP_PORT, P.DR_PORT, P.TUN_PORT))
        l4 = UDP(sport=vport, dport=cport) if vport == P.UDP_PORT else TCP(sport=vport, dport=cport)
        quoted = IP(src=P.VIP, dst=P.CIP, ttl=1) / l4
        outer = P.client() / IP(src="10.0.0.254", dst=P.VIP, ttl=rng.choice((64, 2, 1)))
    icmp = ICMP(type=rng.choice((3, 3, 11, 4, 5)), code=rng.choice((0, 3, 4)))
    return bytes(outer / icmp / bytes(quoted)[: rng.choice((28, 40, 60, 24))])


def _icmp6_error(rng: random.Random) -> bytes:
    cport = rng.choice(CPORTS)
    err = rng.choice(
        (ICMPv6PacketTooBig(mtu=1280), ICMPv6TimeExceeded(), ICMPv6DestUnreach(code=4), ICMPv6EchoRequest())
    )
    if rng.random() < 0.5:  # from the real server, quoting what it got
        quoted = IPv6(src=P.CIP6, dst=P.RIP6) / TCP(sport=cport, dport=rng.choice((P.NAT_RPORT, P.DR_PORT)))
        outer = P.from_rs1() / IPv6(src=P.RIP6, dst=P.CIP6, hlim=rng.choice((64, 1)))
    else:
        vport = rng.choice((P.NAT_PORT, P.UDP_PORT, P.DR_PORT, P.TUN_PORT))
        l4 = UDP(sport=vport, dport=cport) if vport == P.UDP_PORT else TCP(sport=vport, dport=cport)
        quoted = IPv6(src=P.VIP6, dst=P.CIP6) / l4
        outer = P.client() / IPv6(src="fd00::fe", dst=P.VIP6, hlim=rng.choice((64, 1)))
    return bytes(outer / err / bytes(quoted)[: rng.choice((60, 48, 44, 40))])


def _v6(rng: random.Random) -> bytes:
    if rng.random() < 0.25:
        return _icmp6_error(rng)
    hlim = rng.choice((64, 64, 2, 1))
    if rng.random() < 0.3:  # a real server's reply
        sport = rng.choice((P.NAT_RPORT, P.UDP_PORT, P.DR_PORT))
        l4 = (
            UDP(sport=sport, dport=rng.choice(CPORTS))
            if sport == P.UDP_PORT
            else TCP(sport=sport, dport=rng.choice(CPORTS), flags=rng.choice(("SA", "A", "R")))
        )
        return bytes(P.from_rs1() / IPv6(src=P.RIP6, dst=P.CIP6, hlim=hlim) / l4 / _payload(rng))
    dport = rng.choice((P.NAT_PORT, P.UDP_PORT, P.DR_PORT, P.TUN_PORT, P.NODEST_PORT, 9999))
    l4 = (
        UDP(sport=rng.choice(CPORTS), dport=dport)
        if dport == P.UDP_PORT
        else TCP(sport=rng.choice(CPORTS), dport=dport, flags=rng.choice(FLAGS))
    )
    ip6 = IPv6(src=P.CIP6, dst=P.VIP6, hlim=hlim)
    if rng.random() < 0.1:
        ip6 = ip6 / rng.choice((IPv6ExtHdrFragment(), IPv6ExtHdrHopByHop()))
    return bytes(P.client() / ip6 / l4 / _payload(rng))


OTHERS = (
    bytes(Ether(src=P.CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=P.CIP, pdst=P.VIP)),
    bytes(P.client() / IP(src=P.CIP, dst=P.VIP) / ICMP(type=8) / b"ping"),
    bytes(P.client() / IP(src=P.CIP, dst=P.VIP, flags="MF") / UDP(sport=1, dport=P.UDP_PORT)),
    bytes(P.client() / IP(src=P.CIP, dst=P.VIP, proto=47) / b"gre!"),
)


def _other(rng: random.Random) -> bytes:
    return rng.choice(OTHERS)


KINDS = (_client_tcp, _client_tcp, _client_tcp, _client_udp, _reply, _reply, _icmp_error, _other, _v6, _v6)


def _mangle(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    what = rng.random()
    if what < 0.4:
        return bytes(b[: rng.randrange(len(b) + 1)])
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(min(len(b), 80))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


@functools.cache
def make_frames(seed: int, n: int) -> list[tuple[bytes, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.choice(KINDS)
        frame = kind(rng)
        if rng.random() < 0.15:
            frame = _mangle(rng, frame)
        port = 1 if frame[6:12] == P.mac(P.RS1_MAC) else 0
        out.append((frame, port))
    return out


def run_both(
    frames: list[tuple[bytes, int]], mtu: int = P.MTU, stride: int = 2048, **cfg: Any
) -> tuple[CEngine, PyEngine]:
    conn_max = cfg.pop("conn_max", 65536)
    c, py = CEngine(capacity=64, conn_max=conn_max), PyEngine(conn_max=conn_max)
    P.configure(c, mtu, **cfg)
    P.configure(py, mtu, **cfg)
    for now, i in enumerate(range(0, len(frames), 50)):
        chunk = frames[i : i + 50]
        got_c = c.process(chunk, now * 1_000_000_000, stride)
        got_py = py.process(chunk, now * 1_000_000_000, stride)
        for j, (a, b) in enumerate(zip(got_c, got_py, strict=True)):
            assert (a.verdict, a.reason, a.out_port) == (b.verdict, b.reason, b.out_port), (
                f"frame {i + j}: {chunk[j][0].hex()}"
            )
            assert a.frame.hex() == b.frame.hex(), f"frame {i + j}: {chunk[j][0].hex()}"
    return c, py


def test_parity_thousands() -> None:
    """2000 frames over several batches and seconds: identical outcome, bytes and counters."""
    c, py = run_both(make_frames(1, 2000))
    assert c.reason_counts() == py.reason_counts()
    assert c.stats() == py.stats()
    counts = c.reason_counts()
    for reason in (
        "OK",
        "NO_SERVICE",
        "NO_DEST",
        "TTL",
        "MTU",
        "NOT_SYN",
        "TCP_FLAGS",
        "ICMP_UNTRACKED",
        "PARSE_SHORT",
        "FRAGMENT",
        "NO_ROUTE",
        "SLOW_PATH",
    ):
        assert counts[reason] > 0, f"the generator never produced {reason}"


def test_parity_small_mtu_and_stride() -> None:
    """A 576-byte link MTU, and 256-byte slots: the MTU and quote-shortening paths agree too."""
    c, py = run_both(make_frames(1, 2000), mtu=576)
    assert c.reason_counts() == py.reason_counts()
    assert c.reason_counts()["MTU"] > 0
    small = [(f, p) for f, p in make_frames(1, 2000) if len(f) <= 256]
    c, py = run_both(small, stride=256)
    assert c.reason_counts() == py.reason_counts()


@pytest.mark.parametrize(
    "cfg",
    [
        {"sched": "wlc", "second_dest": True},
        {"sched": "sh", "second_dest": True, "flags": model.SVC_F_PERSISTENT, "timeout": 300},
        {"sched": "wrr", "second_dest": True, "flags": model.SVC_F_ONEPACKET},
        {"sched": "mh", "second_dest": True, "conn_max": 12},
    ],
    ids=["wlc", "sh-persistent", "wrr-onepacket", "mh-table-full"],
)
def test_parity_schedulers(cfg: dict[str, Any]) -> None:
    """Two dests per service under other schedulers, persistence, one-packet UDP and a 12-entry table."""
    c, py = run_both(make_frames(1, 2000), **dict(cfg))
    assert c.reason_counts() == py.reason_counts()
    assert c.stats() == py.stats()
    dests_c = {
        k: [(d.dest.key, d.activeconns, d.inactconns, d.persistconns) for d in c.core.dest_infos(k)]
        for k in c.stats()
    }
    dests_py = {
        k: [(d.key, d.activeconns, d.inactconns, d.persistconns) for d in py.service(k).dests]
        for k in py.stats()
    }
    assert dests_c == dests_py
    if "conn_max" in cfg:
        assert c.reason_counts()["CONN_FULL"] > 0
    if cfg.get("flags") == model.SVC_F_PERSISTENT:
        assert any(d[3] for ds in dests_c.values() for d in ds), "no persistence template was made"


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30))
def test_parity_hypothesis(seed: int, n: int) -> None:
    c, py = run_both(make_frames(seed, n))
    assert c.reason_counts() == py.reason_counts()
    assert c.stats() == py.stats()


@given(st.lists(st.tuples(st.binary(min_size=0, max_size=200), st.integers(0, 8)), max_size=30))
def test_parity_random_bytes(frames: list[tuple[bytes, int]]) -> None:
    """Arbitrary bytes (and port numbers, one out of range): same verdicts, nothing crashes."""
    run_both([(b"\x02\0\0\0\x01\0" + f if i % 2 else f, p) for i, (f, p) in enumerate(frames)])
