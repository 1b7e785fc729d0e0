"""Test that the pure parts of the end-to-end benchmark scripts read their tools and build their runs right.

- bench/e2e/run.py: a mode name maps to `lb run`'s forwarding flag, workers and extra arguments (suffixes
  -py/-v3/-2w/-txr combine; unknown names are refused before any namespace is made); udpgen's summary line,
  the real servers' nft sink counters (UDP vs IPIP rules) and the overload point are parsed and computed
  from real output shapes; ratios cover the lossless and the overload figure against kernel and nft-dnat;
- bench/e2e/tcp.py: `ethtool -k` is read for the offload lines that matter (the real TSO state included),
  `ethtool -K` turns TX checksum offload on or off, and the new cases (py-naive, route-offload,
  nft-nat-offload) are defined with the topology and balancer they need and are in the default list.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmods import load

REPO = Path(__file__).resolve().parents[2]



run = load("pyvs_bench_run", REPO / "bench" / "e2e" / "run.py")
tcp = load("pyvs_bench_tcp_parse", REPO / "bench" / "e2e" / "tcp.py")


# ---- run.py ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "flag", "workers", "extra", "slow"), [
    ("lb-nat", "-m", 1, [], False),
    ("lb-dr", "-g", 1, [], False),
    ("lb-tun", "-i", 1, [], False),
    ("lb-nat-py", "-m", 1, ["--engine", "python"], True),
    ("lb-nat-v3", "-m", 1, ["--rx-ring", "v3"], False),
    ("lb-nat-2w", "-m", 2, [], False),
    ("lb-dr-txr", "-g", 1, ["--tx-ring"], False),
    ("lb-nat-2w-txr", "-m", 2, ["--tx-ring"], False),
    ("lb-tun-v3", "-i", 1, ["--rx-ring", "v3"], False),
])
def test_lb_mode_from_name(name: str, flag: str, workers: int, extra: list[str], slow: bool) -> None:
    m = run.lb_mode(name)
    assert (m.flag, m.workers, m.extra, m.slow) == (flag, workers, extra, slow)


@pytest.mark.parametrize("bad", ["lb-foo", "lb-nat-x", "lb-natv3", "lb-", "nft"])
def test_unknown_modes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        run.lb_mode(bad)


def test_check_modes_accepts_kernel_nft_and_py_naive() -> None:
    names = ["kernel", "nft-dnat", "py-naive", "lb-tun", "lb-nat-py", "lb-nat-v3"]
    assert run.check_modes(names) == names
    with pytest.raises(ValueError, match="lb-bogus"):
        run.check_modes(["kernel", "lb-bogus"])


def test_main_refuses_unknown_mode_before_root_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--modes", "kernel,lb-nope"]) == 2
    assert "lb-nope" in capsys.readouterr().err


def test_parse_gen() -> None:
    assert run.parse_gen("sent 300000 seconds 1.500 errors 0\n") == (300000, 1.5)


SINK_JSON = {"nftables": [
    {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
    {"table": {"family": "netdev", "name": "sink", "handle": 1}},
    {"chain": {"family": "netdev", "table": "sink", "name": "in", "handle": 1, "type": "filter",
               "hook": "ingress", "prio": 0, "policy": "accept"}},
    {"rule": {"family": "netdev", "table": "sink", "chain": "in", "handle": 2, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 9}},
        {"counter": {"packets": 1200, "bytes": 55200}}, {"drop": None}]}},
    {"rule": {"family": "netdev", "table": "sink", "chain": "in", "handle": 3, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}},
                   "right": "ipencap"}},
        {"counter": {"packets": 456137, "bytes": 36490960}}, {"drop": None}]}},
]}


def test_parse_sink_separates_udp_and_ipip() -> None:
    assert run.parse_sink(SINK_JSON) == {"udp": 1200, "ipip": 456137}
    assert run.parse_sink({"nftables": []}) == {"udp": 0, "ipip": 0}


def test_overload_point() -> None:
    pt = run.overload_point(sent=300_000, gen_seconds=2.0, got=80_000, window_s=0.8)
    assert pt["offered_pps"] == 150_000
    assert pt["delivered_pps"] == 100_000
    assert pt["loss"] == pytest.approx(1 / 3, abs=1e-4)
    # delivering more than offered (ring drained into the window) is no negative loss
    assert run.overload_point(100, 1.0, 200, 1.0)["loss"] == 0.0
    assert run.overload_point(0, 0.0, 0, 0.0)["loss"] == 1.0
    # offered over the same window as delivered, when the client link's counters were read
    pt = run.overload_point(sent=300_000, gen_seconds=2.0, got=80_000, window_s=0.8,
                            offered_in_window=160_000)
    assert (pt["offered_pps"], pt["gen_pps"], pt["loss"]) == (200_000, 150_000, 0.5)


def test_ratios_cover_lossless_and_overload() -> None:
    results = {"kernel": {"best_pps": 400_000, "overload": {"delivered_pps": 500_000}},
               "nft-dnat": {"best_pps": 200_000},
               "lb-tun": {"best_pps": 100_000, "overload": {"delivered_pps": 250_000}},
               "py-naive": {"error": "did not start"}}
    r = run.ratios_of(results)
    assert r["lb-tun/kernel"] == 0.25
    assert r["lb-tun/nft-dnat"] == 0.5
    assert r["lb-tun/kernel@overload"] == 0.5
    assert "lb-tun/nft-dnat@overload" not in r   # nft-dnat has no overload figure
    assert not any(k.startswith("py-naive") for k in r)


# ---- tcp.py ----------------------------------------------------------------------------------------------
ETHTOOL_K = """Features for l0:
rx-checksumming: on
tx-checksumming: off
\ttx-checksum-ipv4: off [fixed]
\ttx-checksum-ip-generic: off
scatter-gather: on
tcp-segmentation-offload: on
\ttx-tcp-segmentation: off [requested on]
\ttx-tcp-ecn-segmentation: off [requested on]
generic-segmentation-offload: on
generic-receive-offload: off
large-receive-offload: off [fixed]
"""


def test_parse_offloads_reads_the_real_tso_state() -> None:
    assert tcp.parse_offloads(ETHTOOL_K) == {
        "tx-checksumming": "off", "tcp-segmentation-offload": "on",
        "tx-tcp-segmentation": "off [requested on]", "generic-segmentation-offload": "on",
        "generic-receive-offload": "off"}


def test_offload_argv() -> None:
    assert tcp.offload_argv("l0", on=True) == ["ethtool", "-K", "l0", "tx", "on"]
    assert tcp.offload_argv("r0", on=False) == ["ethtool", "-K", "r0", "tx", "off"]


def test_new_tcp_cases() -> None:
    cases = tcp.CASES
    assert (cases["py-naive"].mode, cases["py-naive"].balancer, cases["py-naive"].light) == ("dr", "py", True)
    ro, no = cases["route-offload"], cases["nft-nat-offload"]
    assert (ro.mode, ro.balancer, ro.offload, ro.light) == ("dr", "route", True, False)
    assert (no.mode, no.balancer, no.offload) == ("nat", "nft", True)
    assert not cases["route"].offload
    default = tcp.DEFAULT_CASES.split(",")
    assert {"py-naive", "route-offload", "nft-nat-offload", "lb-nat-py"} <= set(default)
    assert all(c in cases for c in default)
    # every lab name stays within the lab's 8 characters with a 3-character prefix
    assert len(f"bu{999:03d}{len(cases) - 1}") <= 8
