"""Per-hop captures in the lab: tcpdump into a pcap file, read back with a tiny struct reader.

`tcpdump` runs inside a lab namespace (started and stopped by PID through `NetnsSet`); this module only
reads the result: Ethernet -> IPv4 -> (IPIP ->) IPv4 -> TCP/UDP, enough to show what the balancer rewrote at
each hop.  No scapy at runtime (STYLE 3.9): the fields are unpacked with `struct`, dpkt style.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_PCAP_MAGICS = {0xA1B2C3D4: ("<", 1e-6), 0xD4C3B2A1: (">", 1e-6),
                0xA1B23C4D: ("<", 1e-9), 0x4D3CB2A1: (">", 1e-9)}
LINKTYPE_ETHERNET = 1
TCP_FLAGS = "FSRPAUEC"


@dataclass(frozen=True, slots=True)
class Pkt:
    """One IPv4 packet (maybe the inner one of an IPIP packet)."""

    src: str
    dst: str
    proto: int
    sport: int = 0
    dport: int = 0
    flags: str = ""            # TCP flags as letters, e.g. "S", "SA", "FA"
    length: int = 0            # IP total length
    inner: Pkt | None = None   # IPIP payload

    def l4(self) -> str:
        if self.proto == 4 and self.inner is not None:
            return f"IPIP {self.src} > {self.dst} [ {self.inner.l4()} ]"
        name = {6: "TCP", 17: "UDP", 1: "ICMP"}.get(self.proto, f"proto {self.proto}")
        if self.proto in (6, 17):
            fl = f" [{self.flags}]" if self.proto == 6 else ""
            return f"{name} {self.src}:{self.sport} > {self.dst}:{self.dport}{fl}"
        return f"{name} {self.src} > {self.dst}"

    def innermost(self) -> Pkt:
        return self.inner.innermost() if self.inner is not None else self


@dataclass(frozen=True, slots=True)
class Frame:
    ts: float
    src_mac: str
    dst_mac: str
    ip: Pkt

    def line(self) -> str:
        return f"{self.src_mac} > {self.dst_mac}  {self.ip.l4()}"


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def parse_ip(data: bytes) -> Pkt | None:
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    total = int.from_bytes(data[2:4], "big")
    proto = data[9]
    src = str(ipaddress.IPv4Address(data[12:16]))
    dst = str(ipaddress.IPv4Address(data[16:20]))
    body = data[ihl:]
    if proto == 4:
        return Pkt(src, dst, proto, length=total, inner=parse_ip(body))
    if proto in (6, 17) and len(body) >= 4:
        sport, dport = struct.unpack_from("!HH", body)
        flags = ""
        if proto == 6 and len(body) >= 14:
            flags = "".join(c for i, c in enumerate(TCP_FLAGS) if body[13] & (1 << i))
        return Pkt(src, dst, proto, sport, dport, flags, total)
    return Pkt(src, dst, proto, length=total)


def read_pcap(path: Path) -> Iterator[Frame]:
    """Frames of an Ethernet pcap file (tcpdump -w); non-IPv4 frames are skipped."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = struct.unpack_from("<I", data)[0]
    if magic not in _PCAP_MAGICS:
        raise ValueError(f"{path}: not a pcap file")
    order, unit = _PCAP_MAGICS[magic]
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, expected Ethernet")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(order + "IIII", data, off)
        off += 16
        raw = data[off:off + incl]
        off += incl
        if len(raw) < 14:
            continue
        etype = int.from_bytes(raw[12:14], "big")
        if etype != 0x0800:
            continue
        pkt = parse_ip(raw[14:])
        if pkt is not None:
            yield Frame(sec + frac * unit, _mac(raw[6:12]), _mac(raw[0:6]), pkt)


def conn_frames(frames: Iterable[Frame], port: int) -> list[Frame]:
    """Frames of the connection whose client port is `port` (either direction, inner packet for IPIP)."""
    out = []
    for f in frames:
        p = f.ip.innermost()
        if p.proto in (6, 17) and port in (p.sport, p.dport):
            out.append(f)
    return out


def first_syn_port(frames: Iterable[Frame], vip: str) -> int:
    """Client port of the first TCP SYN to the VIP seen in `frames` (0 if none)."""
    for f in frames:
        p = f.ip.innermost()
        if p.proto == 6 and p.flags == "S" and p.dst == vip:
            return p.sport
    return 0


@dataclass(frozen=True, slots=True)
class Hop:
    """Frames captured on one balancer link; `mac` is the balancer's own MAC there (tells in from out)."""

    label: str
    mac: str
    frames: list[Frame]


def _changes(before: Frame, after: Frame) -> str:
    a, b = before.ip, after.ip
    out = []
    if b.proto == 4 and a.proto != 4:
        out.append(f"encapsulated: IPIP {b.src} > {b.dst}")
        b = b.inner or b
    if a.src != b.src:
        out.append(f"src {a.src} -> {b.src}")
    if a.dst != b.dst:
        out.append(f"dst {a.dst} -> {b.dst}")
    if a.sport != b.sport:
        out.append(f"sport {a.sport} -> {b.sport}")
    if a.dport != b.dport:
        out.append(f"dport {a.dport} -> {b.dport}")
    if before.dst_mac != after.dst_mac:
        out.append(f"dst MAC -> {after.dst_mac}")
    if not out:
        out.append("unchanged")
    return "; ".join(out)


def rewrite_lines(hops: list[Hop], port: int, limit: int = 8) -> list[str]:
    """One connection (client port `port`) as seen on the balancer's links, in time order, each frame the
    balancer sent annotated with what it changed compared with the frame it received just before."""
    seen: list[tuple[float, str, bool, Frame]] = []
    for hop in hops:
        for f in conn_frames(hop.frames, port):
            seen.append((f.ts, hop.label, f.src_mac == hop.mac, f))
    seen.sort(key=lambda x: x[0])
    lines: list[str] = []
    last_in: Frame | None = None
    for _ts, label, out, f in seen[:limit]:
        note = ""
        if out and last_in is not None:
            note = f"   <- {_changes(last_in, f)}"
        elif not out:
            last_in = f
        lines.append(f"  {label:<8} {'out' if out else 'in ':<3} {f.line()}{note}")
    return lines
