"""Test that the balancer's CPU placement helpers (lb/io/rps.py) do what `lb run --cpus/--rps-cpus` promise:
- CPU lists parse ('1', '0,2', '0-3'), bad ones are refused; hex masks are checked;
- RPS masks are written to every rx queue of a device whose sysfs entry carries this namespace's ifindex,
  a device whose entry shows another ifindex (another namespace's sysfs) is left alone and logged, and the
  old masks come back on restore;
- a bad --rps-cpus fails in one line before any port is opened.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lb.cli.main import main
from lb.io import rps


def test_parse_cpus() -> None:
    assert rps.parse_cpus("1") == {1}
    assert rps.parse_cpus("0,2") == {0, 2}
    assert rps.parse_cpus("0-3") == {0, 1, 2, 3}
    for bad in ("", "3-1", "x", "-1"):
        with pytest.raises(ValueError):
            rps.parse_cpus(bad)


def test_check_mask() -> None:
    assert rps.check_mask("0x2") == "2"
    assert rps.check_mask("ff,00000001") == "ff00000001"
    with pytest.raises(ValueError):
        rps.check_mask("zz")


def fake_dev(root: Path, name: str, ifindex: int, queues: int) -> list[Path]:
    (root / name).mkdir(parents=True)
    (root / name / "ifindex").write_text(f"{ifindex}\n")
    files = []
    for q in range(queues):
        f = root / name / "queues" / f"rx-{q}" / "rps_cpus"
        f.parent.mkdir(parents=True)
        f.write_text("0\n")
        files.append(f)
    return files


def test_apply_and_restore(tmp_path: Path) -> None:
    lo = socket.if_nametoindex("lo")
    files = fake_dev(tmp_path, "lo", lo, 2)
    logs: list[str] = []
    r = rps.Rps(log=logs.append, sys_net=tmp_path)
    assert r.apply(["lo"], "0x1") == 2
    assert [f.read_text() for f in files] == ["1\n", "1\n"]
    assert any("lo: receive softirq on CPU mask 1" in x for x in logs)
    r.restore()
    assert [f.read_text() for f in files] == ["0\n", "0\n"]


def test_other_namespaces_device_left_alone(tmp_path: Path) -> None:
    files = fake_dev(tmp_path, "lo", socket.if_nametoindex("lo") + 1000, 1)
    logs: list[str] = []
    r = rps.Rps(log=logs.append, sys_net=tmp_path)
    assert r.apply(["lo", "nope-rps"], "1") == 0
    assert files[0].read_text() == "0\n"
    assert len(logs) == 2 and all("another namespace" in x for x in logs)


def test_bad_mask_refused_before_ports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--iface", "nope-io-test", "--socket", "none", "--rps-cpus", "zz"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lb run: ") and err.count("\n") == 1
