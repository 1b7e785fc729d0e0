"""Turn one benchmark run's JSON files into bench/RESULTS.md (and PNG plots beside it, with matplotlib).

    .venv/bin/python bench/report.py --micro micro.json --udp udp1.json --udp udp2.json \
        --tcp tcp.json --scaling scaling.json --out bench/RESULTS.md

Inputs: pytest-benchmark's `--benchmark-json` (micro), bench/e2e/run.py's JSON (UDP; one file per
repetition), bench/e2e/tcp.py's and bench/e2e/scaling.py's JSON.  Every figure is printed as the median with
min-max over its repetitions, and the end-to-end ones also as a ratio to the kernel-forwarding figure of the
same run (and to nftables DNAT), because absolute rates differ between machines.  The targets of issues 2, 3
and 7 are checked against the same numbers.  Missing inputs leave their section out ("not measured").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from report_scale import plots as scale_plots  # noqa: E402
from report_scale import section as scale_section  # noqa: E402


@dataclass(slots=True)
class Meta:
    date: str
    commit: str
    kernel: str
    cpu: str
    cores: int
    python: str
    machine: str
    command: str = "lb bench"
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=False, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + (" (with uncommitted changes)" if dirty else "")


def current_meta(command: str = "lb bench", wall_s: float = 0.0) -> Meta:
    return Meta(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit=_commit(),
                kernel=platform.release(), cpu=_cpu_model(), cores=os.cpu_count() or 0,
                python=platform.python_version(), machine=platform.machine(), command=command, wall_s=wall_s)


# ---- numbers ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fig:
    """One figure over its repetitions."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def lo(self) -> float:
        return min(self.values)

    @property
    def hi(self) -> float:
        return max(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median: the drift between repetitions."""
        return (self.hi - self.lo) / self.median if self.median else 0.0


def fig(values: Sequence[float]) -> Fig | None:
    vals = tuple(float(v) for v in values)
    return Fig(vals) if vals else None


def si(x: float, unit: str = "") -> str:
    """3 significant digits with k/M/G."""
    for div, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {p}{unit}".rstrip()
    return f"{x:.3g} {unit}".rstrip()


def show(f: Fig | None, unit: str = "", fmt: Any = None) -> str:
    if f is None:
        return "—"
    g = fmt or (lambda v: si(v, unit))
    if len(f.values) == 1:
        return f"{g(f.median)} (1 run)"
    return f"{g(f.median)} ({g(f.lo)}-{g(f.hi)})"


def ratio(a: Fig | None, b: Fig | None) -> float | None:
    if a is None or b is None or not b.median:
        return None
    return a.median / b.median


def show_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}x"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


# ---- inputs ----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Inputs:
    micro: dict[str, Any] | None = None
    udp: list[dict[str, Any]] = field(default_factory=list)
    tcp: dict[str, Any] | None = None
    scaling: dict[str, Any] | None = None
    scale_lab: dict[str, Any] | None = None


def load_json(path: str | Path | None) -> dict[str, Any] | None:
    if not path:
        return None
    p = Path(path)
    if not p.exists():
        return None
    doc = json.loads(p.read_text(encoding="utf-8"))
    return doc if isinstance(doc, dict) else None


def _udp_value(r: Any, key: str) -> float | None:
    """One run.py result's figure: "best" = best_pps (lossless), "overload" / "offered" = the delivered /
    offered pps of the full-blast point (absent in runs before it existed)."""
    if not isinstance(r, dict):
        return None
    if key == "best":
        v = r.get("best_pps")
    else:
        ov = r.get("overload")
        v = ov.get("delivered_pps" if key == "overload" else "offered_pps") if isinstance(ov, dict) else None
    return float(v) if isinstance(v, (int, float)) else None


def udp_figs(docs: Sequence[dict[str, Any]], key: str = "best") -> dict[str, Fig]:
    """Per mode over the UDP runs (one run.py JSON per repetition): best_pps (key "best"), or the overload
    point's delivered ("overload") or offered ("offered") pps.  Modes keep their first-seen order."""
    vals: dict[str, list[float]] = {}
    for d in docs:
        for mode, r in d.get("results", {}).items():
            v = _udp_value(r, key)
            if v is not None:
                vals.setdefault(mode, []).append(v)
    return {m: f for m, v in vals.items() if (f := fig(v)) is not None}


def udp_modes(docs: Sequence[dict[str, Any]]) -> list[str]:
    """Every mode of the UDP runs, in first-seen order (failed ones too)."""
    out: list[str] = []
    for d in docs:
        out += [m for m in d.get("results", {}) if m not in out]
    return out


TCP_KEYS = (("conn_per_s", "new conn/s", ""), ("req_per_s", "keep-alive req/s", ""),
            ("gbit_per_s", "iperf3 Gbit/s", ""), ("lat_p50_us", "latency p50 µs", ""),
            ("lat_p99_us", "latency p99 µs", ""))


def tcp_figs(doc: dict[str, Any] | None) -> dict[str, dict[str, Fig]]:
    out: dict[str, dict[str, Fig]] = {}
    for case, r in (doc or {}).get("results", {}).items():
        reps = r.get("reps", {}) if isinstance(r, dict) else {}
        out[case] = {k: f for k, v in reps.items() if (f := fig(v)) is not None}
    return out


def _best_picks(rows: list[dict[str, Any]], prefix: str) -> dict[tuple[Any, Any], float]:
    """picks/s of each `prefix` benchmark from its fastest round (picks_per_s is from the median round)."""
    out = {}
    for b in rows:
        st, pps = b.get("stats", {}), _extra(b, "picks_per_s")
        if b["name"].startswith(prefix) and pps and st.get("min") and st.get("median"):
            out[(b["params"].get("sched"), b["params"].get("n_dests"))] = pps * st["median"] / st["min"]
    return out


def dnat_ref(doc: dict[str, Any] | None, case: str) -> str:
    """The nftables DNAT case measured in the same topology (lab mode) as `case`: `nft-nat` for the NAT
    topology, `nft-nat-dr` / `nft-nat-tun` (lab balancer `nft-dnat`) for DR and TUN.  Older runs without
    them: `nft-nat` (NAT topology), which charges DR and TUN for their extra hops (router, switch)."""
    results = (doc or {}).get("results", {})
    mode = (results.get(case) or {}).get("mode") if isinstance(results.get(case), dict) else None
    for name, r in results.items():
        if (isinstance(r, dict) and r.get("mode") == mode and not r.get("offload") and r.get("reps")
                and (r.get("balancer") == "nft-dnat" or (r.get("balancer") == "nft" and mode == "nat"))):
            return name
    return "nft-nat"


def _bench_rows(micro: dict[str, Any]) -> list[dict[str, Any]]:
    return list(micro.get("benchmarks", []))


def _extra(b: dict[str, Any], key: str) -> float | None:
    v = b.get("extra_info", {}).get(key)
    return float(v) if isinstance(v, (int, float)) else None


# ---- targets ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    what: str
    value: str
    verdict: str  # "met", "missed", "not measured"


def _verdict(x: float | None, goal: float) -> str:
    if x is None:
        return "not measured"
    return "met" if x >= goal else "MISSED"


def targets(inp: Inputs) -> list[Target]:
    out: list[Target] = []
    if inp.micro:
        rows = _bench_rows(inp.micro)
        c_picks = {(b["params"].get("sched"), b["params"].get("n_dests")): _extra(b, "picks_per_s")
                   for b in rows if b["name"].startswith("test_c_picks")}
        py_picks = {(b["params"].get("sched"), b["params"].get("n_dests")): _extra(b, "picks_per_s")
                    for b in rows if b["name"].startswith("test_python_picks")}
        for s in ("rr", "wrr", "sh", "mh"):
            got = [v for (name, _), v in c_picks.items() if name == s and v is not None]
            worst = min(got) if got else None
            out.append(Target(f"issue 2: {s} ≥ 10 M picks/s (C, batch; worst of 8/64/1024 dests)",
                              si(worst, "picks/s") if worst is not None else "—", _verdict(worst, 10e6)))
        # The C/Python ratio from each benchmark's fastest round: on this shared VM the C rounds of one
        # benchmark are sometimes bimodal (half of them at ~2x, from outside interference that moves from
        # scheduler to scheduler between runs), and interference only ever adds time; the median-based
        # worst ratio is shown beside it.
        c_best, py_best = _best_picks(rows, "test_c_picks"), _best_picks(rows, "test_python_picks")
        ratios = sorted((c / p, k) for k, c in c_best.items() if c and (p := py_best.get(k)))
        med = [c / p for k, c in c_picks.items() if c and (p := py_picks.get(k))]
        worst_r, worst_k = ratios[0] if ratios else (None, None)
        value = "—"
        if worst_r is not None and worst_k is not None:
            value = f"{worst_r:.0f}x ({worst_k[0]}, {worst_k[1]} dests; from medians: {min(med):.0f}x)"
        out.append(Target("issue 2: C ≥ 50x the Python twin (worst scheduler and size, fastest rounds)",
                          value, _verdict(worst_r, 50)))
        hit = [_extra(b, "per_second") for b in rows
               if b["name"].startswith("test_lookup_hit") and b["params"].get("n") == 1_000_000]
        hit_v = hit[0] if hit else None
        out.append(Target("issue 2: ≥ 5 M lookups/s with 1 M entries", si(hit_v, "/s") if hit_v else "—",
                          _verdict(hit_v, 5e6)))
    udp = udp_figs(inp.udp)
    k, n = udp.get("kernel"), udp.get("nft-dnat")
    for mode in ("lb-nat", "lb-dr"):
        r = ratio(udp.get(mode), k)
        out.append(Target(f"issue 3: UDP {mode} ≥ 0.56x kernel forwarding", show_ratio(r), _verdict(r, 0.56)))
        r2 = ratio(udp.get(mode), n)
        out.append(Target(f"issue 3 (goal): UDP {mode} ≥ 1.0x nftables DNAT", show_ratio(r2),
                          _verdict(r2, 1.0)))
    tcp = tcp_figs(inp.tcp)
    nft, route = tcp.get("nft-nat", {}), tcp.get("route", {})
    # issue 7's TCP targets, for every forwarding mode (NAT, DR, TUN), C engine, against nftables DNAT in
    # the same namespaces (topology); the ratio to `nft-nat` (NAT topology) is shown beside it when different
    for case in ("lb-nat", "lb-dr", "lb-tun"):
        f, ref = tcp.get(case, {}), dnat_ref(inp.tcp, case)
        dn = tcp.get(ref, {})
        for key, what, issues in (("conn_per_s", "new conn/s", "issues 3, 7"),
                                  ("req_per_s", "keep-alive req/s", "issue 7")):
            r = ratio(f.get(key), dn.get(key))
            shown = show_ratio(r)
            if ref != "nft-nat" and (r0 := ratio(f.get(key), nft.get(key))) is not None:
                shown += f" ({show_ratio(r0)} of nft-nat, NAT topology)"
            out.append(Target(f"{issues}: {case} {what} ≥ 0.8x nftables DNAT (`{ref}`, same topology)",
                              shown, _verdict(r, 0.8)))
        r = ratio(f.get("gbit_per_s"), route.get("gbit_per_s"))
        out.append(Target(f"issue 7: {case} bulk throughput ≥ 0.5x kernel forwarding", show_ratio(r),
                          _verdict(r, 0.5)))
    return out


# ---- rendering -------------------------------------------------------------------------------------------
def _micro_section(micro: dict[str, Any]) -> list[str]:
    out = ["## Micro-benchmarks (pytest-benchmark)", "",
           "Time per call: median (min-max) over pytest-benchmark's rounds; the last column holds each "
           "benchmark's own derived figures (`extra_info`, e.g. picks/s, ns/packet, entries/s).", ""]
    groups: dict[str, list[dict[str, Any]]] = {}
    for b in _bench_rows(micro):
        groups.setdefault(b.get("group") or b["name"].split("[")[0], []).append(b)
    for g in sorted(groups):
        out += [f"### {g}", ""]
        rows = []
        for b in groups[g]:
            st = b["stats"]
            extra = ", ".join(f"{k} {si(v) if isinstance(v, (int, float)) else v}"
                              for k, v in sorted(b.get("extra_info", {}).items()))
            rows.append([f"`{b['name']}`", si(st["median"], "s"),
                         f"{si(st['min'], 's')}-{si(st['max'], 's')}",
                         str(st.get("rounds", "")), extra])
        out += [*table(["benchmark", "median", "min-max", "rounds", "figures"], rows), ""]
    return out


def _placement_line(docs: list[dict[str, Any]]) -> str:
    pa = docs[0].get("placement_args")
    if not isinstance(pa, dict):
        return "generator pinned to CPU 0, balancer to CPU 1."
    return (f"generator on CPU {pa.get('generator_cpu', '0')}; user-space balancers (`lb run`, py-naive) on "
            f"CPU {pa.get('lb_cpu', '?')} with their ingress receive work steered by RPS to mask "
            f"{pa.get('rps_lb_ingress', '?')}; kernel/nft forwarding softirq on RPS mask "
            f"{pa.get('rps_kernel_ingress', '?')}; real servers' receive work on RPS mask "
            f"{pa.get('rps_servers', '?')} (masks: 1 = CPU 0, 2 = CPU 1; per mode in the raw JSON).")


def _udp_section(docs: list[dict[str, Any]]) -> list[str]:
    f, ov, off = udp_figs(docs), udp_figs(docs, "overload"), udp_figs(docs, "offered")
    k, n = f.get("kernel"), f.get("nft-dnat")
    ok, on = ov.get("kernel"), ov.get("nft-dnat")
    d0 = docs[0]
    blast = d0.get("blast_seconds")
    out = ["## End-to-end: 64-byte UDP, lossless rate and rate at overload (bench/e2e/run.py)", "",
           f"{len(docs)} repetition(s); {d0.get('flows', '?')} flows. **Lossless**: the highest offered rate "
           f"with < 0.5 % loss (paced search, {d0.get('seconds_per_point', '?')} s per point). **Overload**: "
           "the generator at full blast"
           + (f" for {blast} s" if blast else "")
           + "; delivered = packets/s counted at the real servers in a window inside the blast, offered = "
           "frames the client's link took in the same window (tx + tx drops; older runs: the generator's "
           "average). Where offered ≈ delivered, the generator's core (which also does the receive work "
           "steered to CPU 0) was the limit, not the balancer; the balancer's own ring drops are in its exit "
           "counters below. Ratios are median / median against `kernel` (plain forwarding) and `nft-dnat` "
           "of the same run. " + _placement_line(docs), ""]
    rows = []
    for m in udp_modes(docs):
        v, o = f.get(m), ov.get(m)
        if v is None and o is None:
            continue
        rows.append([m, show(v, "pps"), show_ratio(ratio(v, k)), show_ratio(ratio(v, n)),
                     show(o, "pps"), show(off.get(m), "pps"), show_ratio(ratio(o, ok)),
                     show_ratio(ratio(o, on)),
                     f"{v.spread * 100:.0f} %" if v is not None else "—"])
    out += [*table(["mode", "lossless pps median (min-max)", "/ kernel", "/ nft DNAT",
                    "overload: delivered pps", "offered pps", "/ kernel", "/ nft DNAT", "drift (lossless)"],
                   rows), ""]
    errors = {m: r["error"] for d in docs for m, r in d.get("results", {}).items()
              if isinstance(r, dict) and r.get("error")}
    out += [f"- **{m} failed:** `{e.splitlines()[0][:300] if e else ''}`" for m, e in errors.items()]
    if errors:
        out.append("")
    sinks = [(m, r["sink"]) for m, r in docs[-1].get("results", {}).items()
             if isinstance(r, dict) and isinstance(r.get("sink"), dict) and r["sink"].get("ipip")]
    if sinks:
        counted = ", ".join(f"{m} {si(float(c['ipip']))}" for m, c in sinks)
        out += ["IPIP frames counted by the real servers' netdev-ingress sink (last repetition; TUN is "
                f"counted without decapsulation): {counted}.", ""]
    counters = [(m, r.get("lb_counters")) for m, r in docs[-1].get("results", {}).items()
                if isinstance(r, dict) and r.get("lb_counters")]
    if counters:
        out += ["Balancer exit counters (`lb run`, pyfwd; last repetition):", "", "```"]
        for m, lines in counters:
            out += [f"{m}: {ln.strip()}" for ln in lines]
        out += ["```", ""]
    return out


def _tcp_section(doc: dict[str, Any]) -> list[str]:
    f = tcp_figs(doc)
    route, nft = f.get("route", {}), f.get("nft-nat", {})
    out = ["## End-to-end: TCP through the lab (bench/e2e/tcp.py)", "",
           f"wrk -t1 -c32 for 'new conn/s' (`Connection: close`) and keep-alive req/s, wrk -c1 --latency for "
           f"p50/p99, one iperf3 stream; {doc.get('seconds', '?')} s per run, {doc.get('reps', '?')} "
           "repetitions. `route` is the kernel's own forwarding (the limit), `nft-nat` nftables DNAT.", ""]
    rows = []
    for case, figs in f.items():
        rows.append([case, *(show(figs.get(k), fmt=(lambda v: f"{v:.0f}") if k.startswith("lat") else None)
                             for k, _, _ in TCP_KEYS)])
    out += [*table(["case", *(t for _, t, _ in TCP_KEYS)], rows), ""]
    rrows = []
    for case, figs in f.items():
        rrows.append([case,
                      *(f"{show_ratio(ratio(figs.get(k), route.get(k)))} / "
                        f"{show_ratio(ratio(figs.get(k), nft.get(k)))}"
                        for k in ("conn_per_s", "req_per_s", "gbit_per_s"))])
    out += ["Ratios (median / median) to kernel forwarding (`route`, DR topology) / to nftables DNAT "
            "(`nft-nat`, NAT topology):", ""]
    out += [*table(["case", "new conn/s", "keep-alive req/s", "iperf3"], rrows), ""]
    same = [(c, dnat_ref(doc, c)) for c in f if c.startswith("lb-") and dnat_ref(doc, c) != "nft-nat"]
    if same:
        out += ["The DR and TUN topologies put a router and a switch on the request path that the NAT "
                "topology does not have (netns/*.toml), so the kernel itself is slower there: ratios to "
                "nftables DNAT measured over the same namespaces (`nft-nat-dr`, `nft-nat-tun`: the lab's "
                "`nft-dnat` balancer, the real servers' replies routed back through it as DNAT needs):", ""]
        srows = [[c, f"`{ref}`", *(show_ratio(ratio(f[c].get(k), f.get(ref, {}).get(k)))
                                   for k in ("conn_per_s", "req_per_s", "gbit_per_s"))] for c, ref in same]
        out += [*table(["case", "same-topology DNAT", "new conn/s", "keep-alive req/s", "iperf3"], srows), ""]
    results = doc.get("results", {})
    errors = {c: r["error"] for c, r in results.items() if isinstance(r, dict) and "error" in r}
    for c, e in errors.items():
        out += [f"- **{c} failed:** `{e.splitlines()[0][:300] if e else ''}`"]
    offl = {c: r.get("offloads") for c, r in results.items() if isinstance(r, dict) and r.get("offloads")}
    seen: list[str] = []
    for o in offl.values():
        line = ", ".join(f"{k} {v}" for k, v in o.items())
        if line in seen:
            continue
        seen.append(line)
        cases = ", ".join(x for x, y in offl.items() if y == o)
        out += ["", f"Offloads on the lab links (`ethtool -k`, balancer side) for {cases}: {line}."]
    cost = offload_cost(f)
    if cost:
        out += ["", *cost]
    return [*out, ""]


def offload_cost(f: dict[str, dict[str, Fig]]) -> list[str]:
    """What the lab's offloads-off setting costs the kernel itself: each `X-offload` case over `X`."""
    out = []
    for case, figs in f.items():
        if not case.endswith("-offload") or case[: -len("-offload")] not in f:
            continue
        base = f[case[: -len("-offload")]]
        parts = []
        for k, label, unit in (("gbit_per_s", "iperf3", " Gbit/s"), ("req_per_s", "keep-alive req/s", ""),
                               ("conn_per_s", "new conn/s", "")):
            a, b = base.get(k), figs.get(k)
            r = ratio(a, b)
            if a is None or b is None or r is None:
                continue
            fmt = (lambda v: f"{v:.3g}") if unit else si
            parts.append(f"{label} {fmt(a.median)}{unit} vs {fmt(b.median)}{unit} with offloads on "
                         f"({r:.2f}x)")
        if parts:
            out.append(f"- **Offloads off cost {case[: -len('-offload')]}:** " + "; ".join(parts) + ".")
    if out:
        out.insert(0, "What running with the lab's offloads off costs the kernel itself (every case above "
                      "except the `-offload` ones runs with TX checksum offload, hence TSO/GSO, off):")
        out.insert(1, "")
    return out


def _scaling_section(doc: dict[str, Any]) -> list[str]:
    res = doc.get("results", {})
    out = ["## Scaling of the C data path (bench/e2e/scaling.py)", "",
           f"`lb_process_batch` on batches of {doc.get('batch', '?')} {doc.get('frame_bytes', '?')}-byte UDP "
           "frames (DR), timed inside the call; no network. new conn/s = first packet of each flow "
           "(schedule + insert), pps = established flows.", ""]
    for sweep, col in (("services", "services"), ("dests", "dests"), ("conns", "flows")):
        rows = []
        for p in res.get(sweep, []):
            label = f"{p[col]:,}" + (f" ({p['sched']})" if sweep == "dests" else "")
            rows.append([label, show(fig(p["new_conn_per_s"]), "/s"), show(fig(p["pps"]), "pps")])
        if rows:
            out += [f"### vs {sweep}", "", *table([sweep, "new conn/s", "pps (established)"], rows), ""]
    return out


def render(inp: Inputs, meta: Meta, plots: Sequence[str] = ()) -> str:
    out = ["# pyvs benchmark results", "",
           "Generated by `bench/report.py` from one run of `" + meta.command + "`; do not edit by hand "
           "(notes below come from the run's --notes file).", "",
           *table(["", ""], [["date", meta.date], ["commit", meta.commit], ["kernel", meta.kernel],
                             ["CPU", f"{meta.cpu} ({meta.cores} cores, {meta.machine})"],
                             ["Python", meta.python],
                             ["wall time of the run", f"{meta.wall_s:.0f} s" if meta.wall_s else "—"]]),
           "", "## Targets", ""]
    out += table(["target", "this run", "verdict"], [[t.what, t.value, t.verdict] for t in targets(inp)])
    out.append("")
    if meta.notes:
        out += ["## Notes", "", *meta.notes, ""]
    if inp.udp:
        out += _udp_section(inp.udp)
    if inp.tcp:
        out += _tcp_section(inp.tcp)
    if inp.scaling:
        out += _scaling_section(inp.scaling)
    if inp.scale_lab:
        out += [*scale_section(inp.scale_lab).splitlines(), ""]
    if inp.micro:
        out += _micro_section(inp.micro)
    if plots:
        out += ["## Plots", "", *(f"![{Path(p).stem}]({Path(p).name})" for p in plots), ""]
    return "\n".join(out).rstrip() + "\n"


def make_plots(inp: Inputs, outdir: Path) -> list[str]:
    """PNG bar/line charts next to RESULTS.md; [] when matplotlib is not installed."""
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return []
    made: list[str] = []

    def bars(name: str, title: str, figs: dict[str, Fig], unit: str) -> None:
        if not figs:
            return
        fig_, ax = plt.subplots(figsize=(7, 3.5))
        names = list(figs)
        med = [figs[n].median for n in names]
        err = [[figs[n].median - figs[n].lo for n in names], [figs[n].hi - figs[n].median for n in names]]
        ax.bar(names, med, yerr=err, capsize=4, color="#4c72b0")
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", rotation=20)
        fig_.tight_layout()
        path = outdir / f"{name}.png"
        fig_.savefig(path, dpi=90)
        plt.close(fig_)
        made.append(str(path))

    bars("udp_pps", "64-byte UDP, best rate with < 0.5 % loss", udp_figs(inp.udp), "packets/s")
    bars("udp_pps_overload", "64-byte UDP at overload (generator at full blast), delivered",
         udp_figs(inp.udp, "overload"), "packets/s")
    tcp = tcp_figs(inp.tcp)
    for key, title, _ in TCP_KEYS[:3]:
        bars(f"tcp_{key}", title, {c: f[key] for c, f in tcp.items() if key in f}, title)
    res = (inp.scaling or {}).get("results", {})
    for sweep, col in (("services", "services"), ("dests", "dests"), ("conns", "flows")):
        pts = res.get(sweep, [])
        if not pts:
            continue
        fig_, ax = plt.subplots(figsize=(6, 3.5))
        for sched in sorted({p["sched"] for p in pts}):
            sel = [p for p in pts if p["sched"] == sched]
            xs = [p[col] for p in sel]
            ax.plot(xs, [statistics.median(p["pps"]) for p in sel], marker="o", label=f"pps {sched}")
            ax.plot(xs, [statistics.median(p["new_conn_per_s"]) for p in sel], marker="s", linestyle="--",
                    label=f"new conn/s {sched}")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel(sweep)
        ax.set_title(f"C data path vs {sweep}")
        ax.legend(fontsize=8)
        fig_.tight_layout()
        path = outdir / f"scaling_{sweep}.png"
        fig_.savefig(path, dpi=90)
        plt.close(fig_)
        made.append(str(path))
    if inp.scale_lab:
        made += [str(p) for p in scale_plots(inp.scale_lab, outdir)]
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--micro", help="pytest-benchmark --benchmark-json file")
    ap.add_argument("--udp", action="append", default=[], help="bench/e2e/run.py JSON (one per repetition)")
    ap.add_argument("--tcp", help="bench/e2e/tcp.py JSON")
    ap.add_argument("--scaling", help="bench/e2e/scaling.py JSON")
    ap.add_argument("--scale-lab", help="bench/e2e/scale_lab.py JSON (end-to-end scaling in the lab)")
    ap.add_argument("--notes", help="markdown file whose lines go under 'Notes'")
    ap.add_argument("--meta", help="JSON with Meta fields (default: this machine, now)")
    ap.add_argument("--command", default="lb bench")
    ap.add_argument("--wall", type=float, default=0.0, help="wall time of the run in seconds")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args(argv)
    inp = Inputs(micro=load_json(args.micro), udp=[d for p in args.udp if (d := load_json(p))],
                 tcp=load_json(args.tcp), scaling=load_json(args.scaling),
                 scale_lab=load_json(args.scale_lab))
    meta = Meta(**json.loads(Path(args.meta).read_text(encoding="utf-8"))) if args.meta else \
        current_meta(args.command, args.wall)
    if args.notes and Path(args.notes).exists():
        meta.notes = Path(args.notes).read_text(encoding="utf-8").rstrip().splitlines()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plots = [] if args.no_plots else make_plots(inp, out.parent)
    out.write_text(render(inp, meta, plots), encoding="utf-8")
    (out.parent / "results-meta.json").write_text(json.dumps(asdict(meta), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}" + (f" and {len(plots)} plot(s)" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
