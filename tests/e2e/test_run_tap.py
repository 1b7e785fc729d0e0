"""Test that `lb run --io tap` makes the balancer a host of its own on an L2 segment (one-armed NAT):

    client 10.6.0.1 --c0~~b1--+       (the client is off the servers' subnet, so replies take their
                              |        default route, the balancer: one-armed NAT)
                              br0 (bridge, lb namespace) -- tap0 = the balancer: MAC 02:..., 10.5.0.2,
    server 10.5.0.3 --r0~~b2--+                                     VIP 10.5.0.100 (no kernel owns either)

- the balancer answers ARP for its port address and for the VIP, from its own MAC (not the TAP's);
- ICMP echo to its port address is answered (no kernel holds that address);
- UDP to VIP:5000 is DNATed to the server, whose default route is the balancer; replies come back from
  the VIP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lb.core._ffi import lib

pytestmark = [pytest.mark.netns, pytest.mark.root]

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
VIP = "10.5.0.100"
LB_IP = "10.5.0.2"
LB_MAC = "02:00:5e:00:00:42"


def sh(*argv: str, check: bool = True, timeout: float = 20) -> str:
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {p.returncode}: {p.stderr}")
    return p.stdout


def ns_py(ns: str, code: str, timeout: float = 20) -> str:
    return sh("ip", "netns", "exec", ns, PY, "-c", textwrap.dedent(code), timeout=timeout)


@pytest.fixture(scope="module")
def tap_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tag = f"pyvstap{os.getpid() % 100000}"
    c, lb, r = f"{tag}c", f"{tag}l", f"{tag}r"
    tmp = tmp_path_factory.mktemp("tap")
    proc: subprocess.Popen[str] | None = None
    state: dict[str, object] = {"c": c, "lb": lb, "r": r}
    try:
        for ns in (c, lb, r):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", lb, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", lb, "link", "set", "br0", "up")
        for peer_ns, dev, bport, addr in ((c, "c0", "b1", "10.6.0.1/24"), (r, "r0", "b2", "10.5.0.3/24")):
            sh("ip", "-n", lb, "link", "add", bport, "type", "veth", "peer", "name", dev, "netns", peer_ns)
            sh("ip", "-n", lb, "link", "set", bport, "master", "br0")
            sh("ip", "-n", lb, "link", "set", bport, "up")
            sh("ip", "-n", peer_ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", peer_ns, "link", "set", dev, "up")
            sh("ip", "netns", "exec", peer_ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off",
               check=False)
        sh("ip", "-n", r, "route", "add", "default", "via", LB_IP)
        sh("ip", "-n", c, "route", "add", "10.5.0.0/24", "dev", "c0")
        rules = tmp / "rules"
        rules.write_text(f"-A -u {VIP}:5000 -s rr\n-a -u {VIP}:5000 -r 10.5.0.3:5000 -m\n")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            ["ip", "netns", "exec", lb, PY, "-m", "lb", "run", "--io", "tap", "--iface", "tap0",
             "--port-addr", f"tap0={LB_IP}/24", "--mac", f"tap0={LB_MAC}", "--rules", str(rules),
             "--socket", "none", "--duration", "60", "-v"],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 10
        while "tap0" not in sh("ip", "-n", lb, "link", "show"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.05)
        sh("ip", "-n", lb, "link", "set", "tap0", "master", "br0")
        time.sleep(0.5)
        state["proc"] = proc
        yield state
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        for ns in (c, lb, r):
            sh("ip", "netns", "del", ns, check=False)


ECHO = """
import os, socket, struct
def csum(b):
    s = sum(struct.unpack("!" + "H" * (len(b) // 2), b)); s = (s & 0xffff) + (s >> 16); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(1.0)
ok = 0
for seq in range(3):
    h = struct.pack("!BBHHH", 8, 0, 0, 0x77, seq) + b"tap-ping!!"
    h = h[:2] + struct.pack("!H", csum(h)) + h[4:]
    s.sendto(h, ("DST", 0))
    try:
        while True:
            d, a = s.recvfrom(2048)
            if d[20] == 0 and a[0] == "DST":
                ok += 1; break
    except socket.timeout:
        pass
print(ok)
"""


def test_tap_port_owns_its_address_and_mac(tap_lab: dict[str, object]) -> None:
    c = str(tap_lab["c"])
    assert ns_py(c, ECHO.replace("DST", LB_IP)).strip() == "3"
    assert ns_py(c, ECHO.replace("DST", VIP)).strip() == "3"
    neigh = sh("ip", "-n", c, "neigh")
    assert f"{LB_IP} dev c0 lladdr {LB_MAC}" in neigh and f"{VIP} dev c0 lladdr {LB_MAC}" in neigh, neigh


def test_tap_one_armed_nat_udp(tap_lab: dict[str, object]) -> None:
    if not hasattr(lib, "lb_process_batch"):
        pytest.skip("packet path not built")
    c, r = str(tap_lab["c"]), str(tap_lab["r"])
    server = subprocess.Popen(["ip", "netns", "exec", r, PY, "-c", textwrap.dedent("""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5000)); s.settimeout(8)
        try:
            while True:
                d, a = s.recvfrom(2048); s.sendto(b"tap:" + d + a[0].encode(), a)
        except socket.timeout:
            pass
    """)], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        out = ns_py(c, f"""
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
            ok = 0
            for i in range(10):
                s.sendto(b"%d:" % i, ("{VIP}", 5000))
                try:
                    d, a = s.recvfrom(100); ok += d == b"tap:%d:10.6.0.1" % i and a == ("{VIP}", 5000)
                except socket.timeout:
                    pass
            print(ok)
        """)
    finally:
        server.kill()
        server.communicate()
    assert int(out.strip()) >= 9, out
