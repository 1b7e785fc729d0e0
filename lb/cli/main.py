"""`lb`: one command, subcommands contributed by the modules that implement them.

Each module in `SUBCOMMAND_MODULES` defines `register(sub)`, which adds its parser(s) to the subparsers
object and sets `func` (a handler taking the parsed namespace and returning the exit status).  No list of
subcommand names is kept here: the module owns its name, options and help (STYLE.md 3.4, Seesaw's table).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lb import __version__

SUBCOMMAND_MODULES = (
    "lb.sched.simulate",  # simulate
    "lb.run",  # run
    "lb.lab.cli",  # lab, demo
    "lb.lab.tundecap",  # tun-decap
    "lb.teach.cli",  # explain, trace
    "lb.benchcli",  # bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lb",
        description="pyvs: a userspace IP Virtual Server (Linux IPVS in Python with a C core).",
        epilog="Administration of a running balancer uses `lbadm` (ipvsadm syntax).",
    )
    parser.add_argument("--version", action="version", version=f"pyvs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only a module that does not exist (yet) is skipped; a broken import inside one is an error.
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
