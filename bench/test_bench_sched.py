"""Test that the schedulers pick fast enough, and measure picks per second, C vs the Python twin.

- C: one lb_sched_batch call of 4096 flows per round, for every scheduler of the registry at 8, 64 and
  1024 dests; `extra_info["picks_per_s"]` holds the rate (target: >= 10 M/s for rr/wrr/sh/mh).
- Python twin: 256 flows per round, 7 rounds after a warm-up (it is for reading, not speed); the C/Python
  ratio is the quotient of the two picks_per_s (target: C >= 50x).
- picks_per_s is taken from the median round, not the mean: on a shared machine a few rounds stalled
  by other processes drag the mean of a 30 us call far down (means of 2x the median were seen).
Run: `.venv/bin/pytest bench/test_bench_sched.py --benchmark-group-by=param:n_dests` (smoke:
`--benchmark-min-rounds=1 --benchmark-max-time=0.05`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from lb.sched import names
from lb.sched.ref import SCHEDULERS

C_FLOWS = 4096
PY_FLOWS = 256
PY_ROUNDS = 7  # the median of 7 (after a warm-up round): 3 let one slow round move the C/Python ratio by 1.5x
SIZES = [8, 64, 1024]


@pytest.mark.parametrize("n_dests", SIZES)
@pytest.mark.parametrize("sched", names())
def test_c_picks(benchmark: BenchmarkFixture, c_bench: Callable[[str, int, int], Any], sched: str,
                 n_dests: int) -> None:
    b = c_bench(sched, n_dests, C_FLOWS)
    benchmark.group = f"c sched {n_dests} dests"
    got = benchmark(b.run)
    assert got == C_FLOWS
    benchmark.extra_info["picks_per_s"] = round(C_FLOWS / benchmark.stats.stats.median)
    benchmark.extra_info["engine"] = "c"


@pytest.mark.parametrize("n_dests", SIZES)
@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_python_picks(benchmark: BenchmarkFixture, py_bench: Callable[[str, int, int], Any], sched: str,
                      n_dests: int) -> None:
    b = py_bench(sched, n_dests, PY_FLOWS)
    benchmark.group = f"python sched {n_dests} dests"
    got = benchmark.pedantic(b.run, rounds=PY_ROUNDS, iterations=1, warmup_rounds=1)
    assert got == PY_FLOWS
    benchmark.extra_info["picks_per_s"] = round(PY_FLOWS / benchmark.stats.stats.median)
    benchmark.extra_info["engine"] = "python"
