"""NAT (masquerading, ipvsadm -m), the Python twin of csched/src/xmit_nat.c.

Requests: VIP:vport -> RIP:rport (DNAT, with port translation when rport differs); replies: RIP:rport ->
VIP:vport (SNAT).  The TCP/UDP checksum is updated incrementally (RFC 1624) over the 4 address bytes of the
pseudo-header and the 2 port bytes; a UDP checksum of 0 ("none") stays 0 and a computed 0 is sent as 0xFFFF;
the IPv4 header checksum is recomputed (kernel tcp/udp_dnat_handler, tcp/udp_snat_handler, ip_send_check).
Requests are checked as IPVS does (TTL, then MTU); replies as the kernel's ip_forward does (TTL check, MTU
check, then the decrement).  IPv6 (ip_vs_nat_xmit_v6): hop limit for TTL, "packet too big" for fragmentation
needed, no IP header checksum; errors about replies are not sent (ports have no IPv6 address).
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.fwd import xmit
from lb.fwd.csum import csum_replace
from lb.fwd.icmp import ICMP_EXC_TTL, ICMP_TIME_EXCEEDED, icmp4_send
from lb.fwd.parse import AF_INET6, IPPROTO_TCP, IPPROTO_UDP, Pkt, Reason, get16, put16


def rewrite(p: Pkt, dst: bool, addr: bytes, port: int) -> None:
    """Set the destination (dst) or source address:port of a TCP/UDP packet, fixing both checksums."""
    b, ip, l4 = p.buf, p.l3_off, p.l4_off
    aoff, poff = (16, 2) if dst else (12, 0)
    old = bytes(b[ip + aoff : ip + aoff + 4]) + bytes(b[l4 + poff : l4 + poff + 2])
    new = addr + port.to_bytes(2, "big")
    if p.proto == IPPROTO_TCP:
        put16(b, l4 + 16, csum_replace(get16(b, l4 + 16), old, new))
    elif p.proto == IPPROTO_UDP:
        check = get16(b, l4 + 6)
        if check:
            check = csum_replace(check, old, new)
            put16(b, l4 + 6, check or 0xFFFF)
    put16(b, l4 + poff, port)
    b[ip + aoff : ip + aoff + 4] = addr
    put16(b, ip + 10, csum_replace(get16(b, ip + 10), old[:4], new[:4]))


def rewrite6(p: Pkt, dst: bool, addr: bytes, port: int) -> None:
    """IPv6: the same over 16-byte addresses; there is no IP header checksum to fix."""
    b, ip, l4 = p.buf, p.l3_off, p.l4_off
    aoff, poff = (24, 2) if dst else (8, 0)
    old = bytes(b[ip + aoff : ip + aoff + 16]) + bytes(b[l4 + poff : l4 + poff + 2])
    new = addr + port.to_bytes(2, "big")
    if p.proto == IPPROTO_TCP:
        put16(b, l4 + 16, csum_replace(get16(b, l4 + 16), old, new))
    elif p.proto == IPPROTO_UDP:
        check = get16(b, l4 + 6)
        if check:
            check = csum_replace(check, old, new)
            put16(b, l4 + 6, check or 0xFFFF)
    put16(b, l4 + poff, port)
    b[ip + aoff : ip + aoff + 16] = addr


def _xmit6_in(ports: Sequence[xmit.PortLike], p: Pkt, cp: xmit.ConnLike) -> None:
    dest = cp.xdest
    if dest is None or not xmit.nexthop(p, dest):
        return
    vip = p.daddr
    port = dest.nh_port
    if not xmit.hop6(p, vip) or not xmit.mtu6(p, ports[port].mtu, vip):
        return
    rewrite6(p, True, cp.daddr, cp.dport)
    xmit.l2(ports, p, port, dest.nh_mac)


def _xmit6_reply(ports: Sequence[xmit.PortLike], p: Pkt, cp: xmit.ConnLike) -> None:
    # no IPv6 address of our own on a port: errors about replies are not sent
    port = cp.cl_port if cp.cl_port < xmit.MAX_PORTS else 0
    if not xmit.hop6(p, None) or not xmit.mtu6(p, ports[port].mtu, None):
        return
    rewrite6(p, False, cp.vaddr, cp.vport)
    xmit.l2(ports, p, port, cp.cl_mac)


def xmit_in(ports: Sequence[xmit.PortLike], p: Pkt, cp: xmit.ConnLike) -> None:
    """Client -> real server: DNAT to the connection's dest."""
    if p.af == AF_INET6:
        _xmit6_in(ports, p, cp)
        return
    dest = cp.xdest
    if dest is None or not xmit.nexthop(p, dest):
        return
    src = xmit.icmp_src(ports, p, to_vip=True)
    port = dest.nh_port
    if not xmit.ttl(p, src) or not xmit.mtu(p, ports[port].mtu, src):
        return
    rewrite(p, True, cp.daddr, cp.dport)
    xmit.l2(ports, p, port, dest.nh_mac)


def xmit_reply(ports: Sequence[xmit.PortLike], p: Pkt, cp: xmit.ConnLike) -> None:
    """Real server -> client: SNAT back to VIP:vport, out where the client's first packet came in."""
    if p.af == AF_INET6:
        _xmit6_reply(ports, p, cp)
        return
    src = xmit.icmp_src(ports, p, to_vip=False)
    port = cp.cl_port if cp.cl_port < xmit.MAX_PORTS else 0
    b, ip = p.buf, p.l3_off
    if b[ip + 8] <= 1:
        icmp4_send(p, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, src, Reason.TTL)
        return
    if not xmit.mtu(p, ports[port].mtu, src):
        return
    xmit.ttl_dec(b, ip)
    rewrite(p, False, cp.vaddr, cp.vport)
    xmit.l2(ports, p, port, cp.cl_mac)
