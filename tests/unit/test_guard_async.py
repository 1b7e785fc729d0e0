"""Test that the kernel guard updates its nft table without making the run loop wait.

- the first update runs nft and waits (the guard is in place before forwarding starts);
- later updates run in the background: right after update() the guard is busy, poll() reaps it;
- updates that arrive while one runs collapse into the newest: the intermediate script never runs, the
  newest does, once;
- close() waits for the work in flight, then removes the table.
(A stand-in command replaces `nft`: it records each script it is given, after a short sleep.)
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from lb.io.guard import KernelGuard, ruleset


def _guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[KernelGuard, list[str], Path]:
    g = KernelGuard(["eth0"], log=None)
    sync: list[str] = []

    def fake_nft(script: str) -> bool:
        sync.append(script)
        return g._done(script, 0, "")
    monkeypatch.setattr(g, "_nft", fake_nft)
    log = tmp_path / "ran.log"
    monkeypatch.setattr(g, "_argv", lambda path: ["sh", "-c", f'sleep 0.3; cat "{path}" >> "{log}"; '
                                                             f'echo "=====" >> "{log}"'])
    return g, sync, log


def vips(*last: int) -> list[IPv4Address]:
    return [IPv4Address(f"10.10.0.{x}") for x in last]


def test_first_update_waits_later_ones_run_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g, sync, log = _guard(tmp_path, monkeypatch)
    g.update(vips(1), [], [])
    assert g.active and len(sync) == 1 and not g.busy
    g.update(vips(1, 2), [], [])
    assert g.busy and not log.exists()          # returned while the stand-in still sleeps
    g.update(vips(1, 2, 3), [], [])              # arrives meanwhile: waits, replaces nothing in flight
    g.update(vips(1, 2, 3, 4), [], [])           # ...and supersedes the one before
    g.wait()
    assert not g.busy
    runs = log.read_text().split("=====\n")[:-1]
    assert runs == [ruleset("pyvs", ["eth0"], vips(1, 2), [], []),
                    ruleset("pyvs", ["eth0"], vips(1, 2, 3, 4), [], [])]
    assert g._last == runs[-1]
    g.update(vips(1, 2, 3, 4), [], [])           # unchanged: nothing to run
    assert not g.busy


def test_close_waits_for_the_work_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g, sync, log = _guard(tmp_path, monkeypatch)
    g.update(vips(1), [], [])
    g.update(vips(7), [], [])
    g.close()
    assert log.read_text().count("=====") == 1 and "10.10.0.7" in log.read_text()
    assert sync[-1].startswith("table netdev pyvs {}\ndelete table netdev pyvs") and not g.active
