"""Test that the rate estimator computes what the kernel's ip_vs_est.c computes.

- one step folds a 2-second delta in with weight 1/4, scaled by 2^10 (cps/pps) and 2^5 (bps);
- a constant rate converges to the true per-second rate, rounded like ip_vs_read_estimator;
- a rate that stops decays geometrically (3/4 per step) to zero;
- steps happen only every 2 seconds of the clock passed in; a new block starts from its counters;
- zero() and forget() reset / drop blocks.
"""

from __future__ import annotations

from lb import model
from lb.estimator import Estimator, est_read, est_step


def test_single_step_matches_kernel_arithmetic() -> None:
    # 100 connections in 2 s: rate = 100 << 9 = 51200 (50/s scaled by 2^10); avg = 0 + 51200 >> 2
    assert est_step(0, 0, 100, 9) == 12800
    assert est_read(12800, 10, 0x1FF) == 12          # (12800 + 511) >> 10: 12.5 rounds down here
    # bytes: 1_000_000 B in 2 s: rate = 1e6 << 4; avg = rate >> 2
    assert est_step(0, 0, 1_000_000, 4) == 4_000_000
    assert est_read(4_000_000, 5, 0xF) == 125000
    # the shift is arithmetic on a signed value: a falling rate moves the average down
    assert est_step(12800, 100, 100, 9) == 9600


def test_constant_rate_converges() -> None:
    est = Estimator()
    t, conns, pkts, byts = 0.0, 0, 0, 0
    est.sample(t, {"s": model.Stats()})
    for _ in range(60):
        t += 2.0
        conns += 2 * 37
        pkts += 2 * 1500
        byts += 2 * 1_234_567
        est.sample(t, {"s": model.Stats(conns, pkts, pkts // 2, byts, byts // 3)})
    r = est.rates("s")
    assert (r.cps, r.inpps, r.outpps) == (37, 1500, 750)
    assert abs(r.inbps - 1_234_567) <= 1 and abs(r.outbps - 411_522) <= 1


def test_stopped_rate_decays() -> None:
    est = Estimator()
    est.sample(0.0, {"s": model.Stats()})
    est.sample(2.0, {"s": model.Stats(conns=2000)})
    first = est.rates("s").cps
    assert first == 250                               # 1000/s seen once, weight 1/4
    values = []
    for i in range(2, 40):
        est.sample(2.0 * i, {"s": model.Stats(conns=2000)})
        values.append(est.rates("s").cps)
    assert values[0] == 187 and values[1] == 141      # 192000 and 144000 scaled: x 3/4 per step
    assert values == sorted(values, reverse=True) and values[-1] == 0


def test_steps_only_every_two_seconds() -> None:
    est = Estimator()
    assert not est.sample(10.0, {"s": model.Stats(conns=500)})     # first sight: base, no step
    assert not est.sample(11.0, {"s": model.Stats(conns=600)})
    assert est.sample(12.0, {"s": model.Stats(conns=600)})
    assert est.rates("s").cps == 12                                  # 100 conns over the step
    assert est.rates("unknown") == model.Rates()


def test_zero_and_forget() -> None:
    est = Estimator()
    est.sample(0.0, {"a": model.Stats(), "b": model.Stats()})
    est.sample(2.0, {"a": model.Stats(conns=100), "b": model.Stats(conns=100)})
    est.zero(lambda k: k == "a")
    assert est.rates("a") == model.Rates() and est.rates("b").cps == 12
    est.sample(4.0, {"a": model.Stats(conns=0), "b": model.Stats(conns=100)})
    assert est.rates("a").cps == 0                  # counters zeroed with the block: no negative spike
    est.forget(lambda k: k == "b")
    assert est.rates("b") == model.Rates()
