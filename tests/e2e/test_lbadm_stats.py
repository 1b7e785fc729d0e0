"""Test that a balancer configured only through lbadm counts exactly the traffic a real client sent.

In the NAT lab (real Linux TCP client and servers in namespaces), after `lbadm -C`:
- `lbadm -A` / `-a` build the service; `-S -n` prints exactly those rules;
- after N HTTP requests (N new TCP connections), `-L -n --stats --exact` shows Conns = N on the service and
  the per-dest Conns add up to N (rr: N/2 each); packet and byte counters cover at least a handshake,
  request and close per connection in each direction; `--json` carries the same numbers;
- `-Z` zeroes the counters (dests back from the trash keep theirs, as in the kernel);
- `-L -n -c` lists one new entry per connection, from the client to the VIP to a real server.
"""

from __future__ import annotations

import json

import pytest

from lb.lab.balancer import lb_run_available

needs_lb_run = pytest.mark.skipif(not lb_run_available(), reason="`lb run` (lb/run.py) is not in this tree")

pytestmark = [pytest.mark.netns, pytest.mark.root, needs_lb_run]

N = 10


def _ok(r) -> str:
    assert r.returncode == 0, r.stderr
    return str(r.stdout)


def test_lbadm_configures_and_counts(make_lab) -> None:
    lab = make_lab("nat", servers=2, scheduler="rr", balancer="lb")
    vip = f"{lab.topo.vip}:80"
    _ok(lab.lbadm(["-C"]))
    assert "TCP" not in _ok(lab.lbadm(["-L", "-n"]))
    _ok(lab.lbadm(["-A", "-t", vip, "-s", "rr"]))
    for rip in lab.topo.rips:
        _ok(lab.lbadm(["-a", "-t", vip, "-r", f"{rip}:80", "-m", "-w", "1"]))
    rips = sorted(lab.topo.rips, key=lambda a: tuple(int(x) for x in str(a).split(".")))
    assert _ok(lab.lbadm(["-S", "-n"])) == f"-A -t {vip} -s rr\n" + "".join(
        f"-a -t {vip} -r {rip}:80 -m -w 1\n" for rip in rips)

    # Dests that come back from the trash keep their counters (kernel ip_vs_trash_get_dest), and the lab's
    # readiness probe left one: start from zero, and remember the connections that were already there.
    _ok(lab.lbadm(["-Z"]))
    before = {tuple(ln.split()[3:6]) for ln in _ok(lab.lbadm(["-L", "-n", "-c"])).splitlines()[2:]}
    res = lab.get(N)
    assert all(r["ok"] for r in res), res

    lines = _ok(lab.lbadm(["-L", "-n", "--stats", "--exact", "-t", vip])).splitlines()
    svc = lines[2].split()
    assert svc[:2] == ["TCP", vip]
    conns, inpkts, outpkts, inbytes, outbytes = (int(x) for x in svc[2:])
    assert conns == N
    assert inpkts >= 4 * N and outpkts >= 3 * N
    assert inbytes >= 40 * inpkts and outbytes >= 40 * outpkts
    dests = [ln.split() for ln in lines[3:]]
    assert sorted(d[1] for d in dests) == sorted(f"{rip}:80" for rip in lab.topo.rips)
    assert [int(d[2]) for d in dests] == [N // 2, N // 2]
    assert sum(int(d[3]) for d in dests) == inpkts

    doc = json.loads(_ok(lab.lbadm(["-L", "-n", "--stats", "--json"])))
    stats = doc["services"][0]["stats"]
    assert (stats["conns"], stats["inpkts"], stats["outbytes"]) == (conns, inpkts, outbytes)

    clines = _ok(lab.lbadm(["-L", "-n", "-c"])).splitlines()
    assert clines[0] == "IPVS connection entries"
    entries = [e for e in (ln.split() for ln in clines[2:]) if e[4] == vip and tuple(e[3:6]) not in before]
    assert len(entries) == N
    client = str(lab.topo.addr_of(lab.topo.client_if))
    assert all(e[0] == "TCP" and e[3].startswith(client + ":") for e in entries)
    assert {e[5].rsplit(":", 1)[0] for e in entries} == {str(r) for r in lab.topo.rips}
