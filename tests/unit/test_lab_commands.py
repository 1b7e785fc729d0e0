"""Test that the lab turns a spec into the right rules, nft scripts, routes and argv, without root.

- rules are ipvsadm-save lines with the mode's forwarding flag and the weights, TCP and UDP services;
- nft: NAT uses DNAT with numgen (rr/wrr, weight = buckets) or jhash (sh/mh); DR sets the MAC by a per-flow
  hash and fwds; `nft -c` accepts the generated scripts when nft is installed;
- route: ECMP nexthops with weights, weight 0 left out; balancer/mode combinations are checked;
- pyfwd and `lb run` argv carry every interface, socket and rules path;
- lab names are short and safe; the state file round-trips; leftover namespace matching is exact.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lb.lab import balancer as bal
from lb.lab import state as st
from lb.lab.topology import load


def _svc(mode: str, sched: str = "rr", weights: tuple[int, ...] = (1, 1, 1)) -> tuple[object, bal.Service]:
    topo = load(mode, len(weights))
    return topo, bal.Service(topo.vip, 80, 9000, sched, tuple(topo.rips), weights)


def test_rules_text_nat() -> None:
    topo, svc = _svc("nat", "wrr", (3, 2, 1))
    lines = bal.rules_text(topo, svc).splitlines()  # type: ignore[arg-type]
    assert lines[0] == "-A -t 10.10.0.100:80 -s wrr"
    assert lines[1] == "-a -t 10.10.0.100:80 -r 10.2.0.11:80 -m -w 3"
    assert "-A -u 10.10.0.100:9000 -s wrr" in lines
    assert "-a -u 10.10.0.100:9000 -r 10.2.0.13:9000 -m -w 1" in lines
    assert len(lines) == 8


@pytest.mark.parametrize(("mode", "flag"), [("dr", "-g"), ("tun", "-i")])
def test_rules_text_flags(mode: str, flag: str) -> None:
    topo, svc = _svc(mode)
    assert all(flag in line for line in bal.rules_text(topo, svc).splitlines() if line.startswith("-a"))  # type: ignore[arg-type]


def test_nft_nat_weights_and_hash() -> None:
    topo, svc = _svc("nat", "wrr", (2, 0, 1))
    script = bal.nft_script(topo, svc)  # type: ignore[arg-type]
    assert "numgen inc mod 3 map { 0 : 10.2.0.11, 1 : 10.2.0.11, 2 : 10.2.0.13 }" in script
    assert "udp dport 9000" in script and "type nat hook prerouting" in script
    topo, svc = _svc("nat", "sh")
    assert "jhash ip saddr mod 3" in bal.nft_script(topo, svc)  # type: ignore[arg-type]


def test_nft_dr_sets_mac_per_flow() -> None:
    topo, svc = _svc("dr")
    script = bal.nft_script(topo, svc, tuple(topo.server_macs))  # type: ignore[arg-type,attr-defined]
    assert "table netdev pyvs" in script and "fwd to eth0" in script
    assert "jhash ip saddr . tcp sport mod 3" in script
    assert "ether daddr set" in script and "02:00:0a:03:00:0d" in script
    with pytest.raises(ValueError, match="TUN"):
        bal.nft_script(load("tun", 1), svc)


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
@pytest.mark.parametrize("mode", ["nat", "dr"])
def test_nft_scripts_check(mode: str, tmp_path: Path) -> None:
    topo, svc = _svc(mode)
    script = bal.nft_script(topo, svc, tuple(topo.server_macs))  # type: ignore[arg-type,attr-defined]
    if mode == "dr":
        script = script.replace("device eth0", "device lo").replace("fwd to eth0", "fwd to lo")
    f = tmp_path / "r.nft"
    f.write_text(script)
    r = subprocess.run(["nft", "-c", "-f", str(f)], capture_output=True, text=True, check=False)
    if r.returncode != 0 and ("Operation not permitted" in r.stderr or "ermission" in r.stderr):
        pytest.skip("nft -c needs privileges here")
    assert r.returncode == 0, r.stderr


def test_route_ecmp() -> None:
    topo, svc = _svc("dr", "wrr", (2, 0, 1))
    argv = bal.route_argv(topo, svc)  # type: ignore[arg-type]
    assert argv[:3] == ["route", "replace", "10.10.0.100/32"]
    assert argv.count("nexthop") == 2 and "10.3.0.12" not in argv
    assert ("net.ipv4.fib_multipath_hash_policy", 1) in bal.route_sysctls(topo)  # type: ignore[arg-type]


def test_nft_dnat_return_routes_per_topology() -> None:
    """nft-dnat: NAT needs nothing; DR servers (on the balancer's subnet) take it as gateway; TUN servers'
    router sends their traffic to the balancer by source rules."""
    assert bal.dnat_return_routes(load("nat", 2)) == []
    dr = bal.dnat_return_routes(load("dr", 2))
    assert dr == [("real1", ["route", "replace", "default", "via", "10.3.0.2"]),
                  ("real2", ["route", "replace", "default", "via", "10.3.0.2"])]
    tun = bal.dnat_return_routes(load("tun", 3))
    assert [n for n, _ in tun] == ["router"] * 4
    assert [a[3] for _, a in tun[:3]] == ["10.5.0.11/32", "10.5.0.12/32", "10.5.0.13/32"]
    assert tun[3][1] == ["route", "replace", "default", "via", "10.4.0.2", "table", str(bal.DNAT_TABLE)]
    topo, svc = _svc("tun")
    assert "dnat to numgen inc mod 3" in bal.dnat_script(topo, svc)  # type: ignore[arg-type]
    bal.check("nft-dnat", "tun")


def test_balancer_mode_matrix() -> None:
    bal.check("nft", "nat")
    bal.check("py", "tun")
    with pytest.raises(ValueError, match="cannot do TUN"):
        bal.check("route", "tun")
    with pytest.raises(ValueError, match="cannot do NAT"):
        bal.check("route", "nat")
    with pytest.raises(ValueError, match="unknown balancer"):
        bal.check("ipvs", "nat")


def test_argv() -> None:
    topo, svc = _svc("tun")
    py = bal.pyfwd_argv(topo, svc, ("", "", ""))  # type: ignore[arg-type]
    assert py[1:3] == ["-m", "lb.lab.pyfwd"] and py.count("--server") == 3 and "9000" in py
    run = bal.lb_run_argv(load("nat", 2), Path("/x/rules"), Path("/x/lb.sock"), "tap", "python")
    assert run[run.index("run"):] == ["run", "--iface", "eth0", "--iface", "eth1", "--rules", "/x/rules",
                                      "--socket", "/x/lb.sock", "--io", "tap", "--engine", "python"]


def test_lab_names_and_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for good in ("pyvs", "a", "lab12345"):
        assert st.check_name(good) == good
    for bad in ("", "Lab", "1ab", "toolongname", "a-b", "a/b"):
        with pytest.raises(ValueError):
            st.check_name(bad)
    rx = st.leftover_re("pyvs")
    assert rx.match("pyvs-real12") and rx.match("pyvs-lb")
    assert not rx.match("pyvs2-lb") and not rx.match("pyvs-lbx") and not rx.match("xpyvs-lb")
    monkeypatch.setattr(st, "LABS_DIR", tmp_path)
    s = st.LabState(name="t1", mode="nat", servers=2)
    s.add_ns("t1-client")
    s.add_proc(st.ProcRecord(pid=123, start=456, node="real1", role="httpd", argv=["x"]))
    back = st.LabState.load("t1")
    assert back is not None and back.namespaces == ["t1-client"] and back.procs[0].start == 456
    assert st.list_labs() == ["t1"]
    back.drop_proc(123)
    assert st.LabState.load("t1").procs == []  # type: ignore[union-attr]
