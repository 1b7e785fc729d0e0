"""Test that lbadm's listings are byte-identical to ipvsadm 1.31's.

- -L -n, --stats, --stats --exact, --rate, --thresholds, --persistent-conn, -c, -c --persistent-conn,
  --timeout and -S -n of one scenario (IPv4/IPv6/fwmark services, persistence, scheduler flags, ops,
  K/M/G/T scaling) equal the goldens in tests/golden/ipvsadm-1.31/, which were built from ipvsadm.c's
  printf formats (build.py) and, for -h / -v, by compiling ipvsadm.c's own usage and version functions;
- print_largenum's boundaries and --exact widths;
- --json carries the same numbers as the text.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import pytest

from lb import model
from lb.cli import options as o
from lb.cli import render

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ipvsadm-1.31"
SC = json.loads((GOLDEN / "scenario.json").read_text())


def _netmask(v: int | str) -> int:
    return v if isinstance(v, int) else int(IPv4Address(v))


def scenario_services() -> list[model.ServiceStatus]:
    out = []
    for s in SC["services"]:
        key = model.ServiceKey(model.Proto[s["proto"]], ip_address(s["addr"]), s["port"], s["fwmark"])
        svc = model.Service(key, s["sched"], s["flags"], s["timeout"], _netmask(s["netmask"]))
        dests = tuple(
            model.DestStatus(
                model.Dest(
                    ip_address(d["addr"]),
                    d["port"],
                    model.Fwd.from_ipvsadm_name(d["fwd"]),
                    d["weight"],
                    d["u"],
                    d["l"],
                ),
                d["active"],
                d["inact"],
                d["persist"],
                model.Stats(*d["stats"]),
                model.Rates(*d["rates"]),
            )
            for d in s["dests"]
        )
        out.append(model.ServiceStatus(svc, dests, model.Stats(*s["stats"]), model.Rates(*s["rates"])))
    return out


def scenario_conns() -> list[model.ConnInfo]:
    return [
        model.ConnInfo(
            model.Proto[c["proto"]],
            ip_address(c["c"][0]),
            c["c"][1],
            ip_address(c["v"][0]),
            c["v"][1],
            ip_address(c["d"][0]),
            c["d"][1],
            c["state"],
            c["expires"],
        )
        for c in SC["conns"]
    ]


N = o.FMT_NUMERIC
LISTINGS = {
    "list_n.txt": N,
    "list_n_stats.txt": N | o.FMT_STATS,
    "list_n_stats_exact.txt": N | o.FMT_STATS | o.FMT_EXACT,
    "list_n_rate.txt": N | o.FMT_RATE,
    "list_n_thresholds.txt": N | o.FMT_THRESHOLDS,
    "list_n_persistent_conn.txt": N | o.FMT_PERSISTENTCONN,
    "save_n.txt": N | o.FMT_RULE,
}


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_listing_matches_golden(name: str) -> None:
    got = render.list_all(scenario_services(), LISTINGS[name], tuple(SC["version"]), SC["size"])
    assert got == (GOLDEN / name).read_text()


@pytest.mark.parametrize(
    ("name", "fmt"), [("list_n_conn.txt", N), ("list_n_conn_persistent.txt", N | o.FMT_PERSISTENTCONN)]
)
def test_conn_listing_matches_golden(name: str, fmt: int) -> None:
    assert render.list_conn(scenario_conns(), fmt) == (GOLDEN / name).read_text()


def test_timeout_usage_version_match_golden() -> None:
    assert render.list_timeout(model.Timeouts(*SC["timeouts"])) == (GOLDEN / "list_timeout.txt").read_text()
    assert render.usage_text("ipvsadm") == (GOLDEN / "usage.txt").read_text()
    assert render.version_text() == (GOLDEN / "version.txt").read_text()


def test_nosort_keeps_kernel_order() -> None:
    text = render.list_all(scenario_services(), N | o.FMT_NOSORT)
    lines = [ln for ln in text.splitlines() if ln.startswith(("TCP", "UDP", "FWM"))]
    assert [ln.split()[1] for ln in lines] == [
        "10.0.0.1:53",
        "10.0.0.1:80",
        "[2001:db8::1]:443",
        "7",
        "10.0.0.2:5060",
    ]
    dests = [ln.split()[1] for ln in text.splitlines() if "10.0.1.1" in ln]
    assert dests == ["10.0.1.12:8080", "10.0.1.11:80"]  # newest first, as the kernel lists them


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "        0"),
        (99_999_999, " 99999999"),
        (100_000_000, "  100000K"),
        (999_999_999, "  999999K"),
        (1_000_000_000, "    1000M"),
        (99_999_999_999, "   99999M"),
        (100_000_000_000, "     100G"),
        (99_999_999_999_999, "   99999G"),
        (100_000_000_000_000, "     100T"),
    ],
)
def test_largenum_scaling(value: int, text: str) -> None:
    assert render.largenum(value, 0) == text


def test_largenum_exact_widths() -> None:
    assert render.largenum(12345678, o.FMT_EXACT) == " 12345678"
    assert render.largenum(123456789, o.FMT_EXACT) == " 123456789"
    assert render.largenum(2**64 - 1, o.FMT_EXACT) == " 18446744073709551615"


def test_json_listing_carries_the_numbers() -> None:
    doc = render.list_json(scenario_services(), N)
    first = doc["services"][0]
    assert (first["protocol"], first["address"], first["port"]) == ("TCP", "10.0.0.1", 80)
    assert first["stats"]["outbytes"] == 123456789012345
    assert [d["port"] for d in first["dests"]] == [80, 8080]
    fwm = doc["services"][-1]
    assert fwm["fwmark"] == 7 and fwm["protocol"] is None
    assert json.loads(json.dumps(doc)) == doc
    conn = render.conn_json(scenario_conns()[0])
    assert conn["state"] == "ESTABLISHED" and conn["expires"] == 899


def test_long_ipv4_names_are_cut_like_ipvsadm() -> None:
    key = model.ServiceKey(model.Proto.TCP, IPv4Address("10.0.0.1"), 80)
    svc = model.Service(key)
    assert render.service_name(svc, N) == "TCP  10.0.0.1:80"
    assert len(render.service_name(svc, 0)) <= 33
