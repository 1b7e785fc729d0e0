"""Direct routing (ipvsadm -g), the Python twin of csched/src/xmit_dr.c.

The IP packet reaches the real server unchanged except for the TTL decrement (every IPVS mode since Linux
5.3);
only the Ethernet addresses change: destination = the real server's MAC (the next hop), source = the egress
port's MAC.  Replies go straight from the real server to the client.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.fwd import xmit
from lb.fwd.parse import AF_INET6, Pkt


def xmit_in(ports: Sequence[xmit.PortLike], p: Pkt, cp: xmit.ConnLike) -> None:
    dest = cp.xdest
    if dest is None or not xmit.nexthop(p, dest):
        return
    if p.af == AF_INET6:  # ip_vs_dr_xmit_v6: hop limit, "packet too big" from the VIP
        if xmit.hop6(p, p.daddr) and xmit.mtu6(p, ports[dest.nh_port].mtu, p.daddr):
            xmit.l2(ports, p, dest.nh_port, dest.nh_mac)
        return
    src = xmit.icmp_src(ports, p, to_vip=True)
    port = dest.nh_port
    if not xmit.ttl(p, src) or not xmit.mtu(p, ports[port].mtu, src):
        return
    xmit.l2(ports, p, port, dest.nh_mac)
