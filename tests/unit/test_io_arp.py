"""Test that the slow path answers for the balancer's own addresses and nothing else:
- an ARP request for a VIP gets a reply from the port's MAC, addressed to the asker;
- ARP for other addresses is not answered, but the sender is learned as a neighbour;
- ICMP echo to a VIP gets a reply scapy accepts (checksums, addresses swapped, same id/seq/payload);
- echo with a bad checksum, fragments and non-echo ICMP are ignored;
- a TAP port answers for its own address too; an AF_PACKET port leaves that to its kernel.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from lb.io.arp import ARP_REPLY, SlowPath, arp_request, checksum, icmp_echo_reply, parse_arp
from lb.io.port import Port, PortAddr

VIP = IPv4Address("10.1.0.100")
MAC = bytes.fromhex("020000000001")
CLIENT_MAC = "02:00:00:00:00:99"


class FakePort(Port):
    def __init__(self, index: int, kind: str, ip: str | None) -> None:
        super().__init__(index, f"p{index}", PortAddr(MAC, IPv4Interface(ip) if ip else None))
        self.kind = kind

    def fileno(self) -> int:
        return -1

    def recv(self, buf: bytearray | memoryview) -> int:
        return 0

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        return True


def make(kind: str = "ring") -> tuple[SlowPath, list[tuple[IPv4Address, bytes, int]]]:
    learned: list[tuple[IPv4Address, bytes, int]] = []
    sp = SlowPath([FakePort(0, kind, "10.1.0.2/24")],
                  learn=lambda ip, mac, port: learned.append((ip, mac, port)))
    sp.set_vips([VIP])
    return sp, learned


def test_arp_request_for_vip_is_answered() -> None:
    sp, learned = make()
    req = bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc="10.1.0.1",
                                                                       pdst=str(VIP)))
    reply = sp.handle(req, 0)
    assert reply is not None
    pkt = Ether(reply)
    assert pkt.dst == CLIENT_MAC and pkt.src == MAC.hex(":")
    assert pkt[ARP].op == ARP_REPLY and pkt[ARP].psrc == str(VIP) and pkt[ARP].hwsrc == MAC.hex(":")
    assert pkt[ARP].pdst == "10.1.0.1" and pkt[ARP].hwdst == CLIENT_MAC
    assert learned == [(IPv4Address("10.1.0.1"), bytes.fromhex("020000000099"), 0)]
    assert sp.stats.arp_replies == 1


def test_arp_for_other_address_is_learned_not_answered() -> None:
    sp, learned = make()
    req = arp_request(bytes.fromhex("020000000099"), IPv4Address("10.1.0.1"), IPv4Address("10.1.0.7"))
    assert sp.handle(req, 0) is None
    assert learned[0][0] == IPv4Address("10.1.0.1")
    # the port's own address is the kernel's business on an AF_PACKET port ...
    req = arp_request(bytes.fromhex("020000000099"), IPv4Address("10.1.0.1"), IPv4Address("10.1.0.2"))
    assert sp.handle(req, 0) is None
    # ... but the balancer's on a TAP port
    tap, _ = make("fd")
    assert tap.handle(req, 0) is not None


def test_parse_arp_round_trip() -> None:
    frame = arp_request(MAC, IPv4Address("10.2.0.1"), IPv4Address("10.2.0.2"))
    assert len(frame) == 60
    arp = parse_arp(frame)
    assert arp is not None and arp.op == 1 and arp.spa == IPv4Address("10.2.0.1")
    assert arp.tpa == IPv4Address("10.2.0.2") and arp.sha == MAC
    assert parse_arp(frame[:30]) is None


def test_icmp_echo_to_vip_gets_valid_reply() -> None:
    sp, _ = make()
    req = Ether(src=CLIENT_MAC, dst=MAC.hex(":")) / IP(src="10.1.0.1", dst=str(VIP), ttl=3) / \
        ICMP(type=8, id=0x1234, seq=7) / b"payload-123"
    reply = sp.handle(bytes(req), 0)
    assert reply is not None
    pkt = Ether(reply)
    assert pkt.dst == CLIENT_MAC and pkt.src == MAC.hex(":")
    assert pkt[IP].src == str(VIP) and pkt[IP].dst == "10.1.0.1" and pkt[IP].ttl == 64
    assert pkt[ICMP].type == 0 and pkt[ICMP].id == 0x1234 and pkt[ICMP].seq == 7
    assert bytes(pkt[ICMP].payload) == b"payload-123"
    # checksums as scapy computes them
    fresh = IP(bytes(pkt[IP]))
    del fresh.chksum
    del fresh[ICMP].chksum
    again = IP(bytes(fresh))
    assert again.chksum == pkt[IP].chksum and again[ICMP].chksum == pkt[ICMP].chksum
    assert sp.stats.echo_replies == 1


def test_icmp_not_answered_when_bad() -> None:
    good = Ether(src=CLIENT_MAC, dst=MAC.hex(":")) / IP(src="10.1.0.1", dst=str(VIP)) / ICMP(type=8) / b"x"
    raw = bytearray(bytes(good))
    raw[-1] ^= 0xFF  # breaks the ICMP checksum
    assert icmp_echo_reply(raw, MAC) is None
    frag = Ether() / IP(src="10.1.0.1", dst=str(VIP), flags="MF") / ICMP(type=8)
    assert icmp_echo_reply(bytes(frag), MAC) is None
    unreach = Ether() / IP(src="10.1.0.1", dst=str(VIP)) / ICMP(type=3, code=3)
    assert icmp_echo_reply(bytes(unreach), MAC) is None
    sp, _ = make()
    other = Ether() / IP(src="10.1.0.1", dst="10.1.0.50") / ICMP(type=8)
    assert sp.handle(bytes(other), 0) is None
    assert sp.handle(b"\x00" * 10, 0) is None


def test_checksum_rfc1071() -> None:
    # RFC 1071's worked example sums 0001 f203 f4f5 f6f7 to ddf2 (complement 220d)
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert checksum(b"\x01") == checksum(b"\x01\x00")
