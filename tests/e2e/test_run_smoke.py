"""Test that `lb run` balances real traffic between network namespaces it does not own the kernel of.

Topology (all namespaces created here, nothing in the root namespace, 10.0.0.0/8 only):

    client 10.1.0.1 --c0~~l0-- balancer (lb run: l0 10.1.0.2, l1 10.2.0.1) --l1~~r0-- server 10.2.0.2
                                VIP 10.1.0.100 (not a kernel address anywhere)

- the client's ARP for the VIP is answered by the balancer with its l0 MAC;
- ICMP echo to the VIP is answered by the balancer;
- UDP to VIP:5000 reaches the server (NAT, -m) and the replies come back from VIP:5000;
- a TCP exchange to VIP:80 works through NAT with port translation to the server's 8080;
- by default the balancer runs under SCHED_FIFO priority 1 (`--rt-priority`, lb/io/rps.py `realtime`);
- SIGINT stops the balancer cleanly: counters are printed and its nftables guard table is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lb.core._ffi import lib

pytestmark = [pytest.mark.netns, pytest.mark.root]

VIP = "10.1.0.100"
PY = sys.executable
REPO = Path(__file__).resolve().parents[2]


def sh(*argv: str, check: bool = True, timeout: float = 20, input_text: str | None = None) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                          input=input_text)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {proc.returncode}: {proc.stderr}")
    return proc.stdout


def has_packet_path() -> bool:
    return hasattr(lib, "lb_process_batch")


@dataclass
class Lab:
    c: str
    lb: str
    r: str
    tmp: Path
    proc: subprocess.Popen[str] | None = None
    helpers: list[subprocess.Popen[str]] = field(default_factory=list)
    stderr: str = ""

    def ns_py(self, ns: str, code: str, timeout: float = 15) -> str:
        return sh("ip", "netns", "exec", ns, PY, "-c", textwrap.dedent(code), timeout=timeout)

    def ns_bg(self, ns: str, code: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(["ip", "netns", "exec", ns, PY, "-c", textwrap.dedent(code)], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.helpers.append(p)
        return p

    def stop_lb(self) -> str:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            try:
                _, err = self.proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate()
            self.stderr += err
            self.proc = None
        return self.stderr


RULES = f"""\
-A -u {VIP}:5000 -s rr
-a -u {VIP}:5000 -r 10.2.0.2:5000 -m -w 1
-A -t {VIP}:80 -s wlc
-a -t {VIP}:80 -r 10.2.0.2:8080 -m -w 1
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tag = f"pyvsio{os.getpid() % 100000}"
    lab = Lab(f"{tag}c", f"{tag}l", f"{tag}r", tmp_path_factory.mktemp("run"))
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
            # checksums and segmentation in software: AF_PACKET sees finished frames (lb/io/afpacket.py)
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off",
               "gro", "off", check=False)
        sh("ip", "-n", lab.r, "route", "add", "default", "via", "10.2.0.1")
        rules = lab.tmp / "rules.save"
        rules.write_text(RULES)
        sock = lab.tmp / "lb.sock"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        lab.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.lb, PY, "-m", "lb", "run", "--iface", "l0", "--iface", "l1",
             "--rules", str(rules), "--socket", str(sock), "--duration", "60", "-v"],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 10
        while not sock.exists():
            if lab.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"lb run did not start: {lab.stop_lb()}")
            time.sleep(0.05)
        time.sleep(0.3)
        yield lab
    finally:
        lab.stop_lb()
        for h in lab.helpers:
            if h.poll() is None:
                h.kill()
            h.communicate()
        for ns in (lab.c, lab.lb, lab.r):
            sh("ip", "netns", "del", ns, check=False)


PING = """
import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!" + "H" * (len(b) // 2), b)); s = (s & 0xffff) + (s >> 16); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(1.0)
ok = 0
for seq in range(3):
    h = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + b"pyvs-ping!"
    h = h[:2] + struct.pack("!H", csum(h)) + h[4:]
    s.sendto(h, ("VIP", 0))
    try:
        while True:
            d, a = s.recvfrom(2048)
            if d[20] == 0 and struct.unpack("!H", d[26:28])[0] == seq and a[0] == "VIP":
                ok += 1; break
    except socket.timeout:
        pass
print(ok)
""".replace("VIP", VIP)


def test_icmp_echo_to_vip_is_answered(lab: Lab) -> None:
    assert lab.ns_py(lab.c, PING).strip() == "3"


def test_arp_for_vip_answered_with_balancer_mac(lab: Lab) -> None:
    lab.ns_py(lab.c, PING)
    neigh = sh("ip", "-n", lab.c, "neigh", "show", VIP)
    l0_mac = sh("ip", "-n", lab.lb, "-o", "link", "show", "l0").split("link/ether")[1].split()[0]
    assert l0_mac in neigh, neigh
    # the VIP is no kernel address in the balancer namespace
    assert VIP not in sh("ip", "-n", lab.lb, "addr")


def test_udp_through_nat(lab: Lab) -> None:
    if not has_packet_path():
        pytest.skip("lb_process_batch (packet path) not built yet: only the slow path runs")
    server = lab.ns_bg(lab.r, """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5000)); s.settimeout(8)
        try:
            while True:
                d, a = s.recvfrom(2048); s.sendto(b"echo:" + d + b":" + a[0].encode(), a)
        except socket.timeout:
            pass
    """)
    time.sleep(0.3)
    out = lab.ns_py(lab.c, f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
        got = []
        for i in range(20):
            s.sendto(b"u%d" % i, ("{VIP}", 5000))
            try:
                d, a = s.recvfrom(2048); got.append((d, a))
            except socket.timeout:
                pass
        print(len(got), all(a == ("{VIP}", 5000) for _, a in got), got[0][0].decode() if got else "")
    """)
    server.kill()
    n, from_vip, first = out.split()
    assert int(n) >= 19, out
    assert from_vip == "True"
    # the server saw the client's own address (NAT rewrites only the destination)
    assert first.startswith("echo:u") and first.endswith(":10.1.0.1"), first


def test_tcp_through_nat_with_port_translation(lab: Lab) -> None:
    if not has_packet_path():
        pytest.skip("lb_process_batch (packet path) not built yet: only the slow path runs")
    server = lab.ns_bg(lab.r, """
        import socket
        ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", 8080)); ls.listen(8); ls.settimeout(8)
        try:
            for _ in range(3):
                c, a = ls.accept(); c.settimeout(3)
                data = c.recv(100); c.sendall(b"hello " + a[0].encode() + b" " + data); c.close()
        except socket.timeout:
            pass
    """)
    time.sleep(0.3)
    out = lab.ns_py(lab.c, f"""
        import socket
        res = []
        for i in range(3):
            s = socket.create_connection(("{VIP}", 80), timeout=3)
            s.sendall(b"req%d" % i); res.append(s.recv(100).decode()); s.close()
        print("|".join(res))
    """)
    server.kill()
    assert out.strip() == "hello 10.1.0.1 req0|hello 10.1.0.1 req1|hello 10.1.0.1 req2", out


def test_balancer_runs_sched_fifo_by_default(lab: Lab) -> None:
    assert lab.proc is not None and lab.proc.poll() is None
    assert os.sched_getscheduler(lab.proc.pid) == os.SCHED_FIFO
    assert os.sched_getparam(lab.proc.pid).sched_priority == 1


def test_sigint_prints_counters_and_removes_guard(lab: Lab) -> None:
    tables = sh("ip", "netns", "exec", lab.lb, "nft", "list", "tables")
    assert "pyvs_" in tables
    err = lab.stop_lb()
    assert "signal SIGINT: stopping" in err, err
    assert "rt-priority: SCHED_FIFO 1" in err, err
    assert "l0: rx " in err and "l1: rx " in err, err
    assert "echo replies" in err
    assert "pyvs_" not in sh("ip", "netns", "exec", lab.lb, "nft", "list", "tables")


def test_workers_share_nat_traffic_by_client(lab: Lab) -> None:
    """With --workers 2 both workers carry clients, and every NAT reply reaches the worker holding its
    connection (fanout by client address), so every request is answered."""
    if not has_packet_path():
        pytest.skip("lb_process_batch (packet path) not built yet: only the slow path runs")
    lab.stop_lb()
    lab.stderr = ""
    for i in range(8):
        sh("ip", "-n", lab.c, "addr", "add", f"10.1.0.{11 + i}/24", "dev", "c0", check=False)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    sock = lab.tmp / "w.sock"
    lab.proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.lb, PY, "-m", "lb", "run", "--iface", "l0", "--iface", "l1",
         "--rules", str(lab.tmp / "rules.save"), "--socket", str(sock), "--workers", "2", "--duration", "30"],
        text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    server = lab.ns_bg(lab.r, """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5000)); s.settimeout(10)
        try:
            while True:
                d, a = s.recvfrom(2048); s.sendto(d, a)
        except socket.timeout:
            pass
    """)
    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # a service added through worker 0's control socket reaches worker 1 too (lb/io/workers.py)
    for cmd in (["-A", "-u", f"{VIP}:6000", "-s", "rr"],
                ["-a", "-u", f"{VIP}:6000", "-r", "10.2.0.2:5000", "-m", "-w", "1"]):
        sh("ip", "netns", "exec", lab.lb, PY, "-m", "lb.cli.ipvsadm", "--socket", str(sock), *cmd)
    time.sleep(2.0)
    out = lab.ns_py(lab.c, f"""
        import socket
        ok = 0
        for i in range(8):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
            s.bind(("10.1.0.%d" % (11 + i), 0))
            for j in range(3):
                port = 5000 if j < 2 else 6000
                s.sendto(b"w%d" % j, ("{VIP}", port))
                try:
                    d, a = s.recvfrom(100); ok += d == b"w%d" % j and a == ("{VIP}", port)
                except socket.timeout:
                    pass
        print(ok)
    """, timeout=40)
    server.kill()
    err = lab.stop_lb()
    assert int(out.strip()) >= 23, (out, err)  # 24 requests; one may race the first ARP
    assert "[w1] workers: configuration followed from worker 0" in err, err
    rx = {}
    for line in err.splitlines():
        if "] l0: rx " in line:
            w = line.split("[")[1].split("]")[0]
            rx[w] = int(line.split("l0: rx ")[1].split()[0])
    assert set(rx) == {"w0", "w1"}, err
    assert all(n > 0 for n in rx.values()), rx


def test_python_engine_forwards_udp(lab: Lab) -> None:
    """`--engine python` (ring read in Python, the twin data path) answers ARP/echo and NATs UDP too."""
    lab.stop_lb()
    lab.stderr = ""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    lab.proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.lb, PY, "-m", "lb", "run", "--iface", "l0", "--iface", "l1",
         "--rules", str(lab.tmp / "rules.save"), "--socket", "none", "--engine", "python",
         "--duration", "30"],
        text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    server = lab.ns_bg(lab.r, """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5000)); s.settimeout(8)
        try:
            while True:
                d, a = s.recvfrom(2048); s.sendto(b"py:" + d, a)
        except socket.timeout:
            pass
    """)
    time.sleep(1.5)
    assert lab.ns_py(lab.c, PING).strip() == "3"
    out = lab.ns_py(lab.c, f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
        ok = 0
        for i in range(10):
            s.sendto(b"%d" % i, ("{VIP}", 5000))
            try:
                d, a = s.recvfrom(100); ok += d == b"py:%d" % i and a == ("{VIP}", 5000)
            except socket.timeout:
                pass
        print(ok)
    """)
    server.kill()
    err = lab.stop_lb()
    assert int(out.strip()) >= 9, (out, err)
    assert "python engine" in err
