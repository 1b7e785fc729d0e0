"""Test that lbadm's command line behaves like ipvsadm 1.31's.

- every cell of commands_v_options: a '+' option left out, an 'x' option given, two '1' options together
  each fail with ipvsadm's message and exit status 2;
- the command lines of tests/golden/ipvsadm-1.31/errors.json give exactly ipvsadm's stderr and exit status
  (popt errors and "Try ... -h" exit 255);
- defaults: scheduler wlc, forwarding DR (-g), weight 1, -p without a value = 360 s, /32 netmask, dest port
  copied from the service (and forced for DR/TUN), clustered short options, --long=value;
- -h and -v print ipvsadm's texts and exit 0; SCTP and sync daemons are refused as not supported.
"""

from __future__ import annotations

import io
import json
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from lb import model
from lb.cli import options as o
from lb.cli.ipvsadm import Lbadm
from lb.errors import NotSupportedError, UsageError

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ipvsadm-1.31"

CMD_ARGS: dict[o.Cmd, list[str]] = {
    o.Cmd.ADD: ["-A"],
    o.Cmd.EDIT: ["-E"],
    o.Cmd.DEL: ["-D"],
    o.Cmd.FLUSH: ["-C"],
    o.Cmd.LIST: ["-L"],
    o.Cmd.ADDDEST: ["-a"],
    o.Cmd.DELDEST: ["-d"],
    o.Cmd.EDITDEST: ["-e"],
    o.Cmd.TIMEOUT: ["--set"],
    o.Cmd.STARTDAEMON: ["--start-daemon", "master"],
    o.Cmd.STOPDAEMON: ["--stop-daemon", "master"],
    o.Cmd.RESTORE: ["-R"],
    o.Cmd.SAVE: ["-S"],
    o.Cmd.ZERO: ["-Z"],
}
OPT_ARGS: dict[o.Optc, list[str]] = {
    o.Optc.NUMERIC: ["-n"],
    o.Optc.CONNECTION: ["-c"],
    o.Optc.SERVICE: ["-t", "10.0.0.1:80"],
    o.Optc.SCHEDULER: ["-s", "rr"],
    o.Optc.PERSISTENT: ["-p", "300"],
    o.Optc.NETMASK: ["-M", "255.255.255.0"],
    o.Optc.SERVER: ["-r", "10.0.0.2"],
    o.Optc.FORWARD: ["-i"],
    o.Optc.WEIGHT: ["-w", "2"],
    o.Optc.UTHRESHOLD: ["-x", "10"],
    o.Optc.LTHRESHOLD: ["-y", "5"],
    o.Optc.MCAST: ["--mcast-interface", "eth0"],
    o.Optc.TIMEOUT: ["--timeout"],
    o.Optc.DAEMON: ["--daemon"],
    o.Optc.STATS: ["--stats"],
    o.Optc.RATE: ["--rate"],
    o.Optc.THRESHOLDS: ["--thresholds"],
    o.Optc.PERSISTENTCONN: ["--persistent-conn"],
    o.Optc.NOSORT: ["--nosort"],
    o.Optc.SYNCID: ["--syncid", "1"],
    o.Optc.EXACT: ["--exact"],
    o.Optc.ONEPACKET: ["-o"],
    o.Optc.PERSISTENCE_ENGINE: ["--pe", "sip"],
    o.Optc.SCHED_FLAGS: ["-b", "flag-1"],
    o.Optc.MCAST_GROUP: ["--mcast-group", "224.0.0.81"],
    o.Optc.MCAST_PORT: ["--mcast-port", "8848"],
    o.Optc.MCAST_TTL: ["--mcast-ttl", "1"],
    o.Optc.SYNC_MAXLEN: ["--sync-maxlen", "1472"],
    o.Optc.TUN_INFO: ["--tun-info"],
    o.Optc.TUN_TYPE: ["--tun-type", "ipip"],
    o.Optc.TUN_PORT: ["--tun-port", "1"],
    o.Optc.TUN_NOCSUM: ["--tun-nocsum"],
    o.Optc.TUN_CSUM: ["--tun-csum"],
    o.Optc.TUN_REMCSUM: ["--tun-remcsum"],
}
COMMANDS = [c for c in o.Cmd if 1 <= c <= 14]


def _argv(cmd: o.Cmd, opts: list[o.Optc]) -> list[str]:
    argv = ["ipvsadm", *CMD_ARGS[cmd]]
    for opt in opts:
        argv += OPT_ARGS[opt]
    if cmd == o.Cmd.TIMEOUT:
        argv += ["900", "120", "300"]
    return argv


def _required(cmd: o.Cmd) -> list[o.Optc]:
    return [o.Optc(j) for j, cell in enumerate(o.COMMANDS_V_OPTIONS[cmd - 1]) if cell == "+"]


def test_table_shape_matches_ipvsadm() -> None:
    assert len(o.COMMANDS_V_OPTIONS) == 14
    assert all(len(row) == 34 == len(o.OPTNAMES) for row in o.COMMANDS_V_OPTIONS)
    assert len(o.CMDNAMES) == 14


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.name)
def test_each_required_option_missing_fails(cmd: o.Cmd) -> None:
    req = _required(cmd)
    for missing in req:
        with pytest.raises(UsageError) as exc:
            o.parse_args(_argv(cmd, [r for r in req if r != missing]))
        assert str(exc.value) == (
            f"You need to supply the '{o.OPTNAMES[missing]}' option for the '{o.CMDNAMES[cmd - 1]}' command"
        )
        assert exc.value.exit_code == 2


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.name)
def test_each_illegal_option_fails(cmd: o.Cmd) -> None:
    req = _required(cmd)
    row = o.COMMANDS_V_OPTIONS[cmd - 1]
    for j, cell in enumerate(row):
        if cell != "x":
            continue
        opt = o.Optc(j)
        with pytest.raises(UsageError) as exc:
            o.parse_args(_argv(cmd, [*req, opt]))
        assert str(exc.value) == f"Illegal '{o.OPTNAMES[j]}' option with the '{o.CMDNAMES[cmd - 1]}' command"


def test_exclusive_list_options_conflict() -> None:
    ones = [o.Optc(j) for j, cell in enumerate(o.COMMANDS_V_OPTIONS[o.Cmd.LIST - 1]) if cell == "1"]
    assert ones == [o.Optc.CONNECTION, o.Optc.SERVICE, o.Optc.TIMEOUT, o.Optc.DAEMON]
    for i, first in enumerate(ones):
        for second in ones[i + 1 :]:
            with pytest.raises(UsageError) as exc:
                o.parse_args(_argv(o.Cmd.LIST, [first, second]))
            assert str(exc.value) == (
                f"The option '{o.OPTNAMES[second]}' conflicts with the "
                f"'{o.OPTNAMES[first]}' option in the 'list' command"
            )


def test_optional_cells_are_accepted() -> None:
    ce = o.parse_args(
        _argv(
            o.Cmd.ADDDEST,
            [
                o.Optc.SERVICE,
                o.Optc.SERVER,
                o.Optc.FORWARD,
                o.Optc.WEIGHT,
                o.Optc.UTHRESHOLD,
                o.Optc.LTHRESHOLD,
            ],
        )
    )
    assert ce.dest == model.Dest(IPv4Address("10.0.0.2"), 80, model.Fwd.TUNNEL, 2, 10, 5)
    ce = o.parse_args(_argv(o.Cmd.LIST, [o.Optc.NUMERIC, o.Optc.STATS, o.Optc.EXACT, o.Optc.NOSORT]))
    assert ce.format == o.FMT_NUMERIC | o.FMT_STATS | o.FMT_EXACT | o.FMT_NOSORT


ERRORS = json.loads((GOLDEN / "errors.json").read_text())


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: " ".join(c["argv"]))
def test_error_matches_ipvsadm(case: dict[str, object]) -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = Lbadm("ipvsadm", "/nonexistent/lb.sock", stdout=out, stderr=err).run(["ipvsadm", *case["argv"]])
    assert (rc, err.getvalue(), out.getvalue()) == (case["exit"], case["stderr"], "")


def test_defaults() -> None:
    ce = o.parse_args(["ipvsadm", "-A", "-t", "10.0.0.1:80"])
    assert ce.service == model.Service(model.ServiceKey(model.Proto.TCP, IPv4Address("10.0.0.1"), 80), "wlc")
    ce = o.parse_args(["ipvsadm", "-A", "-t", "10.0.0.1:80", "-p"])
    assert (ce.service.timeout, ce.service.persistent, ce.service.netmask) == (360, True, 0xFFFFFFFF)
    ce = o.parse_args(["ipvsadm", "-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080"])
    assert ce.dest == model.Dest(IPv4Address("10.0.0.2"), 80, model.Fwd.DROUTE, 1)  # DR forces the port
    ce = o.parse_args(["ipvsadm", "-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080", "-m"])
    assert ce.dest.port == 8080
    ce = o.parse_args(["ipvsadm", "-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m"])
    assert ce.dest.port == 80


def test_popt_forms() -> None:
    ce = o.parse_args(["ipvsadm", "-Ln"])
    assert ce.cmd == o.Cmd.LIST and ce.format == o.FMT_NUMERIC
    ce = o.parse_args(["ipvsadm", "--add-service", "--tcp-service=10.0.0.1:http", "--scheduler=rr"])
    assert (ce.port, ce.sched) == (80, "rr")
    ce = o.parse_args(["ipvsadm", "-At10.0.0.1:80", "-srr", "-p", "-M", "255.255.0.0"])
    assert (ce.sched, ce.timeout, ce.netmask) == ("rr", 360, 0xFFFF0000)
    ce = o.parse_args(["ipvsadm", "-A", "-u", "[2001:db8::1]:53", "-p", "60", "-M", "64"])
    assert (ce.addr, ce.port, ce.netmask) == (IPv6Address("2001:db8::1"), 53, 64)
    ce = o.parse_args(["ipvsadm", "-A", "-f", "5", "-6", "-s", "mh", "-b", "mh-port,mh-fallback"])
    assert ce.service_key == model.ServiceKey(model.Proto.TCP, IPv6Address("::"), 0, 5)
    assert ce.flags == model.SVC_F_SCHED_MH_PORT | model.SVC_F_SCHED_MH_FALLBACK
    ce = o.parse_args(["ipvsadm", "--set", "0", "60", "0"])
    assert ce.timeouts == model.Timeouts(0, 60, 0)


def test_help_and_version_go_to_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert Lbadm("ipvsadm", stdout=out, stderr=err).run(["ipvsadm", "-h"]) == 0
    assert out.getvalue() == (GOLDEN / "usage.txt").read_text() and err.getvalue() == ""
    out = io.StringIO()
    assert Lbadm("ipvsadm", stdout=out).run(["ipvsadm", "--version"]) == 0
    assert out.getvalue() == (GOLDEN / "version.txt").read_text()


def test_not_supported_features_say_so() -> None:
    with pytest.raises(NotSupportedError, match="SCTP"):
        o.parse_args(["ipvsadm", "-A", "--sctp-service", "10.0.0.1:80"])
    with pytest.raises(NotSupportedError, match="sync daemon"):
        o.parse_args(["ipvsadm", "--start-daemon", "master"])
    with pytest.raises(NotSupportedError, match="IPIP only"):
        o.parse_args(["ipvsadm", "-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i", "--tun-type", "gre"])


def test_no_daemon_is_a_clear_error() -> None:
    err = io.StringIO()
    rc = Lbadm("ipvsadm", "/nonexistent/lb.sock", stderr=err).run(["ipvsadm", "-L", "-n"])
    assert rc == 2
    assert err.getvalue().startswith("Can't initialize ipvs: cannot connect to /nonexistent/lb.sock")
