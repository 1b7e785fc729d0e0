"""Prometheus metrics for `lb run --metrics ADDR:PORT`: text exposition format 0.0.4 and a tiny HTTP server.

`exposition(state, extra)` renders per-service and per-destination counters (connections, packets, bytes),
rates from the IPVS estimator, active/inactive/persistent connection counts, weights, plus whatever
`extra()` returns (the run loop adds drops by reason and connection-table fill from the core: see
`Family`).  `MetricsServer` serves it on GET /metrics from a non-blocking socket that the run loop polls
between batches like the control socket (`poll(budget_s)`), so no second thread touches the core.  It
listens only on the address it is given.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from lb import model

MAX_REQUEST = 8192


@dataclass
class Family:
    """One metric family: name, type (counter/gauge), help text, samples as (labels, value)."""

    name: str
    type: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_value(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def render_families(families: Iterable[Family]) -> str:
    out = []
    for f in families:
        out.append(f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.type}\n")
        for labels, value in f.samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            name = f"{f.name}{{{lab}}}" if lab else f.name
            out.append(f"{name} {_fmt_value(value)}\n")
    return "".join(out)


def service_label(key: model.ServiceKey) -> dict[str, str]:
    if key.fwmark:
        return {"service": f"FWM {key.fwmark}" + (" IPv6" if key.is_v6 else "")}
    addr = f"[{key.addr}]" if key.is_v6 else str(key.addr)
    return {"service": f"{key.proto.ipvsadm_name} {addr}:{key.port}"}


def dest_label(key: model.ServiceKey, d: model.Dest) -> dict[str, str]:
    addr = f"[{d.addr}]" if d.addr.version == 6 else str(d.addr)
    return {**service_label(key), "dest": f"{addr}:{d.port}"}


_COUNTERS = (("connections", "conns", "connections scheduled"), ("in_packets", "inpkts", "packets in"),
             ("out_packets", "outpkts", "packets out"), ("in_bytes", "inbytes", "bytes in"),
             ("out_bytes", "outbytes", "bytes out"))
_RATES = (("cps", "connections per second"), ("inpps", "packets in per second"),
          ("outpps", "packets out per second"), ("inbps", "bytes in per second"),
          ("outbps", "bytes out per second"))


def families(services: Sequence[model.ServiceStatus]) -> list[Family]:
    """Families for services and their dests."""
    fams: list[Family] = [Family("pyvs_services", "gauge", "Number of virtual services",
                                 [({}, len(services))])]
    for scope in ("service", "dest"):
        for name, attr, text in _COUNTERS:
            f = Family(f"pyvs_{scope}_{name}_total", "counter", f"IPVS {scope} {text}")
            for st in services:
                if scope == "service":
                    f.samples.append((service_label(st.service.key), getattr(st.stats, attr)))
                else:
                    f.samples.extend((dest_label(st.service.key, d.dest), getattr(d.stats, attr))
                                     for d in st.dests)
            fams.append(f)
        for attr, text in _RATES:
            f = Family(f"pyvs_{scope}_rate_{attr}", "gauge", f"IPVS estimator: {scope} {text} (2 s samples)")
            for st in services:
                if scope == "service":
                    f.samples.append((service_label(st.service.key), getattr(st.rates, attr)))
                else:
                    f.samples.extend((dest_label(st.service.key, d.dest), getattr(d.rates, attr))
                                     for d in st.dests)
            fams.append(f)
    for name, attr, text in (("active_connections", "activeconns", "active (ESTABLISHED) connections"),
                             ("inactive_connections", "inactconns", "inactive connections"),
                             ("persistent_connections", "persistconns", "persistence templates")):
        f = Family(f"pyvs_dest_{name}", "gauge", f"Destination {text}")
        for st in services:
            f.samples.extend((dest_label(st.service.key, d.dest), getattr(d, attr)) for d in st.dests)
        fams.append(f)
    f = Family("pyvs_dest_weight", "gauge", "Destination weight")
    for st in services:
        f.samples.extend((dest_label(st.service.key, d.dest), d.dest.weight) for d in st.dests)
    fams.append(f)
    return fams


def core_families(core: Any) -> list[Family]:
    """Drops (and every other verdict reason) by reason, and connection-table fill, from a Core."""
    from lb.core.batch import reason_counts  # noqa: PLC0415 - needs the compiled core
    from lb.core.conn import ConnTable  # noqa: PLC0415

    fams = [Family("pyvs_packets_by_reason_total", "counter",
                   "Packets by verdict reason (drops: NO_DEST, CONN_FULL, ...; see `lb explain`)",
                   [({"reason": name}, n) for name, n in reason_counts(core).items()])]
    t = ConnTable(core).stats()
    fams += [
        Family("pyvs_conn_table_entries", "gauge", "Connection table entries (conns + templates)",
               [({}, t.entries)]),
        Family("pyvs_conn_table_templates", "gauge", "Persistence templates in the table",
               [({}, t.templates)]),
        Family("pyvs_conn_table_capacity", "gauge", "Connection table capacity", [({}, t.capacity)]),
        Family("pyvs_conn_table_refused_total", "counter", "New connections refused: table full",
               [({}, t.refused)]),
        Family("pyvs_conn_created_total", "counter", "Connections created", [({}, t.created)]),
        Family("pyvs_conn_expired_total", "counter", "Connections expired", [({}, t.expired)]),
    ]
    return fams


def exposition(services: Sequence[model.ServiceStatus],
               extra: Callable[[], Iterable[Family]] | None = None) -> str:
    fams = families(services)
    if extra is not None:
        fams.extend(extra())
    return render_families(fams)


def parse_listen(text: str) -> tuple[str, int]:
    """"127.0.0.1:9100" / "[::1]:9100" → (host, port); ValueError otherwise (an address is required)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--metrics wants ADDR:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    ip_address(host)
    p = int(port)
    if not 0 <= p <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return host, p


class MetricsServer:
    """GET /metrics on ADDR:PORT, non-blocking, served from `poll(budget_s)`."""

    def __init__(self, listen: str, collect: Callable[[], str]) -> None:
        self.host, self.port = parse_listen(listen)
        self.collect = collect
        self._sel = selectors.DefaultSelector()
        self._lsock: socket.socket | None = None
        self._bufs: dict[int, tuple[socket.socket, bytearray, bytearray]] = {}

    def start(self) -> MetricsServer:
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        s.setblocking(False)
        self.port = s.getsockname()[1]
        self._lsock = s
        self._sel.register(s, selectors.EVENT_READ, None)
        return self

    def close(self) -> None:
        for fd in list(self._bufs):
            self._drop(fd)
        if self._lsock is not None:
            self._sel.unregister(self._lsock)
            self._lsock.close()
            self._lsock = None
        self._sel.close()

    def _drop(self, fd: int) -> None:
        entry = self._bufs.pop(fd, None)
        if entry:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(entry[0])
            entry[0].close()

    def poll(self, budget_s: float = 0.0) -> None:
        deadline = time.monotonic() + budget_s
        while True:
            for key, _ev in self._sel.select(max(0.0, deadline - time.monotonic())):
                if key.data is None:
                    assert self._lsock is not None
                    try:
                        conn, _ = self._lsock.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    self._bufs[conn.fileno()] = (conn, bytearray(), bytearray())
                    self._sel.register(conn, selectors.EVENT_READ, "c")
                else:
                    self._service(key.fd)
            if time.monotonic() >= deadline:
                return

    def _service(self, fd: int) -> None:
        entry = self._bufs.get(fd)
        if entry is None:
            return
        conn, inbuf, outbuf = entry
        if not outbuf:
            try:
                data = conn.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                self._drop(fd)
                return
            if not data:
                self._drop(fd)
                return
            inbuf += data
            if b"\r\n\r\n" not in inbuf and b"\n\n" not in inbuf:
                if len(inbuf) > MAX_REQUEST:
                    self._drop(fd)
                return
            first = bytes(inbuf).split(b"\n", 1)[0].split()
            if len(first) >= 2 and first[0] == b"GET" and first[1].split(b"?")[0] in (b"/metrics", b"/"):
                body = self.collect().encode()
                head = (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            else:
                body = b"not found\n"
                head = (b"HTTP/1.0 404 Not Found\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                        % len(body))
            outbuf += head + body
            self._sel.modify(conn, selectors.EVENT_WRITE, "c")
        try:
            n = conn.send(outbuf)
            del outbuf[:n]
        except BlockingIOError:
            return
        except OSError:
            self._drop(fd)
            return
        if not outbuf:
            self._drop(fd)


def for_state(listen: str, state: Any) -> MetricsServer:
    """The metrics server of one balancer (`lb run --metrics ADDR:PORT`): services and dests from the
    ConfigState (counters, rates, connection counts), reasons and table fill from its Core.  Started; the
    run loop calls `.poll(0)` between batches and `.close()` at exit."""
    def collect() -> str:
        return exposition(state.status(), lambda: core_families(state.core))

    return MetricsServer(listen, collect).start()
