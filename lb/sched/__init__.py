"""The schedulers: the C registry as Python sees it (names, accepted -b flags), and the twins in lb.sched.ref.

The C table is built from LB_SCHED_LIST (csched/include/lb_sched.h); nothing here lists schedulers by hand.
The extension is loaded lazily so that the pure-Python twins (lb.sched.ref) import without it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True, slots=True)
class SchedInfo:
    """One scheduler of the C registry."""

    name: str
    flags_ok: int  # SVC_F_SCHED1..3 bits it accepts (ipvsadm -b)


def _ffi_lib() -> tuple[Any, Any]:
    mod = importlib.import_module("lb.core._ffi")
    return mod.ffi, mod.lib


@cache
def c_schedulers() -> tuple[SchedInfo, ...]:
    """Every scheduler compiled into lb._csched, in registry order."""
    ffi, lib = _ffi_lib()
    out = []
    for i in range(lib.lb_sched_count()):
        out.append(SchedInfo(ffi.string(lib.lb_sched_name(i)).decode(), int(lib.lb_sched_flags_ok(i))))
    return tuple(out)


def names() -> list[str]:
    """The C schedulers' names, in registry order."""
    return [s.name for s in c_schedulers()]


def info(name: str) -> SchedInfo | None:
    """The C scheduler called `name`, or None."""
    for s in c_schedulers():
        if s.name == name:
            return s
    return None


__all__ = ["SchedInfo", "c_schedulers", "info", "names"]
