"""Benchmark: ns per packet through lb_process_batch for NAT packets of established connections.

Batch sizes 1, 8, 64, 256 (the cffi boundary cost spreads over the batch).  Each batch holds 64-byte TCP ACK
segments of distinct established NAT connections (SYN / SYN-ACK / ACK done beforehand), so every packet is a
conn-table hit, a state step, a DNAT with incremental checksums and a MAC rewrite.  The slab is restored from
a pristine copy in pytest-benchmark's untimed `setup` before each round (the rewrite is in place).  Read
`extra_info["ns_per_pkt"]` (mean / batch size) in the JSON, or divide the printed mean by the batch size.
"""

from __future__ import annotations

import sys
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import packets as P  # noqa: N812 - the shared test packet table
from fwd_engines import CEngine
from scapy.layers.inet import IP, TCP

from lb.core.batch import PacketBatch, process_batch

STRIDE = 128


def _client(i: int) -> str:
    return str(IPv4Address(int(IPv4Address("10.2.0.0")) + i))


def _established(n: int) -> tuple[CEngine, list[bytes]]:
    eng = CEngine(conn_max=65536, capacity=256)
    P.configure(eng)
    syn, synack, ack = [], [], []
    for i in range(n):
        cip = _client(i)
        syn.append(
            (bytes(P.client() / IP(src=cip, dst=P.VIP) / TCP(sport=40000, dport=P.NAT_PORT, flags="S")), 0)
        )
        synack.append(
            (
                bytes(
                    P.from_rs1() / IP(src=P.RIP1, dst=cip) / TCP(sport=P.NAT_RPORT, dport=40000, flags="SA")
                ),
                1,
            )
        )
        ack.append(
            bytes(
                P.client() / IP(src=cip, dst=P.VIP) / TCP(sport=40000, dport=P.NAT_PORT, flags="A") / bytes(6)
            )
        )
    eng.process(syn, 0)
    eng.process(synack, 0)
    eng.process([(a, 0) for a in ack], 0)
    return eng, ack


@pytest.mark.parametrize("batch", [1, 8, 64, 256])
def test_bench_nat_established(benchmark: Any, batch: int) -> None:
    eng, frames = _established(batch)
    b = PacketBatch(batch, STRIDE)
    b.fill((f, 0) for f in frames)
    pristine = bytes(b.slab)
    lens = b.lens.tobytes()

    def restore() -> None:
        b.slab[:] = pristine
        b.lens[:] = type(b.lens)("H", lens)

    def run() -> int:
        return process_batch(eng.core, b, 1_000_000_000)

    tx = benchmark.pedantic(run, setup=restore, rounds=2000 if batch < 64 else 500, warmup_rounds=10)
    assert tx == batch
    assert all(v == 1 for v in b.verdict[:batch])
    benchmark.extra_info["batch"] = batch
    benchmark.extra_info["ns_per_pkt"] = benchmark.stats.stats.mean * 1e9 / batch
