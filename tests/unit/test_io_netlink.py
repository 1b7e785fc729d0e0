"""Test that the resolver's kernel questions (lb/io/netlink.py) answer right and can never hang the loop:
- `route_get` of a loopback address names `lo` with no gateway; `neigh_get` of an unknown address is None;
- netlink messages and attributes are walked by their (aligned) lengths, and a truncated one ends the walk;
- a kernel that does not answer raises NetlinkTimeoutError after the deadline, and kernel_route/kernel_neigh
  turn any failure into "unknown" (the dest is retried and asked by ARP);
- an unresolved dest logs that it is still being asked for, on the 1st, 5th and every 30th try.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import pytest

from lb.io import neigh, netlink
from lb.io.neigh import NeighResolver
from lb.io.port import Port, PortAddr

A = IPv4Address


def test_route_get_loopback() -> None:
    oif, gw = netlink.route_get(A("127.0.0.1"))
    assert oif == socket.if_nametoindex("lo")
    assert gw is None


def test_neigh_get_unknown_is_none() -> None:
    assert netlink.neigh_get(A("10.255.254.253")) is None


def test_messages_and_attrs_walk() -> None:
    body = (netlink._attr(netlink.RTA_OIF, struct.pack("=i", 7))
            + netlink._attr(netlink.RTA_GATEWAY, b"\x0a\0\0\1"))
    payload = b"\0" * 12 + body
    msg = struct.pack("=IHHII", 16 + len(payload), netlink.RTM_NEWROUTE, 0, 42, 0) + payload
    done = struct.pack("=IHHII", 16, netlink.NLMSG_DONE, 0, 42, 0)
    got = list(netlink.messages(msg + done + b"\x01\x02"))
    assert [(k, s) for k, s, _ in got] == [(netlink.RTM_NEWROUTE, 42), (netlink.NLMSG_DONE, 42)]
    a = netlink.attrs(got[0][2], 12, len(got[0][2]))
    assert a[netlink.RTA_OIF] == struct.pack("=i", 7) and a[netlink.RTA_GATEWAY] == b"\x0a\0\0\1"
    # an attribute claiming more than there is ends the walk
    assert netlink.attrs(b"\xff\x00\x01\x00abcd", 0, 8) == {}


class SilentSocket:
    """A netlink socket whose kernel never answers."""

    def __init__(self, *_a: Any) -> None:
        self._r, self._w = os.pipe()

    def __enter__(self) -> SilentSocket:
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self._r)
        os.close(self._w)

    def bind(self, _addr: object) -> None: ...

    def setblocking(self, _flag: bool) -> None: ...

    def send(self, data: bytes) -> int:
        return len(data)

    def fileno(self) -> int:
        return self._r

    def recv(self, _n: int) -> bytes:
        raise AssertionError("nothing to read")


def test_silent_kernel_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlink.socket, "socket", SilentSocket)
    t = time.monotonic()
    with pytest.raises(netlink.NetlinkTimeoutError):
        netlink.route_get(A("10.5.0.11"), timeout_s=0.1)
    assert time.monotonic() - t < 2.0
    assert neigh.kernel_route(A("10.5.0.11")) == (None, None)
    assert neigh.kernel_neigh(A("10.4.0.1")) is None


class FakePort(Port):
    kind = "ring"

    def __init__(self) -> None:
        super().__init__(0, "eth0", PortAddr(b"\x02\0\0\0\0\1", IPv4Interface("10.4.0.2/24")))

    def fileno(self) -> int:
        return -1

    def recv(self, buf: bytearray | memoryview) -> int:
        return 0

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        return True


def test_unresolved_offlink_dest_keeps_asking_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neigh, "kernel_route", lambda addr: ("eth0", A("10.4.0.1")))
    monkeypatch.setattr(neigh, "kernel_neigh", lambda addr: None)
    now = [0.0]
    logs: list[str] = []
    sent: list[tuple[int, bytes]] = []
    resolved: list[tuple[int, int, bytes]] = []
    r = NeighResolver([FakePort()], lambda d, p, m: resolved.append((d, p, m)),
                      lambda p, f: sent.append((p, f)), log=logs.append, clock=lambda: now[0])
    r.want(3, A("10.5.0.11"))
    for _ in range(30):
        assert r.poll() == 1
        now[0] += 1.0
    assert len(sent) == 30
    asking = [x for x in logs if "no MAC yet" in x]
    assert [x.rsplit("(try ", 1)[1] for x in asking] == ["1)", "5)", "30)"]
    assert "via 10.4.0.1 on eth0" in asking[0]
    r.learn(A("10.4.0.1"), b"\x02\0\x0a\x04\0\x01", 0)
    assert resolved == [(3, 0, b"\x02\0\x0a\x04\0\x01")]
    assert r.poll() == 0
