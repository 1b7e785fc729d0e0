"""The daemon side of the control socket: a non-blocking unix-socket server the run loop polls.

`Server(state).start()` binds the socket (default /run/pyvs/lb.sock, or LB_SOCKET, or the path given),
mode 0600.  The I/O loop calls `poll(budget_s)` between packet batches: it accepts clients, reads what they
sent, answers every complete request line (lb.daemon.protocol) and writes replies, never blocking longer
than the budget.  Configuration changes go through ConfigState.apply, so they land between batches and
atomically.  A client that sends garbage gets an error reply; one that sends an over-long line, stops
reading its replies or disconnects mid-request is dropped; the daemon carries on.  `poll` also feeds the
rate estimator every 2 seconds (ip_vs_est.c's timer).  The `trace` request arms and reads the C core's trace
ring (lb.core.trace) between batches, so `lb trace` shows the running data plane's own decisions.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lb import __version__, model
from lb.daemon import protocol as p
from lb.errors import LbError, ProtocolError
from lb.estimator import INTERVAL_S
from lb.state import ApplyResult, ConfigState

DEFAULT_SOCKET = "/run/pyvs/lb.sock"
MAX_CLIENTS = 64
MAX_OUTBUF = 16 * 1024 * 1024
READ_CHUNK = 65536
#: How long one poll() may spend producing a streamed response before it hands the data plane back.
JOB_SLICE_S = 0.002
_LIST_MARK = "\x00list\x00"
#: Connections per piece of a streamed `conns` response (services go one per piece).
CONNS_PER_PIECE = 256
#: Changes decoded or validated per piece of an `apply` before the run loop gets control back; the apply
#: itself stays one atomic step.
APPLY_PER_PIECE = 500
#: A streamed response waits while this much of it is still unsent: its size is then bounded by what the
#: client reads, not by MAX_OUTBUF (a -c listing of a million connections is ~200 MB).
OUT_HIGH = 1 << 20


def socket_path(path: str | None = None) -> str:
    """--socket, else LB_SOCKET, else /run/pyvs/lb.sock."""
    return path or os.environ.get("LB_SOCKET") or DEFAULT_SOCKET


@dataclass
class _Client:
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    closing: bool = False
    job: Iterator[bytes] | None = None   # a response being produced piece by piece (see respond())


def default_conns(core: Any) -> Iterable[model.ConnInfo]:
    """The connection table (lb.core.conn.ConnTable.iter_dump at the monotonic clock the run loop uses, read
    as it is consumed), or nothing."""
    try:
        conn = importlib.import_module("lb.core.conn")
    except ModuleNotFoundError:
        return []
    it: Iterable[model.ConnInfo] = conn.ConnTable(core).iter_dump(time.monotonic_ns())
    return it


class Server:
    """The control socket of one balancer."""

    def __init__(self, state: ConfigState, path: str | None = None, *,
                 conns: Callable[[], Iterable[model.ConnInfo]] | None = None,
                 on_change: Callable[[ApplyResult], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, size: int | None = None) -> None:
        """`conns` lists the connection table for -c (default: ConnTable.iter_dump at time.monotonic_ns(), the
        clock lb/io/loop.py passes the core); `on_change` gets every applied change set's ApplyResult."""
        self.state = state
        self.path = socket_path(path)
        self.conns = conns or (lambda: default_conns(state.core))
        self.on_change = on_change
        self.clock = clock
        self.size = size if size is not None else int(getattr(state.core, "conn_max",
                                                              model.IPVS_CONN_TAB_SIZE))
        self._sel = selectors.DefaultSelector()
        self._lsock: socket.socket | None = None
        self._clients: dict[int, _Client] = {}
        self._next_tick = 0.0
        self.requests = 0
        self.dropped = 0
        self._tracer: Any = None

    # ---- lifecycle ----

    def start(self) -> Server:
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()          # stale socket of a daemon that died
            else:
                raise OSError(errno.EADDRINUSE, f"another balancer is listening on {path}")
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            s.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        s.listen(16)
        s.setblocking(False)
        self._lsock = s
        self._sel.register(s, selectors.EVENT_READ, None)
        return self

    def fileno(self) -> int:
        assert self._lsock is not None
        return self._lsock.fileno()

    def close(self) -> None:
        for fd in list(self._clients):
            self._drop(fd)
        if self._lsock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self._lsock)
            self._lsock.close()
            self._lsock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._sel.close()

    def __enter__(self) -> Server:
        return self.start() if self._lsock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the poll the run loop calls ----

    def poll(self, budget_s: float = 0.0) -> int:
        """Serve the socket for at most budget_s seconds (0: one non-blocking pass); requests served."""
        served = 0
        deadline = self.clock() + max(0.0, budget_s)
        while True:
            now = self.clock()
            if now >= self._next_tick:
                self.state.tick(now)
                self._next_tick = now + INTERVAL_S
            timeout = 0.0 if self.busy else max(0.0, deadline - now)  # a pending response goes on at once
            for key, events in self._sel.select(timeout):
                if key.data is None:
                    self._accept()
                    continue
                fd = key.fd
                if events & selectors.EVENT_READ:
                    served += self._read(fd)
                if fd in self._clients and events & selectors.EVENT_WRITE:
                    self._flush(fd)
            served += self._run_jobs(time.monotonic() + JOB_SLICE_S)
            if self.clock() >= deadline:
                return served

    @property
    def busy(self) -> bool:
        """A response is still being produced or sent: the run loop should not sleep (lb/io/loop.py)."""
        return any(c.job is not None or c.outbuf for c in self._clients.values())

    def serve_forever(self, stop: threading.Event, step_s: float = 0.05) -> None:
        """For tests and `lbadm`-only setups: poll until `stop` is set."""
        while not stop.is_set():
            self.poll(step_s)

    # ---- clients ----

    def _accept(self) -> None:
        assert self._lsock is not None
        try:
            conn, _ = self._lsock.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(self._clients) >= MAX_CLIENTS:
            conn.close()
            self.dropped += 1
            return
        conn.setblocking(False)
        self._clients[conn.fileno()] = _Client(conn)
        self._sel.register(conn, selectors.EVENT_READ, "client")

    def _drop(self, fd: int) -> None:
        c = self._clients.pop(fd, None)
        if c is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(c.sock)
        c.sock.close()

    def _read(self, fd: int) -> int:
        c = self._clients[fd]
        try:
            data = c.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self._drop(fd)
            return 0
        if not data:                    # EOF: the client hung up (maybe mid-request)
            self._drop(fd)
            return 0
        c.inbuf += data
        return self._serve_lines(fd, time.monotonic() + JOB_SLICE_S)

    def _serve_lines(self, fd: int, until: float) -> int:
        """Answer the complete request lines in the client's inbuf, in order; a streamed response that
        is not finished by `until` holds the lines after it until _run_jobs finishes it."""
        c = self._clients[fd]
        served = 0
        while not c.closing and c.job is None:
            nl = c.inbuf.find(b"\n")
            if nl < 0:
                if len(c.inbuf) > p.MAX_LINE:
                    self._queue(fd, p.encode({"v": p.VERSION, "id": 0, "ok": False, "error": ProtocolError(
                        f"request longer than {p.MAX_LINE} bytes").to_dict()}))
                    c.closing = True
                    c.inbuf.clear()
                break
            line = bytes(c.inbuf[:nl])
            del c.inbuf[: nl + 1]
            if not line.strip():
                continue
            c.job = self.respond(line)
            served += 1
            self._advance(fd, until)
            if fd not in self._clients:
                break
        return served

    def _advance(self, fd: int, until: float) -> None:
        """Produce the client's streamed response until it ends, `until` passes, or OUT_HIGH of it waits
        unsent (the client is reading slower than it is produced)."""
        c = self._clients[fd]
        try:
            while c.job is not None and len(c.outbuf) < OUT_HIGH:
                try:
                    chunk = next(c.job)
                except StopIteration:
                    c.job = None
                    break
                if chunk:
                    self._queue(fd, chunk)
                    if fd not in self._clients:
                        return
                if time.monotonic() >= until:
                    break
        except Exception:  # a response that fails half-written cannot be repaired: end the connection
            self._drop(fd)
            self.dropped += 1

    def _run_jobs(self, until: float) -> int:
        """Continue every unfinished streamed response, then the requests queued behind each."""
        served = 0
        for fd in [fd for fd, c in self._clients.items() if c.job is not None]:
            if fd not in self._clients:
                continue
            self._advance(fd, until)
            c = self._clients.get(fd)
            if c is not None and c.job is None:
                served += self._serve_lines(fd, until)
        return served

    def _queue(self, fd: int, data: bytes) -> None:
        c = self._clients.get(fd)
        if c is None:
            return
        c.outbuf += data
        if len(c.outbuf) > MAX_OUTBUF:         # the client does not read its replies
            self._drop(fd)
            self.dropped += 1
            return
        self._flush(fd)

    def _flush(self, fd: int) -> None:
        c = self._clients.get(fd)
        if c is None:
            return
        try:
            while c.outbuf:
                n = c.sock.send(c.outbuf)
                del c.outbuf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(fd)
            return
        if c.outbuf:
            self._sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "client")
        elif c.closing:
            self._drop(fd)
        else:
            self._sel.modify(c.sock, selectors.EVENT_READ, "client")

    # ---- requests ----

    def handle_line(self, line: bytes) -> bytes:
        """One request line → one response line (never raises)."""
        return b"".join(self.respond(line))

    def respond(self, line: bytes) -> Iterator[bytes]:
        """One request line → its response line, in pieces, so that a big request does not hold the data
        plane: `status` a service at a time (status_stream), `conns` CONNS_PER_PIECE entries at a time,
        `apply` decoded and validated in pieces before its one atomic step (_apply_pieces); every other
        request in one piece.  The bytes are those of handle_line."""
        req_id = 0
        try:
            req_id, op, args = p.decode_request(line)
            if op == "status":
                stream = self.status_stream(req_id)
            elif op == "apply":
                stream = self._apply_pieces(req_id, args)
            elif op == "conns":
                stream = self._stream(req_id, {"conns": [_LIST_MARK]},
                                      (p.conn_to_dict(c) for c in self.conns()), CONNS_PER_PIECE)
            else:
                result = self.dispatch(op, args)
                self.requests += 1
                yield p.encode({"v": p.VERSION, "id": req_id, "ok": True, "result": result})
                return
        except Exception as exc:  # a bad request must never take the daemon down
            yield self._error(req_id, exc)
            return
        self.requests += 1
        yield from stream

    def status_stream(self, req_id: int) -> Iterator[bytes]:
        """The `status` response line as pieces: everything around the service list (built now), then one
        piece per service (ConfigState.status_iter, built when asked for), then the rest."""
        result = {**self._header(), "services": [_LIST_MARK],
                  "timeouts": p.timeouts_to_dict(self.state.timeouts)}
        return self._stream(req_id, result, (p.status_to_dict(s) for s in self.state.status_iter()), 1)

    def _apply_pieces(self, req_id: int, args: dict[str, Any]) -> Iterator[bytes]:
        """`apply` in pieces: the change set is decoded and validated APPLY_PER_PIECE changes at a time
        (empty pieces: the run loop forwards packets in between), then applied in one atomic step, which
        validates again only if another change set landed meanwhile.  The response is dispatch's."""
        st = self.state
        try:
            raw = args.get("changes")
            if not isinstance(raw, list):
                raise ProtocolError("apply needs a list of changes")
            changes = []
            for i, c in enumerate(raw, 1):
                changes.append(p.change_from_dict(c))
                if i % APPLY_PER_PIECE == 0:
                    yield b""
            version = st.version
            for _ in st.validate_iter(changes, APPLY_PER_PIECE):
                yield b""
            result = self._applied(st.apply(changes, validated=version))
            yield p.encode({"v": p.VERSION, "id": req_id, "ok": True, "result": result})
        except Exception as exc:  # as respond(): never take the daemon down
            yield self._error(req_id, exc)

    @staticmethod
    def _error(req_id: int, exc: Exception) -> bytes:
        """The error response line: an LbError as it is, anything else as an internal error."""
        err = exc if isinstance(exc, LbError) else LbError(f"internal error: {type(exc).__name__}: {exc}")
        return p.encode({"v": p.VERSION, "id": req_id, "ok": False, "error": err.to_dict()})

    def _applied(self, result: ApplyResult) -> dict[str, Any]:
        if self.on_change is not None:
            self.on_change(result)
        return {"changed_dest_ids": result.changed_dest_ids, "removed_dest_ids": result.removed_dest_ids}

    @staticmethod
    def _stream(req_id: int, result: dict[str, Any], items: Iterable[Any], per_piece: int) -> Iterator[bytes]:
        """A success response whose `result` holds one list, given as [_LIST_MARK], produced from `items`
        `per_piece` at a time when asked for: the bytes of p.encode with the list filled in."""
        env = {"v": p.VERSION, "id": req_id, "ok": True, "result": result}
        head, _, tail = p.encode(env).partition(b"[" + json.dumps(_LIST_MARK).encode() + b"]")
        yield head + b"["
        sep, batch = b"", []
        for item in items:
            batch.append(json.dumps(item, separators=(",", ":")))
            if len(batch) >= per_piece:
                yield sep + ",".join(batch).encode()
                sep, batch = b",", []
        if batch:
            yield sep + ",".join(batch).encode()
        yield b"]" + tail

    def _trace(self, a: dict[str, Any]) -> dict[str, Any]:
        """arm / read / stop the data plane's trace ring (C core only)."""
        if self._tracer is None:
            if getattr(self.state.core, "ptr", None) is None:
                raise LbError("tracing needs the C data plane (this balancer runs another engine)")
            from lb.core.trace import Tracer  # noqa: PLC0415 - only a tracing daemon needs cffi's ring

            self._tracer = Tracer(self.state.core)
        tr = self._tracer
        out: dict[str, Any] = {"tv": p.TRACE_VERSION}
        if a["action"] == "arm":
            out["after"] = tr.arm(a["count"], a["client"], a["vip"], a["vport"])
        elif a["action"] == "stop":
            tr.stop()
        else:
            out["records"] = [r.to_dict() for r in tr.read(a["after"])]
        out["remaining"] = tr.remaining()
        return out

    def _header(self) -> dict[str, Any]:
        return {"version": list(model.IPVS_VERSION), "size": self.size, "pyvs": __version__}

    def dispatch(self, op: str, args: dict[str, Any]) -> Any:
        st = self.state
        if op == "ping":
            return self._header()
        if op == "apply":
            raw = args.get("changes")
            if not isinstance(raw, list):
                raise ProtocolError("apply needs a list of changes")
            return self._applied(st.apply([p.change_from_dict(c) for c in raw]))
        if op == "status":
            return {**self._header(), "services": [p.status_to_dict(s) for s in st.status()],
                    "timeouts": p.timeouts_to_dict(st.timeouts)}
        if op == "service":
            key = p.key_from_dict(args.get("key"))
            return p.status_to_dict(st.service_status(key))
        if op == "conns":
            return {"conns": [p.conn_to_dict(c) for c in self.conns()]}
        if op == "timeouts":
            return p.timeouts_to_dict(st.timeouts)
        if op == "trace":
            return self._trace(p.trace_args(args))
        raise ProtocolError(f"unknown operation {op!r}")
