"""IP tunneling (ipvsadm -i), the Python twin of csched/src/xmit_tun.c (kernel ip_vs_tunnel_xmit).

The whole IPv4 packet (TTL already decremented) goes behind a new 20-byte IPv4 header, protocol 4 (IPIP):
source = the balancer's address on the egress port, destination = the real server; DF copied from the inner
header; TOS = the inner DS field with ECN encapsulated (CE becomes ECT(0), INET_ECN_encapsulate); TTL = the
inner TTL; ID 0 with DF, else the inner ID (the kernel draws a random one; we stay reproducible).  The MTU
check
uses the egress MTU - 20, so a DF packet that no longer fits gets ICMP fragmentation needed with MTU - 20.
The inner packet moves 20 bytes up in its batch slot; if that does not fit it is dropped (MTU).
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.fwd import xmit
from lb.fwd.csum import ip4_send_check
from lb.fwd.parse import AF_INET6, IP_DF, IPPROTO_IPIP, Pkt, Reason, Verdict, get16, put16

IPIP_HLEN = 20


def ecn_encapsulate(ds: int) -> int:
    ecn = ds & 3
    return (ds & ~3 & 0xFF) | (2 if ecn == 3 else ecn)


def xmit_in(ports: Sequence[xmit.PortLike], p: Pkt, cp: xmit.ConnLike) -> None:
    if p.af == AF_INET6:  # IPv6-in-IPv6 would need an IPv6 port address: the slow path
        p.set_verdict(Verdict.PASS, Reason.SLOW_PATH)
        return
    dest = cp.xdest
    if dest is None or not xmit.nexthop(p, dest):
        return
    src = xmit.icmp_src(ports, p, to_vip=True)
    port = dest.nh_port
    link_mtu = ports[port].mtu
    if not xmit.ttl(p, src):
        return
    if link_mtu < 68 + IPIP_HLEN:
        p.set_verdict(Verdict.DROP, Reason.MTU)
        return
    if not xmit.mtu(p, link_mtu - IPIP_HLEN, src):
        return
    if p.l3_off + p.ip_len + IPIP_HLEN > p.room:
        p.set_verdict(Verdict.DROP, Reason.MTU)
        return
    b, ip = p.buf, p.l3_off
    inner = bytes(b[ip : ip + p.ip_len])
    b[ip + IPIP_HLEN : ip + IPIP_HLEN + p.ip_len] = inner
    df = get16(inner, 6) & IP_DF
    b[ip] = 0x45
    b[ip + 1] = ecn_encapsulate(inner[1])
    put16(b, ip + 2, p.ip_len + IPIP_HLEN)
    b[ip + 4 : ip + 6] = b"\0\0" if df else inner[4:6]
    put16(b, ip + 6, df)
    b[ip + 8] = inner[8]
    b[ip + 9] = IPPROTO_IPIP
    b[ip + 12 : ip + 16] = ports[port].ip
    b[ip + 16 : ip + 20] = cp.daddr
    ip4_send_check(b, ip)
    p.ip_len += IPIP_HLEN
    p.l4_off = ip + IPIP_HLEN
    xmit.l2(ports, p, port, dest.nh_mac)
