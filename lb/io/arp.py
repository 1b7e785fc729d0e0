"""The slow path's own protocol work: ARP for the VIPs, ICMP echo to a VIP, and learning neighbours.

The C pump hands Python every frame the packet path passed on (LB_VERDICT_PASS): ARP, ICMP echo to a
VIP, traffic for no service.  `SlowPath.handle` answers what the balancer itself owns (the VIPs; on a TAP
port also the port's own address, which no kernel answers for) and learns sender MACs from ARP; everything
else is left alone (with AF_PACKET the namespace's kernel saw its own copy anyway).  The kernel has no
counterpart: IPVS leaves ARP and ICMP echo to the host stack, which owns the VIP there.

Frames are parsed and built with `struct` on bytes, dpkt-style (no scapy at runtime).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from lb.io.port import Port

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2
ICMP_ECHO_REPLY = 0
ICMP_ECHO = 8
BROADCAST = b"\xff" * 6

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # htype ptype hlen plen op sha spa tha tpa
_IP = struct.Struct("!BBHHHBBH4s4s")


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def arp_frame(op: int, src_mac: bytes, src_ip: IPv4Address, dst_mac: bytes, dst_ip: IPv4Address, *,
              eth_dst: bytes | None = None) -> bytes:
    """An Ethernet ARP frame (padded to the 60-byte minimum)."""
    eth = _ETH.pack(eth_dst if eth_dst is not None else (BROADCAST if op == ARP_REQUEST else dst_mac),
                    src_mac, ETH_P_ARP)
    arp = _ARP.pack(1, ETH_P_IP, 6, 4, op, src_mac, src_ip.packed,
                    b"\0" * 6 if op == ARP_REQUEST else dst_mac, dst_ip.packed)
    return (eth + arp).ljust(60, b"\0")


def arp_request(src_mac: bytes, src_ip: IPv4Address, target: IPv4Address) -> bytes:
    return arp_frame(ARP_REQUEST, src_mac, src_ip, BROADCAST, target)


@dataclass(frozen=True, slots=True)
class Arp:
    op: int
    sha: bytes
    spa: IPv4Address
    tha: bytes
    tpa: IPv4Address


def parse_arp(frame: bytes | bytearray | memoryview) -> Arp | None:
    """The ARP payload of an Ethernet/IPv4 ARP frame, or None."""
    if len(frame) < 42 or _ETH.unpack_from(frame)[2] != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, 14)
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        return None
    return Arp(op, sha, IPv4Address(spa), tha, IPv4Address(tpa))


def icmp_echo_reply(frame: bytes | bytearray | memoryview, my_mac: bytes) -> bytes | None:
    """The echo reply to an IPv4 ICMP echo request frame (addresses swapped, TTL 64, checksums new), or None
    if frame is not a well-formed unfragmented echo request."""
    if len(frame) < 14 + 20 + 8 or _ETH.unpack_from(frame)[2] != ETH_P_IP:
        return None
    src_mac = bytes(frame[6:12])
    vihl, tos, totlen, ident, frag, _ttl, proto, _csum, saddr, daddr = _IP.unpack_from(frame, 14)
    ihl = (vihl & 0xF) * 4
    if vihl >> 4 != 4 or ihl < 20 or proto != 1 or frag & 0x3FFF:
        return None
    if totlen < ihl + 8 or 14 + totlen > len(frame):
        return None
    icmp = bytearray(frame[14 + ihl:14 + totlen])
    if icmp[0] != ICMP_ECHO or checksum(icmp) != 0:
        return None
    icmp[0] = ICMP_ECHO_REPLY
    icmp[1] = 0
    icmp[2:4] = b"\0\0"
    icmp[2:4] = struct.pack("!H", checksum(icmp))
    ip = bytearray(_IP.pack(0x45, tos, 20 + len(icmp), ident, 0, 64, 1, 0, daddr, saddr))
    ip[10:12] = struct.pack("!H", checksum(ip))
    return _ETH.pack(src_mac, my_mac, ETH_P_IP) + bytes(ip) + bytes(icmp)


@dataclass
class SlowPathStats:
    arp_replies: int = 0
    arp_learned: int = 0
    echo_replies: int = 0
    ignored: int = 0
    by_port: dict[int, int] = field(default_factory=dict)


Learn = Callable[[IPv4Address, bytes, int], None]


class SlowPath:
    """Answers ARP and ICMP echo for the balancer's own addresses and learns neighbours from ARP."""

    def __init__(self, ports: Iterable[Port], learn: Learn | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.ports = {p.index: p for p in ports}
        self.vips: set[IPv4Address] = set()
        # addresses no kernel answers for: TAP ports' own addresses
        self.owned: dict[int, set[IPv4Address]] = {}
        for p in self.ports.values():
            self.owned[p.index] = {p.addr.ip} if p.kind == "fd" and p.addr.ip is not None else set()
        self.learn = learn
        self.log = log
        self.stats = SlowPathStats()

    def set_vips(self, vips: Iterable[IPv4Address]) -> None:
        self.vips = set(vips)

    def _mine(self, ip: IPv4Address, port: int) -> bool:
        return ip in self.vips or ip in self.owned.get(port, ())

    def handle(self, frame: bytes | bytearray | memoryview, port_index: int) -> bytes | None:
        """One slow-path frame that arrived on port `port_index`: the reply to send back on it, or None."""
        st = self.stats
        st.by_port[port_index] = st.by_port.get(port_index, 0) + 1
        port = self.ports.get(port_index)
        if port is None or len(frame) < 14:
            st.ignored += 1
            return None
        ethertype = _ETH.unpack_from(frame)[2]
        if ethertype == ETH_P_ARP:
            arp = parse_arp(frame)
            if arp is None:
                st.ignored += 1
                return None
            if self.learn is not None and arp.spa != IPv4Address(0) and arp.sha != BROADCAST:
                self.learn(arp.spa, arp.sha, port_index)
                st.arp_learned += 1
            if arp.op == ARP_REQUEST and self._mine(arp.tpa, port_index):
                st.arp_replies += 1
                if self.log:
                    self.log(f"arp: {arp.tpa} is-at {port.mac.hex(':')} -> {arp.spa} on {port.name}")
                return arp_frame(ARP_REPLY, port.mac, arp.tpa, arp.sha, arp.spa)
            return None
        if ethertype == ETH_P_IP and len(frame) >= 34:
            daddr = IPv4Address(bytes(frame[30:34]))
            saddr = IPv4Address(bytes(frame[26:30]))
            if frame[23] == 1 and self._mine(daddr, port_index):
                reply = icmp_echo_reply(frame, port.mac)
                if reply is not None:
                    st.echo_replies += 1
                    if self.log:
                        self.log(f"icmp: echo reply {daddr} -> {saddr} on {port.name}")
                    return reply
            if self.log:
                self.log(f"slow: left alone: IPv4 proto {frame[23]} {saddr} -> {daddr} on {port.name}")
        elif self.log:
            self.log(f"slow: left alone: ethertype 0x{ethertype:04x} on {port.name}")
        st.ignored += 1
        return None
