"""Prose for students: why a packet got its verdict, and why each header field changed at a hop.

`VERDICT_PROSE` explains every `lb_reason` of csched/include/lb_reason.h (same names, same order; a unit test
holds the two lists equal).  `field_reason` gives the one-line reason printed next to a changed field in a
ladder, per forwarding mode and direction, in the words of the kernel's ip_vs_xmit.c ("Description of
forwarding methods") and ip_vs_core.c.
"""

from __future__ import annotations

#: One or two sentences per lb_reason (LB_REASON_LIST order), for `lb explain`/`lb trace` and the docs.
VERDICT_PROSE: dict[str, str] = {
    "OK": "The packet belongs to a virtual service and was rewritten for its connection's forwarding mode "
          "and sent on towards its next hop.",
    "NO_SERVICE": "No virtual service matches the destination address, port and protocol, so the balancer "
                  "leaves the packet to the namespace's own kernel (like IPVS returning NF_ACCEPT).",
    "NO_DEST": "The service exists but its scheduler found no usable real server: all are quiesced "
               "(weight 0), overloaded (upper threshold reached) or removed.  IPVS answers such a new "
               "connection with an ICMP port unreachable.",
    "CONN_FULL": "The connection table is at its fixed capacity; the new connection is refused and counted, "
                 "and every existing connection keeps working.",
    "PARSE_SHORT": "The frame is shorter than the headers it claims to carry; it cannot be parsed safely.",
    "PARSE_L2": "The frame is not Ethernet carrying IPv4 or IPv6 (for example ARP, which the control plane "
                "answers itself).",
    "PARSE_IP_VERSION": "The IP header's version field is neither 4 nor 6.",
    "PARSE_IHL": "The IPv4 header length is below 20 bytes or runs past the end of the frame.",
    "PARSE_TOTLEN": "The IP total length disagrees with the frame (shorter than the header, or longer than "
                    "what arrived).",
    "PARSE_CSUM": "The IPv4 header checksum is wrong: the header was corrupted on the way.",
    "FRAGMENT": "The packet is an IP fragment; without the first fragment's ports it cannot be matched to a "
                "connection, so it is dropped and counted.",
    "TTL": "The TTL would reach zero at the balancer (it decrements TTL like a router, as IPVS does since "
           "Linux 5.3); the sender gets an ICMP time exceeded.",
    "TCP_FLAGS": "The TCP flags make no sense together (for example SYN with FIN or RST); such packets are "
                 "scans or garbage and never start a connection.",
    "NO_ROUTE": "The balancer does not know the MAC address of the next hop towards the real server yet "
                "(no ARP / neighbour entry).",
    "MTU": "With the extra outer header the packet would not fit the egress link and DF is set: the client "
           "gets ICMP fragmentation needed with a smaller MTU (path MTU discovery), as IPVS does for TUN.",
    "SLOW_PATH": "Not a data packet for a service (ARP, ICMP echo to the VIP, ...): handed to the Python "
                 "control plane, which answers it.",
    "ICMP_UNTRACKED": "An ICMP error quotes a connection the balancer does not know, so there is nobody to "
                      "forward it to.",
    "NOT_SYN": "A TCP packet other than SYN arrived for a connection that is not in the table (for example "
               "after it expired); IPVS does not start connections on such packets.",
}

# (mode, direction, layer, field) -> reason.  direction: "in" = client -> real server, "out" = reply.
# mode "*" matches every mode; layer "IPv4" also covers "IPv4 (inner)".
_FIELD_REASONS: dict[tuple[str, str, str, str], str] = {
    # NAT request: DNAT
    ("nat", "in", "IPv4", "dst"): "DNAT: the VIP is replaced by the real server the scheduler chose",
    ("nat", "in", "TCP", "dport"): "DNAT: the virtual port is replaced by the real server's port",
    ("nat", "in", "IPv4", "csum"): "IP checksum updated incrementally for the new address and TTL (RFC 1624)",
    ("nat", "in", "TCP", "csum"): "TCP checksum covers the pseudo-header, so it follows the new address/port",
    ("nat", "in", "Ethernet", "dst"): "next hop is now the real server on the server-side link",
    ("nat", "in", "Ethernet", "src"): "the balancer's MAC on the link it sends from",
    # NAT reply: SNAT
    ("nat", "out", "IPv4", "src"): "SNAT: the real server's address is replaced by the VIP the client knows",
    ("nat", "out", "TCP", "sport"): "SNAT: the real server's port is replaced by the virtual port",
    ("nat", "out", "IPv4", "csum"): "IP checksum updated incrementally for the new address and TTL",
    ("nat", "out", "TCP", "csum"): "TCP checksum follows the new source address/port (pseudo-header)",
    ("nat", "out", "Ethernet", "dst"): "next hop is the client side (the MAC the request came from)",
    ("nat", "out", "Ethernet", "src"): "the balancer's MAC on the client-side link",
    # DR
    ("dr", "in", "Ethernet", "dst"): "direct routing: only the destination MAC changes, to the real server's",
    ("dr", "in", "Ethernet", "src"): "the balancer's own MAC as the sender on the shared segment",
    ("dr", "in", "IPv4", "csum"): "IP checksum updated for the decremented TTL",
    # TUN
    ("tun", "in", "Ethernet", "dst"): "next hop towards the real server's address (RIP)",
    ("tun", "in", "Ethernet", "src"): "the balancer's MAC on the egress link",
    ("tun", "in", "IPv4", "csum"): "inner IP checksum updated for the decremented TTL",
    # every mode: routing-like TTL handling
    ("*", "in", "IPv4", "ttl"): "the balancer forwards like a router: TTL - 1 (IPVS does since Linux 5.3)",
    ("*", "out", "IPv4", "ttl"): "the balancer forwards like a router: TTL - 1",
    ("*", "*", "IPv4", "id"): "IP identification set by the sender of this header",
}

_LAYER_ADDED: dict[tuple[str, str], str] = {
    ("tun", "IPv4 (outer)"): "IPIP encapsulation: a new outer IPv4 header (protocol 4) from the balancer to "
                             "the real server; the client's packet rides inside unchanged",
}


def _norm_layer(layer: str) -> str:
    return "IPv4" if layer.startswith("IPv4") else layer


def field_reason(mode: str, direction: str, layer: str, name: str) -> str:
    """The one-line reason shown next to a changed field (falls back to a generic phrase)."""
    base = _norm_layer(layer)
    for key in ((mode, direction, base, name), ("*", direction, base, name), ("*", "*", base, name)):
        if key in _FIELD_REASONS:
            return _FIELD_REASONS[key]
    if name == "csum":
        return "checksum recomputed because covered fields changed"
    return "rewritten by the balancer"


def layer_added_reason(mode: str, layer: str) -> str:
    return _LAYER_ADDED.get((mode, layer), "header added by the balancer")


#: Per-mode summaries used by the ladder's footer and docs/teaching.md's table.
MODE_SUMMARY: dict[str, dict[str, str]] = {
    "nat": {
        "name": "NAT (-m, masquerading)",
        "crosses": "requests and replies",
        "request": "destination IP:port VIP:vport -> RIP:rport (DNAT), checksums fixed incrementally",
        "reply": "passes the balancer again; source RIP:rport -> VIP:vport (SNAT)",
        "needs": "default route (or route to the clients) via the balancer",
        "fits": "small setups, port translation, real servers with private addresses; the balancer "
                "carries all reply bytes, so it limits throughput",
    },
    "dr": {
        "name": "DR (-g, direct routing / gatewaying)",
        "crosses": "requests only",
        "request": "only the Ethernet destination (and source) MAC; the IP packet is untouched",
        "reply": "straight from the real server to the client, source = VIP",
        "needs": "same L2 segment as the balancer; VIP on a non-ARP interface (lo) with arp_ignore=1 and "
                 "arp_announce=2; same port as the service (no port translation)",
        "fits": "high volume on one LAN: replies (usually the big direction) never touch the balancer",
    },
    "tun": {
        "name": "TUN (-i, IP-in-IP tunnelling)",
        "crosses": "requests only",
        "request": "the whole IP packet is wrapped in an outer IPv4 header (protocol 4, balancer -> RIP)",
        "reply": "straight from the real server to the client, source = VIP",
        "needs": "IPIP decapsulation (ipip module or `lb tun-decap`) and the VIP configured locally; "
                 "room for 20 more bytes (MTU), rp_filter relaxed",
        "fits": "high volume across routed networks or sites: real servers need not share a LAN",
    },
}
