"""Markdown tables and PNG plots for the end-to-end scaling sweep (bench/e2e/scale_lab.py's JSON).

    from bench.report_scale import section, plots
    .venv/bin/python bench/report_scale.py RUN.json [RUN2.json ...] [--plots DIR] [--merged FILE]

`section(doc)` renders one markdown section: per sweep (services, dests, conns) and per figure (established
pps, new flows/s, established pps spread over all services) a table of median (min-max) over the
repetitions for each balancer, each balancer's ratio to its own best point (a flat curve stays near
1.00x everywhere; the best point, not the first, so that one point slowed by a neighbour on a shared
machine does not skew the rest) and lb's ratio to nft-linear; then the configuration times (`lbadm -R`,
`nft -f`).  `plots(doc, outdir)` draws one PNG per sweep (matplotlib, Agg backend) and returns their
paths ([] without matplotlib).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SWEEPS = (("services", "services"), ("dests", "dests (one service)"), ("conns", "concurrent connections"))
METRICS = (("pps", "established pps", "packets/s"), ("new_per_s", "new flows/s (every packet a new 5-tuple)",
                                                     "new flows/s"),
           ("pps_spread", "established pps spread over all services", "packets/s"))
BALANCER_TEXT = {
    "lb-nat": "`lb run` NAT (C engine), configured by one `lbadm -R` over the control socket",
    "lb-dr": "`lb run` DR (C engine), configured by one `lbadm -R`",
    "lb-nat-rules": "`lb run --rules FILE --socket none` NAT (no control socket, hence no per-second "
                    "rate estimator in the loop)",
    "nft-linear": "nftables, kube-proxy iptables model: one DNAT rule per service in order, and the "
                  "`statistic --probability 1/(k-j)` cascade as `numgen random mod (k-j) 0` rules",
    "nft-map": "nftables with one `ip daddr . udp dport` map lookup (and a `numgen random mod k` map "
               "for k dests)",
}


def si(x: float, unit: str = "") -> str:
    """3 significant digits with k/M/G."""
    for div, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {p}{unit}".rstrip()
    return f"{x:.3g} {unit}".rstrip()


def median_min_max(values: Sequence[float]) -> tuple[float, float, float] | None:
    if not values:
        return None
    return float(statistics.median(values)), float(min(values)), float(max(values))


def cell(values: Sequence[float], mark: str = "") -> str:
    """'median (min-max)' over the repetitions; '—' when not measured."""
    m = median_min_max(values)
    if m is None:
        return "—"
    med, lo, hi = m
    if len(values) == 1:
        return f"{si(med)}{mark} (1 run)"
    return f"{si(med)}{mark} ({si(lo)}-{si(hi)})"


def show_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}x"


def ratio(a: Sequence[float], b: Sequence[float]) -> float | None:
    ma, mb = median_min_max(a), median_min_max(b)
    if ma is None or mb is None or not mb[0]:
        return None
    return ma[0] / mb[0]


KIND = {"pps": "established", "new_per_s": "new", "pps_spread": "spread"}


def unsaturated(p: dict[str, Any], key: str, loss_min: float = 0.01) -> bool:
    """True when the blasts behind this figure lost (median) less than loss_min of what the generator sent:
    the balancer kept up, so the figure is the generator's (a lower bound), not the balancer's limit."""
    losses = [1.0 - b["received"] / b["sent"] for b in p.get("blasts", [])
              if b.get("kind") == KIND.get(key) and b.get("sent")]
    return bool(losses) and statistics.median(losses) < loss_min


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def points(doc: dict[str, Any], sweep: str) -> list[dict[str, Any]]:
    return list(doc.get("results", {}).get(sweep, []))


def balancers_of(pts: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for p in pts:
        seen.setdefault(p["balancer"])
    return list(seen)


def grid(pts: Sequence[dict[str, Any]]) -> tuple[list[int], list[str], dict[tuple[int, str], dict[str, Any]]]:
    """(sorted x values, balancers in run order, {(x, balancer): point})."""
    by = {(int(p["x"]), p["balancer"]): p for p in pts}
    return sorted({x for x, _ in by}), balancers_of(pts), by


def _best(by: dict[tuple[int, str], dict[str, Any]], xs: Sequence[int], b: str, key: str) -> list[float]:
    """The figure of the x where balancer b's median is highest."""
    vals = [list(v) for x in xs if (v := by.get((x, b), {}).get(key))]
    return max(vals, key=statistics.median, default=[])


def _first(by: dict[tuple[int, str], dict[str, Any]], xs: Sequence[int], b: str, key: str) -> list[float]:
    """The figure of the first x (in xs' order) where balancer b has one."""
    for x in xs:
        vals = by.get((x, b), {}).get(key)
        if vals:
            return list(vals)
    return []


def _lb_vs_nft(bals: Sequence[str]) -> tuple[str, str] | None:
    lb = next((b for b in bals if b.startswith("lb-")), None)
    nft = "nft-linear" if "nft-linear" in bals else next((b for b in bals if b.startswith("nft")), None)
    return (lb, nft) if lb and nft else None


def metric_table(pts: Sequence[dict[str, Any]], sweep: str, key: str) -> list[str]:
    """One table: x | each balancer's figure | each balancer vs its best point | lb / nft."""
    xs, bals, by = grid(pts)
    bals = [b for b in bals if any(by.get((x, b), {}).get(key) for x in xs)]
    if not bals:
        return []
    best = {b: _best(by, xs, b, key) for b in bals}
    pair = _lb_vs_nft(bals)
    head = [sweep, *bals, *(f"{b} vs best" for b in bals)]
    if pair:
        head.append(f"{pair[0]} / {pair[1]}")
    rows = []
    for x in xs:
        row = [f"{x:,}"]
        for b in bals:
            p = by.get((x, b), {})
            mark = (" †" if p.get("over_ct_max") else "") + (" °" if unsaturated(p, key) else "")
            row.append(cell(p.get(key, []), mark))
        row += [show_ratio(ratio(by.get((x, b), {}).get(key, []), best[b])) for b in bals]
        if pair:
            row.append(show_ratio(ratio(by.get((x, pair[0]), {}).get(key, []),
                                        by.get((x, pair[1]), {}).get(key, []))))
        rows.append(row)
    return table(head, rows)


def config_table(pts: Sequence[dict[str, Any]], sweep: str) -> list[str]:
    xs, bals, by = grid(pts)
    rows = []
    for x in xs:
        row = [f"{x:,}"]
        for b in bals:
            p = by.get((x, b))
            if p is None or "config_s" not in p:
                row.append("—")
                continue
            extra = f" + {p['ready_s']:.2f} s next hops" if p.get("ready_s") else ""
            row.append(f"{p['config_s']:.3f} s{extra}")
        rows.append(row)
    return table([sweep, *bals], rows)


def summary(doc: dict[str, Any]) -> list[str]:
    """One line per sweep and figure: each balancer's last point as a ratio to its first and its best."""
    out = []
    for sweep, label in SWEEPS:
        xs, bals, by = grid(points(doc, sweep))
        if len(xs) < 2:
            continue
        for key, what, _ in METRICS:
            parts = []
            for b in bals:
                lo, hi = _first(by, xs, b, key), _first(by, list(reversed(xs)), b, key)
                r, rb = ratio(hi, lo), ratio(hi, _best(by, xs, b, key))
                if r is not None:
                    parts.append(f"{b} {show_ratio(r)} / {show_ratio(rb)}")
            if parts:
                out.append(f"- {label} {xs[0]:,} → {xs[-1]:,}, {what.split(' (')[0]}: " + ", ".join(parts))
    return out


def section(doc: dict[str, Any]) -> str:
    """The markdown section for RESULTS.md."""
    ct = doc.get("conntrack", {})
    place = doc.get("placement", {})
    flows = f"{doc['flows']:,}" if isinstance(doc.get("flows"), int) else "?"
    out = ["## End-to-end scaling in the lab (bench/e2e/scale_lab.py)", "",
           f"64-byte UDP frames from bench/e2e/udpgen_scale.c (AF_PACKET, CPU {place.get('gen_cpu', '0')}) "
           f"through the balancer namespace (all its work on CPU {place.get('lb_cpu', '1')}: `lb run` and "
           "its "
           "ports' receive softirq, or the kernel's forwarding softirq) to the two real servers' "
           "netdev-ingress sink; every figure is an overload blast of "
           f"{doc.get('seconds_per_blast', '?')} s (delivered frames / s), {doc.get('reps', '?')} "
           "repetition(s), median (min-max).  'vs best' = the balancer's figure as a ratio to its own "
           "best point (a flat curve stays near 1.00x).  Established flows: "
           f"{flows} 5-tuples to the last service (services, dests sweeps), N (conns).", ""]
    bals = {p["balancer"] for s, _ in SWEEPS for p in points(doc, s)}
    out += [f"- **{b}**: {BALANCER_TEXT.get(b, b)}" for b in sorted(bals)]
    out.append("")
    lines = summary(doc)
    if lines:
        out += ["Last point as a ratio to the first point / to the best point:", "", *lines, ""]
    for sweep, label in SWEEPS:
        pts = points(doc, sweep)
        if not pts:
            continue
        out += [f"### vs {label}", ""]
        for key, what, _ in METRICS:
            t = metric_table(pts, sweep, key)
            if t:
                out += [f"{what}:", "", *t, ""]
        if any(unsaturated(p, k) for p in pts for k, _, _ in METRICS):
            out += ["° the balancer lost < 1 % of what the generator sent: the figure is the generator's "
                    "(CPU 0, shared with the real servers' receive work), a lower bound of the balancer's.",
                    ""]
        if sweep == "conns" and any(p.get("over_ct_max") for p in pts):
            out += [f"† above conntrack's limit: nf_conntrack_max = {ct.get('max', '?'):,} on this machine, "
                    "and it cannot be raised from inside a namespace (read-only there"
                    + ("" if not ct.get("writable_in_netns") else "; this run found it writable") +
                    "), so nftables cannot hold that many flows: entries are evicted and re-created, and "
                    "the figure is closer to a new-flow rate.", ""]
        if sweep in ("services", "dests"):
            out += ["configuration time (one `lbadm -R` / one `nft -f`; lb: then until every dest's next hop "
                    "is resolved):", "", *config_table(pts, sweep), ""]
    return "\n".join(out).rstrip() + "\n"


def plots(doc: dict[str, Any], outdir: Path) -> list[Path]:
    """One PNG per sweep, a panel per figure, a line per balancer with min-max error bars."""
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return []
    made: list[Path] = []
    outdir.mkdir(parents=True, exist_ok=True)
    for sweep, label in SWEEPS:
        pts = points(doc, sweep)
        if not pts:
            continue
        xs, bals, by = grid(pts)
        keys = [(k, w, u) for k, w, u in METRICS if any(p.get(k) for p in pts)]
        fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.8), squeeze=False)
        for ax, (key, what, unit) in zip(axes[0], keys, strict=True):
            for b in bals:
                sel = [(x, by[(x, b)][key]) for x in xs if by.get((x, b), {}).get(key)]
                if not sel:
                    continue
                mids = [statistics.median(v) for _, v in sel]
                err = [[m - min(v) for m, (_, v) in zip(mids, sel, strict=True)],
                       [max(v) - m for m, (_, v) in zip(mids, sel, strict=True)]]
                ax.errorbar([x for x, _ in sel], mids, yerr=err, marker="o", capsize=3, label=b)
            ax.set_xscale("log")
            ax.set_ylim(bottom=0)
            ax.set_xlabel(label)
            ax.set_ylabel(unit)
            ax.set_title(what.split(" (")[0], fontsize=10)
            ax.legend(fontsize=8)
        fig.suptitle(f"End-to-end vs {label} (64-byte UDP, lab)", fontsize=11)
        fig.tight_layout()
        path = outdir / f"scale_lab_{sweep}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    return made


def merge(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several scale_lab runs (e.g. one per sweep or per balancer) as one document: the first run's header,
    every run's points, later points replacing earlier ones for the same (sweep, x, balancer)."""
    if not docs:
        return {}
    out = {k: v for k, v in docs[0].items() if k != "results"}
    merged: dict[str, dict[tuple[int, str], dict[str, Any]]] = {}
    for d in docs:
        for sweep, pts in d.get("results", {}).items():
            for p in pts:
                merged.setdefault(sweep, {})[(int(p["x"]), p["balancer"])] = p
    out["results"] = {s: list(v.values()) for s, v in merged.items()}
    out["runs"] = len(docs)
    out["wall_s"] = round(sum(float(d.get("wall_s", 0)) for d in docs), 1)
    return out


def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="scale_lab.py output(s); several are merged")
    ap.add_argument("--plots", metavar="DIR", help="also write the PNGs here")
    ap.add_argument("--merged", metavar="FILE", help="write the merged JSON here")
    args = ap.parse_args(argv)
    doc = merge([json.loads(Path(p).read_text(encoding="utf-8")) for p in args.json])
    if args.merged:
        Path(args.merged).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(section(doc))
    if args.plots:
        for p in plots(doc, Path(args.plots)):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
