"""Test that `lb run` balances real Linux TCP/UDP traffic in the NAT, DR and TUN labs as IPVS would.

For each mode x scheduler (rr, wrr, wlc, sh, mh), with real TCP clients and servers in namespaces:
- every request completes; rr and wrr (weights 3,2,1): the servers of 12 sequential requests are exactly the
  next 12 picks of the Python twin (lb.sched.ref) after it replayed the picks the balancer made before the
  test (its per-dest connection counts from `lbadm -L -n --stats --json`, which the replay must reproduce);
  wlc keeps the servers within one request of each other; sh and mh send every connection of one client
  address to one server, the one the twin picks for that address (three client addresses);
For each mode:
- a 20 MB download through the VIP arrives with the right checksum;
- per-hop captures: NAT: on the server link requests go to RIP (never VIP) and on the client link replies
  come from the VIP (never a RIP); DR: on the server's switch port requests keep dst IP = VIP with the
  server's MAC, and no reply frame crosses the balancer's link; TUN: the server's link carries IPIP to the RIP
  with the original client -> VIP packet inside, and no reply frame crosses the balancer's link;
Live changes (NAT): during a slow transfer `lbadm -e` weight 0 on its server -> it completes and new
connections avoid that server; `lbadm -d` of another server -> new connections avoid it too; a reload
(`lbadm -C` + `-R` of the same rules) -> the established transfer still completes.
UDP (NAT): datagrams are balanced over the servers and answered from the VIP.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lb.lab.balancer import lb_run_available
from lb.lab.capture import Frame
from lb.lab.topology import Endpoint

needs_lb_run = pytest.mark.skipif(not lb_run_available(), reason="`lb run` (lb/run.py) is not in this tree")

pytestmark = [pytest.mark.netns, pytest.mark.root, needs_lb_run]

MODES = ("nat", "dr", "tun")


def _servers(res: list[dict[str, object]]) -> list[str]:
    assert all(r["ok"] for r in res), [r["error"] for r in res if not r["ok"]]
    return [str(r["server"]) for r in res]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("sched", "weights"), [("rr", (1, 1, 1)), ("wrr", (3, 2, 1))])
def test_exact_sequence_matches_twin(make_lab, mode: str, sched: str, weights: tuple[int, ...]) -> None:
    lab = make_lab(mode, servers=3, scheduler=sched, weights=weights, balancer="lb")
    # The readiness probe (and any probe attempt that timed out) already moved the scheduler: replay those
    # picks on the twin (checked against the balancer's per-dest counts), then predict the next 12.
    twin = lab.caught_up_predictor()
    want = [lab.server_at(d) for d in twin.next(12)]
    got = _servers(lab.get(12))
    assert got == want, f"balancer {got}\ntwin     {want}"
    # The balancer's counts after the burst are again what the twin handed out.
    lab.caught_up_predictor()
    if sched == "wrr":
        assert Counter(got[:6]) == Counter(got[6:]) == Counter({"real1": 3, "real2": 2, "real3": 1}), got
    else:
        assert sorted(got[:3]) == sorted(lab.topo.servers) and got[:3] * 4 == got, got


@pytest.mark.parametrize("mode", MODES)
def test_wlc_spreads_evenly(make_lab, mode: str) -> None:
    lab = make_lab(mode, servers=3, scheduler="wlc", balancer="lb")
    counts = Counter(_servers(lab.get(12)))
    assert set(counts) == set(lab.topo.servers), counts
    assert max(counts.values()) - min(counts.values()) <= 1, counts


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sched", ["sh", "mh"])
def test_hashing_keeps_client_on_twin_server(make_lab, mode: str, sched: str) -> None:
    lab = make_lab(mode, servers=3, scheduler=sched, balancer="lb")
    twin = lab.predictor()
    for client in lab.client_addrs(3):
        seq = _servers(lab.get(5, source=client))
        assert len(set(seq)) == 1, (client, seq)
        assert seq[0] == lab.server_at(twin.pick_for(client)), (client, seq)


def _tcp80(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.ip.innermost().proto == 6 and 80 in (f.ip.innermost().sport,
                                                                         f.ip.innermost().dport)]


@pytest.mark.parametrize("mode", MODES)
def test_transfer_and_captures_per_hop(make_lab, mode: str) -> None:
    lab = make_lab(mode, servers=2, scheduler="rr", balancer="lb")
    topo = lab.topo
    vip, client = topo.vip, topo.addr_of(topo.client_if)
    big = lab.big(20_000_000)
    assert big["ok"], big

    if mode == "nat":
        server_link = topo.peer_of(topo.server_side)       # the switch port facing lb:eth1
        client_link = topo.client_if                       # the client's own interface
        with lab.capture(server_link) as srv, lab.capture(client_link) as cli:
            assert all(r["ok"] for r in lab.get(4))
        reqs = [f for f in _tcp80(srv.frames) if f.ip.dport == 80]
        assert reqs and all(f.ip.dst in topo.rips for f in reqs)
        assert not [f for f in reqs if f.ip.dst == vip]
        replies = [f for f in _tcp80(cli.frames) if f.ip.sport == 80]
        assert replies and all(f.ip.src == vip for f in replies)
        return

    # DR / TUN: requests reach real1 through its switch port; nothing comes back through the balancer.
    real_link = Endpoint("switch", "p1")
    lb_link = topo.peer_of(topo.client_side)
    with lab.capture(real_link) as srv, lab.capture(lb_link) as lbl:
        assert all(r["ok"] for r in lab.get(6))
    if mode == "dr":
        reqs = [f for f in _tcp80(srv.frames) if f.ip.proto == 6 and f.ip.dport == 80]
        assert reqs, "no request reached real1"
        assert all(f.ip.dst == vip and f.ip.src == client and f.dst_mac == topo.server_macs[0] for f in reqs)
    else:
        reqs = [f for f in srv.frames if f.ip.proto == 4]
        assert reqs, "no IPIP packet reached real1"
        for f in reqs:
            assert f.ip.dst == topo.rips[0]
            assert f.ip.inner is not None and f.ip.inner.dst == vip and f.ip.inner.src == client
            assert f.ip.inner.dport == 80
    back = [f for f in _tcp80(lbl.frames) if f.ip.innermost().src == vip]
    assert back == [], f"{len(back)} reply frames crossed the balancer's link"


def _wait_started(proc) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else "client died"
    first = json.loads(line)
    assert first.get("started"), first
    return first


def _finish(proc) -> dict[str, object]:
    out, err = proc.communicate(timeout=120)
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert lines, err
    return lines[-1]


def test_live_changes_with_lbadm(make_lab) -> None:
    lab = make_lab("nat", servers=3, scheduler="rr", balancer="lb")
    vip = f"{lab.topo.vip}:80"
    rip_of = dict(zip(lab.topo.servers, lab.topo.rips, strict=True))

    # 1. weight 0 on the server of a running transfer: it completes, new connections avoid that server.
    proc = lab.client_popen(["big", lab.url(), "--bytes", "12000000", "--rate", "4000000", "--progress"])
    busy = str(_wait_started(proc)["server"])
    r = lab.lbadm(["-e", "-t", vip, "-r", f"{rip_of[busy]}:80", "-m", "-w", "0"])
    assert r.returncode == 0, r.stderr
    after = _servers(lab.get(6))
    assert busy not in after, after
    done = _finish(proc)
    assert done["ok"], done

    # 2. delete another server: new connections go to the one left.
    other = next(s for s in lab.topo.servers if s != busy)
    r = lab.lbadm(["-d", "-t", vip, "-r", f"{rip_of[other]}:80"])
    assert r.returncode == 0, r.stderr
    left = _servers(lab.get(4))
    assert set(left) == set(lab.topo.servers) - {busy, other}, left

    # 3. reload the original rules while a transfer runs: it survives, and all servers serve again.
    proc = lab.client_popen(["big", lab.url(), "--bytes", "12000000", "--rate", "4000000", "--progress"])
    _wait_started(proc)
    r = lab.lbadm(["-C"])
    assert r.returncode == 0, r.stderr
    r = lab.lbadm(["-R"], input_text=lab.rules())
    assert r.returncode == 0, r.stderr
    done = _finish(proc)
    assert done["ok"], done
    assert set(_servers(lab.get(6))) == set(lab.topo.servers)


def test_udp_service_nat(make_lab) -> None:
    lab = make_lab("nat", servers=3, scheduler="rr", balancer="lb")
    res = lab.udp(9)
    assert all(r["ok"] for r in res), res
    assert Counter(str(r["server"]) for r in res) == Counter({s: 3 for s in lab.topo.servers})


@pytest.mark.parametrize("mode", MODES)
def test_tap_io_exact_wrr_and_transfer(make_lab, mode: str) -> None:
    # --io tap: the balancer owns its address and MAC behind a TAP device bridged into each of its links.
    lab = make_lab(mode, servers=3, scheduler="wrr", weights=(3, 2, 1), io="tap", balancer="lb")
    twin = lab.caught_up_predictor()
    want = [lab.server_at(d) for d in twin.next(6)]
    assert _servers(lab.get(6)) == want
    big = lab.big(4_000_000)
    assert big["ok"], big


@pytest.mark.parametrize("mode", MODES)
def test_python_engine_exact_sequence_and_transfers(make_lab, mode: str) -> None:
    # --engine python (the twin data path) serves lbadm too: its counts let the twin predict the exact
    # wrr sequence.
    lab = make_lab(mode, servers=3, scheduler="wrr", weights=(3, 2, 1), engine="python", balancer="lb")
    twin = lab.caught_up_predictor()
    want = [lab.server_at(d) for d in twin.next(6)]
    assert _servers(lab.get(6)) == want
    big = lab.big(1_000_000)
    assert big["ok"], big
