"""`lb run`: the balancer itself, in the current network namespace, until SIGINT/SIGTERM.

    lb run --iface veth-c --iface veth-s --rules rules.save [--socket PATH] [--engine c|python] [-v]

Opens one port per --iface (AF_PACKET with a TPACKET_V2 RX ring, or V3 with --rx-ring v3; or a TAP device
with --io tap), loads the
ipvsadm-save rules atomically (lb/state.py), serves the control socket `lbadm` talks to (lb/daemon/server.py),
keeps the namespace's kernel off VIP traffic (lb/io/guard.py), resolves next hops (lb/io/neigh.py), and runs
the loop of lb/io/loop.py.  On exit it prints the counters.  Logs are one line per event on stderr.

`--workers N` (AF_PACKET only) forks N workers after the rules are parsed.  Each opens its own sockets in one
PACKET_FANOUT hash group (the kernel spreads flows over the group; both directions of a flow hash alike, so a
connection's packets all reach the worker that owns its table entry), builds its own Core and applies the
same rules: one connection table per worker, no locks, as DPVS keeps one per lcore.  Worker 0 also serves
the control socket (and --metrics: its own counters only); after each change it publishes a configuration
snapshot that the other workers apply between their batches (lb/io/workers.py).

Placement (lb/io/rps.py): `--cpus 1` pins the balancer (and its workers) to CPU 1, `--rps-cpus 1` steers its
ports' receive softirq (the copy into the ring) to CPU 0 through RPS; the old masks are restored on exit.
`--rt-priority 1` (the default) runs the balancer under SCHED_FIFO so that it is never queued behind other
tasks on its CPU while frames wait in its ring, as the kernel's softirq path never is (lb/io/rps.py
`realtime`); `--rt-priority 0` keeps normal scheduling.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import traceback
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from lb.io.guard import KernelGuard, ip_forward_enabled
from lb.io.loop import Dataplane, PyDataplane, stderr_log
from lb.io.port import Port, PortAddr, parse_mac
from lb.io.rps import rt_priority_arg


def _kv(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"lb run: {what} must be IF=VALUE, not {item!r}")
        out[name] = value
    return out


def ring_blocks(args: argparse.Namespace) -> int:
    """RX ring blocks per port: --ring-blocks, else 512 for v2 (64 MiB = 32768 2-KiB slots: a V2 slot holds
    one frame whatever its size, so it needs more memory than V3's packed blocks to ride out the same
    scheduling gap; with 8192 slots it lost frames at 160-200 kpps on the shared lab box where V3 did not,
    bench/e2e) and 128 for v3 (16 MiB)."""
    n = getattr(args, "ring_blocks", None)
    if n:
        return int(n)
    return 512 if getattr(args, "rx_ring", "v2") == "v2" else 128


def open_ports(args: argparse.Namespace, fanout_group: int | None = None,
               fanout_keys: dict[str, str] | None = None) -> list[Port]:
    addrs = {k: IPv4Interface(v) for k, v in _kv(args.port_addr, "--port-addr").items()}
    macs = {k: parse_mac(v) for k, v in _kv(args.mac, "--mac").items()}
    ports: list[Port] = []
    try:
        for i, name in enumerate(args.iface):
            if args.io == "tap":
                from lb.io.tap import TapPort  # noqa: PLC0415
                ports.append(TapPort(i, name, mac=macs.get(name), ipv4=addrs.get(name)))
            else:
                from lb.io.afpacket import AFPacketPort  # noqa: PLC0415
                override = None
                if name in addrs or name in macs:
                    override = PortAddr(macs.get(name, b""), addrs.get(name), 0)
                # a fanout group belongs to one device: one group id per port, shared by the workers
                group = None if fanout_group is None else (fanout_group + i) & 0xFFFF
                key = (fanout_keys or {}).get(name)
                try:
                    ports.append(AFPacketPort(i, name, fanout_group=group, fanout_key=key,
                                              fanout_members=args.workers, addr=override,
                                              tx_ring=args.tx_ring and args.engine == "c",
                                              block_size=getattr(args, "ring_block_kb", 128) * 1024,
                                              block_nr=ring_blocks(args),
                                              retire_ms=getattr(args, "ring_retire_ms", 1),
                                              rx_ring=getattr(args, "rx_ring", "v2")))
                except OSError as exc:
                    raise OSError(exc.errno, f"interface {name}: {exc.strerror}") from exc
    except BaseException:
        for p in ports:
            p.close()
        raise
    return ports


def run_worker(args: argparse.Namespace, rules_text: str | None, worker: int = 0,
               ports: list[Port] | None = None, *, publish_fds: list[int] | None = None,
               follow_fd: int | None = None) -> int:
    from lb.core.core import Core  # noqa: PLC0415
    from lb.state import ConfigState  # noqa: PLC0415

    log = stderr_log if worker == 0 and args.workers <= 1 else (lambda m: stderr_log(f"[w{worker}] {m}"))
    core: Any
    if args.engine == "python":
        from lb.engine.control import PyCore  # noqa: PLC0415
        # the Python engine, configured like the C core
        core = PyCore(conn_max=args.conn_max, svc_max=args.svc_max, dest_max=args.dest_max)
    else:
        core = Core(conn_max=args.conn_max, svc_max=args.svc_max, dest_max=args.dest_max)
    state = ConfigState(core)
    if rules_text:
        result = state.apply_text(rules_text)
        log(f"rules: {len(core.services())} services, {len(result.changed_dest_ids)} dests from {args.rules}")
    if ports is None:
        ports = open_ports(args)
    for p in ports:
        log(f"port {p.index}: {p.name} ({p.kind}) mac {p.mac.hex(':')} addr {p.ipv4} mtu {p.mtu}")
    if getattr(args, "rt_priority", 0):
        from lb.io.rps import realtime  # noqa: PLC0415
        realtime(args.rt_priority, log=log)  # once the ports are open: errors a user can fix come first
    if ip_forward_enabled():
        log("warning: net.ipv4.ip_forward is 1 in this namespace: the kernel forwards what the guard lets by")
    rps = None
    if getattr(args, "rps_cpus", None) and args.io == "afpacket" and worker == 0:
        from lb.io.rps import Rps  # noqa: PLC0415
        rps = Rps(log=log)
        rps.apply([p.name for p in ports], args.rps_cpus)
    guard = None
    if args.io == "afpacket" and not args.no_guard and worker == 0:
        guard = KernelGuard([p.name for p in ports], table=f"pyvs_{os.getpid()}", log=log)
    server = None
    metrics: Any = None
    dp: Dataplane | PyDataplane | None = None
    try:
        kw: dict[str, Any] = {"guard": guard, "log": log, "verbose": args.verbose}
        if args.engine == "python":
            dp = PyDataplane(core, ports, process=core.process, **kw)
        else:
            dp = Dataplane(core, ports, batch=args.batch, budget=args.budget, passthrough=args.passthrough,
                           spin_us=getattr(args, "busy_poll_us", 0), **kw)
        if args.workers > 1 and worker == 0:
            from lb.io.neigh import kernel_neigh_replace  # noqa: PLC0415
            dp.neigh.publish = kernel_neigh_replace
        if args.socket != "none" and worker == 0:
            from lb.daemon.server import Server  # noqa: PLC0415
            on_change: Any = dp.config_changed
            if publish_fds:
                from lb.io.workers import Publisher  # noqa: PLC0415
                publisher = Publisher(publish_fds)
                dp.controls.append(publisher)
                loop0 = dp

                def on_change(result: object) -> None:
                    loop0.config_changed(result)
                    publisher.publish(core, state.timeouts)

            conns = core.conns_now if args.engine == "python" else None   # -c: the engine's own table
            server = Server(state, args.socket, on_change=on_change, conns=conns).start()
            dp.controls.append(server)
            log(f"control socket {server.path}")
        if follow_fd is not None:
            from lb.io.workers import Follower  # noqa: PLC0415
            dp.controls.append(Follower(follow_fd, core, on_change=dp.config_changed, log=log))
        if args.metrics and worker == 0:
            from lb.metrics import MetricsServer, core_families, exposition  # noqa: PLC0415
            loop_ = dp

            def collect() -> str:
                fams = core.metric_families if args.engine == "python" else lambda: core_families(core)
                return exposition(state.status(), lambda: [*fams(), *loop_.metric_families()])

            metrics = MetricsServer(args.metrics, collect).start()
            dp.controls.append(metrics)
            if server is None:  # the control socket's poll feeds the estimator; without it, the loop does
                dp.tick_hooks.append(state.tick)
            log(f"metrics on http://{args.metrics}/metrics")
        loop = dp

        def _stop(signum: int, _frame: object) -> None:
            if not loop.stopping:
                log(f"signal {signal.Signals(signum).name}: stopping")
            loop.stop()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        deadline = time.monotonic() + args.duration if args.duration else None
        log(f"running ({args.engine} engine, {len(ports)} ports)")
        dp.refresh()
        dp.run(stop=(lambda: time.monotonic() >= deadline) if deadline is not None else None)
    finally:
        if dp is not None:
            for line in dp.summary():
                log(line)
        if server is not None:
            server.close()
        if metrics is not None:
            metrics.close()
        if guard is not None:
            guard.close()
        if rps is not None:
            rps.restore()
        for p in ports:
            p.close()
    return 0


def fanout_keys(args: argparse.Namespace, rules_text: str | None) -> dict[str, str]:
    """Which address picks the worker on each port: the client's, i.e. the source on ports facing clients and
    the destination on ports facing NAT real servers (whose replies go to the client)."""
    from lb.core.core import Core  # noqa: PLC0415
    from lb.io.afpacket import link_info  # noqa: PLC0415
    from lb.io.loop import service_view  # noqa: PLC0415
    from lb.state import ConfigState  # noqa: PLC0415

    nat: list[Any] = []
    if rules_text:
        core = Core(conn_max=16)
        ConfigState(core).apply_text(rules_text)
        nat = service_view(core)[2]
    keys = {}
    for name in args.iface:
        net = link_info(name).network
        keys[name] = "daddr" if net is not None and any(a in net for a in nat) else "saddr"
    return keys


def run_workers(args: argparse.Namespace, rules_text: str | None) -> int:
    group = os.getpid() & 0xFFFF
    keys = fanout_keys(args, rules_text)
    stderr_log("workers: fanout by client address: " + ", ".join(f"{k} by {v}" for k, v in keys.items()))
    # All sockets are opened here, worker by worker, so that worker w is member w of every port's fanout
    # group (the BPF program's return value indexes the members in join order).
    per_worker = [open_ports(args, group, keys) for _ in range(args.workers)]
    # worker 0 (control socket) publishes configuration snapshots to the others (lb/io/workers.py)
    pipes = [os.pipe() for _ in range(args.workers - 1)]
    pids: list[int] = []
    for w in range(args.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for other, ps in enumerate(per_worker):
                    if other != w:
                        for p in ps:
                            p.close()
                if w > 0:
                    args.socket = "none"
                mine_r = pipes[w - 1][0] if w > 0 else None
                for r, wr in pipes:
                    if r != mine_r:
                        os.close(r)
                    if w > 0:
                        os.close(wr)
                publish = [wr for _, wr in pipes] if w == 0 else None
                code = run_worker(args, rules_text, w, per_worker[w], publish_fds=publish, follow_fd=mine_r)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    for ps in per_worker:
        for p in ps:
            p.close()
    for r, wr in pipes:
        os.close(r)
        os.close(wr)

    def _forward(signum: int, _frame: object) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGINT, _forward)
    signal.signal(signal.SIGTERM, _forward)
    status = 0
    for pid in pids:
        while True:
            try:
                _, st = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        status = status or os.waitstatus_to_exitcode(st)
    return status


def cmd_run(args: argparse.Namespace) -> int:
    """`lb run`: errors a user can fix (no such interface, a bad rules line, a refused rule, no permission)
    are one line on stderr and exit status 1."""
    from lb.errors import LbError  # noqa: PLC0415

    try:
        return _cmd_run(args)
    except (LbError, OSError, ValueError) as exc:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        name = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        print(f"lb run: {what}{name}", file=sys.stderr)
        return 1


def _cmd_run(args: argparse.Namespace) -> int:
    if not args.iface:
        print("lb run: at least one --iface is needed", file=sys.stderr)
        return 2
    if len(args.iface) > 8:
        print("lb run: at most 8 ports", file=sys.stderr)
        return 2
    if args.rps_cpus:
        from lb.io.rps import check_mask  # noqa: PLC0415
        check_mask(args.rps_cpus)  # a bad mask fails before any port is opened
    if args.cpus:
        from lb.io.rps import parse_cpus, pin  # noqa: PLC0415
        pin(parse_cpus(args.cpus))
    rules_text = Path(args.rules).read_text() if args.rules else None
    if rules_text is not None:
        # parse once up front so that a bad file fails before any port is opened
        from lb.config import parse_rules_checked  # noqa: PLC0415
        parse_rules_checked(rules_text)
    if args.workers > 1:
        if args.io != "afpacket":
            print("lb run: --workers needs --io afpacket (PACKET_FANOUT)", file=sys.stderr)
            return 2
        return run_workers(args, rules_text)
    return run_worker(args, rules_text)


def _pool_size(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 1 << 22:
        raise argparse.ArgumentTypeError(f"must be 1..{1 << 22}, not {n}")
    return n


def _busy_poll_us(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 1000:
        raise argparse.ArgumentTypeError(f"must be 0..1000, not {n}")
    return n


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the balancer on the given interfaces",
                       description="Run the balancer in the current network namespace until SIGINT/SIGTERM.")
    p.add_argument("--iface", action="append", metavar="IF", help="a port (repeat for more; index = order)")
    p.add_argument("--io", choices=("afpacket", "tap"), default="afpacket", help="port backend")
    p.add_argument("--rules", metavar="FILE", help="ipvsadm-save text to load at start")
    p.add_argument("--socket", metavar="PATH", default=None,
                   help="control socket (default $LB_SOCKET or /run/pyvs/lb.sock; 'none': no socket)")
    p.add_argument("--engine", choices=("c", "python"), default="c", help="packet engine")
    p.add_argument("--workers", type=int, default=1, help="worker processes on a PACKET_FANOUT group")
    p.add_argument("--port-addr", action="append", metavar="IF=ADDR/LEN",
                   help="the balancer's IPv4 address on a port (TAP ports; default: the interface's)")
    p.add_argument("--mac", action="append", metavar="IF=MAC", help="the balancer's MAC on a TAP port")
    p.add_argument("--metrics", metavar="ADDR:PORT", help="serve Prometheus metrics on GET /metrics")
    p.add_argument("--tx-ring", action=argparse.BooleanOptionalAction, default=False,
                   help="C engine on AF_PACKET: send through a TPACKET_V3 TX ring instead of sendmmsg")
    p.add_argument("--batch", type=int, default=64, help="frames per batch (C engine)")
    p.add_argument("--budget", type=int, default=1024, help="frames per pump call before Python runs")
    p.add_argument("--rx-ring", choices=("v2", "v3"), default="v2",
                   help="AF_PACKET RX ring: v2 = a frame is handed over as soon as it is written (low "
                        "latency); v3 = blocks handed over when full or after --ring-retire-ms (~1 ms a hop)")
    p.add_argument("--ring-blocks", type=int, default=None,
                   help="RX ring: blocks per port (default v2: 512 x 128 KiB = 64 MiB = 32768 2-KiB frame "
                        "slots; v3: 128 x 128 KiB = 16 MiB of packed frames)")
    p.add_argument("--ring-block-kb", type=int, default=128, help="RX ring: KiB per block")
    p.add_argument("--ring-retire-ms", type=int, default=1,
                   help="--rx-ring v3: a partly filled block goes to the pump after this many ms")
    p.add_argument("--conn-max", type=int, default=65536, help="connection table size per worker")
    p.add_argument("--svc-max", type=_pool_size, default=4096,
                   help="most virtual services (a fixed pool, ~0.3 KiB each; default 4096)")
    p.add_argument("--dest-max", type=_pool_size, default=16384,
                   help="most real servers over all services, deleted ones still carrying connections "
                        "included (~0.3 KiB each; default 16384)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run)")
    p.add_argument("--no-guard", action="store_true", help="do not install the netdev-ingress drop table")
    p.add_argument("--passthrough", action="store_true", help="debug: hand every frame to the slow path")
    p.add_argument("--cpus", metavar="LIST", help="run on these CPUs only (e.g. 1 or 0-3; workers inherit)")
    p.add_argument("--rps-cpus", metavar="HEXMASK",
                   help="steer the ports' receive softirq to these CPUs (RPS; 1 = CPU 0), restored on exit")
    p.add_argument("--rt-priority", type=rt_priority_arg, default=1, metavar="N",
                   help="SCHED_FIFO priority 1-99 for the balancer (0: normal scheduling; default 1): "
                        "it then runs as soon as a frame wakes it instead of waiting behind other tasks "
                        "on its CPU, as the kernel's softirq path does; it still sleeps when idle and RT "
                        "throttling keeps 5%% of the CPU for others. Without CAP_SYS_NICE it logs a line "
                        "and goes on")
    p.add_argument("--busy-poll-us", type=_busy_poll_us, default=0, metavar="US",
                   help="C engine, ring ports: before sleeping in poll(), keep checking the rings for up to "
                        "US microseconds (0..1000; default 0 = sleep at once: on the 2-CPU lab a 20-60 us "
                        "spin took CPU from the real servers and lowered keep-alive req/s)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every slow-path answer")
    p.set_defaults(func=cmd_run)
