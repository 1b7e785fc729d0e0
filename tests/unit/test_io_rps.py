"""Test that the balancer's CPU placement helpers (lb/io/rps.py) do what `lb run --cpus/--rps-cpus` promise:
- CPU lists parse ('1', '0,2', '0-3'), bad ones are refused; hex masks are checked;
- RPS masks are written to every rx queue of a device whose sysfs entry carries this namespace's ifindex,
  a device whose entry shows another ifindex (another namespace's sysfs) is left alone and logged, and the
  old masks come back on restore;
- a bad --rps-cpus fails in one line before any port is opened;
- `--rt-priority N` (default 1) asks for SCHED_FIFO N, 0 leaves the policy alone, 100 is refused; without
  permission or with RT throttling off the policy stays as it was and a line says why.
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


def test_realtime_sets_sched_fifo(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(rps, "rt_throttled", lambda: True)
    monkeypatch.setattr(rps.os, "sched_setscheduler",
                        lambda pid, policy, param: calls.append((pid, policy, param.sched_priority)))
    logged: list[str] = []
    assert rps.realtime(3, log=logged.append)
    assert calls == [(0, rps.os.SCHED_FIFO, 3)]
    assert logged == ["rt-priority: SCHED_FIFO 3"]
    calls.clear()
    assert not rps.realtime(0)  # 0: the normal policy is left alone
    assert calls == []
    for bad in (-1, 100):
        if bad > 0:
            with pytest.raises(ValueError):
                rps.realtime(bad)
        else:
            assert not rps.realtime(bad)


def test_realtime_falls_back_without_permission_or_throttling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, policy: int, param: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(rps.os, "sched_setscheduler", refuse)
    monkeypatch.setattr(rps, "rt_throttled", lambda: True)
    logged: list[str] = []
    assert not rps.realtime(1, log=logged.append)
    assert "not permitted" in logged[0] and "SCHED_OTHER" in logged[0]
    # RT throttling off: a FIFO task could hold its CPU for good, so the policy is not changed at all
    monkeypatch.setattr(rps, "rt_throttled", lambda: False)
    logged.clear()
    assert not rps.realtime(1, log=logged.append)
    assert "sched_rt_runtime_us is -1" in logged[0]


def test_rt_throttled_reads_the_sysctl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = Path
    files = {"/proc/sys/kernel/sched_rt_runtime_us": tmp_path / "rt"}
    monkeypatch.setattr(rps, "Path", lambda s: real(files.get(str(s), s)))
    (tmp_path / "rt").write_text("950000\n")
    assert rps.rt_throttled() is True
    (tmp_path / "rt").write_text("-1\n")
    assert rps.rt_throttled() is False
    (tmp_path / "rt").write_text("garbage\n")
    assert rps.rt_throttled() is None
    (tmp_path / "rt").unlink()
    assert rps.rt_throttled() is None


def test_rt_priority_option(capsys: pytest.CaptureFixture[str]) -> None:
    from lb.cli.main import build_parser  # noqa: PLC0415

    p = build_parser()
    assert p.parse_args(["run", "--iface", "a"]).rt_priority == 1  # the measured default
    assert p.parse_args(["run", "--iface", "a", "--rt-priority", "0"]).rt_priority == 0
    assert p.parse_args(["run", "--iface", "a", "--rt-priority", "99"]).rt_priority == 99
    with pytest.raises(SystemExit):
        p.parse_args(["run", "--iface", "a", "--rt-priority", "100"])
    assert "must be 0..99" in capsys.readouterr().err


def test_pool_size_options(capsys: pytest.CaptureFixture[str]) -> None:
    from lb.cli.main import build_parser  # noqa: PLC0415

    p = build_parser()
    a = p.parse_args(["run", "--iface", "a"])
    assert (a.svc_max, a.dest_max) == (4096, 16384)
    a = p.parse_args(["run", "--iface", "a", "--svc-max", "20000", "--dest-max", "40000"])
    assert (a.svc_max, a.dest_max) == (20000, 40000)
    with pytest.raises(SystemExit):
        p.parse_args(["run", "--iface", "a", "--svc-max", "0"])
    assert "must be 1..4194304, not 0" in capsys.readouterr().err
