"""A naive Python balancer for the lab's DR and TUN modes (`lb lab up --balancer py`).

It exists to prove the DR/TUN topologies without `lb run` and as the "naive Python forwarder" the
benchmarks compare against.  One AF_PACKET socket on the balancer's link receives copies of frames; a frame
to VIP:port (TCP or UDP) is given to a real server chosen by a stable hash of (proto, saddr, sport), weighted
by repeating servers in a bucket list (a per-flow choice, like sh with the port, so a TCP connection never
changes server):
- DR: only the Ethernet header changes (dst = the server's MAC, src = ours) and the frame goes back out;
- TUN: the whole IP packet is sent through a raw IPIP socket to the RIP (the kernel adds the outer header,
  outer src = our address, outer dst = RIP).
The kernel of the balancer namespace drops its own copy (forwarding off, VIP not local).
"""

from __future__ import annotations

import argparse
import ipaddress
import select
import signal
import socket
import sys
import zlib
from types import FrameType

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0


def parse_server(text: str) -> tuple[str, str, int]:
    """RIP[,MAC][*WEIGHT] -> (rip, mac, weight)."""
    text, _, w = text.partition("*")
    rip, _, mac = text.partition(",")
    return rip, mac, int(w or 1)


def buckets(servers: list[tuple[str, str, int]]) -> list[int]:
    """Server index per hash bucket, each repeated by its weight (weight 0 = never chosen)."""
    return [i for i, (_, _, w) in enumerate(servers) for _ in range(max(0, w))]


def flow_key(frame: bytes, vip: bytes, ports: set[int]) -> bytes | None:
    """(proto, saddr, sport) of a TCP/UDP frame to VIP:port, else None."""
    if len(frame) < 14 + 20 + 4 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return None
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    if proto not in (6, 17) or frame[30:34] != vip or len(frame) < 14 + ihl + 4:
        return None
    l4 = 14 + ihl
    if int.from_bytes(frame[l4 + 2:l4 + 4], "big") not in ports:
        return None
    return bytes([proto]) + frame[26:30] + frame[l4:l4 + 2]


class StopError(Exception):
    """Raised by the signal handler."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise StopError


def run(mode: str, iface: str, vip: str, ports: set[int], servers: list[tuple[str, str, int]]) -> int:
    table = buckets(servers)
    vip_b = ipaddress.IPv4Address(vip).packed
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    rx.bind((iface, ETH_P_IP))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    with open(f"/sys/class/net/{iface}/address", encoding="ascii") as f:
        own_mac = bytes.fromhex(f.read().strip().replace(":", ""))
    macs = [bytes.fromhex(m.replace(":", "")) if m else b"" for _, m, _ in servers]
    tx: socket.socket | None = None
    if mode == "tun":
        tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
        tx.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
    sent = [0] * len(servers)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"pyfwd {mode} on {iface}: {vip} ports {sorted(ports)} -> {[s[0] for s in servers]}", flush=True)
    try:
        while True:
            ready, _, _ = select.select([rx], [], [], 1.0)
            if not ready:
                continue
            frame, addr = rx.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING or not table:
                continue
            key = flow_key(frame, vip_b, ports)
            if key is None:
                continue
            i = table[zlib.crc32(key) % len(table)]
            if tx is not None:
                total = int.from_bytes(frame[16:18], "big")
                tx.sendto(frame[14:14 + total], (servers[i][0], 0))
            else:
                rx.send(macs[i] + own_mac + frame[12:])
            sent[i] += 1
    except StopError:
        pass
    finally:
        counts = " ".join(f"{s[0]}={n}" for s, n in zip(servers, sent, strict=True))
        print(f"pyfwd: sent {counts}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lb.lab.pyfwd", description="naive Python DR/TUN balancer")
    ap.add_argument("--mode", choices=("dr", "tun"), required=True)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, action="append", required=True)
    ap.add_argument("--server", action="append", required=True, help="RIP[,MAC][*WEIGHT]")
    args = ap.parse_args(argv)
    return run(args.mode, args.iface, args.vip, set(args.port), [parse_server(s) for s in args.server])


if __name__ == "__main__":
    sys.exit(main())
