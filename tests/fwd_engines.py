"""The two packet engines behind one small interface, for the packet tests (fixtures, parity) and the bench.

- `CEngine`: lb.core.core.Core + lb.core.batch.PacketBatch -> lb_process_batch.
- `PyEngine`: lb.engine.python.PythonEngine (the twins).
Both take `(frame, in_port)` pairs and give `lb.engine.python.Result`s, and count the same counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address

from lb import model
from lb.core.batch import PacketBatch, process_batch, reason_counts
from lb.core.core import Core
from lb.engine.python import PythonEngine, Result
from lb.fwd.parse import Reason, Verdict


class CEngine:
    """The C core with the configuration calls of PythonEngine."""

    name = "c"

    def __init__(self, conn_max: int = 65536, rng_seed: int = 1, capacity: int = 256) -> None:
        self.core = Core(conn_max=conn_max, rng_seed=rng_seed)
        self.capacity = capacity
        self._batches: dict[int, PacketBatch] = {}

    def add_service(self, svc: model.Service) -> None:
        self.core.add_service(svc)

    def add_dest(self, key: model.ServiceKey, dest: model.Dest) -> None:
        self.core.add_dest(key, dest)

    def del_dest(self, key: model.ServiceKey, dkey: model.DestKey) -> None:
        self.core.del_dest(key, dkey)

    def set_port(self, port: int, mac: bytes, ip4: IPv4Address | None, mtu: int) -> None:
        self.core.set_port(port, mac, ip4, mtu)

    def set_nexthop(self, key: model.ServiceKey, dkey: model.DestKey, port: int, mac: bytes) -> None:
        for d in self.core.dest_infos(key):
            if d.dest.key == dkey:
                self.core.set_nexthop(d.id, port, mac)
                return
        raise KeyError(dkey)

    def batch(self, stride: int) -> PacketBatch:
        b = self._batches.get(stride)
        if b is None:
            b = self._batches[stride] = PacketBatch(self.capacity, stride)
        return b

    def process(self, frames: Sequence[tuple[bytes, int]], now_ns: int, stride: int = 2048) -> list[Result]:
        out: list[Result] = []
        b = self.batch(stride)
        for i in range(0, len(frames), self.capacity):
            b.fill(frames[i : i + self.capacity])
            process_batch(self.core, b, now_ns)
            out.extend(
                Result(Verdict(v), Reason(r), port if v == Verdict.TX else 0, f) for v, r, port, f in b
            )
        return out

    def reason_counts(self) -> dict[str, int]:
        return reason_counts(self.core)

    def stats(self) -> dict[model.ServiceKey, model.Stats]:
        return {s.service.key: s.stats for s in self.core.services()}


class PyEngine(PythonEngine):
    """The Python twin engine."""

    name = "py"


def make(name: str, **kw: int) -> CEngine | PyEngine:
    return CEngine(**kw) if name == "c" else PyEngine(**kw)
