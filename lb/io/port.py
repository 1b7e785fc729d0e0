"""`Port`: one network link of the balancer, whatever reads and writes its frames.

A port has the index the C core knows it by (lb_port_set: 0..7), the link's name, the MAC the balancer
uses on it, its IPv4 address and prefix there (source of ARP requests, outer source of IPIP, source of
ICMP errors) and the MTU.  Backends: `afpacket.AFPacketPort` (a kernel interface read through a
TPACKET_V3 ring) and `tap.TapPort` (a TAP device: the balancer is a host of its own on that segment).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network


@dataclass
class PortAddr:
    """The balancer's identity on one link."""

    mac: bytes
    ipv4: IPv4Interface | None
    mtu: int = 1500

    @property
    def ip(self) -> IPv4Address | None:
        return None if self.ipv4 is None else self.ipv4.ip

    @property
    def network(self) -> IPv4Network | None:
        return None if self.ipv4 is None else self.ipv4.network


def mac_text(mac: bytes) -> str:
    return mac.hex(":")


def parse_mac(text: str) -> bytes:
    raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"bad MAC address {text!r}")
    return raw


class Port(abc.ABC):
    """A link the balancer sends and receives Ethernet frames on."""

    #: how the C pump reads this port: "ring" (TPACKET_V3), "sock" (recvmmsg) or "fd" (read/write)
    kind: str = "fd"

    def __init__(self, index: int, name: str, addr: PortAddr) -> None:
        self.index = index
        self.name = name
        self.addr = addr

    @property
    def mac(self) -> bytes:
        return self.addr.mac

    @property
    def ipv4(self) -> IPv4Interface | None:
        return self.addr.ipv4

    @property
    def mtu(self) -> int:
        return self.addr.mtu

    @abc.abstractmethod
    def fileno(self) -> int:
        """The non-blocking fd the pump polls and writes."""

    @abc.abstractmethod
    def recv(self, buf: bytearray | memoryview) -> int:
        """One frame into buf (the Python loop's path); 0 when none is waiting."""

    @abc.abstractmethod
    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        """Send one frame; False if the kernel refused it (queue full, link down)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the fd and any mapping."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.index} {self.name} {mac_text(self.mac)} {self.ipv4}>"
