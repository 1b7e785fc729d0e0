"""The teaching tools' adapter to the Python twin engine (lb/engine/python.py).

The twin engine is the readable data path: lb/fwd/{nat,dr,tun}.py rewrite, lb/sched/ref/ schedules,
lb/conn/ref.py keeps the connection table; the parity tests hold its frames byte-identical to the C core's.
This adapter configures it the way `lb run --engine python` does and hands it one frame at a time.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Any

from lb import model
from lb.teach.engine import ConnView, DestLoad, PortCfg, Result
from lb.teach.pcap import mac_bytes


def usable() -> bool:
    try:
        module = importlib.import_module("lb.engine.python")
    except ModuleNotFoundError:
        return False
    return hasattr(module, "PythonEngine")


def teach_datapath() -> PyDatapath:
    return PyDatapath()


class PyDatapath:
    """`lb.teach.engine.Datapath` over the Python twin engine."""

    name = "python"
    source = "the Python twin engine (lb/engine/python.py with lb/fwd/*.py, lb/sched/ref/, lb/conn/ref.py)"

    def __init__(self) -> None:
        from lb.engine.python import PythonEngine  # noqa: PLC0415 - optional until the twins are installed

        self.eng: Any = PythonEngine(conn_max=4096)
        self.key: model.ServiceKey | None = None

    def setup(self, service: model.Service, dests: Sequence[model.Dest], ports: Sequence[PortCfg],
              nexthops: Sequence[tuple[int, str]]) -> None:
        for i, p in enumerate(ports):
            self.eng.set_port(i, mac_bytes(p.mac), IPv4Address(p.ip), p.mtu)
        self.eng.add_service(service)
        self.key = service.key
        for d in dests:
            self.eng.add_dest(service.key, d)
        for d, (port, mac) in zip(dests, nexthops, strict=True):
            self.eng.set_nexthop(service.key, d.key, port, mac_bytes(mac))

    def process(self, frame: bytes, in_port: int, now_ns: int) -> Result:
        r = self.eng.process([(frame, in_port)], now_ns)[0]
        return Result(r.verdict.name, r.reason.name, int(r.out_port), bytes(r.frame))

    def dest_loads(self) -> list[DestLoad]:
        assert self.key is not None
        svc = self.eng.service(self.key)
        return [DestLoad(str(d.addr), d.port, d.weight, d.activeconns, d.inactconns, d.overloaded)
                for d in svc.dests]

    def conn(self, caddr: str, cport: int, vaddr: str, vport: int, now_ns: int) -> ConnView | None:
        for c in self.eng.table.dump(now_ns):
            if c.template:
                continue
            if (str(c.caddr), c.cport, str(c.vaddr), c.vport) == (caddr, cport, vaddr, vport):
                return ConnView(c.state, model.Fwd(c.fwd).ipvsadm_name, str(c.daddr), c.dport, c.expires_s)
        return None
