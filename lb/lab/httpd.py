"""The lab's real server: a small stdlib HTTP server that answers with its node name.

- `GET /` (any path but /big) -> "<name>\\n" and `X-Server: <name>`: who answered.
- `GET /big?bytes=N` -> N bytes of `pattern_chunks(N)` (a fixed, checkable pattern) for transfer tests;
  the client recomputes `pattern_sha256(N)` and compares.
- UDP on `--udp-port`: each datagram is answered with "<name> <payload>".
Run per real server by the lab: `python -m lb.lab.httpd --name real1 --port 80 --udp-port 9000`.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import parse_qs, urlsplit

#: Largest body /big serves (bounded, like every traffic source in the lab).
MAX_BIG = 1 << 30
_BLOCK = 1 << 16


def _block() -> bytes:
    """64 KiB made of the 256 byte values in a fixed shuffle, so corruption and reordering both show."""
    base = bytes((i * 167 + 13) & 0xFF for i in range(256))
    return b"".join(base[k:] + base[:k] for k in range(_BLOCK // 256))


BLOCK = _block()


def pattern_chunks(n: int) -> list[memoryview]:
    """The body of /big?bytes=n as a list of views on BLOCK (no copy)."""
    view = memoryview(BLOCK)
    full, rest = divmod(n, _BLOCK)
    return [view] * full + ([view[:rest]] if rest else [])


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    for chunk in pattern_chunks(n):
        h.update(chunk)
    return h.hexdigest()


class Handler(BaseHTTPRequestHandler):
    server_version = "pyvs-lab-httpd/1"
    protocol_version = "HTTP/1.1"
    node = "?"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/big":
            try:
                n = int(parse_qs(url.query).get("bytes", ["0"])[0])
            except ValueError:
                n = -1
            if not 0 <= n <= MAX_BIG:
                self.send_error(400, "bytes must be 0..2^30")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.send_header("X-Server", self.node)
            self.end_headers()
            for chunk in pattern_chunks(n):
                self.wfile.write(chunk)
            return
        body = f"{self.node}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Server", self.node)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


IP_PKTINFO = 8


def udp_loop(sock: socket.socket, node: str) -> None:
    """Answer each datagram *from the address it was sent to* (the VIP in DR/TUN), via IP_PKTINFO:
    a wildcard-bound socket would otherwise pick the route's source address and the client would drop it."""
    prefix = f"{node} ".encode()
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    while True:
        try:
            data, anc, _flags, peer = sock.recvmsg(65535, 256)
        except OSError:
            return
        # struct in_pktinfo {ifindex, spec_dst, addr}: reply with spec_dst = the datagram's destination.
        reply_anc = [(socket.IPPROTO_IP, IP_PKTINFO, b"\0" * 4 + d[8:12] + b"\0" * 4)
                     for lvl, typ, d in anc
                     if lvl == socket.IPPROTO_IP and typ == IP_PKTINFO and len(d) >= 12]
        try:
            sock.sendmsg([prefix + data[:1400]], reply_anc, 0, peer)
        except OSError:
            continue


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lb.lab.httpd", description="lab real server: answers with its name")
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--udp-port", type=int, default=0)
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args(argv)

    handler = type("NodeHandler", (Handler,), {"node": args.name})
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((args.bind, args.port), handler)
    if args.udp_port:
        usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        usock.bind((args.bind, args.udp_port))
        threading.Thread(target=udp_loop, args=(usock, args.name), daemon=True).start()

    def _stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"httpd {args.name} on {args.bind}:{args.port} udp {args.udp_port or '-'}", flush=True)
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
