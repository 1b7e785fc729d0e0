"""`lb explain` and `lb trace`: the teaching subcommands (registered by lb/cli/main.py).

`explain` is offline (no root, no lab): a sample connection through the real data plane, as a ladder.
`trace` captures real requests at every hop of a running lab and renders the same ladder from the wire.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lb import model
from lb.teach import explain, render_html, render_text
from lb.teach.engine import EngineUnavailableError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("explain", help="show hop by hop what a forwarding mode rewrites (offline)",
                       description="Push a sample client connection through the real data plane and print "
                                   "each hop's headers, what changed and why.")
    p.add_argument("--mode", choices=explain.MODES, help="forwarding mode (nat = -m, dr = -g, tun = -i)")
    p.add_argument("--all", action="store_true", help="all three modes (with --html: one page and a "
                                                      "side-by-side comparison)")
    p.add_argument("--scheduler", "-s", default=model.DEFAULT_SCHED, metavar="S",
                   help=f"scheduler of the sample service (default {model.DEFAULT_SCHED})")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--engine", choices=("python", "c"), help="which data plane to run (default: the Python "
                                                             "twins when installed, else the C core)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="highlight changed fields with colour (auto: on a terminal unless NO_COLOR is set)")
    p.set_defaults(func=cmd_explain)

    t = sub.add_parser("trace", help="capture real requests at every hop of a running lab and explain them",
                       description="Capture one or N requests in a running lab (root), match each "
                                   "connection's packets across hops and print the ladder.")
    t.add_argument("--lab", default="pyvs", metavar="NAME", help="lab name (default: pyvs, as `lb lab up`)")
    t.add_argument("--count", "-n", type=int, default=1, metavar="N", help="requests to send (1-50)")
    t.add_argument("--pcap-dir", metavar="DIR", help="keep one pcap per hop in DIR")
    t.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    t.add_argument("--timeout", type=float, default=10.0, help="capture time limit in seconds (default 10)")
    t.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    t.set_defaults(func=cmd_trace)


def _color(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    return render_text.want_color(sys.stdout)


def cmd_explain(args: argparse.Namespace) -> int:
    if not args.all and not args.mode:
        print("lb explain: give --mode nat|dr|tun or --all", file=sys.stderr)
        return 2
    if args.scheduler not in model.SCHEDULERS:
        print(f"lb explain: unknown scheduler {args.scheduler!r}", file=sys.stderr)
        return 2
    modes = list(explain.MODES) if args.all else [args.mode]
    try:
        ladders = [explain.build(m, args.scheduler, engine=args.engine) for m in modes]
    except EngineUnavailableError as exc:
        print(f"lb explain: {exc}", file=sys.stderr)
        return 1
    color = _color(args.color)
    sys.stdout.write("\n".join(render_text.render(ladder, color) for ladder in ladders))
    if args.html:
        title = "pyvs: NAT, DR and TUN compared" if args.all else ladders[0].title
        Path(args.html).write_text(render_html.page(ladders, title, compare=args.all), encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from lb.teach import trace  # noqa: PLC0415 - needs the lab package; explain does not

    return trace.main(args)
