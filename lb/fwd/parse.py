"""Parse one frame: Ethernet (+ one 802.1Q tag) -> IPv4 -> TCP/UDP/ICMP, the Python twin of
csched/src/parse.c.

`Pkt` mirrors `struct lb_pkt` (csched/include/lb_pkt.h): where the headers are, the flow key, and the verdict
being built.  `parse` checks every length before it reads, as the C code does:
- too short for its headers -> DROP PARSE_SHORT; IP version not 4 -> DROP PARSE_IP_VERSION; IHL < 5 -> DROP
  PARSE_IHL; total length below the header or beyond the frame -> DROP PARSE_TOTLEN; header checksum wrong ->
  DROP PARSE_CSUM; a fragment (MF or an offset) -> DROP FRAGMENT (no reassembly; later fragments have no
  ports).
- IPv6: TCP/UDP/ICMPv6 right behind the fixed header; a fragment header -> DROP FRAGMENT; other extension
  headers -> PASS SLOW_PATH.
- ARP -> PASS SLOW_PATH; other ethertypes -> PASS PARSE_L2; IP protocols other than TCP/UDP/ICMP ->
  PASS NO_SERVICE.
- IPv4 options are honoured: the TCP/UDP header is found with the IHL, and the options are forwarded
  untouched.
`Verdict` and `Reason` carry the values of lb_api_pkt.h's LB_VERDICT_* and lb_reason.h's LB_REASON_LIST.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from lb.fwd.csum import csum_add, csum_fold


class Verdict(IntEnum):
    """LB_VERDICT_* (csched/include/lb_api_pkt.h)."""

    DROP = 0
    TX = 1
    PASS = 2


class Reason(IntEnum):
    """enum lb_reason, in LB_REASON_LIST order (csched/include/lb_reason.h); the order is ABI."""

    OK = 0
    NO_SERVICE = 1
    NO_DEST = 2
    CONN_FULL = 3
    PARSE_SHORT = 4
    PARSE_L2 = 5
    PARSE_IP_VERSION = 6
    PARSE_IHL = 7
    PARSE_TOTLEN = 8
    PARSE_CSUM = 9
    FRAGMENT = 10
    TTL = 11
    TCP_FLAGS = 12
    NO_ROUTE = 13
    MTU = 14
    SLOW_PATH = 15
    ICMP_UNTRACKED = 16
    NOT_SYN = 17


ETH_HLEN = 14
VLAN_HLEN = 4
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IP6_HLEN = 40
AF_INET = 2
AF_INET6 = 10
IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFMASK = 0x1FFF
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04


def get16(buf: bytes | bytearray, off: int) -> int:
    return (buf[off] << 8) | buf[off + 1]


def put16(buf: bytearray, off: int, value: int) -> None:
    buf[off] = (value >> 8) & 0xFF
    buf[off + 1] = value & 0xFF


@dataclass(slots=True)
class Pkt:
    """One frame on the packet path (struct lb_pkt).  Addresses are 4-byte strings, ports host-order ints."""

    buf: bytearray
    length: int
    room: int
    in_port: int = 0
    af: int = AF_INET
    l3_off: int = 0
    l4_off: int = 0
    ip_len: int = 0
    proto: int = 0
    tcp_flags: int = 0
    out_port: int = 0
    verdict: Verdict = Verdict.DROP
    reason: Reason = Reason.OK
    icmp_err: bool = False
    saddr: bytes = field(default=b"\0\0\0\0")
    daddr: bytes = field(default=b"\0\0\0\0")
    sport: int = 0
    dport: int = 0

    def set_verdict(self, verdict: Verdict, reason: Reason) -> None:
        self.verdict = verdict
        self.reason = reason


def _drop(p: Pkt, reason: Reason) -> bool:
    p.set_verdict(Verdict.DROP, reason)
    return False


def _pass(p: Pkt, reason: Reason) -> bool:
    p.set_verdict(Verdict.PASS, reason)
    return False


def _parse_l4(p: Pkt, off: int, l4len: int) -> bool:
    b = p.buf
    if p.proto == IPPROTO_TCP:
        if l4len < 20:
            return _drop(p, Reason.PARSE_SHORT)
        doff = (b[off + 12] >> 4) * 4
        if doff < 20 or doff > l4len:
            return _drop(p, Reason.PARSE_SHORT)
        p.sport, p.dport = get16(b, off), get16(b, off + 2)
        p.tcp_flags = b[off + 13]
        return True
    if p.proto == IPPROTO_UDP:
        if l4len < 8:
            return _drop(p, Reason.PARSE_SHORT)
        p.sport, p.dport = get16(b, off), get16(b, off + 2)
        return True
    if p.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        if l4len < 8:
            return _drop(p, Reason.PARSE_SHORT)
        return True
    return _pass(p, Reason.NO_SERVICE)


def _parse_ip6(p: Pkt, off: int) -> bool:
    """The IPv6 fixed header with TCP/UDP right behind it; a fragment header drops, anything else (ICMPv6,
    other extension headers) goes to the slow path.  No header checksum in IPv6."""
    b = p.buf
    if p.length < off + IP6_HLEN:
        return _drop(p, Reason.PARSE_SHORT)
    if b[off] >> 4 != 6:
        return _drop(p, Reason.PARSE_IP_VERSION)
    plen = get16(b, off + 4)
    if off + IP6_HLEN + plen > p.length:
        return _drop(p, Reason.PARSE_TOTLEN)
    nh = b[off + 6]
    if nh == IPPROTO_FRAGMENT:
        return _drop(p, Reason.FRAGMENT)
    if nh not in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6):
        return _pass(p, Reason.SLOW_PATH)
    p.l3_off = off
    p.l4_off = off + IP6_HLEN
    p.ip_len = IP6_HLEN + plen
    p.proto = nh
    p.af = AF_INET6
    p.saddr = bytes(b[off + 8 : off + 24])
    p.daddr = bytes(b[off + 24 : off + 40])
    return _parse_l4(p, off + IP6_HLEN, plen)


def parse(p: Pkt) -> bool:
    """Fill p's header offsets and flow key; False (with p's verdict set) when the path stops here."""
    b, n = p.buf, p.length
    p.saddr = p.daddr = b"\0\0\0\0"
    p.sport = p.dport = p.tcp_flags = p.proto = p.out_port = 0
    p.icmp_err = False
    p.af = AF_INET

    # step 3a: Ethernet, one optional 802.1Q tag
    if n < ETH_HLEN:
        return _drop(p, Reason.PARSE_SHORT)
    etype = get16(b, 12)
    off = ETH_HLEN
    if etype == ETH_P_8021Q:
        if n < ETH_HLEN + VLAN_HLEN:
            return _drop(p, Reason.PARSE_SHORT)
        etype = get16(b, 16)
        off += VLAN_HLEN
    if etype == ETH_P_ARP:
        return _pass(p, Reason.SLOW_PATH)
    if etype == ETH_P_IPV6:
        return _parse_ip6(p, off)
    if etype != ETH_P_IP:
        return _pass(p, Reason.PARSE_L2)

    # step 3b: the IPv4 header
    if n < off + 20:
        return _drop(p, Reason.PARSE_SHORT)
    if b[off] >> 4 != 4:
        return _drop(p, Reason.PARSE_IP_VERSION)
    ihl = (b[off] & 0x0F) * 4
    if ihl < 20:
        return _drop(p, Reason.PARSE_IHL)
    if off + ihl > n:
        return _drop(p, Reason.PARSE_SHORT)
    totlen = get16(b, off + 2)
    if totlen < ihl or off + totlen > n:
        return _drop(p, Reason.PARSE_TOTLEN)
    if csum_fold(csum_add(0, b, off, ihl)) != 0:
        return _drop(p, Reason.PARSE_CSUM)
    if get16(b, off + 6) & (IP_MF | IP_OFFMASK):
        return _drop(p, Reason.FRAGMENT)

    p.l3_off = off
    p.l4_off = off + ihl
    p.ip_len = totlen
    p.proto = b[off + 9]
    p.saddr = bytes(b[off + 12 : off + 16])
    p.daddr = bytes(b[off + 16 : off + 20])

    # step 3c: the transport header
    return _parse_l4(p, off + ihl, totlen - ihl)
