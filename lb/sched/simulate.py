"""`lb simulate`: run a scheduler over a sequence of new connections and show where each one goes.

    lb simulate -s wrr -r 10.0.0.11:80,weight=4 -r 10.0.0.12:80,weight=3 -r 10.0.0.13:80,weight=2 -n 9

The servers (-r) are added in the order given, one by one, exactly as successive `ipvsadm -a` commands
would add them (so wrr's state and every scheduler's list order are the kernel's).  Connection i (0-based)
comes from the i-th --client (cycling; default 10.0.0.1, 10.0.0.2, … with source port 1024+i) and goes to
the virtual service 10.255.0.1:80 (IPv6 servers: [fd00::ffff:1]:80).

Time and connection model (what the scheduler sees of the load):
- Arrival i happens at t = i seconds (`now` = i * 10^9 ns); timers (lblc/lblcr aging) are ticked at each.
- A connection counts as active on its server for the next K arrivals (--active K; default: forever), then
  as inactive for M more (--inactive M; default 0), then it is gone — the LB_EV_* connection events the
  conn table would send, with the kernel's OVERLOAD hysteresis for u=/l= thresholds.
- -p TIMEOUT (persistence): this simulator's own model of the kernel's templates, per client address
  (netmask /32, /128 for IPv6).  A client whose template is alive goes to the template's server without
  asking the scheduler.  A template counts in its server's persistconns; it expires once it controls no live
  connection and TIMEOUT seconds (arrivals) have passed since its last use.
- --engine c (default) runs the C core (lb_sched_batch, one call per arrival since the load changes between
  arrivals); --engine python runs the readable twins of lb.sched.ref on the same RefService model.  Both
  give the same picks for the same --seed (twos draws from the seeded scheduler PRNG).

Output: one ADDR:PORT per connection (`-` when no server was available), then per server its weight share
and picks share.  --json prints {"picks": ["ADDR:PORT" | null, ...], "summary": {"servers": [{"server",
"weight", "weight_share", "picks", "picks_share"}, ...], "unassigned": N, "connections": COUNT}}.
Bad input is reported on one line naming the value, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import NoReturn, Protocol

from lb import model
from lb.sched.ref import base

WEIGHT_MAX = 2147483647
THRESHOLD_MAX = 0xFFFFFFFF
VIP4 = IPv4Address("10.255.0.1")
VIP6 = IPv6Address("fd00::ffff:1")
VPORT = 80
FIRST_CLIENT4 = IPv4Address("10.0.0.1")
FIRST_CLIENT6 = IPv6Address("fd00::c:1")
NS_PER_ARRIVAL = 10**9

#: ipvsadm's -b names (parse_sched_flags): generic and per-scheduler aliases.
SCHED_FLAG_BITS = {
    "flag-1": model.SVC_F_SCHED1, "flag-2": model.SVC_F_SCHED2, "flag-3": model.SVC_F_SCHED3,
    "sh-fallback": model.SVC_F_SCHED_SH_FALLBACK, "sh-port": model.SVC_F_SCHED_SH_PORT,
    "mh-fallback": model.SVC_F_SCHED_MH_FALLBACK, "mh-port": model.SVC_F_SCHED_MH_PORT,
}


class SimError(Exception):
    """Bad input: one line, exit status 2."""


# ---- parsing ----


def format_server(addr: model.Addr, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def parse_hostport(text: str, what: str, port_required: bool = True) -> tuple[model.Addr, int | None]:
    """ADDR:PORT, [V6ADDR]:PORT, or (port_required=False) a bare ADDR / [V6ADDR] / V6ADDR."""
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SimError(f"malformed {what} address {text!r}")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise SimError(f"malformed {what} address {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        addr = ip_address(host)
    except ValueError:
        raise SimError(f"malformed {what} address {text!r}") from None
    if port_text is None:
        if port_required:
            raise SimError(f"{what} {text!r} needs a port (ADDR:PORT)")
        return addr, None
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise SimError(f"bad port {port_text!r} in {what} {text!r}")
    return addr, int(port_text)


def _int_option(text: str, key: str, spec: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SimError(f"bad {key} value {text!r} in -r {spec!r}") from None
    if not lo <= value <= hi:
        raise SimError(f"{key} {value} out of range {lo}..{hi} in -r {spec!r}")
    return value


def parse_server(spec: str) -> model.Dest:
    """`ADDR:PORT[,weight=W][,u=U][,l=L]` → a dest (forwarding method does not matter to schedulers)."""
    first, *opts = spec.split(",")
    addr, port = parse_hostport(first, "server")
    assert port is not None
    weight, upper, lower = 1, 0, 0
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            raise SimError(f"bad server option {opt!r} in -r {spec!r} (weight=W, u=U, l=L)")
        if key in ("weight", "w"):
            weight = _int_option(value, "weight", spec, 0, WEIGHT_MAX)
        elif key in ("u", "x", "u_threshold"):
            upper = _int_option(value, "upper threshold", spec, 0, THRESHOLD_MAX)
        elif key in ("l", "y", "l_threshold"):
            lower = _int_option(value, "lower threshold", spec, 0, THRESHOLD_MAX)
        else:
            raise SimError(f"unknown server option {key!r} in -r {spec!r} (weight=W, u=U, l=L)")
    if lower > upper:
        raise SimError(f"lower threshold {lower} above upper threshold {upper} in -r {spec!r}")
    return model.Dest(addr, port, model.Fwd.MASQ, weight, upper, lower)


def parse_flags(text: str, sched: str, flags_ok: int) -> int:
    flags = 0
    for name in filter(None, text.split(",")):
        bit = SCHED_FLAG_BITS.get(name)
        if bit is None:
            raise SimError(f"unknown scheduler flag {name!r}")
        prefix = name.split("-")[0]
        if prefix in ("sh", "mh") and prefix != sched:
            raise SimError(f"scheduler flag {name!r} is not for scheduler {sched!r}")
        if not bit & flags_ok:
            raise SimError(f"scheduler {sched!r} does not take flag {name!r}")
        flags |= bit
    return flags


# ---- engines ----


class Engine(Protocol):
    def add_dest(self, dest: model.Dest) -> None: ...
    def pick(self, flow: base.RefFlow, now: int) -> model.DestKey | None: ...
    def event(self, key: model.DestKey, event: int) -> None: ...
    def tick(self, now: int) -> None: ...


class PythonEngine:
    """The twins (lb.sched.ref) on the RefService model."""

    def __init__(self, svc: model.Service, seed: int) -> None:
        from lb.sched.ref import service_from_model  # noqa: PLC0415 - keeps `lb --help` light

        self.svc = service_from_model(svc)
        self.rng = base.SchedRng(seed)

    def add_dest(self, dest: model.Dest) -> None:
        self.svc.add_dest(dest)

    def pick(self, flow: base.RefFlow, now: int) -> model.DestKey | None:
        d = self.svc.schedule(flow, now, self.rng)
        return None if d is None else d.key

    def event(self, key: model.DestKey, event: int) -> None:
        self.svc.event(key, event)

    def tick(self, now: int) -> None:
        self.svc.tick(now)


class CEngine:
    """The C core through lb.core.core.Core."""

    def __init__(self, svc: model.Service, seed: int, n_dests: int) -> None:
        from lb.core.core import Core  # noqa: PLC0415 - the extension is only needed for --engine c

        self.core = Core(conn_max=1024, svc_max=2, dest_max=max(16, n_dests), rng_seed=seed)
        self.key = svc.key
        self.core.add_service(svc)
        self.ids: dict[model.DestKey, int] = {}
        self.keys: dict[int, model.DestKey] = {}

    def add_dest(self, dest: model.Dest) -> None:
        self.core.add_dest(self.key, dest)
        for info in self.core.dest_infos(self.key):
            self.ids[info.dest.key] = info.id
            self.keys[info.id] = info.dest.key

    def pick(self, flow: base.RefFlow, now: int) -> model.DestKey | None:
        from lb.core.core import Flow  # noqa: PLC0415

        got = self.core.sched_batch(self.key, [Flow(flow.saddr, flow.sport, flow.daddr, flow.dport)], now)[0]
        return self.keys.get(got) if got >= 0 else None

    def event(self, key: model.DestKey, event: int) -> None:
        self.core.dest_event(self.ids[key], event)

    def tick(self, now: int) -> None:
        self.core.tick(now)


# ---- the simulation ----


@dataclass
class _Conn:
    dest: model.DestKey
    start: int  # arrival index
    template: _Template | None
    inactive: bool = False


@dataclass
class _Template:
    dest: model.DestKey
    last_use: int
    conns: int = 0


@dataclass
class SimConfig:
    sched: str
    servers: list[model.Dest]
    count: int
    flags: int = 0
    persist: int | None = None
    clients: list[tuple[model.Addr, int | None]] = field(default_factory=list)
    active: int | None = None
    inactive: int = 0
    seed: int = 1
    engine: str = "c"


@dataclass
class SimResult:
    picks: list[model.DestKey | None]
    servers: list[model.Dest]

    def summary(self) -> dict[str, object]:
        total_w = sum(d.weight for d in self.servers)
        n = len(self.picks)
        rows = []
        for d in self.servers:
            got = sum(1 for p in self.picks if p == d.key)
            rows.append({
                "server": format_server(d.addr, d.port),
                "weight": d.weight,
                "weight_share": round(d.weight / total_w, 6) if total_w else 0.0,
                "picks": got,
                "picks_share": round(got / n, 6) if n else 0.0,
            })
        return {"servers": rows, "unassigned": sum(1 for p in self.picks if p is None), "connections": n}


def _client(cfg: SimConfig, i: int, v6: bool) -> tuple[model.Addr, int]:
    port = 1024 + i % (65536 - 1024)
    if cfg.clients:
        addr, cport = cfg.clients[i % len(cfg.clients)]
        return addr, cport if cport is not None else port
    first = FIRST_CLIENT6 if v6 else FIRST_CLIENT4
    return first + i, port


def simulate(cfg: SimConfig) -> SimResult:
    """Run the simulation; SimError for bad input."""
    v6 = cfg.servers[0].addr.version == 6 if cfg.servers else False
    for d in cfg.servers:
        if (d.addr.version == 6) != v6:
            raise SimError(f"server {format_server(d.addr, d.port)}: address family differs from the first")
    seen: set[model.DestKey] = set()
    for d in cfg.servers:
        if d.key in seen:
            raise SimError(f"duplicate server {format_server(d.addr, d.port)}")
        seen.add(d.key)
    for addr, _ in cfg.clients:
        if (addr.version == 6) != v6:
            raise SimError(f"client {addr} is not of the servers' address family")
    vip = VIP6 if v6 else VIP4
    flags = cfg.flags | (model.SVC_F_PERSISTENT if cfg.persist is not None else 0)
    svc = model.Service(model.ServiceKey(model.Proto.TCP, vip, VPORT), sched=cfg.sched, flags=flags,
                        timeout=cfg.persist or 0)
    engine: Engine = PythonEngine(svc, cfg.seed) if cfg.engine == "python" else CEngine(svc, cfg.seed,
                                                                                           len(cfg.servers))
    for d in cfg.servers:
        engine.add_dest(d)

    live: list[_Conn] = []
    templates: dict[model.Addr, _Template] = {}
    picks: list[model.DestKey | None] = []
    for i in range(cfg.count):
        now = i * NS_PER_ARRIVAL
        # 1. connections age: active for `active` arrivals, inactive for `inactive` more, then gone.
        if cfg.active is not None:
            still: list[_Conn] = []
            for c in live:
                age = i - c.start - 1  # arrivals seen since the connection's own
                if not c.inactive and age >= cfg.active:
                    if cfg.inactive > 0:
                        engine.event(c.dest, base.EV_TO_INACTIVE)
                        c.inactive = True
                    else:
                        engine.event(c.dest, base.EV_UNBIND_ACTIVE)
                        if c.template:
                            c.template.conns -= 1
                        continue
                if c.inactive and age >= cfg.active + cfg.inactive:
                    engine.event(c.dest, base.EV_UNBIND_INACTIVE)
                    if c.template:
                        c.template.conns -= 1
                    continue
                still.append(c)
            live = still
        # 2. persistence templates expire TIMEOUT seconds after their last use, once they control nothing.
        if cfg.persist is not None:
            for addr, t in list(templates.items()):
                if t.conns == 0 and i >= t.last_use + cfg.persist:
                    engine.event(t.dest, base.EV_UNBIND_TEMPLATE)
                    del templates[addr]
        engine.tick(now)
        # 3. the new connection.
        caddr, cport = _client(cfg, i, v6)
        tmpl = templates.get(caddr) if cfg.persist is not None else None
        dest: model.DestKey | None
        if tmpl is not None:
            dest = tmpl.dest
            tmpl.last_use = i
        else:
            dest = engine.pick(base.RefFlow(caddr, cport, vip, VPORT), now)
            if dest is not None and cfg.persist is not None:
                tmpl = templates[caddr] = _Template(dest, i)
                engine.event(dest, base.EV_BIND_TEMPLATE)
        picks.append(dest)
        if dest is not None:
            engine.event(dest, base.EV_BIND_ACTIVE)
            if tmpl is not None:
                tmpl.conns += 1
            if cfg.active is not None:
                live.append(_Conn(dest, i, tmpl))
    return SimResult(picks, cfg.servers)


# ---- output ----


def render_text(res: SimResult) -> str:
    lines = [format_server(p.addr, p.port) if p is not None else "-" for p in res.picks]
    s = res.summary()
    rows = s["servers"]
    assert isinstance(rows, list)
    width = max([len("server"), *(len(str(r["server"])) for r in rows)])
    lines.append("")
    lines.append(f"{'server':<{width}}  {'weight':>10}  {'weight%':>7}  {'picks':>8}  {'picks%':>7}")
    for r in rows:
        lines.append(f"{r['server']:<{width}}  {r['weight']:>10}  {100 * r['weight_share']:>6.1f}%  "
                     f"{r['picks']:>8}  {100 * r['picks_share']:>6.1f}%")
    n = int(str(s["connections"]))
    unassigned = int(str(s["unassigned"]))
    if unassigned:
        lines.append(f"{'-':<{width}}  {'':>10}  {'':>7}  {unassigned:>8}  {100 * unassigned / n:>6.1f}%")
    return "\n".join(lines) + "\n"


def render_json(res: SimResult) -> str:
    picks = [format_server(p.addr, p.port) if p is not None else None for p in res.picks]
    return json.dumps({"picks": picks, "summary": res.summary()}, indent=2) + "\n"


# ---- CLI ----


def _known_schedulers(engine: str) -> list[str]:
    if engine == "python":
        from lb.sched.ref import SCHEDULERS  # noqa: PLC0415

        return list(SCHEDULERS)
    from lb.sched import names  # noqa: PLC0415

    return names()


def _flags_ok(engine: str, sched: str) -> int:
    if engine == "python":
        from lb.sched.ref import SCHEDULERS  # noqa: PLC0415

        return SCHEDULERS[sched].flags_ok
    from lb.sched import info  # noqa: PLC0415

    got = info(sched)
    return got.flags_ok if got else 0


def config_from_args(args: argparse.Namespace) -> SimConfig:
    if args.sched not in _known_schedulers(args.engine):
        raise SimError(f"unknown scheduler {args.sched!r}")
    if not args.servers:
        raise SimError("no server given (-r ADDR:PORT[,weight=W][,u=U][,l=L])")
    servers = [parse_server(s) for s in args.servers]
    flags = parse_flags(args.flags, args.sched, _flags_ok(args.engine, args.sched)) if args.flags else 0
    clients = [parse_hostport(c, "client", port_required=False) for c in args.clients]
    return SimConfig(args.sched, servers, args.count, flags, args.persist, clients, args.active,
                     args.inactive, args.seed, args.engine)


def _nonneg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"negative number {text!r}")
    return value


def _one_line_error(prog: str) -> object:
    def error(message: str) -> NoReturn:
        sys.stderr.write(f"{prog}: error: {message}\n")
        raise SystemExit(2)

    return error


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a scheduler over simulated connections and show the picks",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Time base: arrival i is at t = i seconds (for -p and lblc/lblcr aging).",
    )
    p.add_argument("-s", "--scheduler", dest="sched", required=True, metavar="SCHED",
                   help="scheduler name (rr, wrr, wlc, …)")
    p.add_argument("-b", "--sched-flags", dest="flags", default="", metavar="FLAGS",
                   help="scheduler flags, comma separated (sh-fallback, sh-port, mh-fallback, mh-port)")
    p.add_argument("-p", "--persistent", dest="persist", type=_nonneg, metavar="TIMEOUT",
                   help="persistence timeout in seconds (= arrivals)")
    p.add_argument("-r", "--real-server", dest="servers", action="append", default=[],
                   metavar="ADDR:PORT[,weight=W][,u=U][,l=L]", help="a server, in ipvsadm -a order (repeat)")
    p.add_argument("-n", "--count", type=_nonneg, required=True, metavar="COUNT",
                   help="number of connections")
    p.add_argument("--client", dest="clients", action="append", default=[], metavar="ADDR[:PORT]",
                   help="client address(es), used in turn (default 10.0.0.1, 10.0.0.2, … port 1024+i)")
    p.add_argument("--active", type=_nonneg, default=None, metavar="K",
                   help="a connection stays active for K arrivals (default: forever)")
    p.add_argument("--inactive", type=_nonneg, default=0, metavar="M",
                   help="then inactive for M arrivals before it is gone (default 0)")
    p.add_argument("--seed", type=_nonneg, default=1, metavar="N", help="scheduler PRNG seed (twos)")
    p.add_argument("--engine", choices=("c", "python"), default="c", help="C core or the Python twins")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    setattr(p, "error", _one_line_error(p.prog))  # noqa: B010 - one-line errors, exit 2
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        res = simulate(cfg)
    except SimError as exc:
        sys.stderr.write(f"lb simulate: error: {exc}\n")
        return 2
    sys.stdout.write(render_json(res) if args.json else render_text(res))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lb.sched.simulate …` (the same as `lb simulate …`)."""
    parser = argparse.ArgumentParser(prog="lb")
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(["simulate", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
