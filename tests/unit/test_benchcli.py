"""Test that `lb bench` plans its parts from its arguments and bench/report.py turns run JSON into RESULTS.md.

- `--only` selects parts (unknown names are refused), `--quick` shrinks every part, `--save`/`--compare` reach
  pytest-benchmark, and `lb bench` is registered on the `lb` parser;
- report.py gives every figure as median (min-max) over repetitions, ratios to kernel forwarding and to
  nftables DNAT of the same run, and met/missed verdicts for the issues' targets; missing inputs are
  "not measured", never invented;
- the wrk and iperf3 output parsers of bench/e2e/tcp.py read the tools' real output formats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from benchmods import load

from lb import benchcli

REPO = Path(__file__).resolve().parents[2]



report = load("pyvs_bench_report", REPO / "bench" / "report.py")


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    benchcli.add_arguments(p)
    return p.parse_args(list(argv))


# ---- argument handling -----------------------------------------------------------------------------------
def test_only_selects_parts_in_fixed_order() -> None:
    assert benchcli.parse_only(None) == ["micro", "udp", "tcp", "scaling", "scale-lab"]
    assert benchcli.parse_only("scale-lab,udp") == ["udp", "scale-lab"]
    assert benchcli.parse_only("scaling,micro") == ["micro", "scaling"]
    with pytest.raises(ValueError, match="unknown part"):
        benchcli.parse_only("micro,nope")


def test_quick_plan_is_small(tmp_path: Path) -> None:
    """--quick: one UDP run of the small mode list (lb-tun the only addition), short points and blast."""
    steps = benchcli.plan(_args("--quick"), tmp_path, python="py")
    parts = [s.part for s in steps]
    assert parts == ["micro", "udp", "tcp", "scaling", "scale-lab"]  # one UDP repetition under --quick
    micro = steps[0].argv
    assert f"--benchmark-json={tmp_path / 'micro.json'}" in micro
    assert "--benchmark-min-rounds=1" in micro
    assert "--quick" in steps[3].argv and "--quick" in steps[4].argv
    assert steps[4].argv[steps[4].argv.index("--out") + 1] == str(tmp_path / "scale_lab.json")
    tcp = steps[2].argv
    assert tcp[tcp.index("--reps") + 1] == "1"
    assert all(s.root == (s.part in ("udp", "tcp", "scale-lab")) for s in steps)
    assert sum(s.timeout for s in steps) <= 900
    udp = steps[1].argv
    assert udp[udp.index("--modes") + 1] == "kernel,nft-dnat,lb-nat,lb-dr,lb-tun"
    assert udp[udp.index("--blast-seconds") + 1] == "1"
    assert tcp[tcp.index("--cases") + 1] == "route,nft-nat,lb-nat,lb-dr"
    assert "--prefix" not in udp


def test_full_plan_runs_every_mode_and_case(tmp_path: Path) -> None:
    """Full run: every repetition has the C modes (TUN, V3 ring, 2 workers), the first also the Python ones;
    TCP runs its default cases (py-naive and the offloads-on ones included); --prefix reaches both."""
    steps = benchcli.plan(_args("--only", "udp,tcp", "--prefix", "bu"), tmp_path, python="py")
    udp = [s.argv for s in steps if s.part == "udp"]
    modes = [a[a.index("--modes") + 1].split(",") for a in udp]
    assert len(modes) == 3
    for m in modes:
        assert {"kernel", "nft-dnat", "lb-nat", "lb-dr", "lb-tun", "lb-nat-v3"} <= set(m)
    assert {"lb-nat-py", "py-naive", "lb-nat-2w"} <= set(modes[0])
    assert not {"lb-nat-py", "py-naive", "lb-nat-2w"} & set(modes[1] + modes[2])
    assert all(a[a.index("--blast-seconds") + 1] == "2" for a in udp)
    assert all(a[a.index("--prefix") + 1] == "bu" for s in steps for a in [s.argv])
    tcp = next(s for s in steps if s.part == "tcp").argv
    assert "--cases" not in tcp  # tcp.py's DEFAULT_CASES
    # the first UDP repetition has more modes, so more time
    assert steps[0].timeout > steps[1].timeout


def test_full_plan_repeats_and_passes_save_compare(tmp_path: Path) -> None:
    steps = benchcli.plan(_args("--save", "base", "--compare", "--only", "micro,udp"), tmp_path, python="py")
    assert [s.part for s in steps] == ["micro", "udp", "udp", "udp"]
    assert "--benchmark-save=base" in steps[0].argv
    assert "--benchmark-compare" in steps[0].argv
    assert [s.out.name for s in steps[1:]] == ["udp-1.json", "udp-2.json", "udp-3.json"]
    steps = benchcli.plan(_args("--compare", "0001", "--only", "micro"), tmp_path, python="py")
    assert "--benchmark-compare=0001" in steps[0].argv


def test_report_argv_uses_only_outputs_that_exist(tmp_path: Path) -> None:
    steps = benchcli.plan(_args("--only", "tcp,scaling"), tmp_path, python="py")
    (tmp_path / "scaling.json").write_text("{}")
    argv = benchcli.report_argv(steps, tmp_path, 12.0, command="lb bench", python="py")
    assert "--scaling" in argv
    assert "--tcp" not in argv
    assert argv[argv.index("--out") + 1] == str(tmp_path / "RESULTS.md")


def test_bench_is_registered_on_the_lb_parser() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    benchcli.register(sub)
    ns = p.parse_args(["bench", "--quick", "--only", "tcp", "--out", "/tmp/x"])
    assert ns.func is benchcli.cmd_bench
    assert ns.quick
    assert ns.only == "tcp"
    assert ns.out == "/tmp/x"


# ---- report generation -----------------------------------------------------------------------------------
def _micro() -> dict[str, Any]:
    def b(name: str, params: dict[str, Any], extra: dict[str, Any], group: str) -> dict[str, Any]:
        return {"name": name, "group": group, "params": params, "extra_info": extra,
                "stats": {"median": 1e-4, "min": 9e-5, "max": 2e-4, "rounds": 5}}
    rows = []
    for s in ("rr", "wrr", "sh", "mh"):
        rows.append(b(f"test_c_picks[{s}-8]", {"sched": s, "n_dests": 8}, {"picks_per_s": 20e6}, "c"))
        rows.append(b(f"test_python_picks[{s}-8]", {"sched": s, "n_dests": 8}, {"picks_per_s": 1e5}, "py"))
    rows[6]["extra_info"]["picks_per_s"] = 8e6        # mh in C below 10 M: missed, and 80x its twin
    # wrr in C: half its rounds disturbed (median 2x the fastest round): 45x its twin from the medians,
    # 90x from the fastest rounds
    rows[2]["extra_info"]["picks_per_s"] = 4.5e6
    rows[2]["stats"] = {"median": 1e-4, "min": 5e-5, "max": 2e-4, "rounds": 5}
    rows.append(b("test_lookup_hit[1000000]", {"n": 1_000_000}, {"per_second": 6e6}, "conn"))
    return {"benchmarks": rows}


def _udp(rep: int) -> dict[str, Any]:
    return {"seconds_per_point": 1.5, "flows": 16, "results": {
        "kernel": {"best_pps": 500_000 + rep * 10_000},
        "nft-dnat": {"best_pps": 340_000},
        "lb-nat": {"best_pps": 300_000 + rep * 30_000, "lb_counters": ["lb: l0: rx 5 pkts"]},
        "lb-dr": {"best_pps": 250_000}}}


def _tcp() -> dict[str, Any]:
    def case(c: list[float], k: list[float], g: list[float]) -> dict[str, Any]:
        return {"reps": {"conn_per_s": c, "req_per_s": k, "gbit_per_s": g, "lat_p50_us": [40, 50, 60],
                         "lat_p99_us": [200, 210, 220]}, "offloads": {"tx-checksumming": "off"}}
    return {"seconds": 4, "reps": 3, "results": {
        "route": case([10_000, 11_000, 12_000], [50_000] * 3, [10.0, 10.0, 10.0]),
        "nft-nat": case([10_000] * 3, [40_000] * 3, [9.0] * 3),
        "lb-nat": case([9_000, 8_000, 7_000], [30_000] * 3, [6.0] * 3),
        "lb-tun": {"error": "lab did not come up\nmore"}}}


def _scaling() -> dict[str, Any]:
    p = {"services": 1, "dests": 2, "sched": "rr", "flows": 1000, "new_conn_per_s": [1e6, 2e6, 3e6],
         "pps": [5e6]}
    return {"batch": 256, "frame_bytes": 60, "results": {"services": [p], "dests": [p], "conns": [p]}}


META = report.Meta(date="2030-01-01 00:00 UTC", commit="abc123", kernel="6.0", cpu="Test CPU", cores=2,
                   python="3.11", machine="x86_64", wall_s=61.0, notes=["- offloads were off."])


def test_median_min_max_and_ratios() -> None:
    inp = report.Inputs(udp=[_udp(0), _udp(1), _udp(2)], tcp=_tcp())
    text = report.render(inp, META)
    # UDP: lb-nat 300k/330k/360k -> median 330k (300k-360k); kernel median 510k -> 0.65x; nft 340k -> 0.97x
    assert "| lb-nat | 330 kpps (300 kpps-360 kpps) | 0.65x | 0.97x | — | — | — | — | 18 % |" in text
    assert "| kernel | 510 kpps (500 kpps-520 kpps) | 1.00x |" in text
    # TCP: lb-nat conn/s median 8000 vs route 11000 (0.73x) and nft 10000 (0.80x)
    assert "| lb-nat | 0.73x / 0.80x | 0.60x / 0.75x | 0.60x / 0.67x |" in text
    assert "| route | 11 k (10 k-12 k) | 50 k (50 k-50 k) |" in text
    assert "**lb-tun failed:** `lab did not come up`" in text
    assert "tx-checksumming off" in text
    for line in ("| date | 2030-01-01 00:00 UTC |", "| commit | abc123 |", "| kernel | 6.0 |",
                 "| CPU | Test CPU (2 cores, x86_64) |", "| wall time of the run | 61 s |",
                 "- offloads were off."):
        assert line in text


def test_targets_met_missed_not_measured() -> None:
    inp = report.Inputs(micro=_micro(), udp=[_udp(0)], tcp=_tcp())
    got = {t.what: (t.value, t.verdict) for t in report.targets(inp)}
    same = "nftables DNAT (`nft-nat`, same topology)"
    assert got["issue 2: rr ≥ 10 M picks/s (C, batch; worst of 8/64/1024 dests)"] == ("20 Mpicks/s", "met")
    mh = got["issue 2: mh ≥ 10 M picks/s (C, batch; worst of 8/64/1024 dests)"]
    assert mh == ("8 Mpicks/s", "MISSED")
    assert got["issue 2: C ≥ 50x the Python twin (worst scheduler and size, fastest rounds)"] == (
        "80x (mh, 8 dests; from medians: 45x)", "met")
    assert got["issue 2: ≥ 5 M lookups/s with 1 M entries"] == ("6 M/s", "met")
    assert got["issue 3: UDP lb-nat ≥ 0.56x kernel forwarding"] == ("0.60x", "met")
    assert got["issue 3 (goal): UDP lb-nat ≥ 1.0x nftables DNAT"] == ("0.88x", "MISSED")
    assert got["issues 3, 7: lb-nat new conn/s ≥ 0.8x " + same] == ("0.80x", "met")
    assert got["issue 7: lb-nat keep-alive req/s ≥ 0.8x " + same] == ("0.75x", "MISSED")
    assert got["issue 7: lb-nat bulk throughput ≥ 0.5x kernel forwarding"] == ("0.60x", "met")
    assert got["issue 7: lb-dr bulk throughput ≥ 0.5x kernel forwarding"] == ("—", "not measured")
    assert got["issue 7: lb-tun keep-alive req/s ≥ 0.8x " + same] == ("—", "not measured")


def test_main_writes_results_from_files(tmp_path: Path) -> None:
    files = {"micro": _micro(), "tcp": _tcp(), "scaling": _scaling(), "udp1": _udp(0), "udp2": _udp(1)}
    for name, doc in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(dataclasses.asdict(META)))
    out = tmp_path / "res" / "RESULTS.md"
    rc = report.main(["--micro", str(tmp_path / "micro.json"), "--udp", str(tmp_path / "udp1.json"),
                      "--udp", str(tmp_path / "udp2.json"), "--tcp", str(tmp_path / "tcp.json"),
                      "--scaling", str(tmp_path / "scaling.json"), "--udp", str(tmp_path / "absent.json"),
                      "--meta", str(meta), "--no-plots", "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert text.startswith("# pyvs benchmark results\n")
    assert "2 repetition(s); 16 flows" in text
    assert "### vs services" in text
    assert "| 1 | 2 M/s (1 M/s-3 M/s) | 5 Mpps (1 run) |" in text
    assert "`test_lookup_hit[1000000]`" in text
    assert "## Plots" not in text


def test_empty_run_reports_nothing_measured() -> None:
    text = report.render(report.Inputs(), META)
    assert "End-to-end" not in text
    assert "| met |" not in text
    assert "not measured" in text


# ---- tool output parsers ---------------------------------------------------------------------------------
WRK_OUT = """Running 4s test @ http://10.10.0.100:8080/
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    52.10us   20.00us   1.20ms   95.00%
    Req/Sec    18.10k     1.00k   19.00k    80.00%
  Latency Distribution
     50%   48.00us
     75%   55.00us
     90%   70.00us
     99%    1.10ms
  72400 requests in 4.00s, 6.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec:  18100.50
Transfer/sec:      1.50MB
"""


def test_parse_wrk_and_iperf3() -> None:
    tcp = load("pyvs_bench_tcp", REPO / "bench" / "e2e" / "tcp.py")
    got = tcp.parse_wrk(WRK_OUT)
    assert got["req_per_s"] == 18100.5
    assert got["requests"] == 72400
    assert got["socket_errors"] == 4
    assert got["non_2xx"] == 2
    assert got["lat_p50_us"] == 48.0
    assert got["lat_p99_us"] == pytest.approx(1100.0)
    assert tcp.parse_iperf3({"end": {"sum_received": {"bits_per_second": 9.5e9}}}) == pytest.approx(9.5)
