"""The steps every transmitter shares, the Python twin of csched/src/xmit.c (kernel ip_vs_xmit.c
`__ip_vs_get_out_rt`, `decrement_ttl`, `ensure_mtu_is_adequate`).

Linux >= 5.3 decrements the TTL in every forwarding mode and checks it before the MTU, so a
"fragmentation needed" quotes the already-decremented packet.  Each step returns False after setting the
packet's verdict.  The Protocols below name what a transmitter reads of the engine's objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lb.fwd.csum import csum_replace
from lb.fwd.icmp import (
    ICMP6_PKT_TOOBIG,
    ICMP6_TIME_EXCEED,
    ICMP_DEST_UNREACH,
    ICMP_EXC_TTL,
    ICMP_FRAG_NEEDED,
    ICMP_TIME_EXCEEDED,
    icmp4_send,
    icmp6_send,
)
from lb.fwd.parse import IP_DF, Pkt, Reason, Verdict, get16, put16

MAX_PORTS = 8


class PortLike(Protocol):
    """A balancer port (struct lb_port): its MAC, IPv4 address (4 bytes) and MTU."""

    mac: bytes
    ip: bytes
    mtu: int


class DestLike(Protocol):
    """What a transmitter reads of a dest: the next hop (port -1 = unresolved) and its MAC."""

    nh_port: int
    nh_mac: bytes


class ConnLike(Protocol):
    """What a transmitter reads of a connection (struct lb_conn): addresses as 4-byte strings, host ports."""

    vaddr: bytes
    vport: int
    daddr: bytes
    dport: int
    fwd: int
    cl_port: int
    cl_mac: bytes

    @property
    def xdest(self) -> DestLike | None: ...


def ttl_dec(b: bytearray, ip: int) -> None:
    """TTL - 1 with the header checksum updated incrementally (kernel ip_decrease_ttl, RFC 1624)."""
    old = bytes(b[ip + 8:ip + 10])
    b[ip + 8] -= 1
    put16(b, ip + 10, csum_replace(get16(b, ip + 10), old, bytes(b[ip + 8:ip + 10])))


def nexthop(p: Pkt, dest: DestLike | None) -> bool:
    """The dest's next hop must be known; else PASS NO_ROUTE (the slow path resolves it)."""
    if dest is None or dest.nh_port < 0 or dest.nh_port >= MAX_PORTS:
        p.set_verdict(Verdict.PASS, Reason.NO_ROUTE)
        return False
    return True


def ttl(p: Pkt, icmp_src: bytes) -> bool:
    """TTL <= 1: ICMP time exceeded to the sender; else decrement it and fix the header checksum."""
    b, ip = p.buf, p.l3_off
    if b[ip + 8] <= 1:
        icmp4_send(p, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, icmp_src, Reason.TTL)
        return False
    ttl_dec(b, ip)
    return True


def mtu(p: Pkt, limit: int, icmp_src: bytes) -> bool:
    """Longer than the link allows: with DF, ICMP fragmentation needed; without, dropped (no fragmenting)."""
    if p.ip_len <= limit:
        return True
    if get16(p.buf, p.l3_off + 6) & IP_DF and not p.icmp_err:
        icmp4_send(p, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, limit, icmp_src, Reason.MTU)
    else:
        p.set_verdict(Verdict.DROP, Reason.MTU)
    return False


def hop6(p: Pkt, icmp_src: bytes | None) -> bool:
    """IPv6 hop limit <= 1: ICMPv6 time exceeded (or a drop with no address to send it from); else - 1."""
    b, ip = p.buf, p.l3_off
    if b[ip + 7] <= 1:
        if icmp_src is not None:
            icmp6_send(p, ICMP6_TIME_EXCEED, 0, 0, icmp_src, Reason.TTL)
        else:
            p.set_verdict(Verdict.DROP, Reason.TTL)
        return False
    b[ip + 7] -= 1
    return True


def mtu6(p: Pkt, limit: int, icmp_src: bytes | None) -> bool:
    """IPv6 never fragments on the way: too long -> ICMPv6 packet too big (or a drop)."""
    if p.ip_len <= limit:
        return True
    if icmp_src is not None and not p.icmp_err:
        icmp6_send(p, ICMP6_PKT_TOOBIG, 0, limit, icmp_src, Reason.MTU)
    else:
        p.set_verdict(Verdict.DROP, Reason.MTU)
    return False


def l2(ports: Sequence[PortLike], p: Pkt, port: int, dst_mac: bytes) -> None:
    """Ethernet addresses for the next hop, the frame cut at the IP total length, verdict TX."""
    p.buf[0:6] = dst_mac
    p.buf[6:12] = ports[port].mac
    p.length = p.l3_off + p.ip_len
    p.out_port = port
    p.set_verdict(Verdict.TX, Reason.OK)


def icmp_src(ports: Sequence[PortLike], p: Pkt, to_vip: bool) -> bytes:
    """Source of an ICMP error about p: the address p was sent to when it is a VIP, else our port address."""
    return p.daddr if to_vip else ports[p.in_port].ip
