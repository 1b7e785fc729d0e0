"""Test that bench/report_scale.py renders a scale_lab run the way RESULTS.md needs it.

- every sweep gets a table per figure with median (min-max) per balancer, each balancer's ratio to its own
  first point and lb's ratio to nft-linear;
- conntrack-limited points are marked and explained; configuration times are listed;
- several runs merge into one document (later points win), and plots() writes one PNG per sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmods import load

REPO = Path(__file__).resolve().parents[2]


rs = load("report_scale", REPO / "bench" / "report_scale.py")


def _pt(sweep: str, x: int, bal: str, pps: list[float], new: list[float] | None = None,
        **kw: Any) -> dict[str, Any]:
    return {"sweep": sweep, "x": x, "balancer": bal, "pps": pps, "new_per_s": new or [], "pps_spread": [],
            "config_s": 0.01, **kw}


FIXTURE: dict[str, Any] = {
    "reps": 3, "seconds_per_blast": 1.0, "flows": 1000,
    "conntrack": {"max": 262144, "writable_in_netns": False},
    "placement": {"gen_cpu": "0", "lb_cpu": "1"},
    "results": {
        "services": [
            _pt("services", 1, "lb-nat", [200e3, 210e3, 190e3], [150e3, 160e3, 140e3], ready_s=0.5),
            _pt("services", 1, "nft-linear", [300e3, 310e3, 290e3], [250e3, 260e3, 240e3]),
            _pt("services", 10000, "lb-nat", [195e3, 200e3, 180e3], [150e3, 150e3, 150e3], config_s=17.4),
            _pt("services", 10000, "nft-linear", [300e3, 300e3, 300e3], [12.5e3, 13e3, 12e3]),
        ],
        "conns": [
            _pt("conns", 1000, "lb-nat", [200e3]),
            _pt("conns", 1000, "nft-linear", [300e3]),
            _pt("conns", 1000000, "lb-nat", [100e3]),
            _pt("conns", 1000000, "nft-linear", [60e3], over_ct_max=True),
        ],
    },
}


def test_cell_and_ratio() -> None:
    assert rs.cell([]) == "—"
    assert rs.cell([1500.0]) == "1.5 k (1 run)"
    assert rs.cell([2e6, 1e6, 3e6]) == "2 M (1 M-3 M)"
    assert rs.ratio([1.0, 2.0, 3.0], [4.0]) == 0.5
    assert rs.ratio([1.0], []) is None and rs.ratio([1.0], [0.0]) is None


def test_section_tables_and_ratios() -> None:
    md = rs.section(FIXTURE)
    assert md.startswith("## End-to-end scaling in the lab (bench/e2e/scale_lab.py)")
    head = "| services | lb-nat | nft-linear | lb-nat vs best | nft-linear vs best | lb-nat / nft-linear |"
    assert head in md
    # new flows/s at 10 000 services: nft-linear at 0.05x of its 1-service figure, lb flat, lb 12x nft
    assert "| 10,000 | 150 k (150 k-150 k) | 12.5 k (12 k-13 k) | 1.00x | 0.05x | 12.00x |" in md
    assert "- services 1 → 10,000, new flows/s: lb-nat 1.00x / 1.00x, nft-linear 0.05x / 0.05x" in md
    # established pps: lb's best point is the first (200 k), 195 k at 10 000 = 0.97x
    assert "| 10,000 | 195 k (180 k-200 k) | 300 k (300 k-300 k) | 0.97x | 1.00x | 0.65x |" in md
    assert "17.400 s" in md and "0.010 s + 0.50 s next hops" in md


def test_section_marks_conntrack_limit() -> None:
    md = rs.section(FIXTURE)
    assert "| 1,000,000 | 100 k (1 run) | 60 k † (1 run) |" in md
    assert "nf_conntrack_max = 262,144" in md and "read-only there" in md
    assert "### vs dests" not in md


def test_unsaturated_points_are_marked() -> None:
    blasts = [{"kind": "established", "sent": 1000, "received": 998},
              {"kind": "new", "sent": 1000, "received": 500}]
    p = _pt("dests", 1, "lb-nat", [998.0], [500.0], blasts=blasts)
    assert rs.unsaturated(p, "pps")
    assert not rs.unsaturated(p, "new_per_s") and not rs.unsaturated(p, "pps_spread")
    md = rs.section({"results": {"dests": [p]}})
    assert "| 1 | 998 ° (1 run) |" in md and "| 1 | 500 (1 run) |" in md
    assert "° the balancer lost < 1 %" in md


def test_merge_later_points_win() -> None:
    a = {"reps": 3, "wall_s": 100, "results": {"services": [_pt("services", 1, "lb-nat", [1.0])]}}
    b = {"reps": 1, "wall_s": 50, "results": {"services": [_pt("services", 1, "lb-nat", [2.0]),
                                                           _pt("services", 1, "nft-map", [3.0])],
                                              "dests": [_pt("dests", 1, "lb-nat", [4.0])]}}
    m = rs.merge([a, b])
    assert m["reps"] == 3 and m["wall_s"] == 150 and m["runs"] == 2
    assert [p["pps"] for p in m["results"]["services"]] == [[2.0], [3.0]]
    assert m["results"]["dests"][0]["pps"] == [4.0]
    assert rs.merge([]) == {}


def test_plots_one_png_per_sweep(tmp_path: Path) -> None:
    made = rs.plots(FIXTURE, tmp_path)
    assert [p.name for p in made] == ["scale_lab_services.png", "scale_lab_conns.png"]
    for p in made:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
