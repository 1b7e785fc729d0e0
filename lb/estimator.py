"""The IPVS rate estimator (kernel net/netfilter/ipvs/ip_vs_est.c), for `lbadm -L --rate` and metrics.

Every 2 seconds the kernel takes each stats block's cumulative counters and folds the difference since the
last sample into an exponentially weighted average with weight W = 1/4:

    avg += (rate - avg) >> 2          (signed 64-bit arithmetic shift)

The averages are kept in fixed point so that small rates survive the shifts: connections and packets per
second scaled by 2^10, bytes per second by 2^5.  Because a sample spans 2 seconds, "difference * 2^10 / 2"
is computed as `delta << 9` (and bytes `delta << 4`).  Reading rounds to the nearest unit:
`(avg + 0x1FF) >> 10` and `(avg + 0xF) >> 5` (ip_vs_read_estimator).  Zeroing a stats block resets its
averages and makes the current counters the new base (ip_vs_zero_estimator).

The C core reads no clock; the control plane calls `Estimator.sample(now, counters)` and the estimator
takes a step when 2 seconds have passed since the previous one (the kernel's `mod_timer(+2*HZ)`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lb import model

INTERVAL_S = 2.0
_U64 = (1 << 64) - 1

#: (shift applied to a 2-second delta, shift to unscale, rounding addend) per counter.
_PPS = (9, 10, 0x1FF)
_BPS = (4, 5, 0xF)
_FIELDS = (("conns", _PPS), ("inpkts", _PPS), ("outpkts", _PPS), ("inbytes", _BPS), ("outbytes", _BPS))


def _s64(v: int) -> int:
    v &= _U64
    return v - (1 << 64) if v >> 63 else v


def est_step(avg: int, last: int, now: int, shift: int) -> int:
    """One estimator step for one counter: the new scaled average."""
    rate = _s64(((now - last) & _U64) << shift)
    return _s64(avg + ((rate - avg) >> 2))


def est_read(avg: int, unshift: int, addend: int) -> int:
    """ip_vs_read_estimator for one counter: scaled average → whole units per second."""
    return max(0, (avg + addend) >> unshift)


@dataclass
class _Est:
    last: list[int]
    avg: list[int] = field(default_factory=lambda: [0] * 5)


def _values(s: model.Stats) -> list[int]:
    return [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]


class Estimator:
    """Rate estimators for any number of stats blocks, keyed by anything hashable."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._est: dict[Hashable, _Est] = {}
        self._next_due: float | None = None

    def sample(self, now_s: float, counters: Mapping[Hashable, model.Stats]) -> bool:
        """Offer the current counters; takes an estimation step if one is due.  Returns whether it did."""
        for key, stats in counters.items():
            if key not in self._est:       # a new block starts from its current counters
                self._est[key] = _Est(_values(stats))
        if self._next_due is None:
            self._next_due = now_s + self.interval_s
            return False
        if now_s < self._next_due:
            return False
        self.step(counters)
        self._next_due = now_s + self.interval_s
        return True

    def step(self, counters: Mapping[Hashable, model.Stats]) -> None:
        """One 2-second estimation step (estimation_timer) over the given blocks."""
        for key, stats in counters.items():
            e = self._est.setdefault(key, _Est(_values(stats)))
            now = _values(stats)
            for i, (_name, (shift, _un, _add)) in enumerate(_FIELDS):
                e.avg[i] = est_step(e.avg[i], e.last[i], now[i], shift)
                e.last[i] = now[i]

    def rates(self, key: Hashable) -> model.Rates:
        e = self._est.get(key)
        if e is None:
            return model.Rates()
        vals = [est_read(e.avg[i], un, add) for i, (_n, (_s, un, add)) in enumerate(_FIELDS)]
        return model.Rates(*vals)

    def zero(self, pred: Callable[[Any], bool]) -> None:
        """ip_vs_zero_estimator for matching blocks (their counters were just zeroed)."""
        for key, e in self._est.items():
            if pred(key):
                e.last = [0] * 5
                e.avg = [0] * 5

    def forget(self, pred: Callable[[Any], bool]) -> None:
        """Drop matching blocks (their service or dest is gone)."""
        for key in [k for k in self._est if pred(k)]:
            del self._est[key]
