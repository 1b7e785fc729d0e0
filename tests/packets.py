"""Named test packets, Cilium-style (bpf/tests/scapy/*_pkt_defs.py): `<case>_<pkt>` scapy expressions plus the
addresses, MACs and ports every packet test shares, and the one lab-like configuration both packet engines
get.

Topology (all 10.0.0.0/8):

    client 10.0.0.2 ──port 0── balancer (10.0.0.1, VIP 10.0.0.100) ──port 1 (10.1.0.1)── rs1 10.1.0.11
                                                                                  └──────── rs2 10.1.0.12

Services on the VIP (scheduler rr):
    TCP :80 -> rs1:8080 masq (port translation)    UDP :53 -> rs1:53 masq    TCP :81 -> rs1:81 droute
    TCP :82 -> rs1:82 tunnel    TCP :90 no destination    TCP :83 -> rs2:83 masq, next hop unresolved
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrFragment,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from lb import model

CLIENT_MAC = "02:00:00:00:00:02"
LB0_MAC = "02:00:00:00:01:00"
LB1_MAC = "02:00:00:00:01:01"
RS1_MAC = "02:00:00:00:02:11"
RS2_MAC = "02:00:00:00:02:12"
CIP = "10.0.0.2"
LB0_IP = "10.0.0.1"
VIP = "10.0.0.100"
LB1_IP = "10.1.0.1"
RIP1 = "10.1.0.11"
RIP2 = "10.1.0.12"
CIP6 = "fd00::2"
VIP6 = "fd00::100"
RIP6 = "fd01::11"
CPORT = 40000
MTU = 1500

NAT_PORT, NAT_RPORT = 80, 8080
UDP_PORT = 53
DR_PORT = 81
TUN_PORT = 82
NODEST_PORT = 90
NOROUTE_PORT = 83


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def tcp_key(port: int) -> model.ServiceKey:
    return model.ServiceKey(model.Proto.TCP, IPv4Address(VIP), port)


NAT_SVC = tcp_key(NAT_PORT)
UDP_SVC = model.ServiceKey(model.Proto.UDP, IPv4Address(VIP), UDP_PORT)
DR_SVC = tcp_key(DR_PORT)
TUN_SVC = tcp_key(TUN_PORT)
NODEST_SVC = tcp_key(NODEST_PORT)
NOROUTE_SVC = tcp_key(NOROUTE_PORT)


def tcp6_key(port: int) -> model.ServiceKey:
    return model.ServiceKey(model.Proto.TCP, IPv6Address(VIP6), port)


NAT6_SVC = tcp6_key(NAT_PORT)
UDP6_SVC = model.ServiceKey(model.Proto.UDP, IPv6Address(VIP6), UDP_PORT)

#: (service, dests as (address, port, fwd), next hop known?) - what `configure` sets up.
SERVICES: tuple[tuple[model.ServiceKey, tuple[tuple[str, int, model.Fwd], ...], bool], ...] = (
    (NAT_SVC, ((RIP1, NAT_RPORT, model.Fwd.MASQ),), True),
    (UDP_SVC, ((RIP1, UDP_PORT, model.Fwd.MASQ),), True),
    (DR_SVC, ((RIP1, DR_PORT, model.Fwd.DROUTE),), True),
    (TUN_SVC, ((RIP1, TUN_PORT, model.Fwd.TUNNEL),), True),
    (NODEST_SVC, (), True),
    (NOROUTE_SVC, ((RIP2, NOROUTE_PORT, model.Fwd.MASQ),), False),
    (NAT6_SVC, ((RIP6, NAT_RPORT, model.Fwd.MASQ),), True),
    (UDP6_SVC, ((RIP6, UDP_PORT, model.Fwd.MASQ),), True),
    (tcp6_key(DR_PORT), ((RIP6, DR_PORT, model.Fwd.DROUTE),), True),
    (tcp6_key(TUN_PORT), ((RIP6, TUN_PORT, model.Fwd.TUNNEL),), True),
    (tcp6_key(NODEST_PORT), (), True),
)


def configure(
    engine: Any,
    mtu: int = MTU,
    sched: str = "rr",
    *,
    flags: int = 0,
    timeout: int = 0,
    second_dest: bool = False,
) -> None:
    """Ports, services, dests and next hops on a packet engine (tests' CEngine or lb.engine PythonEngine).

    `flags`/`timeout` go on every service (e.g. persistence, one-packet); `second_dest` adds 10.1.0.12 (and
    fd01::12) with the same port to every service that has a dest, so schedulers have a choice.
    """
    engine.set_port(0, mac(LB0_MAC), IPv4Address(LB0_IP), mtu)
    engine.set_port(1, mac(LB1_MAC), IPv4Address(LB1_IP), mtu)
    for key, dests, routed in SERVICES:
        netmask = 128 if key.addr.version == 6 else model.V4_FULL_MASK
        engine.add_service(model.Service(key, sched, flags, timeout, netmask))
        more = [(RIP2 if key.addr.version == 4 else "fd01::12", port, fwd) for _, port, fwd in dests[:1]]
        for addr, port, fwd in [*dests, *(more if second_dest and routed else [])]:
            engine.add_dest(key, model.Dest(ip_address(addr), port, fwd, weight=2 if addr == RIP2 else 1))
            if routed:
                rs_mac = RS2_MAC if addr in (RIP2, "fd01::12") else RS1_MAC
                engine.set_nexthop(key, model.DestKey(ip_address(addr), port), 1, mac(rs_mac))


def client(vlan: int | None = None) -> Packet:
    eth = Ether(src=CLIENT_MAC, dst=LB0_MAC)
    return eth / Dot1Q(vlan=vlan) if vlan is not None else eth


def to_client(vlan: int | None = None) -> Packet:
    eth = Ether(src=LB0_MAC, dst=CLIENT_MAC)
    return eth / Dot1Q(vlan=vlan) if vlan is not None else eth


def from_rs1() -> Packet:
    return Ether(src=RS1_MAC, dst=LB1_MAC)


def to_rs1() -> Packet:
    return Ether(src=LB1_MAC, dst=RS1_MAC)


def icmp_error(outer: Packet, quoted: bytes) -> Packet:
    """An ICMP error as the balancer builds it: 576 bytes at most."""
    return outer / Raw(quoted[:548])


PAYLOAD = b"GET / HTTP/1.0\r\n\r\n"

# ---- NAT ----
nat_syn_in = (
    client()
    / IP(src=CIP, dst=VIP, ttl=64, id=1, flags="DF")
    / TCP(sport=CPORT, dport=NAT_PORT, flags="S", seq=1000)
)
nat_syn_out = (
    to_rs1()
    / IP(src=CIP, dst=RIP1, ttl=63, id=1, flags="DF")
    / TCP(sport=CPORT, dport=NAT_RPORT, flags="S", seq=1000)
)
nat_reply_in = (
    from_rs1()
    / IP(src=RIP1, dst=CIP, ttl=64, id=7, flags="DF")
    / TCP(sport=NAT_RPORT, dport=CPORT, flags="SA", seq=5000, ack=1001)
)
nat_reply_out = (
    to_client()
    / IP(src=VIP, dst=CIP, ttl=63, id=7, flags="DF")
    / TCP(sport=NAT_PORT, dport=CPORT, flags="SA", seq=5000, ack=1001)
)
nat_data_in = (
    client()
    / IP(src=CIP, dst=VIP, ttl=64, id=2, flags="DF")
    / TCP(sport=CPORT, dport=NAT_PORT, flags="PA", seq=1001, ack=5001)
    / PAYLOAD
)
nat_data_out = (
    to_rs1()
    / IP(src=CIP, dst=RIP1, ttl=63, id=2, flags="DF")
    / TCP(sport=CPORT, dport=NAT_RPORT, flags="PA", seq=1001, ack=5001)
    / PAYLOAD
)
# IP options are honoured (L4 found with the IHL) and forwarded as they are
nat_opts_in = (
    client()
    / IP(src=CIP, dst=VIP, ttl=64, id=3, options=[IPOption_NOP()] * 4)
    / TCP(sport=CPORT + 1, dport=NAT_PORT, flags="S")
)
nat_opts_out = (
    to_rs1()
    / IP(src=CIP, dst=RIP1, ttl=63, id=3, options=[IPOption_NOP()] * 4)
    / TCP(sport=CPORT + 1, dport=NAT_RPORT, flags="S")
)
# one 802.1Q tag is understood and kept
nat_vlan_in = (
    client(vlan=7) / IP(src=CIP, dst=VIP, ttl=64, id=4) / TCP(sport=CPORT + 2, dport=NAT_PORT, flags="S")
)
nat_vlan_out = (
    Ether(src=LB1_MAC, dst=RS1_MAC)
    / Dot1Q(vlan=7)
    / IP(src=CIP, dst=RIP1, ttl=63, id=4)
    / TCP(sport=CPORT + 2, dport=NAT_RPORT, flags="S")
)

# ---- UDP NAT ----
udp_in = client() / IP(src=CIP, dst=VIP, ttl=64, id=9) / UDP(sport=CPORT, dport=UDP_PORT) / b"query"
udp_out = to_rs1() / IP(src=CIP, dst=RIP1, ttl=63, id=9) / UDP(sport=CPORT, dport=UDP_PORT) / b"query"
udp_zero_csum_in = (
    client() / IP(src=CIP, dst=VIP, ttl=64, id=10) / UDP(sport=CPORT + 1, dport=UDP_PORT, chksum=0) / b"q"
)
udp_zero_csum_out = (
    to_rs1() / IP(src=CIP, dst=RIP1, ttl=63, id=10) / UDP(sport=CPORT + 1, dport=UDP_PORT, chksum=0) / b"q"
)

# ---- DR ----
dr_syn_in = (
    client() / IP(src=CIP, dst=VIP, ttl=64, id=11, flags="DF") / TCP(sport=CPORT, dport=DR_PORT, flags="S")
)
dr_syn_out = (
    to_rs1() / IP(src=CIP, dst=VIP, ttl=63, id=11, flags="DF") / TCP(sport=CPORT, dport=DR_PORT, flags="S")
)

# ---- TUN ----
tun_syn_in = (
    client()
    / IP(src=CIP, dst=VIP, ttl=64, id=12, flags="DF", tos=0x13)
    / TCP(sport=CPORT, dport=TUN_PORT, flags="S")
)
tun_syn_out = (
    to_rs1()
    / IP(src=LB1_IP, dst=RIP1, ttl=63, id=0, flags="DF", tos=0x12, proto=4)
    / IP(src=CIP, dst=VIP, ttl=63, id=12, flags="DF", tos=0x13)
    / TCP(sport=CPORT, dport=TUN_PORT, flags="S")
)
_tun_big_payload = bytes(MTU - 40)
tun_big_in = (
    client()
    / IP(src=CIP, dst=VIP, ttl=64, id=13, flags="DF")
    / TCP(sport=CPORT + 3, dport=TUN_PORT, flags="S")
    / _tun_big_payload
)
tun_big_out = icmp_error(
    to_client() / IP(src=VIP, dst=CIP, ttl=64, id=0, tos=0xC0) / ICMP(type=3, code=4, nexthopmtu=MTU - 20),
    bytes(
        IP(src=CIP, dst=VIP, ttl=63, id=13, flags="DF")
        / TCP(sport=CPORT + 3, dport=TUN_PORT, flags="S")
        / _tun_big_payload
    ),
)

# ---- the balancer's own ICMP errors ----
ttl1_in = (
    client() / IP(src=CIP, dst=VIP, ttl=1, id=14, tos=0x10) / TCP(sport=CPORT + 4, dport=NAT_PORT, flags="S")
)
ttl1_out = icmp_error(
    to_client() / IP(src=VIP, dst=CIP, ttl=64, id=0, tos=0xD0) / ICMP(type=11, code=0), bytes(ttl1_in[IP])
)
nodest_in = client() / IP(src=CIP, dst=VIP, ttl=64, id=15) / TCP(sport=CPORT, dport=NODEST_PORT, flags="S")
nodest_out = icmp_error(
    to_client() / IP(src=VIP, dst=CIP, ttl=64, id=0, tos=0xC0) / ICMP(type=3, code=3), bytes(nodest_in[IP])
)

# ---- ICMP errors about tracked connections ----
# rs1 cannot take the NATed data segment whole: "fragmentation needed" quoting what it got (CIP -> RIP1:8080)
_quoted_at_rs = IP(
    bytes(
        IP(src=CIP, dst=RIP1, ttl=63, id=2, flags="DF")
        / TCP(sport=CPORT, dport=NAT_RPORT, flags="PA", seq=1001, ack=5001)
    )
)
_quoted_tcp_csum = _quoted_at_rs[TCP].chksum
nat_icmp_rs_in = (
    from_rs1()
    / IP(src=RIP1, dst=CIP, ttl=64, id=20)
    / ICMP(type=3, code=4, nexthopmtu=1400)
    / Raw(bytes(_quoted_at_rs)[:28])
)
# ... reaches the client as if the VIP had said it: outer source VIP, quoted destination VIP:80, quoted TCP
# checksum left as it was (the kernel's ip_vs_nat_icmp does not touch it)
nat_icmp_rs_out = (
    to_client()
    / IP(src=VIP, dst=CIP, ttl=63, id=20)
    / ICMP(type=3, code=4, nexthopmtu=1400)
    / Raw(
        bytes(
            IP(src=CIP, dst=VIP, ttl=63, id=2, flags="DF")
            / TCP(sport=CPORT, dport=NAT_PORT, flags="PA", seq=1001, ack=5001, chksum=_quoted_tcp_csum)
        )[:28]
    )
)
# the client's router says the reply VIP:80 -> CIP could not be delivered: goes on to rs1 as RIP1:8080
nat_icmp_cl_in = (
    client()
    / IP(src="10.0.0.254", dst=VIP, ttl=64, id=21)
    / ICMP(type=11, code=0)
    / Raw(bytes(IP(src=VIP, dst=CIP, ttl=1, id=7) / TCP(sport=NAT_PORT, dport=CPORT, flags="A"))[:28])
)
_quoted_reply_csum = IP(
    bytes(IP(src=VIP, dst=CIP, ttl=1, id=7) / TCP(sport=NAT_PORT, dport=CPORT, flags="A"))
)[TCP].chksum
nat_icmp_cl_out = (
    to_rs1()
    / IP(src="10.0.0.254", dst=RIP1, ttl=63, id=21)
    / ICMP(type=11, code=0)
    / Raw(
        bytes(
            IP(src=RIP1, dst=CIP, ttl=1, id=7)
            / TCP(sport=NAT_RPORT, dport=CPORT, flags="A", chksum=_quoted_reply_csum)
        )[:28]
    )
)

# ---- not for the fast path ----
unknown_svc_in = client() / IP(src=CIP, dst=VIP, ttl=64) / TCP(sport=CPORT, dport=9999, flags="S")
other_host_in = client() / IP(src=CIP, dst=LB0_IP, ttl=64) / UDP(sport=CPORT, dport=22)
arp_in = Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=CLIENT_MAC, psrc=CIP, pdst=VIP)
echo_in = client() / IP(src=CIP, dst=VIP, ttl=64) / ICMP(type=8, id=1, seq=1) / b"ping"
noroute_in = client() / IP(src=CIP, dst=VIP, ttl=64) / TCP(sport=CPORT, dport=NOROUTE_PORT, flags="S")

# ---- broken or refused ----
bad_csum_in = (
    client() / IP(src=CIP, dst=VIP, ttl=64, chksum=0x1234) / TCP(sport=CPORT, dport=NAT_PORT, flags="S")
)
fragment_in = (
    client() / IP(src=CIP, dst=VIP, ttl=64, flags="MF", id=30) / UDP(sport=CPORT, dport=UDP_PORT) / bytes(64)
)
short_in = bytes(client() / IP(src=CIP, dst=VIP) / TCP(sport=CPORT, dport=NAT_PORT, flags="S"))[:30]
bad_version_in = (
    bytes(Ether(src=CLIENT_MAC, dst=LB0_MAC, type=0x0800)) + b"\x65" + bytes(IP(src=CIP, dst=VIP) / UDP())[1:]
)
bad_totlen_in = client() / IP(src=CIP, dst=VIP, len=200) / UDP(sport=CPORT, dport=UDP_PORT)
not_syn_in = client() / IP(src=CIP, dst=VIP, ttl=64) / TCP(sport=CPORT + 9, dport=NAT_PORT, flags="A")
synfin_in = client() / IP(src=CIP, dst=VIP, ttl=64) / TCP(sport=CPORT + 9, dport=NAT_PORT, flags="SF")
noflags_in = client() / IP(src=CIP, dst=VIP, ttl=64) / TCP(sport=CPORT + 9, dport=NAT_PORT, flags=0)


def icmp6_error(outer: Packet, quoted: bytes) -> Packet:
    """An ICMPv6 error as the balancer builds it: 1280 bytes at most."""
    return outer / Raw(quoted[:1232])


# ---- IPv6 ----
nat6_syn_in = (
    client() / IPv6(src=CIP6, dst=VIP6, hlim=64) / TCP(sport=CPORT, dport=NAT_PORT, flags="S", seq=1000)
)
nat6_syn_out = (
    to_rs1() / IPv6(src=CIP6, dst=RIP6, hlim=63) / TCP(sport=CPORT, dport=NAT_RPORT, flags="S", seq=1000)
)
nat6_reply_in = from_rs1() / IPv6(src=RIP6, dst=CIP6, hlim=64) / TCP(sport=NAT_RPORT, dport=CPORT, flags="SA")
nat6_reply_out = (
    to_client() / IPv6(src=VIP6, dst=CIP6, hlim=63) / TCP(sport=NAT_PORT, dport=CPORT, flags="SA")
)
udp6_in = client() / IPv6(src=CIP6, dst=VIP6, hlim=64) / UDP(sport=CPORT, dport=UDP_PORT) / b"query"
udp6_out = to_rs1() / IPv6(src=CIP6, dst=RIP6, hlim=63) / UDP(sport=CPORT, dport=UDP_PORT) / b"query"
dr6_syn_in = client() / IPv6(src=CIP6, dst=VIP6, hlim=64) / TCP(sport=CPORT, dport=DR_PORT, flags="S")
dr6_syn_out = to_rs1() / IPv6(src=CIP6, dst=VIP6, hlim=63) / TCP(sport=CPORT, dport=DR_PORT, flags="S")
tun6_syn_in = client() / IPv6(src=CIP6, dst=VIP6, hlim=64) / TCP(sport=CPORT, dport=TUN_PORT, flags="S")
hlim1_in = client() / IPv6(src=CIP6, dst=VIP6, hlim=1) / TCP(sport=CPORT + 4, dport=NAT_PORT, flags="S")
hlim1_out = icmp6_error(
    to_client() / IPv6(src=VIP6, dst=CIP6, hlim=64) / ICMPv6TimeExceeded(code=0), bytes(hlim1_in[IPv6])
)
nodest6_in = client() / IPv6(src=CIP6, dst=VIP6, hlim=64) / TCP(sport=CPORT, dport=NODEST_PORT, flags="S")
nodest6_out = icmp6_error(
    to_client() / IPv6(src=VIP6, dst=CIP6, hlim=64) / ICMPv6DestUnreach(code=4), bytes(nodest6_in[IPv6])
)
frag6_in = client() / IPv6(src=CIP6, dst=VIP6) / IPv6ExtHdrFragment(m=1) / UDP(sport=CPORT, dport=UDP_PORT)
echo6_in = client() / IPv6(src=CIP6, dst=VIP6) / ICMPv6EchoRequest()

# ---- an error from the real server about one of our IPIP packets ----
_tun_inner = IP(src=CIP, dst=VIP, ttl=63, id=12, flags="DF", tos=0x13) / TCP(
    sport=CPORT, dport=TUN_PORT, flags="S"
)
# rs1 says "fragmentation needed, MTU 1400" about the IPIP packet we sent it (sent to our port-1 address)
tun_icmp_rs_in = (
    from_rs1()
    / IP(src=RIP1, dst=LB1_IP, ttl=64, id=22)
    / ICMP(type=3, code=4, nexthopmtu=1400)
    / Raw(bytes(IP(src=LB1_IP, dst=RIP1, ttl=63, id=0, flags="DF", tos=0x12, proto=4) / _tun_inner))
)
# ... the client hears it from the VIP about its own request, with 20 bytes less for the tunnel
tun_icmp_rs_out = (
    to_client()
    / IP(src=VIP, dst=CIP, ttl=64, id=0, tos=0xD2)
    / ICMP(type=3, code=4, nexthopmtu=1380)
    / Raw(bytes(_tun_inner))
)

# ---- ICMPv6 errors about an IPv6 NAT connection ----
_q6_at_rs = IPv6(
    bytes(IPv6(src=CIP6, dst=RIP6, hlim=63) / TCP(sport=CPORT, dport=NAT_RPORT, flags="S", seq=1000))
)
nat6_icmp_rs_in = (
    from_rs1() / IPv6(src=RIP6, dst=CIP6, hlim=64) / ICMPv6PacketTooBig(mtu=1400) / Raw(bytes(_q6_at_rs))
)
nat6_icmp_rs_out = (
    to_client()
    / IPv6(src=VIP6, dst=CIP6, hlim=63)
    / ICMPv6PacketTooBig(mtu=1400)
    / Raw(
        bytes(
            IPv6(src=CIP6, dst=VIP6, hlim=63)
            / TCP(sport=CPORT, dport=NAT_PORT, flags="S", seq=1000, chksum=_q6_at_rs[TCP].chksum)
        )
    )
)
_q6_reply = IPv6(bytes(IPv6(src=VIP6, dst=CIP6, hlim=1) / TCP(sport=NAT_PORT, dport=CPORT, flags="SA")))
nat6_icmp_cl_in = (
    client() / IPv6(src="fd00::fe", dst=VIP6, hlim=64) / ICMPv6TimeExceeded() / Raw(bytes(_q6_reply))
)
nat6_icmp_cl_out = (
    to_rs1()
    / IPv6(src="fd00::fe", dst=RIP6, hlim=63)
    / ICMPv6TimeExceeded()
    / Raw(
        bytes(
            IPv6(src=RIP6, dst=CIP6, hlim=1)
            / TCP(sport=NAT_RPORT, dport=CPORT, flags="SA", chksum=_q6_reply[TCP].chksum)
        )
    )
)
