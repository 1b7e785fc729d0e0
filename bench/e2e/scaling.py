"""Scaling of the C data path: packets/s and new connections/s as services, dests and connections grow.

    .venv/bin/python bench/e2e/scaling.py [--quick] [--reps 3] [--out FILE]

No namespaces and no root: the curve is the C core's own (`lb_process_batch` on batches of 256 frames,
timed around the call only), so it shows what grows with the configuration and what does not, free of the
lab's veth and AF_PACKET costs (those are in run.py / tcp.py).  Frames are 60-byte Ethernet + IPv4 + UDP
datagrams to VIP:9000 on DR services (the rewrite is a MAC swap, so the figure is lookup + schedule cost).

Three sweeps, each point measured --reps times (a fresh core per point; new flows per repetition):
- services  1 / 100 / 1 000 / 10 000 UDP services (2 dests each, rr), traffic spread over all of them;
- dests     1 / 10 / 100 / 1 000 dests on one service, with rr (O(1) pick) and wlc (a scan of the dests,
            as the kernel's ip_vs_wlc does), the new-connection rate is where the scheduler shows;
- conns     10^3 / 10^4 / 10^5 / 10^6 established connections (table sized 2x), then established pps over
            all of them in table-unfriendly order (the cache misses of a big table).
`new_conn_per_s` = first packet of a flow (miss, schedule, conn insert); `pps` = packets of established flows.
`--quick` stops the sweeps at 1 000 services, 100 dests and 10^5 connections.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lb import model  # noqa: E402
from lb.core.batch import VERDICT_TX, PacketBatch, process_batch  # noqa: E402
from lb.core.core import Core  # noqa: E402

STRIDE = 128
BATCH = 256
FRAME = 60
LB_MAC = bytes.fromhex("020000000100")
CLIENT_MAC = bytes.fromhex("020000000002")
LB_IP = IPv4Address("10.0.0.1")
VIP_BASE = int(IPv4Address("10.100.0.0"))
RIP_BASE = int(IPv4Address("10.0.1.0"))
UDP_PORT = 9000
NOW = 1_000_000_000


def ip_csum(hdr: bytes) -> int:
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(saddr: int, daddr: int, sport: int) -> bytes:
    """One 60-byte UDP datagram (checksum 0 = none, allowed in IPv4), padded to the slot stride."""
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 46, 0, 0x4000, 64, 17, 0, saddr, daddr)
    ip = ip[:10] + struct.pack("!H", ip_csum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", sport, UDP_PORT, 26, 0)
    f = LB_MAC + CLIENT_MAC + b"\x08\x00" + ip + udp + bytes(18)
    return f + bytes(STRIDE - len(f))


def flows(n: int, rep: int, vips: list[int]) -> bytes:
    """n distinct flows (client address x source port) of repetition `rep`, round robin over `vips`."""
    out = bytearray()
    base = int(IPv4Address("11.0.0.0")) + (rep << 20)
    for i in range(n):
        # spread consecutive flows over addresses and ports (Knuth's multiplicative step)
        k = (i * 2654435761) & 0xFFFFFFFF
        out += frame(base + (k % 4093), vips[i % len(vips)], 1024 + (i % 60000))
    return bytes(out)


def make_core(n_svc: int, n_dest: int, sched: str, conn_max: int) -> tuple[Core, list[int]]:
    core = Core(conn_max=conn_max, svc_max=max(256, n_svc), dest_max=max(4096, n_svc * n_dest))
    core.set_port(0, LB_MAC, LB_IP, 1500)
    vips = []
    for s in range(n_svc):
        vip = VIP_BASE + s
        key = model.ServiceKey(model.Proto.UDP, IPv4Address(vip), UDP_PORT)
        core.add_service(model.Service(key, sched=sched))
        for d in range(n_dest):
            core.add_dest(key, model.Dest(IPv4Address(RIP_BASE + d), UDP_PORT, model.Fwd.DROUTE, 1))
        for info in core.dest_infos(key):
            core.set_nexthop(info.id, 0, bytes.fromhex("0200000a") + struct.pack("!H", info.id & 0xFFFF))
        vips.append(vip)
    return core, vips


def run_frames(core: Core, data: bytes, batch: PacketBatch) -> float:
    """Process every frame of `data` in batches; returns packets per second of time inside the C call."""
    n = len(data) // STRIDE
    lens = batch.lens
    for i in range(BATCH):
        lens[i] = FRAME
    slab = batch.slab
    spent = 0
    tx = 0
    clock = time.perf_counter_ns
    for off in range(0, n, BATCH):
        k = min(BATCH, n - off)
        slab[: k * STRIDE] = data[off * STRIDE : (off + k) * STRIDE]
        batch.c.n = k
        t0 = clock()
        tx += process_batch(core, batch, NOW)
        spent += clock() - t0
    if tx != n:
        verdicts = bytes(batch.verdict[: batch.n])
        raise RuntimeError(f"only {tx} of {n} frames were forwarded (last verdicts {verdicts[:8]!r}, "
                           f"TX={VERDICT_TX})")
    return n * 1e9 / spent


def point(n_svc: int, n_dest: int, sched: str, n_flows: int, reps: int, conn_max: int) -> dict[str, Any]:
    core, vips = make_core(n_svc, n_dest, sched, conn_max)
    batch = PacketBatch(BATCH, STRIDE)
    new, est = [], []
    for r in range(reps):
        data = flows(n_flows, r, vips)
        new.append(round(run_frames(core, data, batch)))   # every packet opens a connection
        est.append(round(run_frames(core, data, batch)))   # the same flows again: table hits
    return {"services": n_svc, "dests": n_dest, "sched": sched, "flows": n_flows,
            "new_conn_per_s": new, "pps": est}


def sweep(quick: bool, reps: int, log: Callable[[str], None] = print) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"services": [], "dests": [], "conns": []}
    svc_points = [1, 100, 1000] if quick else [1, 100, 1000, 10000]
    dest_points = [1, 10, 100] if quick else [1, 10, 100, 1000]
    conn_points = [1000, 10000, 100000] if quick else [1000, 10000, 100000, 1000000]
    n = 16384 if quick else 65536
    for s in svc_points:
        p = point(s, 2, "rr", n, reps, conn_max=(reps + 1) * n)
        out["services"].append(p)
        log(f"  services {s:>6}: new conn/s {p['new_conn_per_s']}  pps {p['pps']}")
    for sched in ("rr", "wlc"):
        for d in dest_points:
            p = point(1, d, sched, n, reps, conn_max=(reps + 1) * n)
            out["dests"].append(p)
            log(f"  dests {d:>5} {sched}: new conn/s {p['new_conn_per_s']}  pps {p['pps']}")
    for c in conn_points:
        # one set of flows (building 10^6 frames is the slow part), established pps measured reps times
        core, vips = make_core(1, 2, "rr", 2 * c)
        batch = PacketBatch(BATCH, STRIDE)
        data = flows(c, 0, vips)
        p = {"services": 1, "dests": 2, "sched": "rr", "flows": c,
             "new_conn_per_s": [round(run_frames(core, data, batch))],
             "pps": [round(run_frames(core, data, batch)) for _ in range(reps)]}
        out["conns"].append(p)
        log(f"  conns {c:>8}: new conn/s {p['new_conn_per_s']}  pps {p['pps']}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sweeps (CI smoke)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "scaling.json"))
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    res = sweep(args.quick, args.reps)
    doc = {"kind": "scaling", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "kernel": platform.release(), "cpus": os.cpu_count(), "quick": args.quick, "reps": args.reps,
           "batch": BATCH, "frame_bytes": FRAME, "wall_s": round(time.monotonic() - t0, 1), "results": res}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
