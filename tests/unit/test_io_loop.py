"""Test that the run loop moves frames between ports without root (socketpairs stand in for links):
- C engine (lb_pump): an ARP request for a VIP comes back as a reply on the same port, counted;
- C engine with the packet path: a UDP frame to a NAT service leaves on the dest's port, DNATed to the
  dest, with the next-hop MAC the resolver set, and the reply is SNATed back to the VIP on the client port;
- Python engine: the same ARP exchange through the reference loop;
- the kernel guard's nft script drops VIP and NAT-reply traffic on every device and nothing else.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from lb import model
from lb.core.core import Core
from lb.io.arp import arp_request
from lb.io.guard import ruleset
from lb.io.loop import Dataplane, PyDataplane, service_view
from lb.io.port import Port, PortAddr

VIP = IPv4Address("10.1.0.100")
CLIENT = "10.1.0.1"
RIP = "10.2.0.2"
CMAC = "02:00:00:00:00:c1"
RMAC = "02:00:00:00:00:d2"


class SockPort(Port):
    """A port over one end of a socketpair; the test holds the other end (the 'wire')."""

    kind = "sock"

    def __init__(self, index: int, ip: str) -> None:
        self.sock, self.wire = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.wire.settimeout(1.0)
        super().__init__(index, f"s{index}", PortAddr(bytes([2, 0, 0, 0, 0xAA, index]), IPv4Interface(ip)))

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, buf: bytearray | memoryview) -> int:
        try:
            return self.sock.recv_into(buf)
        except BlockingIOError:
            return 0

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        self.sock.send(frame)
        return True

    def close(self) -> None:
        self.sock.close()
        self.wire.close()


def nat_core() -> Core:
    core = Core(conn_max=1024)
    key = model.ServiceKey(model.Proto.UDP, VIP, 5000)
    core.add_service(model.Service(key, "rr"))
    core.add_dest(key, model.Dest(IPv4Address(RIP), 5000, model.Fwd.MASQ, 1))
    return core


@pytest.fixture
def ports() -> list[SockPort]:
    ps = [SockPort(0, "10.1.0.2/24"), SockPort(1, "10.2.0.1/24")]
    yield ps
    for p in ps:
        p.close()


def quiet(_msg: str) -> None:
    pass


def steps(dp: Dataplane | PyDataplane, n: int = 3) -> None:
    for _ in range(n):
        dp.step()


@pytest.mark.parametrize("engine", ["c", "python"])
def test_arp_for_vip_answered(ports: list[SockPort], engine: str) -> None:
    core = nat_core()
    cls = Dataplane if engine == "c" else PyDataplane
    dp = cls(core, ports, timeout_ms=0, log=quiet)
    dp.refresh()
    ports[0].wire.send(arp_request(bytes.fromhex(CMAC.replace(":", "")), IPv4Address(CLIENT), VIP))
    steps(dp)
    reply = Ether(ports[0].wire.recv(2048))
    assert reply[ARP].op == 2 and reply[ARP].psrc == str(VIP) and reply[ARP].hwsrc == ports[0].mac.hex(":")
    c = dp.counters()["s0"]
    assert c.rx_pkts == 1 and c.slow == 1 and c.tx_pkts == 1
    assert dp.slow.stats.arp_replies == 1


def test_service_view_lists_vips_and_dests() -> None:
    core = nat_core()
    vips, dests, nat = service_view(core)
    assert vips == {VIP}
    assert [a for _, a in dests] == [IPv4Address(RIP)]
    assert nat == [IPv4Address(RIP)]


@pytest.mark.parametrize("kind", ["c", "python"])
def test_dest_view_is_what_services_and_dest_infos_say(kind: str) -> None:
    """Core/PyCore.dest_view (the run loop's lean view) against the full listing, on a mixed config:
    NAT/DR/TUN dests, an IPv6 service, a fwmark service, a service without dests."""
    from lb.config import parse_rules_checked  # noqa: PLC0415
    from lb.engine.control import PyCore  # noqa: PLC0415
    from lb.state import ConfigState  # noqa: PLC0415

    core: Any = Core(conn_max=64, svc_max=16, dest_max=64) if kind == "c" else PyCore(conn_max=64)
    ConfigState(core).apply(parse_rules_checked(
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.2.0.11:8080 -m\n-a -t 10.0.0.1:80 -r 10.2.0.12 -g\n"
        "-A -u 10.0.0.2:53 -s wlc\n-a -u 10.0.0.2:53 -r 10.3.0.5:53 -i -w 3\n"
        "-A -t [2001:db8::1]:443 -s sh\n-a -t [2001:db8::1]:443 -r [2001:db8::10]:443 -m\n"
        "-A -f 7 -s rr\n-a -f 7 -r 10.2.0.20:0 -m\n-A -t 10.0.0.3:80 -s rr\n"))
    want = [(st.service.key, [(d.id, d.dest.addr, d.dest.fwd) for d in core.dest_infos(st.service.key)])
            for st in core.services()]
    assert core.dest_view() == want
    vips, dests, nat = service_view(core)
    assert vips == {IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3")}
    assert sorted(str(a) for _, a in dests) == ["10.2.0.11", "10.2.0.12", "10.2.0.20", "10.3.0.5"]
    assert sorted(str(a) for a in nat) == ["10.2.0.11", "10.2.0.20"]


def test_udp_nat_through_c_pump(ports: list[SockPort]) -> None:
    core = nat_core()
    if not hasattr(core.lib, "lb_process_batch"):
        pytest.skip("packet path (lb_process_batch) not built")
    dp = Dataplane(core, ports, timeout_ms=0, log=quiet)
    dp.refresh()
    # the resolver asks for the dest's MAC by ARP on port 1; answer it
    steps(dp, 2)
    req = Ether(ports[1].wire.recv(2048))
    assert req[ARP].pdst == RIP and req[ARP].psrc == "10.2.0.1"
    ports[1].wire.send(bytes(Ether(src=RMAC, dst=ports[1].mac.hex(":")) /
                             ARP(op=2, hwsrc=RMAC, psrc=RIP, hwdst=ports[1].mac.hex(":"), pdst="10.2.0.1")))
    steps(dp, 2)
    assert dp.neigh.unresolved == []
    # client -> VIP
    req_frame = Ether(src=CMAC, dst=ports[0].mac.hex(":")) / IP(src=CLIENT, dst=str(VIP), ttl=64) / \
        UDP(sport=40000, dport=5000) / b"hello"
    ports[0].wire.send(bytes(req_frame))
    steps(dp, 2)
    out = Ether(ports[1].wire.recv(2048))
    assert out.dst == RMAC and out.src == ports[1].mac.hex(":")
    assert out[IP].dst == RIP and out[IP].src == CLIENT and out[UDP].dport == 5000
    assert bytes(out[UDP].payload) == b"hello"
    chk = IP(bytes(out[IP]))
    del chk.chksum
    del chk[UDP].chksum
    rebuilt = IP(bytes(chk))
    assert rebuilt.chksum == out[IP].chksum and rebuilt[UDP].chksum == out[UDP].chksum
    # server -> client reply
    rep = Ether(src=RMAC, dst=ports[1].mac.hex(":")) / IP(src=RIP, dst=CLIENT, ttl=64) / \
        UDP(sport=5000, dport=40000) / b"world"
    ports[1].wire.send(bytes(rep))
    steps(dp, 2)
    back = Ether(ports[0].wire.recv(2048))
    assert back.dst == CMAC and back[IP].src == str(VIP) and back[UDP].sport == 5000
    assert bytes(back[UDP].payload) == b"world"
    c0, c1 = dp.counters()["s0"], dp.counters()["s1"]
    assert c0.rx_pkts == 1 and c1.tx_pkts >= 2  # ARP request(s) + the DNATed frame
    assert c1.rx_pkts == 2 and c0.tx_pkts == 1


def test_guard_ruleset() -> None:
    text = ruleset("pyvs_1", ["l0", "l1"], [VIP], [IPv4Address(RIP)],
                   [IPv4Address("10.1.0.2"), IPv4Address("10.2.0.1")])
    assert text.startswith("table netdev pyvs_1 {}\ndelete table netdev pyvs_1\n")
    assert text.count("type filter hook ingress device") == 2
    assert text.count("ip daddr { 10.1.0.100 } counter drop") == 2
    assert text.count("ip saddr { 10.2.0.2 } ip daddr != { 10.1.0.2, 10.2.0.1 } counter drop") == 2
    empty = ruleset("t", ["l0"], [], [], [])
    assert "drop" not in empty
