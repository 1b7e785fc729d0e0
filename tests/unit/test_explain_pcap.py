"""Test that the teaching tools' struct-based frame builder, dissector and pcap I/O are right.

- frames built by lb.teach.pcap are byte-identical to scapy's with checksums computed by scapy;
- the dissector reads Ethernet/IPv4/TCP and IPIP (outer + inner) back into the fields scapy sees,
  and flags bad checksums;
- pcap files written by write_pcap read back identically, and scapy reads them too;
- big-endian and nanosecond pcap files (other tcpdump builds) are read, truncated tails are ignored.
"""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, TCP, Ether, PcapReader, raw

from lb.teach import pcap

CMAC, LMAC = "02:00:0a:01:00:02", "02:00:0a:01:00:01"


@given(sport=st.integers(1, 65535), dport=st.integers(1, 65535), seq=st.integers(0, 2**32 - 1),
       ack=st.integers(0, 2**32 - 1), flags=st.integers(0, 0x3F), ttl=st.integers(1, 255),
       ident=st.integers(0, 65535), payload=st.binary(max_size=64))
def test_tcp_frame_matches_scapy(sport: int, dport: int, seq: int, ack: int, flags: int, ttl: int, ident: int,
                                 payload: bytes) -> None:
    ours = pcap.tcp_frame(CMAC, LMAC, "10.1.0.2", "10.10.0.100", sport=sport, dport=dport, flags=flags,
                          seq=seq, ack=ack, ttl=ttl, ident=ident, payload=payload)
    theirs = raw(Ether(src=CMAC, dst=LMAC)
                 / IP(src="10.1.0.2", dst="10.10.0.100", ttl=ttl, id=ident, flags="DF")
                 / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=64240) / payload)
    assert ours == theirs


def test_dissect_tcp_fields() -> None:
    frame = pcap.tcp_frame(CMAC, LMAC, "10.1.0.2", "10.10.0.100", sport=40000, dport=80,
                           flags=pcap.TCP_SYN | pcap.TCP_ACK, seq=7, ack=9, ttl=63, ident=0x1234)
    eth, ip, tcp = pcap.dissect(frame)
    assert (eth.layer, eth.get("dst"), eth.get("src"), eth.get("type")) == ("Ethernet", LMAC, CMAC, "0x0800")
    assert (ip.get("src"), ip.get("dst"), ip.get("ttl"), ip.get("id"), ip.get("flags")) == (
        "10.1.0.2", "10.10.0.100", "63", "0x1234", "DF")
    assert "(bad)" not in ip.get("csum") and "(bad)" not in tcp.get("csum")
    assert (tcp.get("sport"), tcp.get("dport"), tcp.get("flags"), tcp.get("seq"), tcp.get("ack")) == (
        "40000", "80", "SA", "7", "9")
    assert pcap.five_tuple([eth, ip, tcp]) == pcap.FiveTuple(6, "10.1.0.2", 40000, "10.10.0.100", 80)


def test_dissect_ipip_outer_and_inner() -> None:
    inner = raw(IP(src="10.1.0.2", dst="10.10.0.100", ttl=62) / TCP(sport=40000, dport=80, flags="S"))
    frame = raw(Ether(src=LMAC, dst=CMAC) / IP(src="10.4.0.2", dst="10.5.0.11", proto=4) / inner)
    layers = [h.layer for h in pcap.dissect(frame)]
    assert layers == ["Ethernet", "IPv4 (outer)", "IPv4 (inner)", "TCP"]
    outer, inner_h = pcap.dissect(frame)[1:3]
    assert outer.get("proto") == "4 (IPIP)" and outer.get("dst") == "10.5.0.11"
    assert inner_h.get("dst") == "10.10.0.100"
    assert pcap.five_tuple(pcap.dissect(frame)) == pcap.FiveTuple(6, "10.1.0.2", 40000, "10.10.0.100", 80)


def test_dissect_marks_bad_checksums() -> None:
    frame = bytearray(pcap.tcp_frame(CMAC, LMAC, "10.1.0.2", "10.10.0.100", sport=1, dport=80))
    frame[14 + 10] ^= 0xFF          # IPv4 checksum
    frame[14 + 20 + 16] ^= 0xFF     # TCP checksum
    _, ip, tcp = pcap.dissect(bytes(frame))
    assert ip.get("csum").endswith("(bad)") and tcp.get("csum").endswith("(bad)")


def test_dissect_short_and_non_ip() -> None:
    assert pcap.dissect(b"\x00" * 10) == []
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    assert [h.layer for h in pcap.dissect(arp)] == ["Ethernet"]


def test_pcap_roundtrip_and_scapy_reads_it(tmp_path: Path) -> None:
    frames = [pcap.tcp_frame(CMAC, LMAC, "10.1.0.2", "10.10.0.100", sport=40000 + i, dport=80)
              for i in range(3)]
    recs = [pcap.Record(1700000000.25 + i, f) for i, f in enumerate(frames)]
    path = tmp_path / "x.pcap"
    assert pcap.write_pcap(path, recs) == 3
    back = list(pcap.read_pcap(path))
    assert [r.data for r in back] == frames
    assert abs(back[1].ts - 1700000001.25) < 1e-6
    with PcapReader(str(path)) as reader:
        assert [raw(p) for p in reader] == frames


def test_read_big_endian_nanosecond_and_truncated(tmp_path: Path) -> None:
    frame = pcap.tcp_frame(CMAC, LMAC, "10.1.0.2", "10.10.0.100", sport=5, dport=80)
    head = struct.pack(">IHHiIII", pcap.PCAP_MAGIC_NS, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack(">IIII", 10, 500_000_000, len(frame), len(frame)) + frame
    path = tmp_path / "be.pcap"
    path.write_bytes(head + rec + rec[:20])          # second record cut short
    back = list(pcap.read_pcap(path))
    assert len(back) == 1 and back[0].data == frame and abs(back[0].ts - 10.5) < 1e-9
