"""Test that `lb trace` follows real requests through a running lab in each forwarding mode.

- NAT: the request's IP destination changes from the VIP to a RIP at the balancer, the reply's source
  changes back from the RIP to the VIP at the balancer, and both directions pass it;
- DR: the frame leaving the balancer has a real server's MAC but still the VIP as IP destination; the reply
  never passes the balancer;
- TUN: the frame leaving the balancer carries an added outer IPv4 header (protocol 4) to a RIP with the
  original packet inside; the reply never passes the balancer;
- every traced connection gets the balancer's decision step, one pcap per capture point is written and
  tcpdump's processes are gone afterwards;
- live: `lb trace --lab NAME --count N` in a running lab with wlc (NAT through the CLI, DR, TUN) shows the
  running balancer's own decision (trace ring record: dests' weights and counts, the pick, NONE -> SYN_RECV,
  the rewritten fields), and that pick agrees with the real server the capture saw the SYN go to.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lb.teach import pcap
from lb.teach.ladder import Ladder, Step

pytestmark = [pytest.mark.netns, pytest.mark.root]


def _lab(mode: str, name: str):  # returns lb.lab.lab.Lab, imported lazily (root-only)
    from lb.lab.lab import Lab, LabSpec  # noqa: PLC0415

    return Lab.up(LabSpec(mode=mode, servers=2, scheduler="rr", name=name))


def _lab_tcpdumps(name: str) -> list[int]:
    """tcpdump processes inside the lab's namespaces (other people's captures elsewhere don't count)."""
    pids = []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for ns in listing.split():
        if not ns.startswith(name + "-"):
            continue
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False).stdout
        for pid in out.split():
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm == "tcpdump":
                pids.append(int(pid))
    return pids


def _trace(name: str, tmp_path: Path, count: int = 2) -> list[Ladder]:
    from lb.teach.trace import run_trace  # noqa: PLC0415

    ladders = run_trace(name, count, 8.0, str(tmp_path))
    assert _lab_tcpdumps(name) == [], "tcpdump processes left behind"
    assert ladders
    for ladder in ladders:
        assert any(isinstance(e, Step) and e.title.startswith("scheduler") for e in ladder.events)
    pcaps = sorted(p.name for p in tmp_path.glob("*.pcap"))
    assert "client-eth0.pcap" in pcaps and any(p.startswith("real") for p in pcaps)
    assert all(list(pcap.read_pcap(tmp_path / p)) is not None for p in pcaps)
    return ladders


def _changes(hop: object) -> dict[tuple[str, str], tuple[str, str]]:
    return {(c.layer, c.name): (c.old, c.new) for c in hop.changes}  # type: ignore[attr-defined]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_trace_nat(tmp_path: Path) -> None:
    with _lab("nat", "trnat"):
        ladders = _trace("trnat", tmp_path)
    for ladder in ladders:
        req = next(h for h in ladder.hops if h.src == "lb" and h.dst.startswith("real"))
        assert _changes(req)[("IPv4", "dst")][0] == "10.10.0.100"
        assert _changes(req)[("IPv4", "dst")][1].startswith("10.2.0.")
        rep = next(h for h in ladder.hops if h.src == "lb" and h.dst == "client")
        assert _changes(rep)[("IPv4", "src")] == (_changes(req)[("IPv4", "dst")][1], "10.10.0.100")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_trace_dr(tmp_path: Path) -> None:
    with _lab("dr", "trdr"):
        ladders = _trace("trdr", tmp_path)
    for ladder in ladders:
        fwd = next(h for h in ladder.hops if h.src == "lb" and h.dst.startswith("real"))
        ch = _changes(fwd)
        assert ("Ethernet", "dst") in ch and ("IPv4", "dst") not in ch and ("IPv4", "src") not in ch
        ip = next(h for h in fwd.headers if h.layer == "IPv4")
        assert ip.get("dst") == "10.10.0.100"
        replies = [h for h in ladder.hops if "SYN-ACK" in h.label]
        assert replies and all(h.src != "lb" and h.dst != "lb" for h in replies)
        assert all("balancer link" not in h.where for h in replies)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_trace_tun(tmp_path: Path) -> None:
    with _lab("tun", "trtun"):
        ladders = _trace("trtun", tmp_path)
    for ladder in ladders:
        fwd = next(h for h in ladder.hops if h.src == "lb")
        assert [layer for layer, _ in fwd.added] == ["IPv4 (outer)"]
        outer = next(h for h in fwd.headers if h.layer == "IPv4 (outer)")
        inner = next(h for h in fwd.headers if h.layer == "IPv4 (inner)")
        assert outer.get("proto") == "4 (IPIP)" and outer.get("dst").startswith("10.5.0.")
        assert inner.get("dst") == "10.10.0.100"
        replies = [h for h in ladder.hops if "SYN-ACK" in h.label]
        assert replies and all("balancer link" not in h.where for h in replies)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_trace_live_decision_agrees_with_wire(make_lab) -> None:
    lab = make_lab("nat", servers=2, scheduler="wlc")
    name = lab.state.name
    argv = [sys.executable, "-m", "lb", "trace", "--lab", name, "--count", "1", "--color", "never"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "scheduler wlc (live)" in out, out
    assert "the live balancer's data plane (trace ring record #" in out
    assert out.count("weight 1, active ") == 2 and "*256+" in out
    assert "NONE -> SYN_RECV, forwarding MASQ" in out
    assert "changed eth.dst, eth.src, ip.dst, ip.ttl, ip.csum" in out
    assert "agrees with the record" in out and "DISAGREES" not in out
    assert "not from the live balancer" not in out

    from lb.teach.trace import run_trace  # noqa: PLC0415

    ladders = run_trace(name, 3, 8.0, None)
    assert len(ladders) == 3
    for ladder in ladders:
        step = next(e for e in ladder.events if isinstance(e, Step) and e.title.startswith("scheduler"))
        assert step.title == "scheduler wlc (live)", step.text
        assert "agrees with the record" in step.text and "the rule's winner" in step.text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize("mode", ["dr", "tun"])
def test_trace_live_dr_tun(make_lab, mode: str) -> None:
    lab = make_lab(mode, servers=2, scheduler="wlc")
    from lb.teach.trace import run_trace  # noqa: PLC0415

    ladders = run_trace(lab.state.name, 2, 8.0, None)
    assert len(ladders) == 2
    for ladder in ladders:
        step = next(e for e in ladder.events if isinstance(e, Step) and e.title.startswith("scheduler"))
        assert step.title == "scheduler wlc (live)", step.text
        assert "agrees with the record" in step.text, step.text
        rewrite = next(line for line in step.text.splitlines() if line.startswith("rewrite:"))
        assert "eth.dst" in rewrite and "ip.dst" not in rewrite
        assert ("ipip.added" in rewrite) == (mode == "tun")
        assert f"forwarding {'TUNNEL' if mode == 'tun' else 'DROUTE'}" in step.text
