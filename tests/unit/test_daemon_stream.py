"""Test that the control socket streams long `status` and `conns` listings without holding the run loop.

- the streamed response is byte for byte the one-piece response (handle_line of the same request), for
  the C core and the Python engine's PyCore;
- with a zero time slice every poll() produces one piece, the server says it is `busy` meanwhile (so the
  run loop does not sleep), and the client still gets one complete, valid line;
- a request pipelined behind the listing is answered after it, in order;
- a service deleted while its listing is under way is left out, and the line stays valid JSON;
- `service` (one service) is answered without listing the others, and an unknown one is ESRCH;
- `apply` is decoded and validated in pieces, the core sees nothing until one atomic step, the answer is
  dispatch's, and a change set landing meanwhile makes the final validation refuse the streamed one whole;
- `conns` comes CONNS_PER_PIECE entries per piece, byte for byte the one-piece listing;
- a client that does not read holds the stream back (OUT_HIGH), and a listing bigger than MAX_OUTBUF
  reaches a reading client whole;
- the run loop's wait is 0 ms while a control is busy, its timeout otherwise.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lb import model
from lb.config import parse_rules_checked
from lb.core.core import Core
from lb.daemon import protocol as p
from lb.daemon import server as server_mod
from lb.daemon.server import Server
from lb.engine.control import PyCore
from lb.io.loop import _LoopBase
from lb.state import ConfigState

N = 40


def _rules(n: int = N) -> str:
    lines = []
    for i in range(n):
        lines += [f"-A -t 10.9.{i // 250}.{i % 250 + 1}:80 -s wlc",
                  f"-a -t 10.9.{i // 250}.{i % 250 + 1}:80 -r 10.2.0.{i % 200 + 2}:8080 -m -w {i % 5}",
                  f"-a -t 10.9.{i // 250}.{i % 250 + 1}:80 -r 10.2.0.250:80 -m -w 1"]
    return "\n".join(lines) + "\n"


def _state(kind: str) -> ConfigState:
    core: Any = Core(conn_max=1024, svc_max=64, dest_max=256) if kind == "c" else PyCore(conn_max=1024)
    st = ConfigState(core)
    st.apply(parse_rules_checked(_rules()))
    return st


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    s = Server(_state("c"), str(tmp_path / "lb.sock")).start()
    yield s
    s.close()


@pytest.mark.parametrize("kind", ["c", "python"])
def test_streamed_status_is_the_one_piece_response(kind: str, tmp_path: Path) -> None:
    s = Server(_state(kind), str(tmp_path / "lb.sock"))
    req = p.request(7, "status")
    pieces = list(s.respond(req))
    assert len(pieces) == N + 2
    whole = b"".join(pieces)
    assert whole == p.encode({"v": p.VERSION, "id": 7, "ok": True, "result": s.dispatch("status", {})})
    doc = json.loads(whole)
    assert [x["service"]["key"]["addr"] for x in doc["result"]["services"]][:2] == ["10.9.0.1", "10.9.0.2"]
    assert len(doc["result"]["services"]) == N


def _connect(s: Server) -> socket.socket:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(s.path)
    c.setblocking(False)
    s.poll(0.0)  # accept
    return c


def _drain(c: socket.socket, into: bytearray) -> None:
    while True:
        try:
            data = c.recv(1 << 20)
        except BlockingIOError:
            return
        if not data:
            return
        into += data


def test_status_is_produced_across_polls_in_order(srv: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "JOB_SLICE_S", 0.0)
    c = _connect(srv)
    c.sendall(p.request(1, "status") + p.request(2, "ping"))
    got = bytearray()
    polls = 0
    while got.count(b"\n") < 2 and polls < 10 * N:
        srv.poll(0.0)
        polls += 1
        if polls == 1:
            assert srv.busy
        _drain(c, got)
    assert polls >= N  # one service per poll: the run loop got control back between pieces
    srv.poll(0.0)  # the last piece was handed out; this poll finds the response ended
    assert not srv.busy
    first, second, rest = bytes(got).split(b"\n")
    assert rest == b""
    assert json.loads(first)["id"] == 1 and len(json.loads(first)["result"]["services"]) == N
    assert json.loads(second)["id"] == 2 and json.loads(second)["ok"]
    c.close()


def test_a_service_deleted_mid_listing_is_left_out(srv: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "JOB_SLICE_S", 0.0)
    c = _connect(srv)
    c.sendall(p.request(1, "status"))
    got = bytearray()
    for _ in range(3):
        srv.poll(0.0)
    gone = model.ServiceKey(model.Proto.TCP, model.parse_addr("10.9.0.30"), 80)
    srv.state.apply(parse_rules_checked("-D -t 10.9.0.30:80\n"))
    for _ in range(10 * N):
        srv.poll(0.0)
        _drain(c, got)
        if got.endswith(b"\n"):
            break
    services = json.loads(got)["result"]["services"]
    assert len(services) == N - 1
    assert str(gone.addr) not in {x["service"]["key"]["addr"] for x in services}
    c.close()


def test_one_service_and_unknown_service(srv: Server) -> None:
    key = model.ServiceKey(model.Proto.TCP, model.parse_addr("10.9.0.5"), 80)
    one = srv.dispatch("service", {"key": p.key_to_dict(key)})
    assert one["service"]["key"]["addr"] == "10.9.0.5" and len(one["dests"]) == 2
    missing = json.loads(srv.handle_line(p.request(3, "service", {"key": p.key_to_dict(
        model.ServiceKey(model.Proto.TCP, model.parse_addr("10.9.9.9"), 80))})))
    assert not missing["ok"] and missing["error"]["errno"] == 3  # ESRCH


class _Busy:
    def __init__(self) -> None:
        self.busy = False

    def poll(self, budget_s: float = 0.0) -> int:
        return 0


def test_run_loop_does_not_sleep_while_a_control_is_busy() -> None:
    loop = _LoopBase.__new__(_LoopBase)
    ctl = _Busy()
    loop.controls = [ctl]
    loop.timeout_ms = 20
    assert loop._wait_ms() == 20
    ctl.busy = True
    assert loop._wait_ms() == 0


def test_conns_are_streamed_in_pieces_and_match_the_one_piece_listing(
        srv: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-c` at scale: the listing comes CONNS_PER_PIECE entries per poll, byte for byte the dispatch one."""
    import time  # noqa: PLC0415
    from ipaddress import IPv4Address  # noqa: PLC0415

    from lb.core.conn import ConnTable  # noqa: PLC0415
    from lb.core.core import Flow  # noqa: PLC0415

    monkeypatch.setattr(server_mod, "JOB_SLICE_S", 0.0)
    monkeypatch.setattr(server_mod, "CONNS_PER_PIECE", 10)
    table = ConnTable(srv.state.core)
    flows = [Flow(IPv4Address("10.8.0.1"), 20000 + i, IPv4Address("10.9.0.1"), 80) for i in range(95)]
    assert -1 not in table.batch_schedule(flows, now_ns=time.monotonic_ns())
    now = time.monotonic_ns()
    srv.conns = lambda: table.iter_dump(now)
    req = p.request(5, "conns")
    pieces = list(srv.respond(req))
    assert len(pieces) == 2 + 10  # head, 9 pieces of 10 and one of 5, tail
    whole = b"".join(pieces)
    assert whole == p.encode({"v": p.VERSION, "id": 5, "ok": True, "result": srv.dispatch("conns", {})})
    assert sorted(c["cport"] for c in json.loads(whole)["result"]["conns"]) == list(range(20000, 20095))
    c = _connect(srv)
    c.sendall(req)
    got, polls = bytearray(), 0
    while not got.endswith(b"\n") and polls < 100:
        srv.poll(0.0)
        polls += 1
        _drain(c, got)
    assert polls >= 10 and bytes(got) == whole
    c.close()


def test_a_client_that_does_not_read_holds_the_stream_back(
        srv: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backpressure: while the client reads nothing, the unsent part stays near OUT_HIGH instead of the
    whole listing piling up (and being dropped at MAX_OUTBUF); once it reads, the line arrives whole."""
    monkeypatch.setattr(server_mod, "OUT_HIGH", 2000)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    c.connect(srv.path)
    c.setblocking(False)
    srv.poll(0.0)
    (client,) = srv._clients.values()
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
    c.sendall(p.request(1, "status"))
    piece = max(len(x) for x in srv.respond(p.request(1, "status")))
    for _ in range(50):
        srv.poll(0.0)
        assert len(client.outbuf) < 2000 + piece
    assert client.job is not None and srv.busy
    got = bytearray()
    for _ in range(5000):
        srv.poll(0.0)
        _drain(c, got)
        if got.endswith(b"\n"):
            break
    assert len(json.loads(got)["result"]["services"]) == N
    c.close()


def test_a_conn_listing_larger_than_max_outbuf_arrives_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A -c listing bigger than MAX_OUTBUF (16 MB: ~70 000 connections; 1 MB and 8 000 here, to stay quick):
    sent whole, it cost the client its connection; streamed with backpressure, the client gets every entry."""
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415
    from ipaddress import IPv4Address  # noqa: PLC0415

    from lb.core.conn import ConnTable  # noqa: PLC0415
    from lb.core.core import Flow  # noqa: PLC0415
    from lb.daemon.client import Client  # noqa: PLC0415

    monkeypatch.setattr(server_mod, "MAX_OUTBUF", 1 << 20)
    monkeypatch.setattr(server_mod, "OUT_HIGH", 1 << 16)
    n = 8_000
    st = ConfigState(Core(conn_max=1 << 14, svc_max=4, dest_max=16))
    st.apply(parse_rules_checked("-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -r 10.2.0.2:8080 -m\n"))
    table = ConnTable(st.core)
    flows = [Flow(IPv4Address("10.8.0.1"), 10000 + i, IPv4Address("10.9.0.1"), 80) for i in range(n)]
    assert -1 not in table.batch_schedule(flows, now_ns=time.monotonic_ns())
    srv = Server(st, str(tmp_path / "lb.sock")).start()
    stop = threading.Event()
    t = threading.Thread(target=srv.serve_forever, args=(stop, 0.02), daemon=True)
    t.start()
    try:
        one = json.dumps(p.conn_to_dict(next(iter(table.iter_dump(time.monotonic_ns())))))
        assert n * len(one) > server_mod.MAX_OUTBUF
        conns = Client(srv.path).conns()
        assert len(conns) == n
        assert srv.dropped == 0
    finally:
        stop.set()
        t.join(5)
        srv.close()


def _apply_request(req_id: int, text: str) -> bytes:
    return p.request(req_id, "apply", {"changes": [p.change_to_dict(c) for c in parse_rules_checked(text)]})


def _until_line(srv: Server, c: socket.socket, polls: int = 10_000) -> tuple[bytes, int]:
    got, n = bytearray(), 0
    while not got.endswith(b"\n") and n < polls:
        srv.poll(0.0)
        n += 1
        _drain(c, got)
    return bytes(got), n


def test_apply_is_decoded_and_validated_in_pieces_then_applied_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big change set hands the run loop back while it is decoded and validated, and the core sees
    nothing of it until the one atomic step; the answer is the one-piece answer."""
    monkeypatch.setattr(server_mod, "JOB_SLICE_S", 0.0)
    monkeypatch.setattr(server_mod, "APPLY_PER_PIECE", 10)
    def fresh() -> ConfigState:
        return ConfigState(Core(conn_max=1024, svc_max=128, dest_max=256))
    srv = Server(fresh(), str(tmp_path / "lb.sock")).start()
    try:
        c = _connect(srv)
        c.sendall(_apply_request(1, _rules()))
        for _ in range(5):
            srv.poll(0.0)
            assert srv.state.core.services() == [] and srv.busy
        line, polls = _until_line(srv, c)
        assert polls >= 10  # 12 decode + 12 validate pieces of 10 changes, up to two per poll
        reply = json.loads(line)
        assert reply["ok"] and reply["id"] == 1 and len(reply["result"]["changed_dest_ids"]) == 2 * N
        assert len(srv.state.core.services()) == N
        wire = [p.change_to_dict(x) for x in parse_rules_checked(_rules())]
        one_piece = Server(fresh(), str(tmp_path / "o.sock")).dispatch("apply", {"changes": wire})
        assert one_piece == reply["result"]
        c.close()
    finally:
        srv.close()


def test_a_change_set_that_lands_meanwhile_is_seen_by_the_final_validation(
        srv: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validated against version v; another change set lands (v+1) before the apply: validated again,
    the streamed one is refused as a whole (EEXIST for its first service), and nothing of it applies."""
    monkeypatch.setattr(server_mod, "JOB_SLICE_S", 0.0)
    monkeypatch.setattr(server_mod, "APPLY_PER_PIECE", 1)
    c = _connect(srv)
    c.sendall(_apply_request(2, "".join(f"-A -t 10.7.0.{i}:80 -s rr\n" for i in (1, 2, 3))))
    srv.poll(0.0)
    srv.state.apply(parse_rules_checked("-A -t 10.7.0.1:80 -s wlc\n"))
    line, _ = _until_line(srv, c)
    reply = json.loads(line)
    assert not reply["ok"] and reply["error"]["errno"] == 17  # EEXIST
    addrs = {str(s.service.key.addr) for s in srv.state.status()}
    assert "10.7.0.1" in addrs and not addrs & {"10.7.0.2", "10.7.0.3"}
    assert srv.state.service_status(model.ServiceKey(model.Proto.TCP, model.parse_addr("10.7.0.1"), 80)
                                    ).service.sched == "wlc"
    c.close()


def test_apply_validates_again_only_when_the_version_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    st = ConfigState(Core(conn_max=1024, svc_max=16, dest_max=16))
    calls: list[int] = []
    real = st.validate
    monkeypatch.setattr(st, "validate", lambda ch: (calls.append(len(ch)), real(ch))[1])
    one = parse_rules_checked("-A -t 10.7.0.1:80 -s rr\n")
    v = st.version
    list(st.validate_iter(one, 1))
    st.apply(one, validated=v)
    assert calls == [] and st.version == v + 1
    two = parse_rules_checked("-A -t 10.7.0.2:80 -s rr\n")
    st.apply(parse_rules_checked("-A -t 10.7.0.3:80 -s rr\n"))   # lands between validation and apply
    st.apply(two, validated=v)
    assert calls == [1, 1]  # the intervening apply, then the stale one validated again
