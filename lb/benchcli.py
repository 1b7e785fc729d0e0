"""`lb bench [--quick] [--only NAME,...] [--out DIR]`: every benchmark in one command, then bench/RESULTS.md.

Parts, in order (each one a subprocess, so one failing part does not stop the others):
- micro    pytest-benchmark over bench/test_bench_*.py (schedulers, conn table, batch cost) → micro.json;
           `--save NAME` / `--compare [ID]` pass through to pytest-benchmark for regressions between commits;
- udp      bench/e2e/run.py, 64-byte UDP: paced loss search + overload point per mode (root; repeated --reps
           times; lb-nat-2w, lb-nat-py and py-naive only in the first repetition) → udp-N.json;
- tcp      bench/e2e/tcp.py, wrk / iperf3 through the lab (root; also py-naive and the offloads-on
           route-offload / nft-nat-offload cases) → tcp.json;
- scaling  bench/e2e/scaling.py, the C data path vs services / dests / connections → scaling.json;
- scale-lab  bench/e2e/scale_lab.py, the same sweeps end to end in the lab (root): lb vs nftables linear
           rules vs nftables maps → scale_lab.json;
then bench/report.py writes DIR/RESULTS.md and its PNG plots, and the targets table is printed.
Raw JSON goes to DIR/raw/.  `--quick` (CI smoke, < 3 minutes: ~2m10s measured on the shared 2-core box)
shrinks every part; the full run takes about 22-27 minutes on a 2-core machine (UDP ~11, TCP ~7.5, micro
~5, scaling ~1.5).  Parts that need root are skipped (and say so) without it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PARTS = ("micro", "udp", "tcp", "scaling", "scale-lab")
#: UDP modes (bench/e2e/run.py): every repetition runs UDP_MODES; the first also UDP_ONCE (the Python
#: forwarders, "once, for scale", and --workers 2, inconclusive on 2 cores: ~30 s a mode-run, so the full
#: run stays well under 30 minutes); --quick runs UDP_QUICK once.
UDP_MODES = ("kernel", "nft-dnat", "lb-nat", "lb-dr", "lb-tun", "lb-nat-v3")
UDP_ONCE = ("lb-nat-2w", "lb-nat-py", "py-naive")
UDP_QUICK = ("kernel", "nft-dnat", "lb-nat", "lb-dr", "lb-tun")
TCP_QUICK = ("route", "nft-nat", "lb-nat", "lb-dr")


@dataclass(frozen=True, slots=True)
class Step:
    part: str
    argv: list[str]
    out: Path
    timeout: float
    root: bool = False


def parse_only(text: str | None) -> list[str]:
    """`--only micro,tcp` → ["micro", "tcp"] (order of PARTS); ValueError on an unknown name."""
    if not text:
        return list(PARTS)
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in PARTS]
    if bad:
        raise ValueError(f"unknown part(s) {', '.join(bad)}; choose from {', '.join(PARTS)}")
    return [p for p in PARTS if p in names]


def plan(args: argparse.Namespace, raw: Path, python: str = sys.executable) -> list[Step]:
    """The subprocesses `lb bench` runs for these arguments (pure: unit-tested)."""
    parts = parse_only(args.only)
    quick = bool(args.quick)
    reps = args.reps if args.reps else (1 if quick else 3)
    steps: list[Step] = []
    if "micro" in parts:
        out = raw / "micro.json"
        argv = [python, "-m", "pytest", str(BENCH), "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                f"--benchmark-json={out}", f"--benchmark-storage=file://{BENCH / '.benchmarks'}",
                "--benchmark-columns=median,min,max,rounds"]
        if quick:
            argv += ["--benchmark-min-rounds=1", "--benchmark-max-time=0.02", "--benchmark-warmup=off",
                     "-k", "not 1000000 and not 100000 and not (python_picks and 1024)"]
        else:
            argv += ["--benchmark-min-rounds=5", "--benchmark-max-time=0.5"]
        if args.save:
            argv.append(f"--benchmark-save={args.save}")
        if args.compare is not None:
            argv.append("--benchmark-compare" + (f"={args.compare}" if args.compare else ""))
        steps.append(Step("micro", argv, out, 300 if quick else 900))
    prefix = ["--prefix", args.prefix] if getattr(args, "prefix", None) else []
    if "udp" in parts:
        for i in range(1 if quick else reps):
            modes = UDP_QUICK if quick else UDP_MODES + (UDP_ONCE if i == 0 else ())
            out = raw / f"udp-{i + 1}.json"
            argv = [python, str(BENCH / "e2e" / "run.py"), "--modes", ",".join(modes), "--out", str(out),
                    *prefix]
            if quick:
                argv += ["--seconds", "0.5", "--steps", "1", "--start", "100000", "--blast-seconds", "1"]
            else:
                argv += ["--seconds", "1.5", "--steps", "3", "--blast-seconds", "2"]
            steps.append(Step("udp", argv, out, 150 if quick else 60 + 75 * len(modes), root=True))
    if "tcp" in parts:
        out = raw / "tcp.json"
        argv = [python, str(BENCH / "e2e" / "tcp.py"), "--out", str(out), "--reps", str(reps), *prefix]
        argv += ["--cases", ",".join(TCP_QUICK), "--seconds", "1"] if quick else ["--seconds", "4"]
        steps.append(Step("tcp", argv, out, 200 if quick else 1200, root=True))
    if "scaling" in parts:
        out = raw / "scaling.json"
        argv = [python, str(BENCH / "e2e" / "scaling.py"), "--out", str(out), "--reps", str(reps)]
        if quick:
            argv.append("--quick")
        steps.append(Step("scaling", argv, out, 120 if quick else 600))
    if "scale-lab" in parts:
        out = raw / "scale_lab.json"
        argv = [python, str(BENCH / "e2e" / "scale_lab.py"), "--out", str(out)]
        argv += ["--quick", "--reps", "1"] if quick else \
            ["--reps", str(min(reps, 2)), "--balancers", "lb-nat,nft-linear,nft-map"]
        steps.append(Step("scale-lab", argv, out, 90 if quick else 600, root=True))
    return steps


def report_argv(steps: list[Step], out_dir: Path, wall: float, *, command: str,
                python: str = sys.executable, notes: Path | None = None) -> list[str]:
    argv = [python, str(BENCH / "report.py"), "--out", str(out_dir / "RESULTS.md"), "--wall", f"{wall:.0f}",
            "--command", command]
    for s in steps:
        if s.out.exists():
            argv += [f"--{s.part}", str(s.out)]
    if notes is not None and notes.exists():
        argv += ["--notes", str(notes)]
    return argv


def cmd_bench(args: argparse.Namespace) -> int:
    out_dir = Path(args.out).resolve() if args.out else BENCH
    raw = out_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    try:
        steps = plan(args, raw)
    except ValueError as e:
        print(f"lb bench: {e}", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    failed: list[str] = []
    for s in steps:
        if s.root and os.geteuid() != 0:
            print(f"== {s.part}: skipped (needs root for network namespaces)", flush=True)
            continue
        s.out.unlink(missing_ok=True)
        print(f"== {s.part}: {' '.join(s.argv[1:3])} ...", flush=True)
        t = time.monotonic()
        try:
            rc = subprocess.run(s.argv, cwd=REPO, env=env, timeout=s.timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = -1
            print(f"== {s.part}: timed out after {s.timeout:.0f} s", flush=True)
        print(f"== {s.part}: exit {rc} in {time.monotonic() - t:.0f} s", flush=True)
        if rc != 0 or not s.out.exists():
            failed.append(s.part)
    wall = time.monotonic() - t0
    command = "lb bench" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    notes = Path(args.notes) if args.notes else BENCH / "RESULTS-notes.md"
    r = subprocess.run(report_argv(steps, out_dir, wall, command=command, notes=notes), cwd=REPO, env=env,
                       check=False)
    results = out_dir / "RESULTS.md"
    if results.exists():
        text = results.read_text(encoding="utf-8")
        start = text.find("## Targets")
        end = text.find("\n## ", start + 5)
        print(text[start:end if end > 0 else None].rstrip())
    if failed:
        print(f"lb bench: part(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or r.returncode != 0 else 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="CI smoke run (under 3 minutes)")
    p.add_argument("--only", metavar="NAME[,NAME]", help=f"run only these parts: {', '.join(PARTS)}")
    p.add_argument("--out", metavar="DIR", help="where RESULTS.md, plots and raw/ go (default bench/)")
    p.add_argument("--reps", type=int, default=0, help="repetitions of each figure (default 3; --quick 1)")
    p.add_argument("--save", metavar="NAME", help="pytest-benchmark --benchmark-save=NAME (micro)")
    p.add_argument("--compare", nargs="?", const="", default=None, metavar="ID",
                   help="pytest-benchmark --benchmark-compare[=ID] against a saved run (micro)")
    p.add_argument("--prefix", metavar="TAG",
                   help="name prefix of the end-to-end parts' namespaces/labs (up to 3 characters)")
    p.add_argument("--notes", metavar="FILE",
                   help="markdown for RESULTS.md's Notes (default bench/RESULTS-notes.md)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="run the benchmarks and write bench/RESULTS.md",
                       description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=cmd_bench)
