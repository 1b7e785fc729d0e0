"""Test that next hops are resolved the way the run loop relies on:
- a dest on a port's subnet is its own next hop on that port;
- a MAC learned from ARP resolves every dest waiting on that address, and goes to the core;
- an unresolved dest gets an ARP request from the port's address, retried only after retry_s;
- a changed MAC is handed on again; dests that left are forgotten;
- dests sharing a next hop cost one ARP request per pass, not one each.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from lb.io.arp import parse_arp
from lb.io.neigh import NeighResolver
from lb.io.port import Port, PortAddr

A = IPv4Address


class FakePort(Port):
    kind = "ring"

    def __init__(self, index: int, ip: str) -> None:
        super().__init__(index, f"p{index}", PortAddr(bytes([2, 0, 0, 0, 0, index]), IPv4Interface(ip)))

    def fileno(self) -> int:
        return -1

    def recv(self, buf: bytearray | memoryview) -> int:
        return 0

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[NeighResolver, list[tuple[int, int, bytes]], list[tuple[int, bytes]], Clock]:
    set_calls: list[tuple[int, int, bytes]] = []
    sent: list[tuple[int, bytes]] = []
    clock = Clock()
    r = NeighResolver([FakePort(0, "10.1.0.2/24"), FakePort(1, "10.2.0.1/24")],
                      lambda d, p, m: set_calls.append((d, p, m)), lambda p, f: sent.append((p, f)),
                      retry_s=1.0, use_kernel=False, clock=clock)
    return r, set_calls, sent, clock


def test_on_link_dest_is_its_own_next_hop() -> None:
    r, *_ = make()
    assert r.egress(A("10.2.0.7")) == (1, A("10.2.0.7"))
    assert r.egress(A("10.1.0.9")) == (0, A("10.1.0.9"))


def test_arp_request_then_learn_resolves() -> None:
    r, set_calls, sent, clock = make()
    r.sync([(5, A("10.2.0.2")), (6, A("10.2.0.3"))])
    assert r.poll() == 2
    assert len(sent) == 2
    port, frame = sent[0]
    arp = parse_arp(frame)
    assert port == 1 and arp is not None and arp.op == 1
    assert arp.spa == A("10.2.0.1") and arp.sha == bytes([2, 0, 0, 0, 0, 1]) and arp.tpa == A("10.2.0.2")
    # no retry before retry_s
    assert r.poll() == 2 and len(sent) == 2
    clock.t += 1.5
    assert r.poll() == 2 and len(sent) == 4
    mac = bytes.fromhex("0a0000000002")
    r.learn(A("10.2.0.2"), mac, 1)
    assert set_calls == [(5, 1, mac)]
    assert r.unresolved == [6]
    # learning the same thing again changes nothing; a new MAC is handed on
    r.learn(A("10.2.0.2"), mac, 1)
    assert len(set_calls) == 1
    mac2 = bytes.fromhex("0a00000000ff")
    r.learn(A("10.2.0.2"), mac2, 1)
    assert set_calls[-1] == (5, 1, mac2)


def test_known_neighbour_resolves_without_arp() -> None:
    r, set_calls, sent, _ = make()
    mac = bytes.fromhex("0a0000000003")
    r.learn(A("10.2.0.3"), mac, 1)
    r.want(9, A("10.2.0.3"))
    assert r.poll() == 0
    assert set_calls == [(9, 1, mac)] and sent == []


def test_sync_forgets_removed_dests() -> None:
    r, *_ = make()
    r.sync([(1, A("10.2.0.2")), (2, A("10.2.0.3"))])
    r.sync([(2, A("10.2.0.3"))])
    assert sorted(r.wants) == [2]


def test_many_dests_behind_one_next_hop_cost_one_request_per_pass() -> None:
    r, set_calls, sent, _clock = make()
    r.sync([(i, A("10.2.0.2")) for i in range(500)] + [(900, A("10.2.0.3"))])
    assert r.poll() == 501
    assert sorted(parse_arp(f).tpa for _, f in sent) == [A("10.2.0.2"), A("10.2.0.3")]  # type: ignore[union-attr]
    mac = bytes.fromhex("0a0000000002")
    r.learn(A("10.2.0.2"), mac, 1)
    assert sorted(d for d, _, _ in set_calls) == list(range(500))
    assert r.unresolved == [900]
