"""Test that `lb explain` prints, for each forwarding mode, exactly the golden ladder.

- the frames come from the real data plane (the C core's lb_process_batch; the Python twin engine too when
  it is installed, which must print the same ladder but for the line naming the engine);
- NAT: the request's destination becomes the RIP and the reply's source becomes the VIP again, both at the
  balancer; DR: only MACs (and TTL/IP checksum) change, the reply bypasses the balancer; TUN: an outer IPv4
  header (protocol 4) is added, the inner packet keeps the VIP, the reply bypasses the balancer;
- the scheduler step states the rule's numbers and agrees with the engine's pick for every scheduler;
- the output has no ANSI escapes when not on a terminal; colour with --color always.

Regenerate the golden files with UPDATE_GOLDEN=1 after an intended change (and read the diff).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lb import model
from lb.cli.main import main
from lb.teach import engine, explain

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "explain"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["explain", *argv]) == 0
    return capsys.readouterr().out


def _strip_source(text: str) -> str:
    return re.sub(r"^source: .*?(?=^marks:)", "source: -\n", text, flags=re.S | re.M)


@pytest.mark.parametrize("mode", explain.MODES)
def test_golden_text(mode: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = _run(capsys, "--mode", mode, "--engine", "c")
    assert "\x1b[" not in out
    path = GOLDEN / f"{mode}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(out, encoding="utf-8")
    assert out == path.read_text(encoding="utf-8")
    if "python" in engine.available():
        py = _run(capsys, "--mode", mode, "--engine", "python")
        assert _strip_source(py) == _strip_source(out)


def test_nat_fields() -> None:
    ladder = explain.build("nat", engine="c")
    req, reply = ladder.hops[1], ladder.hops[3]
    assert {(c.layer, c.name): c.new for c in req.changes}[("IPv4", "dst")].startswith("10.2.0.")
    assert {(c.layer, c.name): c.new for c in reply.changes}[("IPv4", "src")] == explain.VIP
    assert [(h.src, h.dst) for h in ladder.hops][1:3] == [("lb", req.dst), (req.dst, "lb")]


def test_dr_only_macs_change() -> None:
    ladder = explain.build("dr", engine="c")
    fwd = ladder.hops[1]
    assert {(c.layer, c.name) for c in fwd.changes} == {("Ethernet", "dst"), ("Ethernet", "src"),
                                                        ("IPv4", "ttl"), ("IPv4", "csum")}
    assert ladder.hops[-1].src.startswith("real") and ladder.hops[-1].dst == "client"
    assert len(ladder.hops) == 3


def test_tun_adds_outer_header() -> None:
    ladder = explain.build("tun", engine="c")
    fwd = ladder.hops[1]
    assert [layer for layer, _ in fwd.added] == ["IPv4 (outer)"]
    outer = next(h for h in fwd.headers if h.layer == "IPv4 (outer)")
    inner = next(h for h in fwd.headers if h.layer == "IPv4 (inner)")
    assert outer.get("proto") == "4 (IPIP)" and outer.get("src") == "10.4.0.2"
    assert outer.get("dst").startswith("10.5.0.") and inner.get("dst") == explain.VIP
    assert len(ladder.hops) == 3


@pytest.mark.parametrize("sched", model.SCHEDULERS)
def test_every_scheduler_explained(sched: str) -> None:
    ladder = explain.build("nat", sched, engine="c")
    text = next(e.text for e in ladder.events if getattr(e, "title", "") == f"scheduler {sched}")
    assert "picked real" in text and "disagree" not in text
    if sched in ("lc", "wlc", "sed", "nq"):
        assert "the rule's winner" in text


def test_color_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, "--mode", "nat", "--engine", "c", "--color", "always")
    assert "\x1b[1;33m" in out


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain"]) == 2
    assert main(["explain", "--mode", "nat", "--scheduler", "nope"]) == 2
    assert "unknown scheduler" in capsys.readouterr().err


@pytest.mark.skipif("python" not in engine.available(), reason="Python twin engine not installed")
@pytest.mark.parametrize("sched", model.SCHEDULERS)
def test_engines_agree(sched: str) -> None:
    """The Python twins and the C core tell the same story (frames, picks, numbers) for every scheduler."""
    from lb.teach import render_text  # noqa: PLC0415

    texts = [_strip_source(render_text.render(explain.build(mode, sched, engine=e)))
             for e in ("c", "python") for mode in ("nat", "tun")]
    assert texts[:2] == texts[2:]
