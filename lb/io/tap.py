"""TAP ports: the balancer as a host of its own on an L2 segment (/dev/net/tun, IFF_TAP | IFF_NO_PI).

Frames the kernel sends out of the TAP device (a bridge forwarding to it, say) are what we read; frames
we write are received by the kernel on that device.  The TAP interface itself carries no address: the
balancer owns a MAC of its own (locally administered, derived from the device name unless given) and its
VIPs and port address, and answers ARP for them itself (lb/io/arp.py).  The device is opened with plain
ioctls (the same TUNSETIFF python-pytun issues) so that the fd can be handed to the C pump as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import struct
from ipaddress import IPv4Interface

from lb.io.port import Port, PortAddr

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFMTU = 0x8921
IFF_UP = 0x1


def default_mac(name: str) -> bytes:
    """A stable locally administered unicast MAC for the balancer on TAP device `name`."""
    h = hashlib.sha256(b"pyvs-tap:" + name.encode()).digest()
    return bytes([0x02, *h[:5]])


def _set_up(name: str) -> int:
    """Bring the device up; returns its MTU."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack_from("=H", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req), 16)[0]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))
        mtu_req = struct.pack("16s24x", name.encode())
        return int(struct.unpack_from("=i", fcntl.ioctl(s.fileno(), SIOCGIFMTU, mtu_req), 16)[0])


class TapPort(Port):
    """A TAP device (created if missing) as a balancer port."""

    kind = "fd"

    def __init__(self, index: int, name: str, *, mac: bytes | None = None, ipv4: IPv4Interface | None = None,
                 bring_up: bool = True) -> None:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI)
            got = fcntl.ioctl(fd, TUNSETIFF, ifr)
            real = got[:16].rstrip(b"\0").decode()
            mtu = _set_up(real) if bring_up else 1500
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        super().__init__(index, real, PortAddr(mac=mac or default_mac(real), ipv4=ipv4, mtu=mtu))

    def fileno(self) -> int:
        return self.fd

    def recv(self, buf: bytearray | memoryview) -> int:
        try:
            return os.readv(self.fd, [buf])
        except BlockingIOError:
            return 0

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        try:
            os.write(self.fd, frame)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
