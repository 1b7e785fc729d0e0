"""`lb lab up|status|exec|lbadm|down` and `lb demo`: the lab from the command line.

`register(sub)` adds both commands to the `lb` CLI (lb/cli/main.py).  `up` keeps the lab (state in
/run/pyvs/labs/<name>/) until `down`; everything else in this file is a thin wrapper over lb.lab.lab.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from lb.lab import balancer as bal
from lb.lab.lab import DEFAULT_NAME, Lab, LabError, LabSpec, down, status
from lb.lab.netns import NetnsError, netns_exists, ns_argv
from lb.lab.state import LabState, check_name, list_labs
from lb.lab.topology import MODES
from lb.model import SCHEDULERS


def _need_root() -> bool:
    if os.geteuid() != 0:
        print("lb lab: needs root (it creates network namespaces)", file=sys.stderr)
        return False
    return True


def _weights(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad --weights {text!r}: comma-separated integers") from e


def cmd_up(args: argparse.Namespace) -> int:
    if not _need_root():
        return 1
    spec = LabSpec(mode=args.mode, servers=args.servers, scheduler=args.scheduler, weights=args.weights,
                   io=args.io, engine=args.engine, name=args.name, balancer=args.balancer)
    try:
        lab = Lab.up(spec, keep=True)
    except (LabError, NetnsError, ValueError) as e:
        print(f"lb lab up: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lb lab up: interrupted; everything it made was removed", file=sys.stderr)
        return 130
    print(lab.map_text())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    print(status(args.name))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if not _need_root():
        return 1
    names = list_labs() if args.all else [args.name]
    for name in names:
        for what in down(name):
            print(f"{name}: removed {what}")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    if not _need_root():
        return 1
    check_name(args.name)
    ns = f"{args.name}-{args.node}"
    if not netns_exists(ns):
        print(f"lb lab exec: no node {args.node!r} in lab {args.name!r} (namespace {ns})", file=sys.stderr)
        return 1
    argv = [a for a in args.cmd if a != "--"] if args.cmd[:1] == ["--"] else args.cmd
    if not argv:
        print("lb lab exec: give a command after NODE (e.g. -- curl -s http://VIP/)", file=sys.stderr)
        return 2
    return subprocess.run(ns_argv(ns, argv), check=False).returncode


def cmd_lbadm(args: argparse.Namespace) -> int:
    st = LabState.load(check_name(args.name))
    if st is None:
        print(f"lb lab lbadm: lab {args.name!r} is not up", file=sys.stderr)
        return 1
    if st.balancer != "lb":
        print(f"lb lab lbadm: lab {args.name!r} runs balancer {st.balancer!r}, not lb", file=sys.stderr)
        return 1
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    env = dict(os.environ, LB_SOCKET=str(st.socket))
    return subprocess.run([*bal.lbadm_command(), *rest], env=env, check=False).returncode


def cmd_demo(args: argparse.Namespace) -> int:
    if not _need_root():
        return 1
    from lb.lab import demo  # noqa: PLC0415

    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            print(f"lb demo: unknown mode {m!r}", file=sys.stderr)
            return 2
    try:
        return demo.run(modes, args.servers, args.balancer, args.requests, args.name)
    except (LabError, NetnsError, ValueError) as e:
        print(f"lb demo: {e}", file=sys.stderr)
        return 1


def _name_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=DEFAULT_NAME,
                   help=f"lab name, namespace prefix (default {DEFAULT_NAME})")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser("lab", help="network-namespace lab: NAT, DR, TUN topologies with real TCP peers",
                         description=__doc__.splitlines()[0] if __doc__ else None)
    lsub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    up = lsub.add_parser("up", help="build a lab, start servers and the balancer, wait until it answers")
    up.add_argument("--mode", choices=MODES, required=True)
    up.add_argument("--servers", type=int, default=2)
    up.add_argument("--scheduler", choices=SCHEDULERS, default="rr")
    up.add_argument("--weights", type=_weights, default=(), help="W,W,... one per server")
    up.add_argument("--io", choices=("afpacket", "tap"), default="afpacket")
    up.add_argument("--engine", choices=("c", "python"), default="c")
    up.add_argument("--balancer", choices=bal.BALANCERS, default="",
                    help="lb (pyvs), nft (NAT: DNAT; DR: netdev fwd), nft-dnat (DNAT in any mode, replies "
                         "routed back through it), route (DR), py (DR/TUN); default lb when `lb run` exists")
    _name_arg(up)
    up.set_defaults(func=cmd_up)

    st = lsub.add_parser("status", help="labs, their namespaces and processes")
    st.add_argument("--name", default=None)
    st.set_defaults(func=cmd_status)

    ex = lsub.add_parser("exec", help="run a command in a lab node: lb lab exec client -- curl -s http://VIP/")
    _name_arg(ex)
    ex.add_argument("node", help="client, lb, router, switch, real1, ...")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)

    adm = lsub.add_parser("lbadm", help="lbadm against the lab balancer: lb lab lbadm -- -L -n")
    _name_arg(adm)
    adm.add_argument("args", nargs=argparse.REMAINDER)
    adm.set_defaults(func=cmd_lbadm)

    dn = lsub.add_parser("down", help="remove every namespace and process of a lab (idempotent)")
    _name_arg(dn)
    dn.add_argument("--all", action="store_true", help="every lab with a state file")
    dn.set_defaults(func=cmd_down)

    demo = sub.add_parser("demo", help="NAT, DR and TUN labs in turn: requests, distribution, rewrites")
    demo.add_argument("--modes", default=",".join(MODES))
    demo.add_argument("--servers", type=int, default=3)
    demo.add_argument("--requests", type=int, default=30)
    demo.add_argument("--balancer", choices=bal.BALANCERS, default="")
    demo.add_argument("--name", default="demo")
    demo.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    """Run the lab commands without the full `lb` CLI: `python -m lb.lab.cli lab up --mode nat`."""
    ap = argparse.ArgumentParser(prog="lb")
    register(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
