"""`lbadm`: ipvsadm 1.31 for a pyvs balancer (the `lbadm` console script).

argv → lb.cli.options.parse_args (ipvsadm's option table, messages and exit codes) → a request to the
balancer's control socket (lb.daemon.client) → ipvsadm's output (lb.cli.render).  Exit statuses follow
ipvsadm: 0 success; 2 for command-line errors (fail(2, ...)); 255 for popt errors, "Try ... -h" and a change
the balancer refused (ipvsadm returns -1); 1 when a listing fails (exit(1)).

Beyond ipvsadm: `--json` prints any listing as JSON; `--socket PATH` (or LB_SOCKET) names the balancer.
Differences, on purpose: the command line is checked before connecting (ipvsadm opens the kernel first), so
`lbadm -h` works without a balancer; `-R` applies the whole input atomically (ipvsadm applies line by line
and carries on after a refused line) and skips '#' comment lines.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from lb.cli import options as o
from lb.cli import render
from lb.config import change_from_command, parse_rules
from lb.daemon.client import Client
from lb.errors import IpvsError, LbError


def _split_extensions(argv: list[str]) -> tuple[list[str], bool, str | None]:
    """Take pyvs's own options (--json, --socket PATH) out of argv before ipvsadm's parser sees it."""
    out, as_json, sock = [argv[0]], False, None
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out.extend(argv[i:])
            break
        if a == "--json":
            as_json = True
        elif a == "--socket" and i + 1 < len(argv):
            sock = argv[i + 1]
            i += 1
        elif a.startswith("--socket="):
            sock = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out, as_json, sock


class Lbadm:
    """One lbadm invocation: output streams and a lazily opened client (tests pass their own)."""

    def __init__(self, prog: str = "lbadm", socket_path: str | None = None, *, stdin: IO[str] | None = None,
                 stdout: IO[str] | None = None, stderr: IO[str] | None = None,
                 client: Client | None = None) -> None:
        self.prog = prog
        self.socket_path = socket_path
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._client = client

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.socket_path).connect()
        return self._client

    def _print_json(self, obj: Any) -> None:
        self.stdout.write(json.dumps(obj, indent=2) + "\n")

    def run(self, argv: Sequence[str]) -> int:
        """Run one command line (argv[0] is the program name); returns the exit status."""
        args, as_json, sock = _split_extensions(list(argv))
        if sock:
            self.socket_path = sock
        try:
            ce = o.Command(cmd=o.Cmd.LIST) if len(args) == 1 else o.parse_args(args, self.prog)
            ce.json = as_json
            return self.execute(ce)
        except LbError as exc:
            self.stderr.write(f"{exc}\n")
            return exc.exit_code
        finally:
            if self._client is not None:
                self._client.close()

    def execute(self, ce: o.Command) -> int:
        c = ce.cmd
        if c == o.Cmd.HELP:
            self.stdout.write(render.usage_text(self.prog))
            return 0
        if c == o.Cmd.VERSION:
            self.stdout.write(render.version_text())
            return 0
        if c == o.Cmd.LIST:
            return self.list(ce)
        if c == o.Cmd.SAVE:
            services, _t, _v, _s = self.client.status()
            if ce.json:
                self._print_json(render.list_json(services, ce.format))
            else:
                self.stdout.write(render.list_all(services, ce.format | o.FMT_RULE))
            return 0
        if c == o.Cmd.RESTORE:
            changes = parse_rules(self.stdin.read(), self.prog)
            if changes:
                self.client.apply(changes)
            return 0
        try:
            self.client.apply([change_from_command(ce)])
        except IpvsError as exc:
            self.stderr.write(f"{exc}\n")
            return 255
        return 0

    def list(self, ce: o.Command) -> int:
        fmt = ce.format
        if ce.has(o.Optc.CONNECTION):
            conns = self.client.conns()
            if ce.json:
                self._print_json({"connections": [render.conn_json(x) for x in conns]})
            else:
                self.stdout.write(render.list_conn(conns, fmt))
            return 0
        if ce.has(o.Optc.SERVICE):
            try:
                st = self.client.service(ce.service_key)
            except IpvsError as exc:
                self.stderr.write(f"{exc}\n")
                return 1
            if ce.json:
                self._print_json(render.service_json(st, fmt))
            else:
                self.stdout.write(render.list_service(st, fmt))
            return 0
        if ce.has(o.Optc.TIMEOUT):
            t = self.client.timeouts()
            if ce.json:
                self._print_json({"tcp": t.tcp, "tcpfin": t.tcpfin, "udp": t.udp})
            else:
                self.stdout.write(render.list_timeout(t))
            return 0
        if ce.has(o.Optc.DAEMON):
            if ce.json:
                self._print_json({"daemons": []})
            return 0                     # no sync daemon runs: ipvsadm prints nothing
        services, _t, version, size = self.client.status()
        if ce.json:
            self._print_json(render.list_json(services, fmt, version, size))
        else:
            self.stdout.write(render.list_all(services, fmt, version, size))
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    prog = os.path.basename(args[0]) if args else "lbadm"
    return Lbadm(prog).run(args or ["lbadm"])


if __name__ == "__main__":
    sys.exit(main())
