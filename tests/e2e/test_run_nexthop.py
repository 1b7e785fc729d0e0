"""Test that `lb run` resolves the next hop of off-link (TUN) dests however the gateway's MAC becomes known.

Topology (namespaces created here only, 10.0.0.0/8, nothing in the root namespace):

    gw ns: eth1 10.4.0.1/24 ----veth---- lb ns: eth0 10.4.0.2/24, default via 10.4.0.1
           (route to the VIP via 10.4.0.2)          lb run -i to 10.5.0.11 / 10.5.0.12 (off-link)

- the gateway is in the balancer namespace's neighbour table (permanent, as the TUN lab sets it): the
  balancer logs `is-at` for every dest at once, and a UDP datagram from the gateway side to the VIP comes
  back to the gateway as IPIP (outer 10.4.0.2 -> a RIP) with the gateway's MAC as destination;
- the gateway is not in the table and its link is down for the first seconds (the first ARP requests are
  lost): the balancer keeps asking, logs that it is still asking, and resolves every dest once the gateway
  answers, with no restart.  (The regression: a TUN lab whose balancer log stopped after the guard line.)
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.root]

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
VIP = "10.10.0.100"
RULES = f"""\
-A -u {VIP}:9000 -s rr
-a -u {VIP}:9000 -r 10.5.0.11:9000 -i -w 1
-a -u {VIP}:9000 -r 10.5.0.12:9000 -i -w 1
"""


def sh(*argv: str, check: bool = True, timeout: float = 20) -> str:
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {p.returncode}: {p.stderr}")
    return p.stdout


class Pair:
    def __init__(self, tag: str, tmp: Path) -> None:
        self.lb, self.gw, self.tmp = f"{tag}l", f"{tag}g", tmp
        self.proc: subprocess.Popen[str] | None = None

    def start(self, duration: float) -> None:
        rules = self.tmp / "rules"
        rules.write_text(RULES)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lb, PY, "-m", "lb", "run", "--iface", "eth0", "--rules", str(rules),
             "--socket", "none", "--duration", str(duration)],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(REPO)))

    def wait_log(self, needle: str, count: int, timeout: float) -> str:
        """Read the balancer's stderr until `needle` appeared `count` times (bounded)."""
        assert self.proc is not None and self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        text, deadline = "", time.monotonic() + timeout
        while text.count(needle) < count and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                text += chunk.decode(errors="replace")
        return text

    def stop(self) -> str:
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.proc = None
        return err or ""


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(f"pyvsnh{os.getpid() % 10000}", tmp_path)
    try:
        for ns in (p.lb, p.gw):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", p.lb, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", "netns", p.gw)
        sh("ip", "-n", p.lb, "addr", "add", "10.4.0.2/24", "dev", "eth0")
        sh("ip", "-n", p.gw, "addr", "add", "10.4.0.1/24", "dev", "eth1")
        sh("ip", "-n", p.lb, "link", "set", "eth0", "up")
        sh("ip", "-n", p.lb, "route", "add", "default", "via", "10.4.0.1")
        yield p
    finally:
        p.stop()
        for ns in (p.lb, p.gw):
            sh("ip", "netns", "del", ns, check=False)


def gw_mac(p: Pair) -> str:
    return sh("ip", "-n", p.gw, "-o", "link", "show", "eth1").split("link/ether")[1].split()[0]


SNIFF = """
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth1", 0)); s.settimeout(0.2)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + 6
while time.monotonic() < end:
    u.sendto(b"hello", ("VIP", 9000))
    try:
        while True:
            f, a = s.recvfrom(2048)
            if a[2] != socket.PACKET_OUTGOING and f[23] == 4:
                print(f[0:6].hex(":"), socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34]),
                      socket.inet_ntoa(f[46:50]), socket.inet_ntoa(f[50:54]))
                sys.exit(0)
    except socket.timeout:
        pass
print("none")
"""


def test_static_gateway_neighbour_resolves_at_once_and_packets_flow(pair: Pair) -> None:
    mac = gw_mac(pair)
    sh("ip", "-n", pair.gw, "link", "set", "eth1", "up")
    sh("ip", "-n", pair.gw, "route", "add", f"{VIP}/32", "via", "10.4.0.2")
    sh("ip", "-n", pair.lb, "neigh", "replace", "10.4.0.1", "lladdr", mac, "dev", "eth0", "nud", "permanent")
    pair.start(duration=20)
    log = pair.wait_log("is-at", 2, timeout=10)
    assert log.count(f"via 10.4.0.1 is-at {mac}") == 2, log
    out = sh("ip", "netns", "exec", pair.gw, PY, "-c", textwrap.dedent(SNIFF).replace("VIP", VIP),
             timeout=15).split()
    assert out != ["none"], pair.stop()
    dst_mac, outer_src, outer_dst, inner_src, inner_dst = out
    assert dst_mac == mac and outer_src == "10.4.0.2" and outer_dst in ("10.5.0.11", "10.5.0.12"), out
    assert inner_src == "10.4.0.1" and inner_dst == VIP, out


def test_gateway_silent_at_start_is_resolved_when_it_answers(pair: Pair) -> None:
    # the gateway's link stays down: the balancer's first ARP requests are lost
    pair.start(duration=20)
    early = pair.wait_log("no MAC yet", 2, timeout=10)
    assert "ARP request sent (try 1)" in early, early
    assert "is-at" not in early, early
    sh("ip", "-n", pair.gw, "link", "set", "eth1", "up")
    mac = gw_mac(pair)
    late = pair.wait_log("is-at", 2, timeout=8)
    assert late.count(f"via 10.4.0.1 is-at {mac}") == 2, early + late
    err = pair.stop()
    assert "arp learned" in err, err
