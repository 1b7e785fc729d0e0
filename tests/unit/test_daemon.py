"""Test that lbadm and the daemon talk correctly over the control socket.

- lbadm commands go through the socket to a real Core and -L -n / -S / --stats / -c print ipvsadm's
  formats; refused changes print ipvsadm's messages with exit status 255;
- -R applies a whole file atomically over the socket;
- the socket is created with mode 0600; a stale socket file is replaced, a live one is not taken over;
- garbage, wrong versions, unknown operations get error replies; an over-long line and a client that
  disconnects mid-request are dropped; the daemon keeps serving;
- several clients at once all get their answers and all their changes land;
- -c lists the real connection table and --set reaches it.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lb.cli.ipvsadm import Lbadm
from lb.core.core import Core
from lb.daemon import protocol as p
from lb.daemon.client import Client
from lb.daemon.server import Server
from lb.state import ConfigState


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Server]:
    srv = Server(
        ConfigState(Core(conn_max=4096, svc_max=64, dest_max=512)), str(tmp_path / "lb.sock")
    ).start()
    stop = threading.Event()
    t = threading.Thread(target=srv.serve_forever, args=(stop, 0.02), daemon=True)
    t.start()
    yield srv
    stop.set()
    t.join(5)
    srv.close()


def lbadm(srv: Server, *args: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = Lbadm("ipvsadm", srv.path, stdin=io.StringIO(stdin), stdout=out, stderr=err).run(["ipvsadm", *args])
    return rc, out.getvalue(), err.getvalue()


def test_commands_and_listings(daemon: Server) -> None:
    assert lbadm(daemon, "-A", "-t", "10.0.0.1:80", "-s", "rr") == (0, "", "")
    assert lbadm(daemon, "-a", "-t", "10.0.0.1:80", "-r", "10.0.1.2:8080", "-m", "-w", "2")[0] == 0
    assert lbadm(daemon, "-a", "-t", "10.0.0.1:80", "-r", "10.0.1.1", "-g")[0] == 0
    rc, out, _ = lbadm(daemon, "-L", "-n")
    assert rc == 0
    assert out == (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  10.0.0.1:80 rr\n"
        "  -> 10.0.1.1:80                  Route   1      0          0         \n"
        "  -> 10.0.1.2:8080                Masq    2      0          0         \n"
    )
    assert lbadm(daemon, "-S", "-n")[1] == (
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1\n"
        "-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 2\n"
    )
    rc, out, _ = lbadm(daemon, "-L", "-n", "--stats", "-t", "10.0.0.1:80")
    assert (
        out.splitlines()[2]
        == "TCP  10.0.0.1:80                         0        0        0        0        0"
    )
    assert lbadm(daemon, "-L", "-n", "-c")[1].startswith("IPVS connection entries\npro expire state")
    assert lbadm(daemon, "-L", "--timeout") == (0, "Timeout (tcp tcpfin udp): 900 120 300\n", "")
    assert lbadm(daemon, "--set", "60", "0", "30")[0] == 0
    assert lbadm(daemon, "-L", "--timeout")[1] == "Timeout (tcp tcpfin udp): 60 120 30\n"
    assert lbadm(daemon, "-L", "--daemon") == (0, "", "")


def test_refused_changes_print_ipvsadm_messages(daemon: Server) -> None:
    assert lbadm(daemon, "-A", "-t", "10.0.0.1:80")[0] == 0
    assert lbadm(daemon, "-A", "-t", "10.0.0.1:80") == (255, "", "Service already exists\n")
    assert lbadm(daemon, "-a", "-t", "10.0.0.2:80", "-r", "10.0.1.1") == (255, "", "Service not defined\n")
    assert lbadm(daemon, "-d", "-t", "10.0.0.1:80", "-r", "10.0.1.1") == (255, "", "No such destination\n")
    assert lbadm(daemon, "-A", "-t", "10.0.0.3:80", "-s", "nope") == (
        255,
        "",
        "Scheduler or persistence engine not found\n",
    )
    assert lbadm(daemon, "-L", "-n", "-t", "10.0.0.9:80") == (1, "", "No such service\n")


def test_restore_is_atomic_over_the_socket(daemon: Server) -> None:
    assert lbadm(daemon, "-R", stdin="-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1\n")[0] == 0
    before = lbadm(daemon, "-S", "-n")[1]
    rc, _, err = lbadm(daemon, "-R", stdin="-A -t 10.0.0.2:80\n-a -t 10.0.0.7:80 -r 10.0.1.1\n")
    assert (rc, err) == (255, "Service not defined\n")
    assert lbadm(daemon, "-S", "-n")[1] == before
    rc, _, err = lbadm(daemon, "-R", stdin="-A -t 10.0.0.2:80\n-A -t 10.0.0.2\n")
    assert (rc, err) == (2, "Zero port specified for non-persistent service\n")
    assert lbadm(daemon, "-S", "-n")[1] == before


def test_json_listing(daemon: Server) -> None:
    lbadm(daemon, "-A", "-u", "10.0.0.1:53", "-s", "sh", "-b", "sh-port")
    rc, out, _ = lbadm(daemon, "-L", "-n", "--json")
    assert rc == 0 and '"sched_flags": [\n        "sh-port"\n      ]' in out


def test_socket_mode_and_takeover(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "lb.sock")
    st = ConfigState(Core(conn_max=64, svc_max=4, dest_max=8))
    with Server(st, path) as srv:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(OSError, match="another balancer"):
            Server(st, path).start()
        srv.poll(0)
    assert not os.path.exists(path)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # a socket file nobody listens on
    with Server(st, path) as srv:
        stop = threading.Event()
        t = threading.Thread(target=srv.serve_forever, args=(stop, 0.02))
        t.start()
        try:
            assert Client(path, timeout_s=5).connect().ping()["version"] == [1, 2, 1]
        finally:
            stop.set()
            t.join(5)


def _raw(path: str, payload: bytes, read: bool = True) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(payload)
    data = b""
    if read:
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    s.close()
    return data


def test_garbage_and_abuse_do_not_kill_the_daemon(daemon: Server) -> None:
    assert b'"ok":false' in _raw(daemon.path, b"this is not json\n")
    assert b"unsupported protocol version" in _raw(daemon.path, b'{"v": 99, "id": 1, "op": "ping"}\n')
    assert b"unknown operation" in _raw(daemon.path, b'{"v": 1, "id": 1, "op": "reboot"}\n')
    assert b"change must be" in _raw(daemon.path, p.request(3, "apply", {"changes": [{"kind": "x"}]}))
    assert b"bad address" in _raw(
        daemon.path, p.request(4, "apply", {"changes": [{"kind": "del_service", "key": {"proto": 6}}]})
    )
    huge = _raw(daemon.path, b"x" * (p.MAX_LINE + 70000))
    assert b"longer than" in huge
    _raw(daemon.path, b'{"v": 1, "id": 1, "op": "st', read=False)  # hang up mid-request
    with Client(daemon.path) as c:
        assert c.ping()["size"] == 4096


def test_concurrent_clients(daemon: Server) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with Client(daemon.path) as c:
                for j in range(5):
                    assert lbadm(daemon, "-A", "-t", f"10.0.{n}.{j + 1}:80", "-s", "rr")[0] == 0
                    c.status()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    with Client(daemon.path) as c:
        services, *_ = c.status()
    assert len(services) == 40


def test_conn_listing_and_timeouts_reach_the_conn_table(daemon: Server) -> None:
    import time  # noqa: PLC0415
    from ipaddress import IPv4Address  # noqa: PLC0415

    from lb.core.conn import ConnTable  # noqa: PLC0415
    from lb.core.core import Flow  # noqa: PLC0415

    rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m\n"
    assert lbadm(daemon, "-R", stdin=rules)[0] == 0
    assert lbadm(daemon, "--set", "0", "0", "77")[0] == 0
    table = ConnTable(daemon.state.core)
    assert table.get_timeouts().udp == 77
    flows = [Flow(IPv4Address("10.9.0.1"), 40000 + i, IPv4Address("10.0.0.1"), 80) for i in range(2)]
    with daemon.state.lock:
        assert table.batch_schedule(flows, now_ns=time.monotonic_ns()) != [-1, -1]
    rc, out, _ = lbadm(daemon, "-L", "-n", "-c")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 4
    assert lines[2].startswith("TCP 00:")
    assert lines[2].split()[2:] == ["SYN_RECV", "10.9.0.1:40000", "10.0.0.1:80", "10.0.1.1:8080"]
    rc, out, _ = lbadm(daemon, "-L", "-n")
    # SYN_RECV counts as active since kernel 4.8 (ip_vs_tcp_state_active)
    assert "  -> 10.0.1.1:8080                Masq    1      2          0         " in out


def test_rates_come_from_the_estimator_fed_by_poll(tmp_path: Path) -> None:
    from ipaddress import IPv4Address  # noqa: PLC0415

    from lb.core.conn import ConnTable  # noqa: PLC0415
    from lb.core.core import Flow  # noqa: PLC0415

    now = [100.0]
    st = ConfigState(Core(conn_max=4096, svc_max=4, dest_max=8))
    st.apply_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n")
    srv = Server(st, str(tmp_path / "lb.sock"), clock=lambda: now[0]).start()
    table = ConnTable(st.core)
    try:
        srv.poll(0)                                      # estimator base at t=100
        sport = 1000
        for _ in range(40):                              # 50 new connections per 2 s = 25/s
            table.batch_schedule([Flow(IPv4Address("10.9.0.1"), sport + i, IPv4Address("10.0.0.1"), 80)
                                  for i in range(50)], now_ns=1)
            sport += 50
            now[0] += 2.0
            srv.poll(0)
        (svc,) = st.status()
        assert svc.rates.cps == 25 and svc.dests[0].rates.cps == 25
        lines = render_rate(svc)
        assert lines[0].split()[:3] == ["TCP", "10.0.0.1:80", "25"]
    finally:
        srv.close()


def render_rate(svc) -> list[str]:
    from lb.cli import options as o  # noqa: PLC0415
    from lb.cli import render  # noqa: PLC0415

    return render.service_entry(svc, o.FMT_NUMERIC | o.FMT_RATE).splitlines()
