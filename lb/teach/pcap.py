"""Tiny dpkt-style frame builder, dissector and pcap reader/writer for the teaching tools.

Builds Ethernet/IPv4/TCP (and IPIP) frames with `struct`, dissects frames back into named fields in wire
order, and reads/writes classic libpcap files (the format `tcpdump -w` writes, link type Ethernet).  This is
the runtime counterpart of the scapy packets the tests use: no per-packet objects beyond a small dict per
header, no dependency (STYLE.md 3.9: no scapy at runtime).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_TCP_FLAG_LETTERS = ((TCP_SYN, "S"), (TCP_ACK, "A"), (TCP_FIN, "F"), (TCP_RST, "R"), (TCP_PSH, "P"),
                     (TCP_URG, "U"))

PCAP_MAGIC = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1


def mac_bytes(text: str) -> bytes:
    """'02:00:0a:01:00:02' -> 6 bytes."""
    raw = bytes(int(part, 16) for part in text.split(":"))
    if len(raw) != 6:
        raise ValueError(f"bad MAC address {text!r}")
    return raw


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def inet_csum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data, as the value to store in the header."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_flags_text(flags: int) -> str:
    """TCP flags as tcpdump-ish letters: 'S', 'SA', 'A', 'FA', 'PA' ..."""
    return "".join(letter for bit, letter in _TCP_FLAG_LETTERS if flags & bit) or "."


# --------------------------------------------------------------------------------------------- building

def ipv4_header(src: str, dst: str, proto: int, payload_len: int, *, ttl: int = 64, ident: int = 0,
                tos: int = 0, df: bool = True) -> bytes:
    """A 20-byte IPv4 header with its checksum filled in."""
    frag = 0x4000 if df else 0
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + payload_len, ident, frag, ttl, proto, 0,
                      IPv4Address(src).packed, IPv4Address(dst).packed)
    return hdr[:10] + struct.pack("!H", inet_csum(hdr)) + hdr[12:]


def tcp_segment(src: str, dst: str, sport: int, dport: int, *, seq: int = 0, ack: int = 0,
                flags: int = TCP_SYN, window: int = 64240, options: bytes = b"",
                payload: bytes = b"") -> bytes:
    """A TCP header (+ options + payload) with the checksum over the IPv4 pseudo-header."""
    if len(options) % 4:
        raise ValueError("TCP options must be padded to 4 bytes")
    off = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, window, 0, 0) + options
    seg = hdr + payload
    pseudo = IPv4Address(src).packed + IPv4Address(dst).packed + struct.pack("!BBH", 0, IPPROTO_TCP, len(seg))
    csum = inet_csum(pseudo + seg)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def ether_header(dst: str, src: str, ethertype: int = ETH_P_IP) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype)


def tcp_frame(eth_src: str, eth_dst: str, src: str, dst: str, *, sport: int, dport: int, flags: int = TCP_SYN,
              seq: int = 0, ack: int = 0, ttl: int = 64, ident: int = 0, window: int = 64240,
              options: bytes = b"", payload: bytes = b"") -> bytes:
    """A whole Ethernet/IPv4/TCP frame with correct checksums."""
    seg = tcp_segment(src, dst, sport, dport, seq=seq, ack=ack, flags=flags, window=window, options=options,
                      payload=payload)
    return ether_header(eth_dst, eth_src) + ipv4_header(src, dst, IPPROTO_TCP, len(seg), ttl=ttl,
                                                        ident=ident) + seg


# ------------------------------------------------------------------------------------------- dissecting

@dataclass(slots=True)
class Header:
    """One dissected header: its layer name ("Ethernet", "IPv4", "IPv4 (outer)", "TCP"...) and its fields
    as (name, shown value) in wire order.  `raw` holds the numeric values for matching."""

    layer: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    raw: dict[str, int | str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        for key, value in self.fields:
            if key == name:
                return value
        raise KeyError(name)


def _ipv4(data: bytes, off: int, layer: str) -> tuple[Header, int, int, int] | None:
    """Dissect an IPv4 header at off; returns (header, proto, payload offset, payload end)."""
    if len(data) < off + 20:
        return None
    vihl, tos, tot, ident, frag, ttl, proto, csum, src, dst = struct.unpack_from("!BBHHHBBH4s4s", data, off)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or len(data) < off + ihl:
        return None
    ok = inet_csum(data[off:off + ihl]) == 0
    flags = ("DF" if frag & 0x4000 else "") + ("MF" if frag & 0x2000 else "")
    s, d = str(IPv4Address(src)), str(IPv4Address(dst))
    hdr = Header(layer, [
        ("src", s), ("dst", d), ("proto", {6: "6 (TCP)", 17: "17 (UDP)", 4: "4 (IPIP)", 1: "1 (ICMP)"}.get(
            proto, str(proto))),
        ("ttl", str(ttl)), ("len", str(tot)), ("id", f"0x{ident:04x}"), ("tos", f"0x{tos:02x}"),
        ("flags", flags or "-"), ("csum", f"0x{csum:04x}" + ("" if ok else " (bad)")),
    ], {"src": s, "dst": d, "proto": proto, "ttl": ttl, "len": tot, "id": ident})
    end = min(len(data), off + tot) if tot >= ihl else len(data)
    return hdr, proto, off + ihl, end


def _l4(data: bytes, span: tuple[int, int], proto: int, src: bytes, dst: bytes) -> Header | None:
    off, end = span
    if proto == IPPROTO_TCP and end >= off + 20:
        sport, dport, seq, ack, offx, flags, win, csum = struct.unpack_from("!HHIIBBHH", data, off)
        pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_TCP, end - off)
        ok = inet_csum(pseudo + data[off:end]) == 0
        doff = (offx >> 4) * 4
        plen = max(0, end - off - doff)
        return Header("TCP", [
            ("sport", str(sport)), ("dport", str(dport)), ("flags", tcp_flags_text(flags)), ("seq", str(seq)),
            ("ack", str(ack)), ("win", str(win)), ("csum", f"0x{csum:04x}" + ("" if ok else " (bad)")),
            ("payload", f"{plen}B"),
        ], {"sport": sport, "dport": dport, "flags": flags, "seq": seq, "ack": ack, "payload": plen})
    if proto == IPPROTO_UDP and end >= off + 8:
        sport, dport, ulen, csum = struct.unpack_from("!HHHH", data, off)
        return Header("UDP", [("sport", str(sport)), ("dport", str(dport)), ("len", str(ulen)),
                              ("csum", f"0x{csum:04x}")], {"sport": sport, "dport": dport})
    if proto == IPPROTO_ICMP and end >= off + 4:
        typ, code, csum = struct.unpack_from("!BBH", data, off)
        return Header("ICMP", [("type", str(typ)), ("code", str(code)), ("csum", f"0x{csum:04x}")],
                      {"type": typ, "code": code})
    return None


def dissect(frame: bytes) -> list[Header]:
    """Ethernet, IPv4 (outer and inner for IPIP) and TCP/UDP/ICMP headers of a frame, outermost first."""
    out: list[Header] = []
    if len(frame) < 14:
        return out
    dst, src, etype = frame[0:6], frame[6:12], struct.unpack_from("!H", frame, 12)[0]
    shown = [("dst", mac_text(dst)), ("src", mac_text(src)), ("type", f"0x{etype:04x}")]
    out.append(Header("Ethernet", shown, {"dst": mac_text(dst), "src": mac_text(src), "type": etype}))
    if etype != ETH_P_IP:
        return out
    off = 14
    got = _ipv4(frame, off, "IPv4")
    if got is None:
        return out
    hdr, proto, off, end = got
    out.append(hdr)
    if proto == IPPROTO_IPIP:
        hdr.layer = "IPv4 (outer)"
        inner = _ipv4(frame, off, "IPv4 (inner)")
        if inner is None:
            return out
        hdr, proto, off, end = inner
        out.append(hdr)
    src_ip = IPv4Address(str(hdr.raw["src"])).packed
    dst_ip = IPv4Address(str(hdr.raw["dst"])).packed
    l4 = _l4(frame, (off, end), proto, src_ip, dst_ip)
    if l4 is not None:
        out.append(l4)
    return out


@dataclass(frozen=True, slots=True)
class FiveTuple:
    """The innermost IPv4 flow of a frame: what a connection is matched by across hops."""

    proto: int
    src: str
    sport: int
    dst: str
    dport: int

    def reversed(self) -> FiveTuple:
        return FiveTuple(self.proto, self.dst, self.dport, self.src, self.sport)


def five_tuple(headers: list[Header]) -> FiveTuple | None:
    """The innermost IP + L4 flow of dissected headers (None for non-IP or no TCP/UDP)."""
    ips = [h for h in headers if h.layer.startswith("IPv4")]
    l4 = [h for h in headers if h.layer in ("TCP", "UDP")]
    if not ips or not l4:
        return None
    ip, seg = ips[-1], l4[-1]
    return FiveTuple(int(ip.raw["proto"]), str(ip.raw["src"]), int(seg.raw["sport"]), str(ip.raw["dst"]),
                     int(seg.raw["dport"]))


# ------------------------------------------------------------------------------------------------ pcap

@dataclass(frozen=True, slots=True)
class Record:
    """One captured frame: timestamp in seconds and the bytes on the wire."""

    ts: float
    data: bytes


def write_pcap(path: str | Path, records: Iterable[Record], snaplen: int = 65535) -> int:
    """Write a classic libpcap file (microsecond timestamps, Ethernet); returns the number of frames."""
    n = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for rec in records:
            sec = int(rec.ts)
            usec = round((rec.ts - sec) * 1_000_000)
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            data = rec.data[:snaplen]
            f.write(struct.pack("<IIII", sec, usec, len(data), len(rec.data)))
            f.write(data)
            n += 1
    return n


def read_pcap(path: str | Path) -> Iterator[Record]:
    """Frames of a classic libpcap file (either byte order, micro- or nanosecond timestamps).

    Stops quietly at a truncated last record (a capture ended while writing)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic_le = struct.unpack("<I", head[:4])[0]
        if magic_le in (PCAP_MAGIC, PCAP_MAGIC_NS):
            endian, magic = "<", magic_le
        else:
            endian, magic = ">", struct.unpack(">I", head[:4])[0]
            if magic not in (PCAP_MAGIC, PCAP_MAGIC_NS):
                raise ValueError(f"{path}: not a pcap file (pcapng is not supported)")
        scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                return
            sec, frac, incl, _orig = struct.unpack(endian + "IIII", rh)
            data = f.read(incl)
            if len(data) < incl:
                return
            yield Record(sec + frac * scale, data)
