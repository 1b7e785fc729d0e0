"""Test that `lb run` forwards a lone frame at once instead of holding it until a ring timer fires.

With a TPACKET_V3 RX ring the kernel hands frames to user space a block at a time: when the block is full
or when its retire timer (1 ms at least) fires, so at one request in flight every hop through `lb run`
waited ~1 ms (bench/RESULTS.md: p50 1000 µs vs ~45 µs for the kernel).  The default TPACKET_V2 ring hands
over each frame as soon as it is written (lb/io/afpacket.py).

Topology (all namespaces created here, nothing in the root namespace, 10.0.0.0/8 only):

    client 10.1.0.1 --c0~~l0-- balancer (l0 10.1.0.2, l1 10.2.0.1) --l1~~r0-- server 10.2.0.2 (UDP echo)
                                VIP 10.1.0.100:5000 -> 10.2.0.2:5000 (NAT, -m)

- a bounded UDP ping-pong (one datagram in flight, ROUNDS round trips) through `lb run` NAT with the
  default ring: every reply arrives, and the median round trip is well below the 1 ms block retire (each
  round trip crosses the balancer twice, so a held frame would show as >= 1-2 ms);
- for context only (printed, not asserted on speed): the same ping-pong through `lb run --rx-ring v3` and
  through the kernel's own forwarding in the same namespaces.

Run as a script (root) to print the figures with more round trips:
`python tests/e2e/test_run_latency.py 5000`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.root]

VIP = "10.1.0.100"
SERVER = "10.2.0.2"
PORT = 5000
PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
ROUNDS = 2000
#: the assertion: a median round trip (two passes through the balancer) under this many µs
P50_MAX_US = 400.0

RULES = f"-A -u {VIP}:{PORT} -s rr\n-a -u {VIP}:{PORT} -r {SERVER}:{PORT} -m -w 1\n"

# UDP echo on the server: bounded by count and time
ECHO = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", %(port)d))
s.settimeout(1.0)
end = time.monotonic() + %(seconds)f
left = %(count)d
print("ready", flush=True)
while left > 0 and time.monotonic() < end:
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        continue
    s.sendto(data, peer)
    left -= 1
"""

# ping-pong on the client: warm up until a reply comes (ARP on both sides), then `rounds` timed round trips
PING = """
import json, socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((%(dst)r, %(port)d))
s.settimeout(0.2)
end = time.monotonic() + 10
ok = 0
while ok < 20 and time.monotonic() < end:
    s.send(b"warm")
    try:
        s.recv(64)
        ok += 1
    except socket.timeout:
        pass
if ok < 20:
    print(json.dumps({"error": "no reply during warm-up"}))
    raise SystemExit(0)
while True:  # late warm-up replies
    s.settimeout(0.05)
    try:
        s.recv(64)
    except socket.timeout:
        break
s.settimeout(0.5)
rtts, lost = [], 0
clock = time.perf_counter_ns
for i in range(%(rounds)d):
    msg = struct.pack("=I", i) + b"x" * 28
    t0 = clock()
    s.send(msg)
    while True:
        try:
            got = s.recv(64)
        except socket.timeout:
            lost += 1
            break
        if got[:4] == msg[:4]:
            rtts.append((clock() - t0) / 1000.0)
            break
rtts.sort()
def pct(q):
    return rtts[min(len(rtts) - 1, int(q * len(rtts)))] if rtts else None
print(json.dumps({"n": len(rtts), "lost": lost, "p50_us": pct(0.5), "p99_us": pct(0.99),
                  "min_us": rtts[0] if rtts else None}))
"""


def sh(*argv: str, check: bool = True, timeout: float = 20) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {proc.returncode}: {proc.stderr}")
    return proc.stdout


@dataclass
class Topo:
    c: str
    lb: str
    r: str
    tmp: Path

    def up(self) -> None:
        for ns in (self.c, self.lb, self.r):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.c, "link", "add", "c0", "type", "veth", "peer", "name", "l0", "netns", self.lb)
        sh("ip", "-n", self.lb, "link", "add", "l1", "type", "veth", "peer", "name", "r0", "netns", self.r)
        for ns, dev, addr in ((self.c, "c0", "10.1.0.1/24"), (self.lb, "l0", "10.1.0.2/24"),
                              (self.lb, "l1", "10.2.0.1/24"), (self.r, "r0", f"{SERVER}/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off",
               "gro", "off", check=False)
        sh("ip", "-n", self.c, "route", "add", "default", "via", "10.1.0.2")
        sh("ip", "-n", self.r, "route", "add", "default", "via", "10.2.0.1")
        (self.tmp / "rules.save").write_text(RULES)

    def down(self) -> None:
        for ns in (self.c, self.lb, self.r):
            sh("ip", "netns", "del", ns, check=False)

    def pingpong(self, dst: str, rounds: int) -> dict[str, float]:
        """One bounded echo server + one bounded client; the client's figures (µs)."""
        echo = subprocess.Popen(
            ["ip", "netns", "exec", self.r, PY, "-c",
             textwrap.dedent(ECHO % {"port": PORT, "seconds": 60.0, "count": rounds + 200})],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert echo.stdout is not None
            assert echo.stdout.readline().strip() == "ready"
            out = sh("ip", "netns", "exec", self.c, PY, "-c",
                     textwrap.dedent(PING % {"dst": dst, "port": PORT, "rounds": rounds}),
                     timeout=10 + rounds * 0.6)
        finally:
            if echo.poll() is None:
                echo.send_signal(signal.SIGTERM)
            echo.communicate(timeout=10)
        res: dict[str, float] = json.loads(out)
        assert "error" not in res, res
        return res

    def through_lb(self, rounds: int, *extra: str) -> tuple[dict[str, float], str]:
        err = self.tmp / "lb.err"
        with err.open("w") as errf:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.lb, PY, "-m", "lb", "run", "--iface", "l0", "--iface", "l1",
                 "--rules", str(self.tmp / "rules.save"), "--socket", "none", "--duration", "120", *extra],
                text=True, stdout=subprocess.DEVNULL, stderr=errf, env=dict(os.environ, PYTHONPATH=str(REPO)))
            try:
                deadline = time.monotonic() + 15
                while "running" not in err.read_text():
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"lb run did not start: {err.read_text()}")
                    time.sleep(0.1)
                res = self.pingpong(VIP, rounds)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return res, err.read_text()

    def through_kernel(self, rounds: int) -> dict[str, float]:
        sh("ip", "netns", "exec", self.lb, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        try:
            return self.pingpong(SERVER, rounds)
        finally:
            sh("ip", "netns", "exec", self.lb, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")


@pytest.fixture
def topo(tmp_path: Path) -> Iterator[Topo]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    tag = f"pyvslat{os.getpid() % 100000}"
    t = Topo(f"{tag}c", f"{tag}l", f"{tag}r", tmp_path)
    try:
        t.up()
        yield t
    finally:
        t.down()


def fmt(res: dict[str, float]) -> str:
    return (f"p50 {res['p50_us']:.0f} µs, p99 {res['p99_us']:.0f} µs, min {res['min_us']:.0f} µs, "
            f"lost {res['lost']}")


def test_udp_round_trip_not_held_by_ring_timer(topo: Topo) -> None:
    v2, log = topo.through_lb(ROUNDS)
    assert v2["lost"] == 0 and v2["n"] == ROUNDS, (v2, log)
    assert "ring drops 0" in log, log
    # context, not asserted on: the V3 ring (fewer rounds: each takes ~2 ms) and the kernel's forwarding
    v3, _ = topo.through_lb(ROUNDS // 4, "--rx-ring", "v3")
    kern = topo.through_kernel(ROUNDS)
    print(f"\nUDP round trip, one in flight: lb run (v2 ring) {fmt(v2)}; lb run --rx-ring v3 {fmt(v3)}; "
          f"kernel forwarding {fmt(kern)}")
    assert v2["p50_us"] < P50_MAX_US, (v2, v3, kern)


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        t = Topo(f"pyvslat{os.getpid() % 100000}c", f"pyvslat{os.getpid() % 100000}l",
                 f"pyvslat{os.getpid() % 100000}r", Path(d))
        try:
            t.up()
            print("lb v2 ", fmt(t.through_lb(rounds)[0]), flush=True)
            print("lb v3 ", fmt(t.through_lb(rounds, "--rx-ring", "v3")[0]), flush=True)
            print("kernel", fmt(t.through_kernel(rounds)), flush=True)
        finally:
            t.down()
