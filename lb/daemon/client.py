"""The client side of the control socket (what lbadm uses): one request, one reply, with a timeout.

Errors the daemon reports come back as the same exception classes (lb.errors.error_from_dict), so lbadm
prints ipvsadm's message and exit status whether the error was found locally or by the daemon.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any

from lb import model
from lb.config import Change
from lb.daemon import protocol as p
from lb.daemon.server import socket_path
from lb.errors import LbError, ProtocolError, error_from_dict


class ConnectError(LbError):
    """No balancer listens on the socket (ipvsadm: "Can't initialize ipvs", exit 2)."""

    exit_code = 2


class Client:
    """A connection to one balancer's control socket."""

    def __init__(self, path: str | None = None, timeout_s: float = 30.0) -> None:
        self.path = socket_path(path)
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._next_id = 1

    def connect(self) -> Client:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout_s)
        try:
            s.connect(self.path)
        except OSError as exc:
            s.close()
            raise ConnectError(f"Can't initialize ipvs: cannot connect to {self.path}: "
                               f"{exc.strerror or exc}\nIs the balancer (`lb run`) running? "
                               "Point lbadm at it with --socket PATH or LB_SOCKET.") from None
        self._sock = s
        return self

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self.connect() if self._sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """Send one request and return its result (raises the daemon's error)."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        req_id = self._next_id
        self._next_id += 1
        try:
            self._sock.sendall(p.request(req_id, op, args))
            while b"\n" not in self._buf:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise ProtocolError("the balancer closed the connection")
                self._buf += chunk
                if len(self._buf) > 64 * p.MAX_LINE:
                    raise ProtocolError("reply too long")
        except TimeoutError:
            raise ProtocolError(f"no reply from the balancer within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise ProtocolError(f"control socket error: {exc}") from None
        nl = self._buf.index(b"\n")
        line = bytes(self._buf[:nl])
        del self._buf[: nl + 1]
        try:
            reply = json.loads(line)
        except ValueError:
            raise ProtocolError("malformed reply from the balancer") from None
        if not isinstance(reply, dict) or reply.get("id") != req_id:
            raise ProtocolError("reply does not match the request")
        if not reply.get("ok"):
            err = reply.get("error")
            raise error_from_dict(err if isinstance(err, dict) else {"message": str(err)})
        return reply.get("result")

    # ---- typed helpers ----

    def ping(self) -> dict[str, Any]:
        return dict(self.call("ping"))

    def apply(self, changes: Sequence[Change]) -> dict[str, Any]:
        return dict(self.call("apply", {"changes": [p.change_to_dict(c) for c in changes]}))

    def status(self) -> tuple[list[model.ServiceStatus], model.Timeouts, tuple[int, int, int], int]:
        r = self.call("status")
        version = tuple(r["version"])
        return ([p.status_from_dict(s) for s in r["services"]], p.timeouts_from_dict(r["timeouts"]),
                (int(version[0]), int(version[1]), int(version[2])), int(r["size"]))

    def service(self, key: model.ServiceKey) -> model.ServiceStatus:
        return p.status_from_dict(self.call("service", {"key": p.key_to_dict(key)}))

    def conns(self) -> list[model.ConnInfo]:
        return [p.conn_from_dict(c) for c in self.call("conns")["conns"]]

    def timeouts(self) -> model.Timeouts:
        return p.timeouts_from_dict(self.call("timeouts"))
