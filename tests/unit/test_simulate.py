"""Test that `lb simulate` shows the kernel's picks and reports bad input on one line.

- wrr with weights 4, 3, 2 added one by one gives the sequence worked out from ip_vs_wrr.c (C and Python).
- Both engines print the same picks for every scheduler, with connection aging and thresholds.
- --active/--inactive drive the counts lc/wlc/nq see; -p keeps a client on its server until the template
  expires; --json carries the same picks and the weight/picks shares.
- Unknown scheduler, bad weight, duplicate server, malformed address, a flag the scheduler does not take:
  one error line naming the value, exit status 2.
"""

from __future__ import annotations

import json

import pytest

from lb.sched import names
from lb.sched.ref import SCHEDULERS
from lb.sched.simulate import main

A, B, C = "10.0.0.11:80", "10.0.0.12:80", "10.0.0.13:80"


def picks(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return out.split("\n\n")[0].splitlines()


@pytest.mark.parametrize("engine", ["c", "python"])
def test_wrr_432_added_one_by_one(capsys: pytest.CaptureFixture[str], engine: str) -> None:
    # After the adds: list C, B, A (newest first), di = 1, mw = 4, and cw = 1 (left by A's add, when
    # mw was 1).  So the first walk takes everyone at cw = 1, then cw restarts at 4: A; 3: B, A; 2: C, B, A.
    got = picks(capsys, "-s", "wrr", "-r", f"{A},weight=4", "-r", f"{B},weight=3", "-r", f"{C},weight=2",
                "-n", "9", "--engine", engine)
    assert got == [C, B, A, A, B, A, C, B, A]


@pytest.mark.parametrize("sched", sorted(set(names()) & set(SCHEDULERS)))
def test_engines_agree(capsys: pytest.CaptureFixture[str], sched: str) -> None:
    argv = ["-s", sched, "-r", f"{A},weight=3,u=6,l=2", "-r", f"{B},weight=1", "-r", f"{C},weight=2,u=3",
            "-n", "200", "--active", "4", "--inactive", "3", "--seed", "7",
            "--client", "10.0.0.1", "--client", "10.0.0.2:5000", "--client", "10.0.0.3"]
    c = picks(capsys, *argv, "--engine", "c")
    py = picks(capsys, *argv, "--engine", "python")
    assert c == py
    assert len(c) == 200


def test_rr_visits_newest_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert picks(capsys, "-s", "rr", "-r", A, "-r", B, "-r", C, "-n", "4") == [C, B, A, C]


def test_lc_sees_active_connections_age(capsys: pytest.CaptureFixture[str]) -> None:
    # --active 0: a connection is gone before the next arrival, every pick sees empty servers: the first in
    # the list (the newest, B) wins the tie every time.
    assert picks(capsys, "-s", "lc", "-r", A, "-r", B, "-n", "3", "--active", "0") == [B, B, B]
    # Forever active: B, then A (B has one), then B (tie, first in list), then A ...
    assert picks(capsys, "-s", "lc", "-r", A, "-r", B, "-n", "4") == [B, A, B, A]
    # Inactive connections cost 1, active 256: with --active 0 --inactive 5 the loads stay small but
    # still alternate the picks.
    assert picks(capsys, "-s", "lc", "-r", A, "-r", B, "-n", "4", "--active", "0", "--inactive", "5") == [
        B, A, B, A]


def test_upper_threshold_overloads(capsys: pytest.CaptureFixture[str]) -> None:
    # A takes at most 1 connection (u=1): once it has one, it is OVERLOADed and only B gets picks.
    got = picks(capsys, "-s", "rr", "-r", f"{A},u=1", "-r", B, "-n", "4")
    assert got == [B, A, B, B]


def test_no_server_available_prints_dash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-s", "wlc", "-r", f"{A},weight=0", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == ["-", "-"]


def test_persistence_keeps_client_until_template_expires(capsys: pytest.CaptureFixture[str]) -> None:
    # One client, rr: without -p it alternates; with -p 3 and connections gone at once (--active 0), the
    # template lives 3 arrivals after its last use, and it is used every arrival, so it never expires.
    assert picks(capsys, "-s", "rr", "-r", A, "-r", B, "--client", "10.0.0.1", "-n", "4") == [B, A, B, A]
    assert picks(capsys, "-s", "rr", "-p", "3", "-r", A, "-r", B, "--client", "10.0.0.1", "-n", "4",
                 "--active", "0") == [B, B, B, B]
    # Two clients alternate; each template is used every 2 arrivals; -p 1 lets it expire in between.
    got = picks(capsys, "-s", "rr", "-p", "1", "-r", A, "-r", B, "--client", "10.0.0.1", "--client",
                "10.0.0.2", "-n", "4", "--active", "0")
    assert got == [B, A, B, A]
    got = picks(capsys, "-s", "rr", "-p", "5", "-r", A, "-r", B, "-r", C, "--client", "10.0.0.1", "--client",
                "10.0.0.2", "-n", "4", "--active", "0")
    assert got == [C, B, C, B]


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-s", "wrr", "-r", f"{A},weight=3", "-r", f"{B},weight=1", "-n", "8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["picks"]) == 8
    rows = {r["server"]: r for r in doc["summary"]["servers"]}
    assert rows[A]["weight_share"] == 0.75
    assert rows[A]["picks"] == 6
    assert rows[A]["picks_share"] == 0.75
    assert doc["summary"]["unassigned"] == 0


def test_summary_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-s", "rr", "-r", A, "-r", B, "-n", "4"]) == 0
    out = capsys.readouterr().out
    summary = out.split("\n\n")[1].splitlines()
    assert summary[0].split() == ["server", "weight", "weight%", "picks", "picks%"]
    assert summary[1].split() == [A, "1", "50.0%", "2", "50.0%"]


def test_ipv6_servers(capsys: pytest.CaptureFixture[str]) -> None:
    got = picks(capsys, "-s", "rr", "-r", "[2001:db8::1]:80", "-r", "[2001:db8::2]:80", "-n", "2")
    assert got == ["[2001:db8::2]:80", "[2001:db8::1]:80"]


@pytest.mark.parametrize(("argv", "named"), [
    (["-s", "nosuch", "-r", A, "-n", "1"], "'nosuch'"),
    (["-s", "rr", "-r", f"{A},weight=-1", "-n", "1"], "-1"),
    (["-s", "rr", "-r", f"{A},weight=2147483648", "-n", "1"], "2147483648"),
    (["-s", "rr", "-r", f"{A},weight=x", "-n", "1"], "'x'"),
    (["-s", "rr", "-r", A, "-r", A, "-n", "1"], A),
    (["-s", "rr", "-r", "10.0.0:80", "-n", "1"], "10.0.0:80"),
    (["-s", "rr", "-r", "10.0.0.1", "-n", "1"], "10.0.0.1"),
    (["-s", "rr", "-b", "sh-port", "-r", A, "-n", "1"], "sh-port"),
    (["-s", "sh", "-b", "flag-3", "-r", A, "-n", "1"], "flag-3"),
    (["-s", "rr", "-r", A, "-n", "1", "--client", "nohost"], "nohost"),
    (["-s", "rr", "-r", A, "-n", "-3"], "-3"),
])
def test_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], named: str) -> None:
    with pytest.raises(SystemExit) as exc:
        rc = main(argv)
        raise SystemExit(rc)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert named in err
