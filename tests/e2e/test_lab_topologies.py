"""Test that the NAT, DR and TUN lab topologies carry real TCP and UDP traffic with the kernel balancers.

These prove the topologies independently of `lb run` (and are the baselines the benchmarks compare with):
- NAT with nftables DNAT, DR with an nftables netdev `fwd` and with an ECMP route, DR and TUN with the naive
  Python forwarder (TUN real servers decapsulate with `lb tun-decap`);
- nftables DNAT in the DR and TUN topologies (`nft-dnat`, the benchmarks' same-namespace DNAT baseline):
  conntrack in the balancer sees the replies (ASSURED), so they really come back through it;
- every request of a burst is answered by a real server, and all servers get some of them;
- a 20 MB download through the VIP arrives complete with the expected checksum;
- UDP datagrams to the VIP are answered (from the VIP: the client's connected socket accepts them).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.root]


@pytest.mark.parametrize("mode", ["dr", "tun"])
def test_nft_dnat_replies_come_back_through_the_balancer(make_lab, mode: str) -> None:
    lab = make_lab(mode, servers=2, balancer="nft-dnat")
    res = lab.get(12)
    assert all(r["ok"] for r in res), [r["error"] for r in res if not r["ok"]]
    assert {r["server"] for r in res} == set(lab.topo.servers)
    ct = lab.exec(lab.topo.balancer, ["conntrack", "-L", "-p", "tcp", "--orig-dst", lab.topo.vip],
                  check=False)
    assured = [line for line in ct.stdout.splitlines() if "[ASSURED]" in line and "dport=80 " in line]
    assert len(assured) >= 12, ct.stdout + ct.stderr


@pytest.mark.parametrize(("mode", "balancer"), [("nat", "nft"), ("dr", "nft"), ("dr", "route"),
                                                 ("dr", "py"), ("tun", "py")])
def test_kernel_balancer_carries_traffic(make_lab, mode: str, balancer: str) -> None:
    lab = make_lab(mode, servers=3, balancer=balancer)
    res = lab.get(24)
    assert all(r["ok"] for r in res), [r["error"] for r in res if not r["ok"]]
    assert {r["server"] for r in res} == set(lab.topo.servers)
    big = lab.big(20_000_000)
    assert big["ok"], big
    udp = lab.udp(6)
    assert all(r["ok"] for r in udp), udp
