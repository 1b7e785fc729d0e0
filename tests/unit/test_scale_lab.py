"""Test that the end-to-end scaling sweep builds the configurations and command lines it claims to.

- lb rules: one `-A` per service and one `-a` per dest, in ipvsadm-save syntax that lbadm -R (ConfigState)
  accepts, for all three sweeps;
- nft-linear: one DNAT rule per service, the last service's rule last; k dests = the 1/(k-j) cascade whose
  probabilities multiply out to 1/k for every dest; nft-map: one map element per one-dest service, a
  numgen map for a many-dest service, and no per-service rule;
- the generator's argv and its summary line, lb's next-hop log lines, the ip -batch texts;
- which balancers run in which sweep, and the --quick defaults (the budget the lead wires into lb bench).
"""

from __future__ import annotations

import re
from fractions import Fraction
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from benchmods import load

REPO = Path(__file__).resolve().parents[2]


sl = load("scale_lab", REPO / "bench" / "e2e" / "scale_lab.py")


def test_vips_and_dest_addresses() -> None:
    assert sl.vip(0) == IPv4Address("10.200.0.1")
    assert sl.vip(9999) == IPv4Address("10.200.39.16")
    addrs = [sl.dest_addr(j) for j in range(1000)]
    assert len(set(addrs)) == 1000
    assert all(str(a).startswith("10.2.") for a in addrs[0::2])
    assert all(str(a).startswith("10.3.") for a in addrs[1::2])
    # never inside run.py's link subnets x.y.0.0/24, never a network or broadcast-looking .0/.255
    assert all(a.packed[2] >= 1 and 1 <= a.packed[3] <= 250 for a in addrs)


@pytest.mark.parametrize(("sweep", "x", "n_svc", "n_dests"),
                         [("services", 10000, 10000, 10000), ("dests", 1000, 1, 1000),
                          ("conns", 10**6, 1, 2)])
def test_layout_sizes(sweep: str, x: int, n_svc: int, n_dests: int) -> None:
    lay = sl.layout(sweep, x)
    assert len(lay.services) == n_svc
    assert lay.n_dests == n_dests
    with pytest.raises(ValueError, match="unknown sweep"):
        sl.layout("nope", 1)


def test_services_layout_alternates_real_servers() -> None:
    lay = sl.layout("services", 4)
    assert [ds for _, ds in lay.services] == [[sl.SERVER_ADDRS[0]], [sl.SERVER_ADDRS[1]]] * 2
    assert lay.dest_addrs == list(sl.SERVER_ADDRS)


def test_lb_rules_are_ipvsadm_save_text_lbadm_accepts() -> None:
    from lb.core.core import Core  # noqa: PLC0415
    from lb.state import ConfigState  # noqa: PLC0415

    lay = sl.layout("dests", 10)
    text = sl.lb_rules(lay, "-m")
    lines = text.splitlines()
    assert lines[0] == "-A -u 10.200.0.1:9 -s rr"
    assert len(lines) == 11 and all(ln.endswith("-m -w 1") for ln in lines[1:])
    core = Core(conn_max=1024)
    ConfigState(core).apply_text(text + sl.lb_rules(sl.layout("services", 3), "-g").split("\n", 2)[2])
    svcs = core.services()
    assert len(svcs) == 3
    assert {len(core.dest_infos(s.service.key)) for s in svcs} == {10, 1}


def test_nft_linear_one_rule_per_service_last_service_last() -> None:
    text = sl.nft_linear(sl.layout("services", 100))
    rules = [ln.strip() for ln in text.splitlines() if "dnat to" in ln]
    assert len(rules) == 100
    assert rules[-1].startswith(f"ip daddr {sl.vip(99)} udp dport 9 ")
    assert "type nat hook prerouting priority -100;" in text
    assert text.count("{") == text.count("}")


def test_nft_linear_cascade_gives_every_dest_one_kth() -> None:
    k = 7
    text = sl.nft_linear(sl.layout("dests", k))
    rules = [ln.strip() for ln in text.splitlines() if "dnat to" in ln]
    assert len(rules) == k
    mods = [int(m.group(1)) if (m := re.search(r"numgen random mod (\d+) 0 ", r)) else 1 for r in rules]
    assert mods == list(range(k, 0, -1))
    reach, probs = Fraction(1), []
    for m in mods:
        probs.append(reach / m)
        reach -= reach / m
    assert probs == [Fraction(1, k)] * k and reach == 0


def test_nft_map_is_flat() -> None:
    text = sl.nft_map(sl.layout("services", 1000))
    assert text.count(" . 9 : ") == 1000
    assert "dnat to ip daddr . udp dport map @svc" in text
    assert "ip daddr . udp dport vmap @svcv" in text
    assert not re.search(r"^\s*ip daddr 10\.", text, re.M)
    multi = sl.nft_map(sl.layout("dests", 100))
    assert "dnat to numgen random mod 100 map { 0 : 10.2.1.1, 1 : 10.3.1.1," in multi
    assert f"{sl.vip(0)} . 9 : goto svc0" in multi
    assert multi.count("{") == multi.count("}")


def test_gen_argv_and_summary() -> None:
    argv = sl.gen_argv("/g", mac="aa:bb:cc:dd:ee:ff", dst=sl.vip(5), seconds=0.5, flows=0, offset=64)
    assert argv[:7] == ["/g", "-i", "c0", "-m", "aa:bb:cc:dd:ee:ff", "-d", "10.200.0.6"]
    opts = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert opts["-f"] == "0" and opts["-o"] == "64" and opts["-r"] == "0" and opts["-t"] == "0.5"
    assert "-c" not in opts
    warm = sl.gen_argv("/g", mac="m", dst=sl.vip(0), seconds=60, flows=1000, rate=150000, count=1000)
    assert warm[-2:] == ["-c", "1000"]
    assert sl.parse_gen("junk\nsent 1234 seconds 0.501 errors 7\n") == (1234, 0.501, 7)
    with pytest.raises(ValueError, match="no generator summary"):
        sl.parse_gen("oops")


def test_generator_tuple_space_does_not_wrap_in_a_run() -> None:
    # a new-flow blast of up to 2^26 packets never meets an established tuple or another blast's tuples
    # (a full run has ~100 new-flow blasts; 500 fit)
    assert sl.NEW_FLOW_STRIDE >= 1 << 26
    assert sl.NSRC * sl.NPORTS > 500 * sl.NEW_FLOW_STRIDE
    assert sl.SPORT_BASE + sl.NPORTS <= 65536


def test_resolved_dest_ids_from_lb_log() -> None:
    log = ("lb: neigh: dest 10.2.0.2 (id 3) via 10.2.0.2 is-at 3e:e2:07:8c:f0:01 on l1\n"
           "lb: neigh: dest 10.3.0.2 (id 4) via 10.3.0.2 on l2: no MAC yet, ARP request sent (try 1)\n"
           "lb: neigh: dest 10.3.0.2 (id 12) via 10.3.0.2 is-at be:6f:a8:5d:65:ab on l2\n")
    assert sl.resolved_dest_ids(log) == {3, 12}


def test_ip_batch_texts() -> None:
    addrs = [IPv4Address("10.2.1.1"), IPv4Address("10.2.1.2")]
    assert sl.addr_batch("r0", addrs) == "addr add 10.2.1.1/32 dev r0\naddr add 10.2.1.2/32 dev r0\n"
    assert sl.neigh_batch("l1", addrs[:1], "02:00:00:00:00:01") == \
        "neigh replace 10.2.1.1 lladdr 02:00:00:00:00:01 dev l1 nud permanent\n"


def test_balancers_per_sweep_and_quick_defaults() -> None:
    assert not sl.runs_in("conns", "nft-map") and sl.runs_in("services", "nft-map")
    assert sl.runs_in("services", "lb-nat-rules") and not sl.runs_in("dests", "lb-nat-rules")
    q = sl.build_args(["--quick"])
    assert (q.services, q.dests, q.conns) == ([1, 1000], [1, 100], [1000, 100000])
    assert q.balancers == "lb-nat,nft-linear" and q.reps == 1 and q.seconds == 0.5 and not q.spread
    full = sl.build_args([])
    assert full.services == [1, 10, 100, 1000, 10000] and full.conns[-1] == 10**6 and full.reps == 3
    assert sl.build_args(["--conns", "1e3,1e6"]).conns == [1000, 1000000]
    with pytest.raises(SystemExit):
        sl.build_args(["--balancers", "ipvs"])
