"""ICMP on the packet path, the Python twin of csched/src/icmp.c (kernel ip_vs_core.c `ip_vs_in_icmp`,
`ip_vs_out_icmp`, `ip_vs_nat_icmp`; net/ipv4/icmp.c `icmp_send`).

Errors the balancer sends are built in place over the offending frame: Ethernet addresses swapped; a new IPv4
header (TTL 64, ID 0, no DF, TOS = old TOS bits | 0xC0); 8 bytes of ICMP; then as much of the offending IP
packet as fits in 576 bytes (and in the slot).  Never about an ICMP error, never to a zero, broadcast or
multicast source.

Errors received (destination unreachable, source quench, time exceeded) that quote a packet of a tracked
connection are forwarded: from the client side by the connection's method (NAT rewrites the outer destination
and the quoted source address:port to the real server's), from the real server side of a NAT connection back
to the client (outer source, quoted destination address:port back to VIP:vport).  The outer and quoted IP
checksums and the ICMP checksum are recomputed; the quoted TCP/UDP checksum is left alone (as the kernel
does).  The ICMP checksum is verified once the connection is known.  Everything else is passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lb.fwd.csum import csum_add, csum_fold, ip4_send_check
from lb.fwd.parse import (
    IP_OFFMASK,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Pkt,
    Reason,
    Verdict,
    get16,
    put16,
)

if TYPE_CHECKING:
    from lb.fwd.xmit import ConnLike

ICMP_HLEN = 8
ICMP_ERR_MAX = 576
ICMP_QUOTE_MAX = ICMP_ERR_MAX - 20 - ICMP_HLEN
ICMP_DEST_UNREACH = 3
ICMP_SOURCE_QUENCH = 4
ICMP_TIME_EXCEEDED = 11
ICMP_PORT_UNREACH = 3
ICMP_FRAG_NEEDED = 4
ICMP_EXC_TTL = 0
IP_DEFAULT_TTL = 64
ICMP_ERRORS = (ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED)


def icmp4_send(p: Pkt, icmp_type: int, code: int, info: int, saddr: bytes, reason: Reason) -> None:  # noqa: PLR0917 - mirrors lb_icmp4_send
    """Turn p into an ICMP error about itself, sent back where it came from (verdict TX)."""
    b, ip = p.buf, p.l3_off
    if p.icmp_err:
        p.set_verdict(Verdict.DROP, reason)
        return
    osrc = bytes(b[ip + 12 : ip + 16])
    if osrc in (b"\0\0\0\0", b"\xff\xff\xff\xff") or osrc[0] & 0xF0 == 0xE0:
        p.set_verdict(Verdict.DROP, reason)
        return
    quote = min(p.ip_len, ICMP_QUOTE_MAX, p.room - ip - 20 - ICMP_HLEN)
    tos = (b[ip + 1] & 0x1E) | 0xC0
    b[ip + 28 : ip + 28 + quote] = b[ip : ip + quote]

    b[0:6], b[6:12] = b[6:12], b[0:6]

    totlen = 20 + ICMP_HLEN + quote
    b[ip : ip + 20] = (
        bytes((0x45, tos))
        + totlen.to_bytes(2, "big")
        + bytes(4)
        + bytes((IP_DEFAULT_TTL, IPPROTO_ICMP))
        + bytes(2)
        + saddr
        + osrc
    )
    ip4_send_check(b, ip)

    ic = ip + 20
    b[ic : ic + ICMP_HLEN] = bytes((icmp_type, code, 0, 0)) + (info & 0xFFFFFFFF).to_bytes(4, "big")
    put16(b, ic + 2, csum_fold(csum_add(0, b, ic, ICMP_HLEN + quote)))

    p.ip_len = totlen
    p.l4_off = ip + 20
    p.length = ip + totlen
    p.out_port = p.in_port
    p.set_verdict(Verdict.TX, reason)


ICMP6_DEST_UNREACH = 1
ICMP6_PKT_TOOBIG = 2
ICMP6_TIME_EXCEED = 3
ICMP6_PORT_UNREACH = 4
ICMP6_ERR_MAX = 1280
ICMP6_QUOTE_MAX = ICMP6_ERR_MAX - 40 - ICMP_HLEN
IPPROTO_ICMPV6 = 58


def icmp6_send(p: Pkt, icmp_type: int, code: int, info: int, saddr: bytes, reason: Reason) -> None:  # noqa: PLR0917
    """The IPv6 counterpart (icmp6_send): at most 1280 bytes, hop limit 64, traffic class and flow label 0."""
    b, ip = p.buf, p.l3_off
    osrc = bytes(b[ip + 8 : ip + 24])
    if p.icmp_err or osrc[0] == 0xFF or osrc == bytes(16):
        p.set_verdict(Verdict.DROP, reason)
        return
    quote = min(p.ip_len, ICMP6_QUOTE_MAX, p.room - ip - 40 - ICMP_HLEN)
    b[ip + 48 : ip + 48 + quote] = b[ip : ip + quote]
    b[0:6], b[6:12] = b[6:12], b[0:6]
    plen = ICMP_HLEN + quote
    b[ip : ip + 40] = (
        b"\x60\0\0\0" + plen.to_bytes(2, "big") + bytes((IPPROTO_ICMPV6, IP_DEFAULT_TTL)) + saddr + osrc
    )
    ic = ip + 40
    b[ic : ic + ICMP_HLEN] = bytes((icmp_type, code, 0, 0)) + (info & 0xFFFFFFFF).to_bytes(4, "big")
    total = csum_add(0, b, ip + 8, 32) + plen + IPPROTO_ICMPV6
    put16(b, ic + 2, csum_fold(csum_add(total, b, ic, plen)))
    p.ip_len = 40 + plen
    p.l4_off = ip + 40
    p.length = ip + p.ip_len
    p.out_port = p.in_port
    p.set_verdict(Verdict.TX, reason)


def icmp6_csum(b: bytearray, ip: int, ic: int, iclen: int) -> int:
    """The ICMPv6 checksum: pseudo-header (addresses, length, next header 58) plus the message."""
    total = csum_add(0, b, ip + 8, 32) + iclen + IPPROTO_ICMPV6
    return csum_fold(csum_add(total, b, ic, iclen))


def quoted6_key(p: Pkt) -> tuple[int, int, bytes, bytes, int, int] | None:
    """(quoted header offset, proto, saddr, daddr, sport, dport) of an ICMPv6 error, swapped into the error's
    direction; only TCP/UDP right behind the quoted fixed header."""
    b, ic = p.buf, p.l4_off
    iclen = p.ip_len - 40
    if iclen < ICMP_HLEN + 40 + 4:
        return None
    q = ic + ICMP_HLEN
    if b[q] >> 4 != 6 or b[q + 6] not in (IPPROTO_TCP, IPPROTO_UDP):
        return None
    return (
        q,
        b[q + 6],
        bytes(b[q + 24 : q + 40]),
        bytes(b[q + 8 : q + 24]),
        get16(b, q + 42),
        get16(b, q + 40),
    )


def nat6_rewrite(p: Pkt, q: int, cp: ConnLike, inbound: bool) -> None:
    """ip_vs_nat_icmp_v6: outer and quoted addresses, the quoted port, the ICMPv6 checksum."""
    b, ip, ic = p.buf, p.l3_off, p.l4_off
    if inbound:
        b[ip + 24 : ip + 40] = cp.daddr
        b[q + 8 : q + 24] = cp.daddr
        put16(b, q + 40, cp.dport)
    else:
        b[ip + 8 : ip + 24] = cp.vaddr
        b[q + 24 : q + 40] = cp.vaddr
        put16(b, q + 42, cp.vport)
    iclen = p.ip_len - 40
    put16(b, ic + 2, 0)
    put16(b, ic + 2, icmp6_csum(b, ip, ic, iclen))


def nat_rewrite(p: Pkt, q: int, qihl: int, cp: ConnLike, inbound: bool) -> None:
    """ip_vs_nat_icmp: the outer and the quoted addresses (and the quoted port) of a NAT connection."""
    b, ip, ic = p.buf, p.l3_off, p.l4_off
    if inbound:
        b[ip + 16 : ip + 20] = cp.daddr
        b[q + 12 : q + 16] = cp.daddr
        put16(b, q + qihl, cp.dport)
    else:
        b[ip + 12 : ip + 16] = cp.vaddr
        b[q + 16 : q + 20] = cp.vaddr
        put16(b, q + qihl + 2, cp.vport)
    ip4_send_check(b, ip)
    ip4_send_check(b, q)
    iclen = p.ip_len - (p.l4_off - p.l3_off)
    put16(b, ic + 2, 0)
    put16(b, ic + 2, csum_fold(csum_add(0, b, ic, iclen)))


def quoted_header(p: Pkt) -> tuple[int, int, int] | None:
    """(offset, IHL, bytes present) of the IP header an ICMP error quotes, with 4 bytes behind it; or None."""
    b, ic = p.buf, p.l4_off
    iclen = p.ip_len - (p.l4_off - p.l3_off)
    if iclen < ICMP_HLEN + 20:
        return None
    q = ic + ICMP_HLEN
    qlen = iclen - ICMP_HLEN
    if b[q] >> 4 != 4:
        return None
    qihl = (b[q] & 0x0F) * 4
    if qihl < 20 or qihl + 4 > qlen:
        return None
    if get16(b, q + 6) & IP_OFFMASK:
        return None
    return q, qihl, qlen


def quoted_key(p: Pkt, q: int, qihl: int) -> tuple[int, bytes, bytes, int, int] | None:
    """(proto, saddr, daddr, sport, dport) of the error's direction, or None.

    The quoted packet went the other way, so its source becomes our destination and vice versa.
    """
    b = p.buf
    proto = b[q + 9]
    if proto not in (IPPROTO_TCP, IPPROTO_UDP):
        return None
    saddr, daddr = bytes(b[q + 16 : q + 20]), bytes(b[q + 12 : q + 16])
    sport, dport = get16(b, q + qihl + 2), get16(b, q + qihl)
    return proto, saddr, daddr, sport, dport


def ipip_inner(p: Pkt, q: int, qihl: int, qlen: int) -> tuple[int, int, int, bytes, bytes, int, int] | None:
    """For an error about one of our IPIP packets: (inner offset, bytes present, proto, saddr, daddr, sport,
    dport) of the client's request inside, as it is (not swapped), or None."""
    b = p.buf
    inner, inlen = q + qihl, qlen - qihl
    if inlen < 20 or b[inner] >> 4 != 4:
        return None
    inihl = (b[inner] & 0x0F) * 4
    proto = b[inner + 9]
    if inihl < 20 or inihl + 4 > inlen or proto not in (IPPROTO_TCP, IPPROTO_UDP):
        return None
    return (
        inner,
        inlen,
        proto,
        bytes(b[inner + 12 : inner + 16]),
        bytes(b[inner + 16 : inner + 20]),
        get16(b, inner + inihl),
        get16(b, inner + inihl + 2),
    )


def icmp_csum_ok(p: Pkt) -> bool:
    iclen = p.ip_len - (p.l4_off - p.l3_off)
    return csum_fold(csum_add(0, p.buf, p.l4_off, iclen)) == 0


__all__ = [
    "ICMP_DEST_UNREACH",
    "ICMP_ERRORS",
    "ICMP_EXC_TTL",
    "ICMP_FRAG_NEEDED",
    "ICMP_PORT_UNREACH",
    "ICMP_SOURCE_QUENCH",
    "ICMP_TIME_EXCEEDED",
    "IPPROTO_ICMP",
    "icmp4_send",
    "icmp_csum_ok",
    "nat_rewrite",
    "quoted_key",
]
