"""Test that `lb tun-decap` on a TUN-mode real server counts exactly what it was sent, with both loops.

For --impl c (the default) and --impl python, in a TUN lab (one real server, `lb run -i`):
- the decapsulator says which loop it runs, and HTTP through the VIP works (IPIP decapsulated);
- SIGUSR1 prints the counters so far without stopping it;
- IPIP packets crafted inside the real server's namespace (raw socket, to its own RIP): 30 to the VIP,
  4 to another inner destination, 3 with an inner IPv6 version, 2 with an inner total length beyond the
  packet, 5 too short for two headers -> after SIGTERM the exit line's counters moved by exactly that:
  rx +44, passed +30, not_vip +4, inner_version +3, inner_len +2, short +5, nothing else.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lb.lab.lab import Lab, LabSpec, down
from lb.lab.state import lab_dir
from lb.lab.tundecap import ENV_IMPL, DecapStats, parse_summary

pytestmark = [pytest.mark.netns, pytest.mark.root]

SENDER = r"""
import socket, struct, sys
rip, vip, other = (socket.inet_aton(a) for a in sys.argv[1:4])
def pkt(dst, version=4, total=None, payload=b"p" * 16):
    n = 28 + len(payload)
    ln = n if total is None else total
    inner = struct.pack("!BBHHHBBH4s4s", (version << 4) | 5, 0, ln, 1, 0, 64, 17, 0,
                        socket.inet_aton("10.9.9.9"), dst) + struct.pack("!HHHH", 9, 9, 8 + len(payload), 0)
    return inner + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)   # the kernel writes the outer header, proto 4
h = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)   # header included: short packets
sent = 0
for _ in range(30): sent += bool(s.sendto(pkt(vip), (sys.argv[1], 0)))
for _ in range(4): sent += bool(s.sendto(pkt(other), (sys.argv[1], 0)))
for _ in range(3): sent += bool(s.sendto(pkt(vip, version=6), (sys.argv[1], 0)))
for _ in range(2): sent += bool(s.sendto(pkt(vip, total=200), (sys.argv[1], 0)))
short = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 30, 0, 0, 64, 4, 0, b"\0\0\0\0", rip) + b"s" * 10
for _ in range(5): sent += bool(h.sendto(short, (sys.argv[1], 0)))
print(sent)
"""


def _wait_line(log: Path, prefix: str, count: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith(prefix)]
        if len(lines) >= count:
            return lines[count - 1]
        time.sleep(0.05)
    raise AssertionError(f"no {prefix!r} line #{count} in {log}:\n{log.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def tun_lab(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv(ENV_IMPL, request.param)
    name = f"bt{os.getpid() % 10000:04d}{'c' if request.param == 'c' else 'p'}"
    lab = Lab.up(LabSpec(mode="tun", servers=1, balancer="lb", name=name))
    try:
        yield lab
    finally:
        lab.down()
        down(name)


@pytest.mark.parametrize("tun_lab", ["c", "python"], indirect=True)
def test_exit_counters_match_what_was_sent(tun_lab: Lab) -> None:
    lab = tun_lab
    node = lab.topo.servers[0]
    rec = next(r for r in lab.net.procs if r.role == "tundecap")
    log = lab_dir(lab.spec.name) / f"{node}-tundecap.log"
    impl = os.environ[ENV_IMPL]
    assert f"decapsulating IPIP ({impl})" in log.read_text()

    res = lab.get(3)
    assert all(r["ok"] for r in res), res

    # Snapshot once the HTTP traffic has settled (the last ACKs of closed connections may still be in flight).
    asked = 0

    def snapshot() -> DecapStats:
        nonlocal asked
        asked += 1
        os.kill(rec.pid, signal.SIGUSR1)
        return parse_summary(_wait_line(log, "tun-decap: now", asked))

    before = snapshot()
    for _ in range(20):
        time.sleep(0.3)
        again = snapshot()
        if again == before:
            break
        before = again
    assert before.passed >= 3 * 3  # at least SYN, request, ACK of each connection went through
    assert before.dropped == 0 and before.tun_errs == 0

    vip, rip = lab.topo.vip, lab.topo.rips[0]
    r = lab.exec(node, [sys.executable, "-c", SENDER, rip, vip, "10.5.0.201"], timeout=30)
    assert r.stdout.strip() == "44"
    for _ in range(50):  # let the loop take everything queued before it is stopped (bounded)
        if snapshot().rx_pkts - before.rx_pkts >= 44:
            break
        time.sleep(0.1)
    os.kill(rec.pid, signal.SIGTERM)
    after = parse_summary(_wait_line(log, "tun-decap: passed", 1))

    got = {f: getattr(after, f) - getattr(before, f) for f in DecapStats.__slots__ if "bytes" not in f}
    want = dict.fromkeys(got, 0)
    want.update(rx_pkts=44, passed=30, drop_not_vip=4, drop_inner_version=3, drop_inner_len=2, drop_short=5)
    assert got == want, log.read_text()[-2000:]
