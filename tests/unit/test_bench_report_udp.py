"""Test that bench/report.py renders the lossless and the overload UDP figures, the new TCP cases and the
offload cost, and lists every issue-7 target.

- UDP: one row per mode with the lossless rate and the overload rate (delivered and offered), each as a ratio
  to kernel forwarding and to nftables DNAT of the same run; the IPIP sink count of TUN and a failed mode
  are shown; the placement comes from the run's JSON;
- JSON from before the overload point (no "overload", no "placement_args") still renders, with "—";
- TCP: py-naive and the -offload cases get rows; "offloads off cost" compares each X-offload case with X;
- targets: conn/s and keep-alive ≥ 0.8x nft DNAT and bulk ≥ 0.5x kernel for each of NAT, DR, TUN, with
  value and met/MISSED.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmods import load

REPO = Path(__file__).resolve().parents[2]



report = load("pyvs_bench_report_udp", REPO / "bench" / "report.py")
META = report.Meta(date="2030-01-01 00:00 UTC", commit="abc", kernel="6.0", cpu="CPU", cores=2, python="3.11",
                   machine="x86_64")


def _ov(delivered: float, offered: float) -> dict[str, float]:
    return {"delivered_pps": delivered, "offered_pps": offered, "loss": 0.1}


def _udp_new(rep: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "kernel": {"best_pps": 400_000, "overload": _ov(500_000 + rep * 100_000, 900_000)},
        "nft-dnat": {"best_pps": 200_000, "overload": _ov(250_000, 900_000)},
        "lb-tun": {"best_pps": 100_000 + rep * 20_000, "overload": _ov(300_000, 600_000),
                   "sink": {"udp": 0, "ipip": 1_500_000}},
        "lb-nat-v3": {"best_pps": 120_000, "overload": _ov(400_000, 600_000)},
    }
    if rep == 0:
        results["py-naive"] = {"best_pps": 40_000, "overload": _ov(20_000, 500_000)}
        results["lb-nat-py"] = {"error": "balancer not ready:\nTraceback"}
    return {"seconds_per_point": 1.5, "flows": 16, "blast_seconds": 2.0,
            "placement_args": {"lb_cpu": "1", "rps_lb_ingress": "1", "rps_kernel_ingress": "2",
                               "rps_servers": "1", "generator_cpu": "0"},
            "results": results}


def _udp_old() -> dict[str, Any]:
    return {"seconds_per_point": 1.5, "flows": 16, "results": {
        "kernel": {"best_pps": 458_000, "points": [], "placement": {"l0_rps": "2"}},
        "lb-nat": {"best_pps": 342_000, "points": [], "lb_counters": ["lb: l0: rx 1 pkts"]}}}


def test_udp_table_has_lossless_and_overload_with_ratios() -> None:
    text = report.render(report.Inputs(udp=[_udp_new(0), _udp_new(1), _udp_new(2)]), META)
    assert "lossless rate and rate at overload" in text
    assert "| mode | lossless pps median (min-max) | / kernel | / nft DNAT | overload: delivered pps | " \
        "offered pps | / kernel | / nft DNAT | drift (lossless) |" in text
    # lb-tun lossless 100k/120k/140k -> 120k: 0.30x kernel (400k), 0.60x nft (200k);
    # overload 300k vs kernel median 600k (0.50x) and nft 250k (1.20x)
    assert ("| lb-tun | 120 kpps (100 kpps-140 kpps) | 0.30x | 0.60x | 300 kpps (300 kpps-300 kpps) | "
            "600 kpps (600 kpps-600 kpps) | 0.50x | 1.20x | 33 % |") in text
    assert ("| py-naive | 40 kpps (1 run) | 0.10x | 0.20x | 20 kpps (1 run) | 500 kpps (1 run) | "
            "0.03x |") in text
    assert "**lb-nat-py failed:** `balancer not ready:`" in text
    assert "lb-tun 1.5 M" in text          # IPIP frames counted by the sink
    assert "for 2.0 s" in text
    assert "user-space balancers (`lb run`, py-naive) on CPU 1" in text


def test_old_udp_json_renders_with_dashes() -> None:
    text = report.render(report.Inputs(udp=[_udp_old()]), META)
    assert "| lb-nat | 342 kpps (1 run) | 0.75x | — | — | — | — | — | 0 % |" in text
    assert "generator pinned to CPU 0, balancer to CPU 1." in text
    assert "lb-nat: lb: l0: rx 1 pkts" in text
    got = {t.what: (t.value, t.verdict) for t in report.targets(report.Inputs(udp=[_udp_old()]))}
    assert got["issue 3: UDP lb-nat ≥ 0.56x kernel forwarding"] == ("0.75x", "met")
    assert got["issue 3 (goal): UDP lb-nat ≥ 1.0x nftables DNAT"] == ("—", "not measured")


def test_committed_raw_json_still_renders() -> None:
    raw = REPO / "bench" / "raw"
    udp = sorted(raw.glob("udp-*.json"))
    inp = report.Inputs(udp=[d for p in udp if (d := report.load_json(p))],
                        tcp=report.load_json(raw / "tcp.json"))
    text = report.render(inp, META)
    assert "## Targets" in text
    if inp.udp:
        assert "| kernel |" in text


def _tcp() -> dict[str, Any]:
    def case(c: float, k: float, g: float | None, off: str = "off") -> dict[str, Any]:
        reps: dict[str, list[float]] = {"conn_per_s": [c], "req_per_s": [k]}
        if g is not None:
            reps["gbit_per_s"] = [g]
        return {"reps": reps, "offloads": {"tx-checksumming": off}}
    return {"seconds": 4, "reps": 1, "results": {
        "route": case(8000, 40000, 1.5), "route-offload": case(8000, 50000, 9.0, "on"),
        "nft-nat": case(10000, 50000, 2.0), "nft-nat-offload": case(9000, 50000, 12.0, "on"),
        "lb-nat": case(8500, 45000, 1.0), "lb-dr": case(7000, 30000, 0.6), "lb-tun": case(9000, 41000, 0.8),
        "py-naive": case(2700, 13000, None)}}


def test_same_topology_dnat_reference() -> None:
    """DR and TUN are judged against nftables DNAT over their own namespaces (nft-nat-dr / nft-nat-tun),
    with the NAT-topology ratio shown beside it; NAT stays against nft-nat."""
    doc = _tcp()
    for name, mode, bal in (("nft-nat", "nat", "nft"), ("lb-nat", "nat", "lb"), ("lb-dr", "dr", "lb"),
                            ("lb-tun", "tun", "lb"), ("route", "dr", "route"),
                            ("nft-nat-offload", "nat", "nft")):
        doc["results"][name].update(mode=mode, balancer=bal)
    doc["results"]["nft-nat-offload"]["offload"] = True
    doc["results"]["nft-nat-dr"] = {"mode": "dr", "balancer": "nft-dnat",
                                    "reps": {"conn_per_s": [8000.0], "req_per_s": [35000.0]}}
    doc["results"]["nft-nat-tun"] = {"mode": "tun", "balancer": "nft-dnat",
                                     "reps": {"conn_per_s": [9000.0], "req_per_s": [50000.0]}}
    assert report.dnat_ref(doc, "lb-nat") == "nft-nat"
    assert report.dnat_ref(doc, "lb-dr") == "nft-nat-dr"
    assert report.dnat_ref(doc, "lb-tun") == "nft-nat-tun"
    got = {t.what: (t.value, t.verdict) for t in report.targets(report.Inputs(tcp=doc))}
    assert got["issues 3, 7: lb-dr new conn/s ≥ 0.8x nftables DNAT (`nft-nat-dr`, same topology)"] == (
        "0.88x (0.70x of nft-nat, NAT topology)", "met")
    assert got["issue 7: lb-tun keep-alive req/s ≥ 0.8x nftables DNAT (`nft-nat-tun`, same topology)"] == (
        "0.82x (0.82x of nft-nat, NAT topology)", "met")
    assert got["issue 7: lb-nat keep-alive req/s ≥ 0.8x nftables DNAT (`nft-nat`, same topology)"] == (
        "0.90x", "met")
    text = report.render(report.Inputs(tcp=doc), META)
    assert "| lb-dr | `nft-nat-dr` | 0.88x | 0.86x | — |" in text
    assert "| lb-tun | `nft-nat-tun` | 1.00x | 0.82x | — |" in text


def test_tcp_new_cases_and_offload_cost() -> None:
    text = report.render(report.Inputs(tcp=_tcp()), META)
    assert "| py-naive | 2.7 k (1 run) | 13 k (1 run) | — |" in text
    assert "| route-offload | 8 k (1 run) | 50 k (1 run) | 9 (1 run) |" in text
    assert ("- **Offloads off cost route:** iperf3 1.5 Gbit/s vs 9 Gbit/s with offloads on (0.17x); "
            "keep-alive req/s 40 k vs 50 k with offloads on (0.80x); new conn/s 8 k vs 8 k with offloads on "
            "(1.00x).") in text
    assert "- **Offloads off cost nft-nat:** iperf3 2 Gbit/s vs 12 Gbit/s with offloads on (0.17x)" in text
    assert "for route, nft-nat, lb-nat, lb-dr, lb-tun, py-naive: tx-checksumming off." in text
    assert "for route-offload, nft-nat-offload: tx-checksumming on." in text


def test_targets_list_every_issue7_target() -> None:
    got = {t.what: (t.value, t.verdict) for t in report.targets(report.Inputs(tcp=_tcp()))}
    for case in ("lb-nat", "lb-dr", "lb-tun"):
        assert f"issues 3, 7: {case} new conn/s ≥ 0.8x nftables DNAT (`nft-nat`, same topology)" in got
        assert f"issue 7: {case} keep-alive req/s ≥ 0.8x nftables DNAT (`nft-nat`, same topology)" in got
        assert f"issue 7: {case} bulk throughput ≥ 0.5x kernel forwarding" in got
    assert got["issues 3, 7: lb-nat new conn/s ≥ 0.8x nftables DNAT (`nft-nat`, same topology)"] == (
        "0.85x", "met")
    assert got["issues 3, 7: lb-dr new conn/s ≥ 0.8x nftables DNAT (`nft-nat`, same topology)"] == (
        "0.70x", "MISSED")
    assert got["issue 7: lb-tun keep-alive req/s ≥ 0.8x nftables DNAT (`nft-nat`, same topology)"] == (
        "0.82x", "met")
    assert got["issue 7: lb-dr bulk throughput ≥ 0.5x kernel forwarding"] == ("0.40x", "MISSED")
    assert got["issue 7: lb-nat bulk throughput ≥ 0.5x kernel forwarding"] == ("0.67x", "met")
