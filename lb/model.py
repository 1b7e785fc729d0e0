"""The shared configuration and status model: services, dests, connections, counters.

Mirrors the kernel's user-visible IPVS objects (include/uapi/linux/ip_vs.h: ip_vs_service_user,
ip_vs_dest_user, IP_VS_SVC_F_*, IP_VS_CONN_F_*) and what ipvsadm 1.31 prints from them. Everything
here is an immutable value; the authoritative mutable state lives in lb/state.py (ConfigState) and the C core.

Ordering (what the kernel and ipvsadm do, and what pyvs does):
- The kernel inserts a new dest at the head of the service's list (list_add in __ip_vs_update_dest),
  so the dump is newest-first. pyvs keeps and reports dests in that same newest-first order.
- The kernel dumps services bucket by bucket from its two hash tables (addr/proto/port first, then
  fwmark), with a per-netns hash mix, so that order is not reproducible. pyvs reports services in
  the order they were added (oldest first) wherever "kernel order" is asked for.
- ipvsadm sorts both lists unless --nosort (libipvs ipvs_cmp_services / ipvs_cmp_dests: fwmark, family,
  protocol, address, port).  `service_sort_key` / `dest_sort_key` reproduce that order.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from enum import IntEnum
from functools import cmp_to_key
from ipaddress import IPv4Address, IPv6Address, ip_address

Addr = IPv4Address | IPv6Address

#: ipvsadm's "IP Virtual Server version 1.2.1" (kernel IP_VS_VERSION_CODE 0x010201).
IPVS_VERSION = (1, 2, 1)
#: Default connection table size printed in the header (kernel CONFIG_IP_VS_TAB_BITS=12).
IPVS_CONN_TAB_SIZE = 4096
#: ipvsadm's default scheduler (DEF_SCHED).
DEFAULT_SCHED = "wlc"
#: libipvs IPVS_SVC_PERSISTENT_TIMEOUT: `-p` without a value means 6*60 seconds.
DEFAULT_PERSISTENT_TIMEOUT = 360
#: ipvsadm MAX_TIMEOUT (31 days), upper bound of -p and --set values.
MAX_TIMEOUT = 86400 * 31
#: IPv4 persistence netmask default (/32) and IPv6 prefix length default.
V4_FULL_MASK = 0xFFFFFFFF
V6_FULL_PREFIX = 128

# Service flags: kernel IP_VS_SVC_F_*.
SVC_F_PERSISTENT = 0x0001
SVC_F_HASHED = 0x0002
SVC_F_ONEPACKET = 0x0004
SVC_F_SCHED1 = 0x0008
SVC_F_SCHED2 = 0x0010
SVC_F_SCHED3 = 0x0020
SVC_F_SCHED_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3
# Scheduler-specific names for the generic scheduler flags (ipvsadm's libipvs/ip_vs.h).
SVC_F_SCHED_SH_FALLBACK = SVC_F_SCHED1
SVC_F_SCHED_SH_PORT = SVC_F_SCHED2
SVC_F_SCHED_MH_FALLBACK = SVC_F_SCHED1
SVC_F_SCHED_MH_PORT = SVC_F_SCHED2

#: Schedulers pyvs knows by name, in ipvsadm 1.31's SCHEDULERS order
#: (rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh), then twos (kernel 6.x ip_vs_twos.c).
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")

#: Per-scheduler names of the generic flag bits, in ipvsadm's print order (print_sched_flags).
SCHED_FLAG_NAMES: dict[str, tuple[tuple[str, int], ...]] = {
    "sh": (("sh-fallback", SVC_F_SCHED_SH_FALLBACK), ("sh-port", SVC_F_SCHED_SH_PORT)),
    "mh": (("mh-fallback", SVC_F_SCHED_MH_FALLBACK), ("mh-port", SVC_F_SCHED_MH_PORT)),
}
GENERIC_SCHED_FLAG_NAMES: tuple[tuple[str, int], ...] = (
    ("flag-1", SVC_F_SCHED1),
    ("flag-2", SVC_F_SCHED2),
    ("flag-3", SVC_F_SCHED3),
)


class Proto(IntEnum):
    """IP protocol numbers of virtual services."""

    TCP = 6
    UDP = 17
    SCTP = 132

    @property
    def ipvsadm_name(self) -> str:
        """"TCP" / "UDP" / "SCTP" as in ipvsadm's protocol_name()."""
        return self.name

    @property
    def switch(self) -> str:
        """The ipvsadm option that names a service of this protocol (option_from_protocol)."""
        return {Proto.TCP: "-t", Proto.UDP: "-u", Proto.SCTP: "--sctp-service"}[self]


class Fwd(IntEnum):
    """Forwarding methods, valued as the kernel's IP_VS_CONN_F_* (masked by IP_VS_CONN_F_FWD_MASK)."""

    MASQ = 0
    LOCALNODE = 1
    TUNNEL = 2
    DROUTE = 3
    BYPASS = 4

    @property
    def ipvsadm_name(self) -> str:
        """The word ipvsadm prints in the Forward column (fwd_name): Masq, Local, Tunnel, Route."""
        return _FWD_NAMES[self]

    @property
    def switch(self) -> str:
        """The ipvsadm option that selects this method (fwd_switch): -m, -i or -g."""
        return _FWD_SWITCHES[self]

    @classmethod
    def from_ipvsadm_name(cls, name: str) -> Fwd:
        """Inverse of `ipvsadm_name`."""
        for fwd, text in _FWD_NAMES.items():
            if text == name:
                return fwd
        raise ValueError(f"unknown forwarding method name {name!r}")


_FWD_NAMES = {
    Fwd.MASQ: "Masq",
    Fwd.LOCALNODE: "Local",
    Fwd.TUNNEL: "Tunnel",
    Fwd.DROUTE: "Route",
    Fwd.BYPASS: "Bypass",
}
_FWD_SWITCHES = {Fwd.MASQ: "-m", Fwd.TUNNEL: "-i", Fwd.LOCALNODE: "-g", Fwd.DROUTE: "-g", Fwd.BYPASS: "-g"}


def parse_addr(text: str) -> Addr:
    """An IPv4/IPv6 address from text (ValueError names the text).  A dotted quad takes a fast path:
    inet_pton accepts exactly the dotted quads ipaddress does (four decimal parts, each <= 255, no leading
    zeros), and IPv4Address built from the packed bytes skips ipaddress's own parse (~4x faster, which
    counts when a 10 000-service change set arrives on the control socket)."""
    try:
        return IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except (OSError, TypeError, ValueError):
        return ip_address(text)


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """What identifies a virtual service: protocol + address + port, or a firewall mark."""

    proto: Proto
    addr: Addr
    port: int
    fwmark: int = 0

    @property
    def is_v6(self) -> bool:
        return self.addr.version == 6


@dataclass(frozen=True, slots=True)
class Service:
    """A virtual service's configuration (ip_vs_service_user).

    `netmask` is the persistence granularity: for IPv4 a mask as an int (0xFFFFFFFF = /32), for IPv6 a prefix
    length (128 by default; a v6 service built with the v4 default is normalised to 128).
    `timeout` is the persistence timeout in seconds (only meaningful when PERSISTENT is set).
    """

    key: ServiceKey
    sched: str = DEFAULT_SCHED
    flags: int = 0
    timeout: int = 0
    netmask: int = V4_FULL_MASK
    pe_name: str = ""

    def __post_init__(self) -> None:
        if self.key.is_v6 and self.netmask == V4_FULL_MASK:
            object.__setattr__(self, "netmask", V6_FULL_PREFIX)

    @property
    def persistent(self) -> bool:
        return bool(self.flags & SVC_F_PERSISTENT)

    @property
    def onepacket(self) -> bool:
        return bool(self.flags & SVC_F_ONEPACKET)

    @property
    def sched_flags(self) -> int:
        """Only the SCHED1..3 bits."""
        return self.flags & SVC_F_SCHED_MASK

    @property
    def netmask_is_default(self) -> bool:
        return self.netmask == (V6_FULL_PREFIX if self.key.is_v6 else V4_FULL_MASK)

    def replace(self, **changes: object) -> Service:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def sched_flag_names(sched: str, flags: int) -> list[str]:
    """The names ipvsadm prints for a service's scheduler flags (print_sched_flags), in order."""
    table = SCHED_FLAG_NAMES.get(sched, GENERIC_SCHED_FLAG_NAMES)
    return [name for name, bit in table if flags & bit]


@dataclass(frozen=True, slots=True)
class DestKey:
    """What identifies a dest within a service."""

    addr: Addr
    port: int


@dataclass(frozen=True, slots=True)
class Dest:
    """A real server's configuration (ip_vs_dest_user)."""

    addr: Addr
    port: int
    fwd: Fwd = Fwd.DROUTE
    weight: int = 1
    u_threshold: int = 0
    l_threshold: int = 0

    @property
    def key(self) -> DestKey:
        return DestKey(self.addr, self.port)

    def replace(self, **changes: object) -> Dest:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Stats:
    """Cumulative counters (ip_vs_kstats): connections, packets and bytes in/out."""

    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(
            self.conns + other.conns,
            self.inpkts + other.inpkts,
            self.outpkts + other.outpkts,
            self.inbytes + other.inbytes,
            self.outbytes + other.outbytes,
        )


@dataclass(frozen=True, slots=True)
class Rates:
    """Estimated rates per second (ip_vs_estimator output, already unscaled to whole units)."""

    cps: int = 0
    inpps: int = 0
    outpps: int = 0
    inbps: int = 0
    outbps: int = 0


@dataclass(frozen=True, slots=True)
class DestStatus:
    """A dest with its live counters."""

    dest: Dest
    activeconns: int = 0
    inactconns: int = 0
    persistconns: int = 0
    stats: Stats = Stats()
    rates: Rates = Rates()


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """A service with its dests (kernel order: newest first) and live counters."""

    service: Service
    dests: tuple[DestStatus, ...] = ()
    stats: Stats = Stats()
    rates: Rates = Rates()


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """One connection-table entry as `ipvsadm -Lc` shows it (/proc/net/ip_vs_conn).

    `state` is the kernel state name ("ESTABLISHED", "SYN_RECV", "NONE" for templates …); `expires_s` the
    remaining lifetime in seconds. `flags` are the kernel IP_VS_CONN_F_* bits beyond the forwarding method.
    """

    proto: Proto
    caddr: Addr
    cport: int
    vaddr: Addr
    vport: int
    daddr: Addr
    dport: int
    state: str
    expires_s: float
    fwd: Fwd = Fwd.DROUTE
    flags: int = 0
    template: bool = False
    pe_name: str = ""
    pe_data: str = ""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Protocol timeouts in seconds (ipvsadm --set tcp tcpfin udp)."""

    tcp: int = 900
    tcpfin: int = 120
    udp: int = 300


def _wrap32(value: int) -> int:
    """C `int r = (u32)a - (u32)b`: the sign libipvs's comparators actually see."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _cmp_addr(a: Addr, b: Addr) -> int:
    if a.version == 6:
        pa, pb = a.packed, b.packed
        for i in range(0, 16, 4):
            r = _wrap32(int.from_bytes(pa[i : i + 4], "big") - int.from_bytes(pb[i : i + 4], "big"))
            if r:
                return r
        return 0
    return _wrap32(int(a) - int(b))


_AF = {4: 2, 6: 10}  # AF_INET, AF_INET6


def cmp_services(a: ServiceKey, b: ServiceKey) -> int:
    """libipvs ipvs_cmp_services: fwmark, family, protocol, address, port (with C's wrapping subtraction)."""
    r = _wrap32(a.fwmark - b.fwmark)
    if r:
        return r
    r = _AF[a.addr.version] - _AF[b.addr.version]
    if r:
        return r
    r = int(a.proto) - int(b.proto)
    if r:
        return r
    if a.addr.version == b.addr.version:
        r = _cmp_addr(a.addr, b.addr)
        if r:
            return r
    return a.port - b.port


def cmp_dests(a: DestKey, b: DestKey) -> int:
    """libipvs ipvs_cmp_dests: address then port."""
    if a.addr.version == b.addr.version:
        r = _cmp_addr(a.addr, b.addr)
        if r:
            return r
    else:
        return _AF[a.addr.version] - _AF[b.addr.version]
    return a.port - b.port


def sort_services(items: list[ServiceStatus]) -> list[ServiceStatus]:
    """Services in ipvsadm's default (sorted) listing order."""
    def cmp(x: ServiceStatus, y: ServiceStatus) -> int:
        return cmp_services(x.service.key, y.service.key)

    return sorted(items, key=cmp_to_key(cmp))


def sort_dests(items: tuple[DestStatus, ...] | list[DestStatus]) -> list[DestStatus]:
    """Dests in ipvsadm's default (sorted) listing order."""
    def cmp(x: DestStatus, y: DestStatus) -> int:
        return cmp_dests(x.dest.key, y.dest.key)

    return sorted(items, key=cmp_to_key(cmp))
