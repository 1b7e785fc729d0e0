"""Test that `lb run` forwards correctly when its peers keep checksum offload on (the veth default).

Topology (namespaces created here only, 10.0.0.0/8, nothing in the root namespace), offloads untouched:

    client 10.1.0.1 --c0~~l0-- balancer (lb run: l0 10.1.0.2, l1 10.2.0.1) --l1~~r0-- server 10.2.0.2

With tx checksum offload on, the client's and the server's frames reach the balancer's AF_PACKET ring
with only the pseudo-header sum in the TCP/UDP checksum (TP_STATUS_CSUMNOTREADY).  The pump completes it
before the NAT rewrite, so:
- UDP datagrams to VIP:5000 reach the server and its answers come back from VIP:5000 (a wrong checksum would
  be dropped by the receiving kernel: the frames the balancer sends carry no offload promise);
- a TCP exchange to VIP:80 (port-translated to 8080) completes;
- the balancer's counters show the partial-checksum frames it completed.
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

pytestmark = [pytest.mark.netns, pytest.mark.root]

VIP = "10.1.0.100"
PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
RULES = f"""\
-A -u {VIP}:5000 -s rr
-a -u {VIP}:5000 -r 10.2.0.2:5000 -m -w 1
-A -t {VIP}:80 -s rr
-a -t {VIP}:80 -r 10.2.0.2:8080 -m -w 1
"""


def sh(*argv: str, check: bool = True, timeout: float = 20) -> str:
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {p.returncode}: {p.stderr}")
    return p.stdout


def ns_py(ns: str, code: str, timeout: float = 20) -> str:
    return sh("ip", "netns", "exec", ns, PY, "-c", textwrap.dedent(code), timeout=timeout)


SERVER = """
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5000)); u.settimeout(15)
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 8080))
t.listen(4); t.settimeout(15)
def udp():
    try:
        while True:
            d, a = u.recvfrom(4096); u.sendto(b"echo:" + d, a)
    except socket.timeout:
        pass
threading.Thread(target=udp, daemon=True).start()
try:
    c, _ = t.accept(); c.settimeout(10)
    data = b""
    while not data.endswith(b"END"):
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.sendall(b"got %d" % len(data)); c.close()
except socket.timeout:
    pass
"""


class Lab:
    def __init__(self, tag: str) -> None:
        self.c, self.lb, self.r = f"{tag}c", f"{tag}l", f"{tag}r"
        self.procs: list[subprocess.Popen[str]] = []

    def stop_lb(self) -> str:
        """SIGINT to the balancer (the first process started), its stderr (counters at the end)."""
        p = self.procs[0]
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        return err or ""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(f"pyvsof{os.getpid() % 10000}")
    try:
        for ns in (lab.c, lab.lb, lab.r):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", lab.c, "link", "add", "c0", "type", "veth", "peer", "name", "l0", "netns", lab.lb)
        sh("ip", "-n", lab.lb, "link", "add", "l1", "type", "veth", "peer", "name", "r0", "netns", lab.r)
        for ns, dev, addr in ((lab.c, "c0", "10.1.0.1/24"), (lab.lb, "l0", "10.1.0.2/24"),
                              (lab.lb, "l1", "10.2.0.1/24"), (lab.r, "r0", "10.2.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", lab.c, "route", "add", "default", "via", "10.1.0.2")
        sh("ip", "-n", lab.r, "route", "add", "default", "via", "10.2.0.1")
        for ns, dev in ((lab.c, "c0"), (lab.r, "r0")):
            feat = sh("ip", "netns", "exec", ns, "ethtool", "-k", dev)
            assert "tx-checksumming: on" in feat, feat
        rules = tmp_path / "rules"
        rules.write_text(RULES)
        lab.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", lab.lb, PY, "-m", "lb", "run", "--iface", "l0", "--iface", "l1",
             "--rules", str(rules), "--socket", "none", "--duration", "40"],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(REPO))))
        lab.procs.append(subprocess.Popen(["ip", "netns", "exec", lab.r, PY, "-c", textwrap.dedent(SERVER)],
                                          text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(1.5)
        yield lab
    finally:
        for p in lab.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
        for ns in (lab.c, lab.lb, lab.r):
            sh("ip", "netns", "del", ns, check=False)


def test_nat_with_checksum_offload_on(lab: Lab) -> None:
    out = ns_py(lab.c, f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
        got = 0
        for i in range(10):
            s.sendto(b"u%d" % i + b"x" * 200, ("{VIP}", 5000))
            try:
                d, a = s.recvfrom(4096); got += d.startswith(b"echo:u") and a == ("{VIP}", 5000)
            except socket.timeout:
                pass
        t = socket.create_connection(("{VIP}", 80), timeout=5)
        t.sendall(b"y" * 3000 + b"END")
        print(got, t.recv(100).decode())
    """)
    err = lab.stop_lb()
    assert out.split() == ["10", "got", "3003"], out + err
    partial = {line.split(":")[1].strip(): int(line.split("csum_partial ")[1].split(",")[0])
               for line in err.splitlines() if "csum_partial" in line}
    assert partial["l0"] >= 10 and partial["l1"] >= 10, err
