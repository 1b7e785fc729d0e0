"""`lb demo`: the whole story for a newcomer, in under a minute, leaving nothing behind.

For NAT, DR and TUN in turn: build the lab, send 30 real HTTP requests from the client namespace through the
VIP, print how they were spread over the real servers, and one screen of what the balancer rewrote in that
mode (captured with tcpdump on the balancer's links, one connection followed hop by hop), then tear down.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from lb.lab import capture
from lb.lab.lab import Lab, LabSpec
from lb.lab.topology import Endpoint, Topology

WHAT = {
    "nat": "NAT (-m): the balancer rewrites the destination VIP -> RIP on the way in and the source "
           "RIP -> VIP on the way out; replies pass through it.",
    "dr": "DR (-g): the balancer only changes the destination MAC; the IP packet is untouched and the real "
          "server (VIP on lo) answers the client directly.",
    "tun": "TUN (-i): the balancer wraps the packet in IPIP to the real server, which unwraps it "
           "(lb tun-decap) and answers the client directly.",
}


def capture_points(topo: Topology) -> list[tuple[Endpoint, Endpoint]]:
    """(balancer interface, where to capture it) for each balancer link: requests come in on client_side
    and leave on server_side (one link in DR/TUN); captured at the far end of each veth."""
    ends = [topo.client_side]
    if topo.server_side != topo.client_side:
        ends.append(topo.server_side)
    return [(e, topo.peer_of(e)) for e in ends]


def run_mode(spec: LabSpec, requests: int, out: Callable[[str], None]) -> dict[str, int]:
    t0 = time.monotonic()
    with Lab.up(spec) as lab:
        topo = lab.topo
        out(f"\n=== {topo.mode.upper()} === {WHAT[topo.mode]}")
        out(lab.map_text())
        points = capture_points(topo)
        second = lab.capture(points[-1][1]) if len(points) > 1 else _null()
        with lab.capture(points[0][1]) as c0, second as c1:
            results = lab.get(requests)
        dist = Counter(str(r["server"]) for r in results if r["ok"])
        failed = sum(1 for r in results if not r["ok"])
        out(f"\n{requests} requests from {lab.ns('client')} to {lab.url()}: {failed} failed")
        for server in topo.servers:
            n = dist.get(server, 0)
            out(f"  {server:<7} {n:>3}  {'#' * n}")
        hops = [capture.Hop(f"{p.node}:{p.dev}", topo.mac_of(p), c.frames)
                for (p, _), c in zip(points, [c0, c1] if c1 is not None else [c0], strict=True)]
        port = capture.first_syn_port(hops[0].frames, topo.vip)
        out(f"\nWhat the balancer saw and sent for the connection from client port {port}:")
        for line in capture.rewrite_lines(hops, port):
            out(line)
        if topo.mode in ("dr", "tun"):
            replies = sum(1 for h in hops for f in h.frames
                          if f.ip.innermost().src == topo.vip and f.ip.innermost().sport == spec.port)
            out(f"  reply frames (src {topo.vip}:{spec.port}) seen on the balancer's link: {replies}")
        out(f"({topo.mode.upper()} lab built, used and torn down in {time.monotonic() - t0:.1f}s)")
    return dict(dist)


class _null:  # noqa: N801 (a tiny context manager used like a function)
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def run(modes: list[str], servers: int, balancer: str, requests: int, name: str, *,
        out: Callable[[str], None] = print) -> int:
    t0 = time.monotonic()
    for mode in modes:
        run_mode(LabSpec(mode=mode, servers=servers, balancer=balancer, name=name), requests, out)
    out(f"\ndemo finished in {time.monotonic() - t0:.1f}s; nothing left behind (lb lab status: no labs)")
    return 0
