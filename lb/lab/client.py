"""The lab's client: bounded HTTP/UDP traffic from inside the client namespace, results as JSON.

Run by the lab as `ip netns exec <lab>-client python -m lb.lab.client ...`; every mode is bounded in count
and in time (a per-request timeout and an overall deadline), as the lab rules demand.
- `get URL --count N [--source ADDR]`: N sequential requests, each on a new TCP connection (so each is a new
  IPVS conn) with `Connection: close`; one JSON object per line: {"i", "server", "sport", "ok", "error"}.
- `big URL --bytes N [--rate BPS]`: one download of /big?bytes=N; prints {"server", "bytes", "sha256", "ok"}
  where ok means the body matched the pattern's checksum; --rate slows the reader (for live-change tests).
- `udp HOST:PORT --count N`: N datagrams, each from a new socket (new source port); prints who answered.
- `wait URL --tries N`: retry until one request succeeds; exit 0 on success.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import socket
import sys
import time
from urllib.parse import urlsplit

from lb.lab.httpd import pattern_sha256


def _split(url: str) -> tuple[str, int, str]:
    u = urlsplit(url)
    return u.hostname or "", u.port or 80, (u.path or "/") + (f"?{u.query}" if u.query else "")


def get_once(url: str, timeout: float = 3.0, source: str = "") -> dict[str, object]:
    """One request on a fresh connection (from address `source` if given); never raises."""
    host, port, path = _split(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    res: dict[str, object] = {"server": "", "sport": 0, "ok": False, "error": ""}
    try:
        conn.connect()
        assert conn.sock is not None
        res["sport"] = conn.sock.getsockname()[1]
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace").strip()
        res["server"] = resp.getheader("X-Server") or body
        res["ok"] = resp.status == 200
    except (OSError, http.client.HTTPException) as e:
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    return res


def big_once(url: str, nbytes: int, rate: float = 0.0, *, timeout: float = 10.0,
             deadline: float = 120.0, progress: bool = False) -> dict[str, object]:
    """Download /big?bytes=N, hash it as it arrives; `rate` (bytes/s) throttles reading.  With `progress`,
    a first JSON line {"started": true, "server", "sport"} is printed as soon as the headers arrive."""
    host, port, _ = _split(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    res: dict[str, object] = {"server": "", "bytes": 0, "sha256": "", "ok": False, "error": "", "sport": 0}
    h = hashlib.sha256()
    got = 0
    t0 = time.monotonic()
    try:
        conn.connect()
        assert conn.sock is not None
        res["sport"] = conn.sock.getsockname()[1]
        conn.request("GET", f"/big?bytes={nbytes}", headers={"Connection": "close"})
        resp = conn.getresponse()
        res["server"] = resp.getheader("X-Server") or ""
        if progress:
            print(json.dumps({"started": True, "server": res["server"], "sport": res["sport"]}), flush=True)
        while True:
            chunk = resp.read(65536)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
            now = time.monotonic()
            if now - t0 > deadline:
                raise TimeoutError(f"transfer exceeded {deadline}s")
            if rate > 0:
                ahead = got / rate - (now - t0)
                if ahead > 0:
                    time.sleep(min(ahead, 1.0))
    except (OSError, http.client.HTTPException) as e:
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    res["bytes"] = got
    res["sha256"] = h.hexdigest()
    res["ok"] = got == nbytes and res["sha256"] == pattern_sha256(nbytes)
    res["seconds"] = round(time.monotonic() - t0, 3)
    return res


def udp_once(host: str, port: int, payload: bytes, timeout: float = 2.0) -> dict[str, object]:
    res: dict[str, object] = {"server": "", "sport": 0, "ok": False, "error": ""}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((host, port))
            res["sport"] = s.getsockname()[1]
            s.send(payload)
            data = s.recv(2048)
            name, _, echo = data.partition(b" ")
            res["server"] = name.decode(errors="replace")
            res["ok"] = echo == payload
        except OSError as e:
            res["error"] = f"{type(e).__name__}: {e}"
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lb.lab.client", description="bounded lab traffic, JSON out")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("get")
    g.add_argument("url")
    g.add_argument("--count", type=int, default=1)
    g.add_argument("--timeout", type=float, default=3.0)
    g.add_argument("--source", default="", help="client address to connect from (one of the client's own)")
    b = sub.add_parser("big")
    b.add_argument("url")
    b.add_argument("--bytes", type=int, required=True)
    b.add_argument("--rate", type=float, default=0.0)
    b.add_argument("--deadline", type=float, default=120.0)
    b.add_argument("--progress", action="store_true")
    u = sub.add_parser("udp")
    u.add_argument("target")
    u.add_argument("--count", type=int, default=1)
    w = sub.add_parser("wait")
    w.add_argument("url")
    w.add_argument("--tries", type=int, default=40)
    w.add_argument("--interval", type=float, default=0.25)
    args = ap.parse_args(argv)

    if args.cmd == "get":
        count = max(0, min(args.count, 100_000))
        for i in range(count):
            print(json.dumps({"i": i, **get_once(args.url, args.timeout, args.source)}), flush=True)
        return 0
    if args.cmd == "big":
        print(json.dumps(big_once(args.url, args.bytes, args.rate, deadline=args.deadline,
                                   progress=args.progress)), flush=True)
        return 0
    if args.cmd == "udp":
        host, _, port = args.target.rpartition(":")
        for i in range(max(0, min(args.count, 100_000))):
            print(json.dumps({"i": i, **udp_once(host, int(port), f"ping {i}".encode())}), flush=True)
        return 0
    for _ in range(max(1, min(args.tries, 1000))):
        r = get_once(args.url, timeout=1.0)
        if r["ok"]:
            print(json.dumps(r), flush=True)
            return 0
        time.sleep(args.interval)
    print(json.dumps(r), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
