"""The run loop: pump frames through the core, then do the slow-path and control-plane work in Python.

`Dataplane` (the C engine) repeats one step:
1. `lib.lb_pump` moves up to `budget` frames: RX rings (TPACKET_V2 or V3) -> batch -> lb_process_batch ->
   sendmmsg per egress port, PASS verdicts into the slow-path queue (csched/src/pump.c).  The GIL is
   released meanwhile.  Between frames it sleeps in poll() and carries on after each wake-up without
   returning, until `budget` frames, slow-path work, or `timeout_ms` since the call began: under a
   request/response load Python runs ~100 times a second instead of once per wake-up (~10 k/s), which
   took the balancer's user CPU from ~10-14 % to ~4 % at ~50 k keep-alive requests/s (bench/e2e/tcp.py).
2. The slow-path queue is drained: ARP for VIPs and ICMP echo to VIPs are answered, neighbours learned
   (lb/io/arp.py); replies leave through `lb_pump_send`.
3. The control socket is served for a moment (lb/daemon/server.py `poll`): configuration changes land
   between batches, never inside one.  After a change the VIP set, the kernel guard and the wanted next hops
   are refreshed.
4. Once a second: `lb_core_tick` (connection expiry, scheduler timers) and next-hop retries (lb/io/neigh.py).

`PyDataplane` is the same loop with every step in Python, one frame at a time (`--engine python`): the
readable reference, about a hundred times slower.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Protocol

from lb import model
from lb.io.arp import SlowPath
from lb.io.guard import KernelGuard
from lb.io.neigh import NeighResolver
from lb.io.port import Port

VERDICT_DROP = 0
VERDICT_TX = 1
VERDICT_PASS = 2

Log = Callable[[str], None]


def stderr_log(msg: str) -> None:
    # One write(2) per line: workers share the stderr pipe, and a print() split into message and newline
    # lets their lines interleave mid-line.
    sys.stderr.flush()
    os.write(sys.stderr.fileno(), f"lb: {msg}\n".encode())


class Control(Protocol):
    def poll(self, budget_s: float = 0.0) -> int: ...


@dataclass
class PortCounters:
    rx_pkts: int = 0
    rx_bytes: int = 0
    tx_pkts: int = 0
    tx_bytes: int = 0
    tx_errs: int = 0
    drops: int = 0
    slow: int = 0
    slow_full: int = 0
    rx_trunc: int = 0
    rx_csum_partial: int = 0
    kernel_drops: int = 0

    def line(self, name: str) -> str:
        return (f"{name}: rx {self.rx_pkts} pkts {self.rx_bytes} bytes, "
                f"tx {self.tx_pkts} pkts {self.tx_bytes} bytes, tx_errs {self.tx_errs}, drops {self.drops}, "
                f"slow {self.slow} (queue full "
                f"{self.slow_full}), truncated {self.rx_trunc}, csum_partial {self.rx_csum_partial}, "
                f"ring drops {self.kernel_drops}")


@dataclass
class _Housekeeping:
    next_tick: float = 0.0
    interval: float = 1.0
    dirty: bool = True
    changes: list[Any] = field(default_factory=list)


def service_view(core: Any) -> tuple[set[IPv4Address], list[tuple[int, IPv4Address]], list[IPv4Address]]:
    """(IPv4 VIPs, [(dest id, IPv4 dest address)], NAT dest addresses) of the core's services."""
    vips: set[IPv4Address] = set()
    dests: list[tuple[int, IPv4Address]] = []
    nat: list[IPv4Address] = []
    for key, view in core.dest_view():
        if isinstance(key.addr, IPv4Address) and not key.fwmark:
            vips.add(key.addr)
        for dest_id, addr, fwd in view:
            if isinstance(addr, IPv4Address):
                dests.append((dest_id, addr))
                if fwd == model.Fwd.MASQ:
                    nat.append(addr)
    return vips, dests, nat


class _LoopBase:
    """What both engines share: slow path, next hops, guard, control socket, housekeeping."""

    timeout_ms: int  # how long a step may wait for frames (set by each engine)

    def __init__(self, core: Any, ports: Sequence[Port], *, control: Control | None = None,
                 guard: KernelGuard | None = None, log: Log = stderr_log, verbose: bool = False,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.core = core
        self.ports = list(ports)
        #: polled between batches: the control socket, the metrics server
        self.controls: list[Control] = [control] if control is not None else []
        self.guard = guard
        self.log = log
        self.verbose = verbose
        self.clock_ns = clock_ns
        self.neigh = NeighResolver(self.ports, self._set_nexthop, self.send, log=log)
        self.slow = SlowPath(self.ports, learn=self.neigh.learn, log=log if verbose else None)
        self.hk = _Housekeeping()
        #: called once a second with now (seconds): e.g. the rate estimator when no control socket feeds it
        self.tick_hooks: list[Callable[[float], None]] = []
        self.stopping = False
        for p in self.ports:
            core.set_port(p.index, p.mac, p.addr.ip, p.mtu)

    def _set_nexthop(self, dest_id: int, port: int, mac: bytes) -> None:
        try:
            self.core.set_nexthop(dest_id, port, mac)
        except Exception as exc:  # a dest removed meanwhile: forget it
            self.log(f"neigh: dest id {dest_id}: {exc}")
            self.neigh.forget(dest_id)

    def send(self, port: int, frame: bytes) -> None:
        raise NotImplementedError

    def config_changed(self, _result: object = None) -> None:
        """Services or dests changed (control socket on_change, or after loading rules)."""
        self.hk.dirty = True

    def refresh(self) -> None:
        vips, dests, nat = service_view(self.core)
        self.slow.set_vips(vips)
        self.neigh.sync(dests)
        if self.guard is not None:
            local = [p.addr.ip for p in self.ports if p.addr.ip is not None]
            self.guard.update(vips, nat, local)
        self.hk.dirty = False

    def housekeeping(self, now_ns: int) -> None:
        if self.hk.dirty:
            self.refresh()
        if self.guard is not None:
            self.guard.poll()             # reap a background nft (KernelGuard)
        now = now_ns / 1e9
        if now >= self.hk.next_tick:
            self.hk.next_tick = now + self.hk.interval
            self.core.tick(now_ns)
            self.neigh.poll()
            for hook in self.tick_hooks:
                hook(now)

    def _wait_ms(self) -> int:
        """How long a step may sleep waiting for frames: timeout_ms, or 0 while a control socket is still
        producing or sending a response (Server.busy), which it does between steps."""
        return 0 if any(getattr(c, "busy", False) for c in self.controls) else self.timeout_ms

    def handle_slow(self, frame: bytes | bytearray | memoryview, port: int) -> None:
        reply = self.slow.handle(frame, port)
        if reply is not None:
            self.send(port, reply)

    def stop(self) -> None:
        self.stopping = True

    def run(self, stop: Callable[[], bool] | None = None) -> None:
        """Step until stop() is true or `stop()` was called."""
        while not self.stopping and not (stop is not None and stop()):
            self.step()

    def step(self) -> int:
        raise NotImplementedError

    def counters(self) -> dict[str, PortCounters]:
        raise NotImplementedError

    def metric_families(self) -> list[Any]:
        """Per-port counters as Prometheus families (lb/metrics.py `Family`)."""
        from lb.metrics import Family  # noqa: PLC0415

        counters = self.counters()
        fams = []
        for attr, help_text in (("rx_pkts", "Frames received"), ("rx_bytes", "Bytes received"),
                                ("tx_pkts", "Frames sent"), ("tx_bytes", "Bytes sent"),
                                ("tx_errs", "Frames the kernel refused to send"),
                                ("drops", "Frames dropped by the packet path"),
                                ("slow", "Frames handed to the slow path"),
                                ("slow_full", "Frames lost: slow-path queue full"),
                                ("rx_trunc", "Frames longer than a batch slot"),
                                ("kernel_drops", "Frames lost in the RX ring (pump too slow)")):
            fams.append(Family(f"pyvs_port_{attr}_total", "counter", help_text,
                               [({"port": name}, getattr(c, attr)) for name, c in counters.items()]))
        return fams

    def summary(self) -> list[str]:
        lines = [c.line(name) for name, c in self.counters().items()]
        s = self.slow.stats
        lines.append(f"slow path: arp replies {s.arp_replies}, arp learned {s.arp_learned}, echo replies "
                     f"{s.echo_replies}, ignored {s.ignored}")
        return lines


class Dataplane(_LoopBase):
    """The C engine: lb_pump over the ports, Python for the rest."""

    def __init__(self, core: Any, ports: Sequence[Port], *, batch: int = 64, stride: int = 2048,
                 budget: int = 1024, timeout_ms: int = 20, passthrough: bool = False, slow_slots: int = 1024,
                 spin_us: int = 0, **kw: Any) -> None:
        super().__init__(core, ports, **kw)
        ffi, lib = core.ffi, core.lib
        self.ffi, self.lib = ffi, lib
        cfg = ffi.new("struct lb_pump_cfg *", {"batch": batch, "stride": stride, "slow_slots": slow_slots,
                                               "flags": lib.LB_PUMP_F_PASSTHROUGH if passthrough else 0,
                                               "spin_us": spin_us})
        pump = lib.lb_pump_new(cfg)
        if pump == ffi.NULL:
            raise MemoryError("lb_pump_new failed")
        self.pump = ffi.gc(pump, lib.lb_pump_free)
        self._keep: list[Any] = []
        for p in self.ports:
            if p.kind == "ring":
                ring = ffi.from_buffer(getattr(p, "ring"))  # noqa: B009 - AFPacketPort's mmap
                self._keep.append(ring)
                if getattr(p, "version", 2) == 1:  # TPACKET_V2: per-frame slots
                    rc = lib.lb_pump_port_ring_v2(self.pump, p.index, p.fileno(), ring,
                                                  getattr(p, "frame_size"), getattr(p, "frame_nr"))  # noqa: B009
                else:
                    rc = lib.lb_pump_port_ring(self.pump, p.index, p.fileno(), ring,
                                               getattr(p, "block_size"), getattr(p, "block_nr"))  # noqa: B009
            elif p.kind == "sock":
                rc = lib.lb_pump_port_sock(self.pump, p.index, p.fileno())
            else:
                rc = lib.lb_pump_port_fd(self.pump, p.index, p.fileno())
            if rc < 0:
                raise OSError(-rc, f"lb_pump: cannot attach port {p.index} ({p.name})")
            tx_nr = getattr(p, "tx_frame_nr", 0)
            if tx_nr:
                rx_size = getattr(p, "rx_size")  # noqa: B009
                rc = lib.lb_pump_port_txring(self.pump, p.index, self._keep[-1] + rx_size,
                                             getattr(p, "tx_frame_size"), tx_nr)  # noqa: B009
                if rc < 0:
                    raise OSError(-rc, f"lb_pump: cannot attach the TX ring of port {p.index} ({p.name})")
        self.budget = budget
        self.timeout_ms = timeout_ms
        self._slow_buf = bytearray(stride)
        self._slow_c = ffi.from_buffer(self._slow_buf)
        self._slow_port = ffi.new("int32_t *")
        self._stats = ffi.new("struct lb_pump_port_stats *")
        self.frames = 0

    def send(self, port: int, frame: bytes) -> None:
        self.lib.lb_pump_send(self.pump, port, frame, len(frame))

    def step(self) -> int:
        # step 1 (docs/packet-walk.md): frames in -> lb_process_batch (steps 2-8, C) -> frames out (step 9)
        now = self.clock_ns()
        n: int = self.lib.lb_pump(self.core.ptr, self.pump, self.budget, self._wait_ms(), now)
        if n < 0:
            raise OSError(-n, "lb_pump")
        self.frames += n
        lib, buf = self.lib, self._slow_buf
        while True:
            ln = lib.lb_pump_slowpath_get(self.pump, self._slow_c, len(buf), self._slow_port)
            if ln <= 0:
                break
            self.handle_slow(memoryview(buf)[:min(ln, len(buf))], self._slow_port[0])
        for c in self.controls:
            c.poll(0.0)
        self.housekeeping(now)
        return n

    def counters(self) -> dict[str, PortCounters]:
        out = {}
        for p in self.ports:
            if self.lib.lb_pump_stats(self.pump, p.index, self._stats) < 0:
                continue
            s = self._stats
            c = PortCounters(s.rx_pkts, s.rx_bytes, s.tx_pkts, s.tx_bytes, s.tx_errs, s.drops, s.slow,
                             s.slow_full, s.rx_trunc, s.rx_csum_partial)
            kstats = getattr(p, "kernel_stats", None)
            if kstats is not None:
                with contextlib.suppress(OSError):
                    c.kernel_drops = kstats()[1]
            out[p.name] = c
        return out


Process = Callable[[bytearray, int, int], tuple[int, int, int]]
"""(frame buffer, in port, now_ns) -> (verdict, out port, new length): one frame through a packet engine."""


def pass_all(frame: bytearray, in_port: int, now_ns: int) -> tuple[int, int, int]:
    del now_ns
    return VERDICT_PASS, in_port, len(frame)


class PyDataplane(_LoopBase):
    """The reference loop: poll, read one frame, process it, send it; all in Python."""

    def __init__(self, core: Any, ports: Sequence[Port], *, process: Process = pass_all, timeout_ms: int = 20,
                 budget: int = 256, **kw: Any) -> None:
        super().__init__(core, ports, **kw)
        self.process = process
        self.timeout_ms = timeout_ms
        self.budget = budget
        self._poll = select.poll()
        self._by_fd = {p.fileno(): p for p in self.ports}
        for p in self.ports:
            self._poll.register(p.fileno(), select.POLLIN)
        self._counters = {p.index: PortCounters() for p in self.ports}
        self._buf = bytearray(2048)
        self.frames = 0

    def send(self, port: int, frame: bytes) -> None:
        c = self._counters[port]
        if self.ports_by_index[port].send(frame):
            c.tx_pkts += 1
            c.tx_bytes += len(frame)
        else:
            c.tx_errs += 1

    @property
    def ports_by_index(self) -> dict[int, Port]:
        return {p.index: p for p in self.ports}

    def _rx_one(self, p: Port, now: int) -> bool:
        buf = self._buf
        n = p.recv(buf)
        if n <= 0:
            return False
        c = self._counters[p.index]
        c.rx_pkts += 1
        c.rx_bytes += n
        frame = bytearray(buf[:n])
        verdict, out_port, length = self.process(frame, p.index, now)
        if verdict == VERDICT_TX:
            self.send(out_port, bytes(frame[:length]))
        elif verdict == VERDICT_PASS:
            c.slow += 1
            self.handle_slow(frame, p.index)
        else:
            c.drops += 1
        return True

    def step(self) -> int:
        now = self.clock_ns()
        done = 0
        # ring ports may hold ready frames without a poll wakeup: try everyone first
        for p in self.ports:
            while done < self.budget and self._rx_one(p, now):
                done += 1
        if done == 0:
            for fd, _ev in self._poll.poll(self._wait_ms()):
                p = self._by_fd[fd]
                while done < self.budget and self._rx_one(p, now):
                    done += 1
        self.frames += done
        for c in self.controls:
            c.poll(0.0)
        self.housekeeping(now)
        return done

    def counters(self) -> dict[str, PortCounters]:
        return {p.name: self._counters[p.index] for p in self.ports}
