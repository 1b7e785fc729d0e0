"""The data plane as the teaching tools drive it: one frame in, one verdict and rewritten frame out.

`lb explain` and `lb trace` never simulate: they push frames through the project's real packet path and show
what it did.  `Datapath` is the small interface they need (configure one service, process a frame, read the
destinations' connection counts and a connection's state); `open_datapath()` returns the best engine that is
installed: the Python twin engine (lb/engine/python.py with lb/fwd/*.py and lb/sched/ref/, the readable code
the parity tests hold byte-identical to the C path), else the C core's batch path (lb_process_batch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lb import model


class EngineUnavailableError(RuntimeError):
    """No packet engine is installed in this build (neither the Python twins nor the C batch path)."""


@dataclass(frozen=True, slots=True)
class PortCfg:
    """One balancer port (link): its MAC, its IPv4 address on the link, the link MTU."""

    name: str
    mac: str
    ip: str
    mtu: int = 1500


@dataclass(frozen=True, slots=True)
class Result:
    """What the data plane did with one frame."""

    verdict: str          # "TX", "DROP", "PASS"
    reason: str           # lb_reason name: "OK", "NO_SERVICE" ...
    out_port: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class DestLoad:
    """A destination's scheduler inputs at one moment."""

    addr: str
    port: int
    weight: int
    activeconns: int
    inactconns: int
    overloaded: bool = False


@dataclass(frozen=True, slots=True)
class ConnView:
    """A connection entry as the data plane holds it."""

    state: str
    fwd: str
    daddr: str
    dport: int
    timeout_s: float


class Datapath(Protocol):
    name: str
    source: str

    def setup(self, service: model.Service, dests: Sequence[model.Dest], ports: Sequence[PortCfg],
              nexthops: Sequence[tuple[int, str]]) -> None:
        """Configure the service, its dests (in `ipvsadm -a` order) and each dest's (port, next-hop MAC)."""

    def process(self, frame: bytes, in_port: int, now_ns: int) -> Result:
        """Run one frame through parse -> lookup -> schedule -> rewrite."""

    def dest_loads(self) -> list[DestLoad]:
        """The service's dests in list order with their connection counts."""

    def conn(self, caddr: str, cport: int, vaddr: str, vport: int, now_ns: int) -> ConnView | None:
        """The connection entry of a client flow to the service, if any."""


#: Engine factories in order of preference: name -> module path of a `teach_datapath()` factory.
#: Each engine module exposes `teach_datapath() -> Datapath` (the adapter lives next to the engine so it
#: moves with its API); a module that is not installed is skipped.
_ENGINES: tuple[tuple[str, str], ...] = (
    ("python", "lb.teach.engine_py"),
    ("c", "lb.teach.engine_c"),
)


def available() -> list[str]:
    """Names of the engines that can run here."""
    out = []
    for name, module in _ENGINES:
        try:
            factory = _factory(module)
        except EngineUnavailableError:
            continue
        if factory is not None:
            out.append(name)
    return out


def _factory(module_name: str) -> Callable[[], Datapath] | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise EngineUnavailableError(str(exc)) from exc
    probe: Callable[[], bool] = getattr(module, "usable", lambda: True)
    if not probe():
        raise EngineUnavailableError(f"{module_name}: engine not built")
    factory: Callable[[], Datapath] = module.teach_datapath
    return factory


def open_datapath(prefer: str | None = None) -> Datapath:
    """A fresh datapath: the named engine ("python" / "c"), or the first one available."""
    errors = []
    for name, module in _ENGINES:
        if prefer and name != prefer:
            continue
        try:
            factory = _factory(module)
        except EngineUnavailableError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if factory is not None:
            return factory()
    raise EngineUnavailableError("no packet engine available (" + "; ".join(errors) + ")")
