"""Benchmarks of the connection table (csched/src/conn.c), driven through the raw batch calls.

- insert: lb_conn_batch_schedule of N new UDP flows into an empty table of capacity N (rr over 8 dests);
- lookup hit / miss: lb_conn_batch_lookup over the N flows in shuffled order / over N unknown flows;
- expire: lb_conn_expire_now reaping all N entries after their timeout;
- memory: sizeof(struct lb_conn) and everything a table of 10 M entries allocates (target <= 1.3 GiB).
Sizes 10^3..10^6; 10^7 only with LB_BENCH_CONN_10M=1 (1.4 GB of RAM and tens of seconds).  Rates are in
`extra_info` (entries/s, from the median round: robust to rounds stalled by other processes on a
shared machine); the target is >= 5 M lookups/s at 1 M entries.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable
from typing import Any

import pytest

from lb import model
from lb.core.conn import ConnTable
from lb.core.core import Core

SIZES = [10**3, 10**4, 10**5, 10**6] + ([10**7] if os.environ.get("LB_BENCH_CONN_10M") else [])
VIP = bytes([10, 255, 0, 1]) + bytes(12)
NS = 1_000_000_000
GiB = 1 << 30

# struct lb_flow: af, proto (u16), saddr[16], daddr[16], sport, dport (u16) = 40 bytes
_FLOW = struct.Struct("<HH16s16sHH")


def _flow_bytes(indices: list[int], base: int) -> bytes:
    pack = _FLOW.pack
    return b"".join(pack(2, 17, (base + i).to_bytes(4, "big") + bytes(12), VIP, 1024 + (i & 0x3FFF), 53)
                    for i in indices)


class Table:
    """A core with one UDP service of 8 dests and a prebuilt array of n flows (all distinct clients)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.core = Core(conn_max=n, svc_max=4, dest_max=16)
        key = model.ServiceKey(model.Proto.UDP, model.parse_addr("10.255.0.1"), 53)
        self.core.add_service(model.Service(key, "rr"))
        for i in range(8):
            self.core.add_dest(key, model.Dest(model.parse_addr(f"10.1.0.{i + 1}"), 53, model.Fwd.DROUTE, 1))
        self.table = ConnTable(self.core)
        ffi = self.core.ffi
        base = int(model.parse_addr("11.0.0.0"))
        self.flows = ffi.from_buffer("struct lb_flow[]", bytearray(_flow_bytes(list(range(n)), base)))
        order = list(range(n))
        random.Random(1).shuffle(order)
        self.shuffled = ffi.from_buffer("struct lb_flow[]", bytearray(_flow_bytes(order, base)))
        self.missing = ffi.from_buffer("struct lb_flow[]", bytearray(_flow_bytes(order, base + (1 << 26))))
        self.out = ffi.new("int32_t[]", n)

    def fill(self, now: int = NS) -> int:
        lib, ffi = self.core.lib, self.core.ffi
        return int(lib.lb_conn_batch_schedule(self.core.ptr, self.flows, self.n, self.out, ffi.NULL, now))

    def lookup(self, flows: Any) -> int:
        return int(self.core.lib.lb_conn_batch_lookup(self.core.ptr, flows, self.n, self.out, 2 * NS))


_tables: dict[int, Table] = {}


def _filled(n: int) -> Table:
    if n not in _tables:
        _tables.clear()
        t = Table(n)
        assert t.fill() == n
        _tables[n] = t
    return _tables[n]


def _rate(benchmark: Any, n: int) -> None:
    median = benchmark.stats.stats.median if benchmark.stats else 0
    if median:
        benchmark.extra_info["per_second"] = round(n / median)


@pytest.mark.parametrize("n", SIZES)
def test_insert(benchmark: Any, n: int) -> None:
    tables: list[Table] = []

    def setup() -> tuple[tuple[Callable[[], int]], dict[str, Any]]:
        tables.clear()
        _tables.clear()
        tables.append(Table(n))
        return (tables[0].fill,), {}

    created = benchmark.pedantic(lambda fill: fill(), setup=setup, rounds=3 if n <= 10**6 else 1)
    assert created == n
    _rate(benchmark, n)


@pytest.mark.parametrize("n", SIZES)
def test_lookup_hit(benchmark: Any, n: int) -> None:
    t = _filled(n)
    hits = benchmark.pedantic(t.lookup, args=(t.shuffled,), rounds=5, warmup_rounds=1)
    assert hits == n
    _rate(benchmark, n)


@pytest.mark.parametrize("n", SIZES)
def test_lookup_miss(benchmark: Any, n: int) -> None:
    t = _filled(n)
    hits = benchmark.pedantic(t.lookup, args=(t.missing,), rounds=5, warmup_rounds=1)
    assert hits == 0
    _rate(benchmark, n)


@pytest.mark.parametrize("n", SIZES)
def test_expire(benchmark: Any, n: int) -> None:
    tables: list[Table] = []

    def setup() -> tuple[tuple[int], dict[str, Any]]:
        tables.clear()
        _tables.clear()
        t = Table(n)
        t.fill()
        tables.append(t)
        return (n,), {}

    def reap(_: int) -> int:
        return tables[0].table.expire(NS + 301 * NS)

    gone = benchmark.pedantic(reap, setup=setup, rounds=3 if n <= 10**6 else 1)
    assert gone == n
    _rate(benchmark, n)


def test_bytes_per_entry(benchmark: Any) -> None:
    """10 M entries: what the table allocates (pages of the pool are only touched when used)."""
    core = benchmark.pedantic(lambda: Core(conn_max=10**7, svc_max=4, dest_max=16), rounds=1)
    s = ConnTable(core).stats()
    benchmark.extra_info.update(entry_size=s.entry_size, buckets=s.buckets, table_bytes=s.bytes,
                                bytes_per_entry=round(s.bytes / s.capacity, 1))
    assert s.entry_size <= 136
    assert s.bytes <= 1.3 * GiB
