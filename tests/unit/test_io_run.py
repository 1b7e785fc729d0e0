"""Test that `lb run` refuses bad input with one line and exit status 1, before touching any interface:
- an interface that does not exist;
- a rules file with a bad line, a refused rule (unknown scheduler), or no file at all;
- and that its options parse (help lists the documented ones), --busy-poll-us within 0..1000 reaching
  the pump, which refuses more.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lb.cli.main import build_parser, main


def test_missing_interface(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--iface", "nope-io-test", "--socket", "none", "--duration", "0.1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lb run: interface nope-io-test: No such device"]


@pytest.mark.parametrize(("text", "expect"), [
    ("-X what\n", "line 1"),
    ("-A -u 10.1.0.100:5 -s nosuchsched\n", "Scheduler or persistence engine not found"),
])
def test_bad_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expect: str) -> None:
    rules = tmp_path / "rules"
    rules.write_text(text)
    assert main(["run", "--iface", "nope-io-test", "--rules", str(rules), "--socket", "none"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lb run: ") and expect in err and err.count("\n") == 1


def test_missing_rules_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--iface", "lo", "--rules", str(tmp_path / "none"), "--socket", "none"]) == 1
    assert "No such file or directory" in capsys.readouterr().err


def test_no_interface(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "at least one --iface" in capsys.readouterr().err


def test_options() -> None:
    args = build_parser().parse_args(["run", "--iface", "a", "--iface", "b", "--io", "tap", "--engine",
                                      "python", "--workers", "2", "--metrics", "127.0.0.1:9100", "--tx-ring",
                                      "-v"])
    assert args.iface == ["a", "b"] and args.io == "tap" and args.engine == "python" and args.workers == 2
    assert args.metrics == "127.0.0.1:9100" and args.tx_ring and args.verbose


def test_busy_poll_option(capsys: pytest.CaptureFixture[str]) -> None:
    p = build_parser()
    assert p.parse_args(["run", "--iface", "a"]).busy_poll_us == 0  # measured: spinning lost on 2 CPUs
    assert p.parse_args(["run", "--iface", "a", "--busy-poll-us", "50"]).busy_poll_us == 50
    with pytest.raises(SystemExit):
        p.parse_args(["run", "--iface", "a", "--busy-poll-us", "1001"])
    assert "must be 0..1000" in capsys.readouterr().err


def test_dataplane_passes_spin_to_the_pump() -> None:
    """The pump accepts spin_us up to 1000 and refuses more (lb_pump_new returns NULL)."""
    from lb.core.core import Core  # noqa: PLC0415
    from lb.io.loop import Dataplane  # noqa: PLC0415

    core = Core(conn_max=64)
    dp = Dataplane(core, [], spin_us=1000)
    assert dp.pump is not None
    with pytest.raises(MemoryError):
        Dataplane(core, [], spin_us=1001)
