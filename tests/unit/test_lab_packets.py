"""Test the lab's packet helpers on scapy-built packets: pcap reader, IPIP decap, pyfwd keys, /big body.

- the pcap reader returns MACs, addresses, ports, TCP flags and the inner packet of IPIP;
- rewrite_lines annotates what changed between the frame received and the frame sent (NAT dst, DR MAC, TUN
  encapsulation); first_syn_port finds the client port;
- tun-decap accepts IPIP to the VIP and rejects other inner destinations, other protocols, short packets;
- pyfwd keys only TCP/UDP frames to VIP:port and weights buckets;
- the /big body is deterministic and its checksum matches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from scapy.all import IP, TCP, UDP, Ether, wrpcap

from lb.lab import capture, httpd, pyfwd, tundecap

VIP, CIP, RIP = "10.10.0.100", "10.1.0.2", "10.2.0.11"
CMAC, LMAC, RMAC = "02:00:0a:01:00:02", "02:00:0a:01:00:01", "02:00:0a:02:00:0b"


def _frames(tmp_path: Path, pkts: list) -> list[capture.Frame]:
    p = tmp_path / "x.pcap"
    wrpcap(str(p), pkts)
    return list(capture.read_pcap(p))


def test_read_pcap_and_nat_rewrite(tmp_path: Path) -> None:
    syn_in = Ether(src=CMAC, dst=LMAC) / IP(src=CIP, dst=VIP) / TCP(sport=40000, dport=80, flags="S")
    syn_out = Ether(src=LMAC, dst=RMAC) / IP(src=CIP, dst=RIP) / TCP(sport=40000, dport=80, flags="S")
    other = Ether(src=CMAC, dst=LMAC) / IP(src=CIP, dst=VIP) / UDP(sport=5, dport=9000)
    f = _frames(tmp_path, [syn_in, syn_out, other])
    assert [x.ip.l4() for x in f] == ["TCP 10.1.0.2:40000 > 10.10.0.100:80 [S]",
                                      "TCP 10.1.0.2:40000 > 10.2.0.11:80 [S]",
                                      "UDP 10.1.0.2:5 > 10.10.0.100:9000"]
    assert f[0].src_mac == CMAC and f[1].dst_mac == RMAC
    assert capture.first_syn_port(f, VIP) == 40000
    lines = capture.rewrite_lines([capture.Hop("lb:eth0", LMAC, f[:1]), capture.Hop("lb:eth1", LMAC, f[1:2])],
                                  40000)
    assert len(lines) == 2 and "in" in lines[0]
    assert "out" in lines[1] and "dst 10.10.0.100 -> 10.2.0.11" in lines[1]


def test_ipip_parse_and_decap(tmp_path: Path) -> None:
    inner = IP(src=CIP, dst=VIP) / TCP(sport=40000, dport=80, flags="S")
    outer = IP(src="10.4.0.2", dst="10.5.0.11", proto=4) / inner
    f = _frames(tmp_path, [Ether(src=LMAC, dst=RMAC) / outer])
    assert f[0].ip.proto == 4 and f[0].ip.inner is not None and f[0].ip.inner.dst == VIP
    assert f[0].ip.innermost().sport == 40000
    vip = bytes([10, 10, 0, 100])
    assert tundecap.inner_packet(bytes(outer), vip) == bytes(inner)
    assert tundecap.inner_packet(bytes(IP(src="1.1.1.1", dst="10.5.0.11", proto=4) /
                                       IP(src=CIP, dst="10.9.9.9") / TCP()), vip) is None
    assert tundecap.inner_packet(bytes(IP(dst="10.5.0.11") / TCP()), vip) is None
    assert tundecap.inner_packet(b"\x45" + b"\0" * 10, vip) is None


def test_pyfwd_keys_and_buckets() -> None:
    vip = bytes([10, 10, 0, 100])
    tcp = bytes(Ether() / IP(src=CIP, dst=VIP) / TCP(sport=1234, dport=80))
    assert pyfwd.flow_key(tcp, vip, {80}) == bytes([6, 10, 1, 0, 2]) + (1234).to_bytes(2, "big")
    assert pyfwd.flow_key(tcp, vip, {81}) is None
    assert pyfwd.flow_key(bytes(Ether() / IP(src=CIP, dst=RIP) / TCP(dport=80)), vip, {80}) is None
    servers = [pyfwd.parse_server("10.0.0.1,02:00:00:00:00:01*2"), pyfwd.parse_server("10.0.0.2*0"),
               pyfwd.parse_server("10.0.0.3")]
    assert servers[0] == ("10.0.0.1", "02:00:00:00:00:01", 2)
    assert pyfwd.buckets(servers) == [0, 0, 2]


def test_big_body_is_deterministic() -> None:
    n = 200_000
    body = b"".join(httpd.pattern_chunks(n))
    assert len(body) == n and len(set(body)) == 256
    assert hashlib.sha256(body).hexdigest() == httpd.pattern_sha256(n)
    assert httpd.pattern_sha256(n) != httpd.pattern_sha256(n - 1)
