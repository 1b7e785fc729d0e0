"""`--engine python`: the run loop over the Python twin data path (lb/engine/python.py).

The configuration is still loaded and validated by ConfigState on a C `Core`, which stays the model view
(services, dests and their ids for the next-hop resolver).  `PyEngineCore` mirrors that configuration into a
`PythonEngine` once, at start, and routes what the loop does to the core (ports, next hops, ticks) to both.
Frames are processed one at a time by the twin (`process`), which is the point of this engine: every step of
a packet's way is plain Python to read and to step through.  Later control-socket changes are not mirrored,
so `lb run --engine python` serves no control socket.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from lb import model
from lb.io.loop import VERDICT_DROP, VERDICT_PASS, VERDICT_TX


class PyEngineCore:
    """Core-like facade: the C core's view, the Python engine's packets."""

    def __init__(self, core: Any) -> None:
        from lb.engine.python import PythonEngine  # noqa: PLC0415 - optional at import time of lb.io

        self.core = core
        self.engine = PythonEngine(conn_max=getattr(core, "conn_max", 65536))
        self.ids: dict[int, tuple[model.ServiceKey, model.DestKey]] = {}
        for st in core.services():
            self.engine.add_service(st.service)
            # the kernel's list is newest first; add oldest first so that both lists end up alike
            for d in reversed(core.dest_infos(st.service.key)):
                self.engine.add_dest(st.service.key, d.dest)
                self.ids[d.id] = (st.service.key, d.dest.key)

    # the view (model) comes from the C core
    def services(self) -> list[model.ServiceStatus]:
        return self.core.services()  # type: ignore[no-any-return]

    def dest_infos(self, key: model.ServiceKey) -> list[Any]:
        return self.core.dest_infos(key)  # type: ignore[no-any-return]

    def set_port(self, port: int, mac: bytes, ip4: IPv4Address | None, mtu: int) -> None:
        self.core.set_port(port, mac, ip4, mtu)
        self.engine.set_port(port, mac, ip4, mtu)

    def set_nexthop(self, dest_id: int, port: int, mac: bytes) -> None:
        self.core.set_nexthop(dest_id, port, mac)
        key, dkey = self.ids[dest_id]
        self.engine.set_nexthop(key, dkey, port, mac)

    def tick(self, now_ns: int) -> None:
        self.core.tick(now_ns)
        self.engine.table.expire(now_ns)

    def process(self, frame: bytearray, in_port: int, now_ns: int) -> tuple[int, int, int]:
        """One frame through the twin; the frame is replaced by what leaves (TX)."""
        res = self.engine.process([(bytes(frame), in_port)], now_ns)[0]
        verdict = int(res.verdict)
        if verdict == VERDICT_TX:
            frame[:] = res.frame
            return VERDICT_TX, res.out_port, len(res.frame)
        return (VERDICT_PASS if verdict == VERDICT_PASS else VERDICT_DROP), in_port, len(frame)
