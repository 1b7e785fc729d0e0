"""Keeping `lb run --workers N` in step: worker 0 owns the control socket, the other workers follow it.

Each worker has its own Core (its own connection table, DPVS's per-lcore tables).  Worker 0 serves `lbadm`;
after every change it applied it publishes a snapshot of its whole configuration (services in order, each
with its dests in the kernel's newest-first order, and the protocol timeouts) as one JSON line on a pipe
to each other worker.  A follower polls its pipe between batches, like the control socket, and brings its
own Core to the snapshot with the smallest set of add/edit/delete calls, so connections of dests that stay
are not disturbed (the same calls lbadm would have made).  Snapshots rather than commands: a follower
that lags behind only ever applies the newest state.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from lb import model


def _svc_json(s: model.Service) -> dict[str, Any]:
    k = s.key
    return {"proto": int(k.proto), "addr": str(k.addr), "port": k.port, "fwmark": k.fwmark, "sched": s.sched,
            "flags": s.flags, "timeout": s.timeout, "netmask": s.netmask, "pe_name": s.pe_name}


def _dest_json(d: model.Dest) -> dict[str, Any]:
    return {"addr": str(d.addr), "port": d.port, "fwd": int(d.fwd), "weight": d.weight,
            "u_threshold": d.u_threshold, "l_threshold": d.l_threshold}


def _svc(o: dict[str, Any]) -> model.Service:
    key = model.ServiceKey(model.Proto(o["proto"]), ip_address(o["addr"]), o["port"], o["fwmark"])
    return model.Service(key, o["sched"], o["flags"], o["timeout"], o["netmask"], o["pe_name"])


def _dest(o: dict[str, Any]) -> model.Dest:
    return model.Dest(ip_address(o["addr"]), o["port"], model.Fwd(o["fwd"]), o["weight"], o["u_threshold"],
                      o["l_threshold"])


def snapshot(core: Any, timeouts: model.Timeouts | None = None) -> bytes:
    """The core's configuration as one JSON line."""
    doc: dict[str, Any] = {"services": [
        {"service": _svc_json(st.service), "dests": [_dest_json(d.dest) for d in st.dests]}
        for st in core.services()
    ]}
    if timeouts is not None:
        doc["timeouts"] = [timeouts.tcp, timeouts.tcpfin, timeouts.udp]
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def sync_core(core: Any, snap: dict[str, Any]) -> bool:
    """Bring core to the snapshot; returns whether anything changed."""
    target = [(_svc(x["service"]), [_dest(d) for d in x["dests"]]) for x in snap["services"]]
    current = {st.service.key: st for st in core.services()}
    changed = False
    wanted = {svc.key for svc, _ in target}
    for key in list(current):
        if key not in wanted:
            core.del_service(key)
            changed = True
    for svc, dests in target:
        st = current.get(svc.key)
        if st is None:
            core.add_service(svc)
            have: dict[model.DestKey, model.Dest] = {}
            changed = True
        else:
            if st.service != svc:
                core.edit_service(svc)
                changed = True
            have = {d.dest.key: d.dest for d in st.dests}
        keep = {d.key for d in dests}
        for dkey in have:
            if dkey not in keep:
                core.del_dest(svc.key, dkey)
                changed = True
        for d in reversed(dests):  # the snapshot is newest first; adding oldest first keeps that order
            old = have.get(d.key)
            if old is None:
                core.add_dest(svc.key, d)
                changed = True
            elif old != d:
                core.edit_dest(svc.key, d)
                changed = True
    if "timeouts" in snap:
        from lb.state import set_core_timeouts  # noqa: PLC0415

        set_core_timeouts(core, model.Timeouts(*snap["timeouts"]))
    return changed


class Publisher:
    """Worker 0's side: the write ends of the followers' pipes."""

    def __init__(self, fds: list[int]) -> None:
        self.fds = list(fds)
        for fd in self.fds:
            os.set_blocking(fd, False)
        self.pending: dict[int, bytes] = {}

    def publish(self, core: Any, timeouts: model.Timeouts | None = None) -> None:
        msg = snapshot(core, timeouts)
        for fd in self.fds:
            self.pending[fd] = msg  # a newer snapshot replaces one not yet written
        self.poll()

    def poll(self, budget_s: float = 0.0) -> int:
        del budget_s
        for fd, data in list(self.pending.items()):
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                continue
            except OSError as exc:  # the follower is gone
                if exc.errno == errno.EPIPE:
                    self.pending.pop(fd, None)
                    continue
                raise
            if n == len(data):
                del self.pending[fd]
            else:
                # a partial line: the rest must follow before any newer snapshot
                self.pending[fd] = data[n:]
        return 0

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)


class Follower:
    """Another worker's side: read snapshots, apply the newest."""

    def __init__(self, fd: int, core: Any, on_change: Callable[[], None] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.core = core
        self.on_change = on_change
        self.log = log
        self.buf = b""
        self.applied = 0

    def poll(self, budget_s: float = 0.0) -> int:
        del budget_s
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buf += chunk
        if b"\n" not in self.buf:
            return 0
        *lines, self.buf = self.buf.split(b"\n")
        snap = json.loads(lines[-1])
        try:
            changed = sync_core(self.core, snap)
        except Exception as exc:  # a refused change: keep running on the old configuration
            if self.log:
                self.log(f"workers: could not follow worker 0's configuration: {exc}")
            return 0
        self.applied += 1
        if changed and self.on_change is not None:
            self.on_change()
        if changed and self.log:
            self.log("workers: configuration followed from worker 0")
        return 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
