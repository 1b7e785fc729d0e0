"""The teaching tools' adapter to the C data plane: one frame at a time through lb_process_batch.

A batch of one (the frame copied into a 2048-byte slot, as lb/io/loop.py lays out its slabs), the core
configured through `lb.core.core.Core` exactly as `lb run` configures it (services, dests, ports, next hops),
and the connection table read back with lb_conn_dump.  Slow per frame, which does not matter here: `lb
explain` sends a dozen frames.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from lb import model
from lb.core.core import Core
from lb.teach.engine import ConnView, DestLoad, PortCfg, Result
from lb.teach.pcap import mac_bytes

_STRIDE = 2048
_VERDICTS = {0: "DROP", 1: "TX", 2: "PASS"}


def usable() -> bool:
    from lb.core._ffi import lib  # noqa: PLC0415

    return hasattr(lib, "lb_process_batch") and hasattr(lib, "lb_conn_dump")


def teach_datapath() -> CDatapath:
    return CDatapath()


class CDatapath:
    """`lb.teach.engine.Datapath` over the C core."""

    name = "c"
    source = "the C core (csched/src/process.c, xmit_*.c via lb_process_batch)"

    def __init__(self) -> None:
        self.core = Core(conn_max=4096, svc_max=8, dest_max=64)
        self.ffi, self.lib = self.core.ffi, self.core.lib
        self.key: model.ServiceKey | None = None
        ffi = self.ffi
        self._slab = bytearray(_STRIDE)
        self._c_slab = ffi.from_buffer(self._slab)
        self._len = ffi.new("uint16_t[1]")
        self._in_port = ffi.new("uint8_t[1]")
        self._out_port = ffi.new("uint8_t[1]")
        self._verdict = ffi.new("uint8_t[1]")
        self._reason = ffi.new("uint8_t[1]")
        self._batch = ffi.new("struct lb_batch *", {
            "slab": self._c_slab, "stride": _STRIDE, "n": 1, "len": self._len, "in_port": self._in_port,
            "out_port": self._out_port, "verdict": self._verdict, "reason": self._reason})

    def setup(self, service: model.Service, dests: Sequence[model.Dest], ports: Sequence[PortCfg],
              nexthops: Sequence[tuple[int, str]]) -> None:
        for i, p in enumerate(ports):
            self.core.set_port(i, mac_bytes(p.mac), IPv4Address(p.ip), p.mtu)
        self.core.add_service(service)
        self.key = service.key
        for d in dests:
            self.core.add_dest(service.key, d)
        infos = self.core.dest_infos(service.key)
        by_addr = {(str(info.dest.addr), info.dest.port): info.id for info in infos}
        for d, (port, mac) in zip(dests, nexthops, strict=True):
            self.core.set_nexthop(by_addr[(str(d.addr), d.port)], port, mac_bytes(mac))

    def process(self, frame: bytes, in_port: int, now_ns: int) -> Result:
        n = len(frame)
        self._slab[:n] = frame
        self._len[0] = n
        self._in_port[0] = in_port
        rc = self.lib.lb_process_batch(self.core.ptr, self._batch, now_ns)
        if rc < 0:
            raise OSError(-rc, "lb_process_batch")
        reason = self.ffi.string(self.lib.lb_reason_name(self._reason[0])).decode()
        out = bytes(self._slab[:self._len[0]])
        return Result(_VERDICTS.get(self._verdict[0], "DROP"), reason, int(self._out_port[0]), out)

    def dest_loads(self) -> list[DestLoad]:
        assert self.key is not None
        return [DestLoad(str(i.dest.addr), i.dest.port, i.dest.weight, i.activeconns, i.inactconns,
                         i.overloaded) for i in self.core.dest_infos(self.key)]

    def conn(self, caddr: str, cport: int, vaddr: str, vport: int, now_ns: int) -> ConnView | None:
        ffi, lib = self.ffi, self.lib
        cursor = ffi.new("uint64_t *", 0)
        buf = ffi.new("struct lb_conn_info[64]")
        while True:
            n = lib.lb_conn_dump(self.core.ptr, cursor, buf, 64, now_ns)
            if n == 0:
                return None
            for i in range(n):
                c = buf[i]
                if c.flags & lib.LB_CONNF_TEMPLATE:
                    continue
                flow = (_addr(c.caddr, c.af), c.cport, _addr(c.vaddr, c.af), c.vport)
                if flow == (caddr, cport, vaddr, vport):
                    state = ffi.string(lib.lb_conn_state_name(c.proto, c.state)).decode()
                    return ConnView(state, model.Fwd(c.fwd).ipvsadm_name, _addr(c.daddr, c.af), c.dport,
                                    c.timeout_s)


def _addr(field: Any, af: int) -> str:
    raw = bytes(field)
    return str(IPv6Address(raw) if af == socket.AF_INET6 else IPv4Address(raw[:4]))
