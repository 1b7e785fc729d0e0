"""Test that the Prometheus exposition is well-formed and served only where asked.

- every family has HELP and TYPE lines, samples carry service/dest labels, values are the counters;
- extra families (drops by reason, table fill) are appended; label values are escaped;
- GET /metrics on the given address answers 200 with the text, other paths 404;
- --metrics requires an explicit address.
"""

from __future__ import annotations

import re
import socket
import threading
from ipaddress import IPv4Address

import pytest

from lb import model
from lb.metrics import Family, MetricsServer, exposition, parse_listen, render_families

KEY = model.ServiceKey(model.Proto.TCP, IPv4Address("10.0.0.1"), 80)
DEST = model.Dest(IPv4Address("10.0.1.1"), 8080, model.Fwd.MASQ, 3)
STATUS = [
    model.ServiceStatus(
        model.Service(KEY, "rr"),
        (model.DestStatus(DEST, 4, 7, 0, model.Stats(11, 22, 33, 44, 55), model.Rates(1, 2, 3, 4, 5)),),
        model.Stats(11, 22, 33, 44, 55),
        model.Rates(1, 2, 3, 4, 5),
    )
]
LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def test_exposition_format_and_values() -> None:
    text = exposition(
        STATUS,
        lambda: [Family("pyvs_drops_total", "counter", "Drops by reason", [({"reason": "no_service"}, 5)])],
    )
    names = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            names.add(line.split()[2])
            continue
        assert LINE.match(line), line
    for fam in (
        "pyvs_service_connections_total",
        "pyvs_dest_in_bytes_total",
        "pyvs_dest_active_connections",
        "pyvs_service_rate_cps",
        "pyvs_dest_weight",
        "pyvs_drops_total",
    ):
        assert fam in names
    assert 'pyvs_service_connections_total{service="TCP 10.0.0.1:80"} 11' in text
    assert 'pyvs_dest_out_bytes_total{service="TCP 10.0.0.1:80",dest="10.0.1.1:8080"} 55' in text
    assert 'pyvs_dest_inactive_connections{service="TCP 10.0.0.1:80",dest="10.0.1.1:8080"} 7' in text
    assert 'pyvs_drops_total{reason="no_service"} 5' in text
    assert "# TYPE pyvs_dest_weight gauge" in text


def test_label_escaping() -> None:
    text = render_families([Family("x", "gauge", "h", [({"a": 'q"\\\n'}, 1.5)])])
    assert text.endswith('x{a="q\\"\\\\\\n"} 1.5\n')


def test_parse_listen_requires_an_address() -> None:
    assert parse_listen("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in (":9100", "9100", "localhost:9100", "10.0.0.1:99999"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_http_server_serves_metrics() -> None:
    srv = MetricsServer("127.0.0.1:0", lambda: exposition(STATUS)).start()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            srv.poll(0.02)

    t = threading.Thread(target=loop)
    t.start()
    try:
        ok = _get(srv.port, "/metrics")
        assert ok.startswith(b"HTTP/1.0 200 OK\r\n") and b"text/plain; version=0.0.4" in ok
        assert b'pyvs_service_in_packets_total{service="TCP 10.0.0.1:80"} 22' in ok
        assert _get(srv.port, "/other").startswith(b"HTTP/1.0 404")
    finally:
        stop.set()
        t.join(5)
        srv.close()


def test_core_families_report_reasons_and_table_fill() -> None:
    from lb.core.core import Core  # noqa: PLC0415
    from lb.metrics import core_families  # noqa: PLC0415

    text = render_families(core_families(Core(conn_max=128, svc_max=4, dest_max=8)))
    assert 'pyvs_packets_by_reason_total{reason="NO_SERVICE"} 0' in text
    assert "pyvs_conn_table_capacity 128" in text
    assert "pyvs_conn_table_entries 0" in text


def test_for_state_serves_a_live_balancer() -> None:
    from lb.core.core import Core  # noqa: PLC0415
    from lb.metrics import for_state  # noqa: PLC0415
    from lb.state import ConfigState  # noqa: PLC0415

    st = ConfigState(Core(conn_max=64, svc_max=4, dest_max=8))
    st.apply_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n")
    srv = for_state("127.0.0.1:0", st)
    stop = threading.Event()
    t = threading.Thread(target=lambda: [srv.poll(0.02) for _ in iter(stop.is_set, True)])
    t.start()
    try:
        body = _get(srv.port, "/metrics")
        assert b'pyvs_dest_weight{service="TCP 10.0.0.1:80",dest="10.0.1.1:80"} 1' in body
        assert b"pyvs_conn_table_capacity 64" in body
    finally:
        stop.set()
        t.join(5)
        srv.close()
