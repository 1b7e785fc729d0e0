"""Test that the lab topology files parse, expand per server and stay inside the lab's safety rules.

- each netns/<mode>.toml opens with an ASCII diagram naming its namespaces, addresses and MACs;
- expansion for N servers gives N real-server nodes, RIPs, MACs, links and processes;
- every address is in 10.0.0.0/8, every MAC is locally administered and unique, every link joins two lab
  nodes (nothing in the root namespace), every interface name fits IFNAMSIZ;
- each balancer link has a peer to capture on; DR/TUN real servers get the ARP sysctls / tun-decap.
"""

from __future__ import annotations

from ipaddress import ip_interface, ip_network

import pytest

from lb.lab.topology import MODES, Endpoint, load, netns_dir

LAB_NET = ip_network("10.0.0.0/8")


@pytest.mark.parametrize("mode", MODES)
def test_file_opens_with_diagram(mode: str) -> None:
    text = (netns_dir() / f"{mode}.toml").read_text()
    head = text.split("\nmode =", 1)[0]
    assert head.startswith("# ")
    assert "+--" in head and "ns <lab>-client" in head and "ns <lab>-lb" in head
    assert "10.10.0.100" in head and "02:00:0a:" in head
    assert all(line.startswith("#") or not line.strip() for line in head.splitlines())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 3, 12])
def test_expansion_and_safety(mode: str, n: int) -> None:
    topo = load(mode, n)
    assert topo.servers == [f"real{i}" for i in range(1, n + 1)]
    assert len(topo.rips) == len(set(topo.rips)) == n
    assert len(topo.server_macs) == n and all(topo.server_macs)
    nodes = set(topo.nodes)
    assert len(nodes) == len(topo.nodes)
    for a, b, _ in topo.links:
        assert a.node in nodes and b.node in nodes and a.node != b.node
    devs = [e for a, b, _ in topo.links for e in (a, b)]
    assert len(devs) == len(set(devs))
    assert all(len(e.dev) <= 15 for e in devs)
    macs = [mac for _, _, mac in topo.addrs if mac]
    assert len(macs) == len(set(macs))
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01, mac      # locally administered unicast
    for dev, cidr, _ in topo.addrs:
        assert dev.node in nodes
        assert ip_interface(cidr).ip in LAB_NET, cidr
    for node, to, via in topo.routes:
        assert node in nodes and ip_interface(via).ip in LAB_NET
        assert to == "default" or ip_interface(to).ip in LAB_NET
    for ep in {topo.client_side, topo.server_side}:
        assert topo.peer_of(ep).node != topo.balancer
    assert topo.addr_of(topo.client_if) == "10.1.0.2"
    roles = [argv[0] for _, argv in topo.processes]
    assert roles.count("httpd") == n
    assert roles.count("tundecap") == (n if mode == "tun" else 0)


def test_dr_servers_hold_vip_on_lo_without_arp() -> None:
    topo = load("dr", 2)
    assert (Endpoint("real2", "lo"), "10.10.0.100/32", "") in topo.addrs
    keys = {(node, key, value) for node, key, value in topo.sysctls}
    assert ("real1", "net.ipv4.conf.all.arp_ignore", 1) in keys
    assert ("real2", "net.ipv4.conf.all.arp_announce", 2) in keys


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown lab mode"):
        load("fwmark", 2)
    with pytest.raises(ValueError, match="--servers"):
        load("nat", 0)
