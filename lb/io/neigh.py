"""Next hops of the destinations: which port a dest is reached through, and the MAC to send it to.

For every dest the data path needs (egress port, next-hop MAC) (lb_dest_set_nexthop).  The egress port is
the port whose subnet holds the dest (a real server on a shared segment: the next hop is the dest
itself), else the namespace's routing table decides (`ip route get`: the gateway and its interface).  The
MAC comes from what the balancer learned from ARP on its ports (lb/io/arp.py), else the kernel's neighbour
table of the namespace (AF_PACKET ports share it), else the balancer asks itself: an ARP request from the
port's address, retried every `retry_s` until an answer arrives (logged on the 1st, 5th and every 30th try).
The kernel is asked through lb/io/netlink.py, whose questions have a deadline: the run loop calls `poll`
between batches and must never hang in it.  The kernel does the same for IPVS in
`ip_vs_xmit.c` (__ip_vs_get_out_rt picks the route, neighbour resolution happens in the output path).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from lb.io import netlink
from lb.io.arp import arp_request
from lb.io.port import Port

NUD_REACHABLE = netlink.NUD_REACHABLE


@dataclass(frozen=True, slots=True)
class Neighbour:
    ip: IPv4Address
    mac: bytes
    port: int


@dataclass
class _Want:
    dest_id: int
    addr: IPv4Address
    port: int | None = None
    nexthop: IPv4Address | None = None
    resolved: bytes | None = None
    next_try: float = 0.0
    tries: int = 0


SetNexthop = Callable[[int, int, bytes], None]
Send = Callable[[int, bytes], None]


def kernel_route(addr: IPv4Address) -> tuple[str | None, IPv4Address | None]:
    """(egress interface name, gateway or None) for addr from the namespace's routing table; (None, None)
    when there is no route or the kernel did not answer in time (lb/io/netlink.py: never blocks)."""
    try:
        oif, gw = netlink.route_get(addr)
        return (socket.if_indextoname(oif) if oif else None), gw
    except OSError:  # no route (or a silent kernel): unresolved, retried later
        return None, None


def kernel_neigh(addr: IPv4Address) -> bytes | None:
    """The MAC the namespace's kernel knows for addr (usable states only)."""
    try:
        return netlink.neigh_get(addr)
    except OSError:  # no answer: ask by ARP
        return None


def kernel_neigh_replace(ip: IPv4Address, mac: bytes, ifname: str) -> None:
    """Write a neighbour into the namespace's kernel table (`ip neigh replace`): how worker 0, which gets
    every ARP frame of a fanout group, shares what it learned with the other workers."""
    try:
        netlink.neigh_replace(ip, mac, socket.if_nametoindex(ifname), state=NUD_REACHABLE)
    except OSError:  # best effort: the other workers fall back to their own ARP
        return


class NeighResolver:
    """Keeps every dest's next hop resolved and handed to the core."""

    def __init__(self, ports: Iterable[Port], set_nexthop: SetNexthop, send: Send, *, retry_s: float = 1.0,
                 use_kernel: bool = True, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ports = {p.index: p for p in ports}
        self.set_nexthop = set_nexthop
        self.send = send
        self.retry_s = retry_s
        self.use_kernel = use_kernel
        self.log = log
        self.clock = clock
        self.table: dict[IPv4Address, Neighbour] = {}
        self.wants: dict[int, _Want] = {}
        #: called with (ip, mac, port name) for every new or changed neighbour (workers: share it)
        self.publish: Callable[[IPv4Address, bytes, str], None] | None = None

    # ---- what we need ----

    def want(self, dest_id: int, addr: IPv4Address) -> None:
        """Resolve dest `dest_id` (address addr); re-resolves if the address changed."""
        w = self.wants.get(dest_id)
        if w is not None and w.addr == addr:
            return
        self.wants[dest_id] = _Want(dest_id, addr)

    def forget(self, dest_id: int) -> None:
        self.wants.pop(dest_id, None)

    def sync(self, dests: Iterable[tuple[int, IPv4Address]]) -> None:
        """Make the wanted set exactly `dests` (id, address)."""
        seen = set()
        for dest_id, addr in dests:
            seen.add(dest_id)
            self.want(dest_id, addr)
        for dest_id in list(self.wants):
            if dest_id not in seen:
                del self.wants[dest_id]

    @property
    def unresolved(self) -> list[int]:
        return [w.dest_id for w in self.wants.values() if w.resolved is None]

    # ---- where a dest is ----

    def egress(self, addr: IPv4Address) -> tuple[int, IPv4Address] | None:
        """(port index, next-hop address) for addr: on-link first, then the kernel's route."""
        for p in self.ports.values():
            net = p.addr.network
            if net is not None and addr in net:
                return p.index, addr
        name, gw = kernel_route(addr)
        if name is None:
            return None
        for p in self.ports.values():
            if p.name == name:
                return p.index, gw or addr
        return None

    # ---- what we learn ----

    def learn(self, ip: IPv4Address, mac: bytes, port: int) -> None:
        """A neighbour seen on a port (ARP request or reply from it): resolve whoever waits for it."""
        old = self.table.get(ip)
        self.table[ip] = Neighbour(ip, mac, port)
        if old is not None and old.mac == mac and old.port == port:
            return
        if self.publish is not None and port in self.ports:
            self.publish(ip, mac, self.ports[port].name)
        for w in self.wants.values():
            if w.nexthop == ip and w.port == port and w.resolved != mac:
                self._resolve(w, mac)

    def _resolve(self, w: _Want, mac: bytes) -> None:
        assert w.port is not None
        self.set_nexthop(w.dest_id, w.port, mac)
        if self.log and w.resolved != mac:
            self.log(f"neigh: dest {w.addr} (id {w.dest_id}) via {w.nexthop} is-at {mac.hex(':')} "
                     f"on {self.ports[w.port].name}")
        w.resolved = mac

    def poll(self) -> int:
        """Try the unresolved dests whose retry time has come; returns how many are still unresolved."""
        now = self.clock()
        left = 0
        # Many dests share few next hops (10 000 services on 2 real servers): ask the kernel and send an
        # ARP request once per next hop and pass, not once per dest.
        known: dict[tuple[int, IPv4Address], bytes | None] = {}
        asked_now: set[tuple[int, IPv4Address]] = set()
        for w in self.wants.values():
            if w.resolved is not None:
                continue
            if now < w.next_try:
                left += 1
                continue
            w.next_try = now + self.retry_s
            w.tries += 1
            if w.port is None or w.nexthop is None:
                where = self.egress(w.addr)
                if where is None:
                    if self.log and w.tries == 1:
                        self.log(f"neigh: no route to dest {w.addr}")
                    left += 1
                    continue
                w.port, w.nexthop = where
            hop = (w.port, w.nexthop)
            if hop in known:
                mac = known[hop]
            else:
                n = self.table.get(w.nexthop)
                mac = n.mac if n is not None and n.port == w.port else None
                if mac is None and self.use_kernel:
                    mac = kernel_neigh(w.nexthop)
                known[hop] = mac
            if mac is not None:
                self._resolve(w, mac)
                continue
            port = self.ports[w.port]
            asked = hop in asked_now
            if not asked and port.addr.ip is not None:
                with contextlib.suppress(OSError):
                    self.send(w.port, arp_request(port.mac, port.addr.ip, w.nexthop))
                    asked = True
                    asked_now.add(hop)
            if self.log and (w.tries in (1, 5) or w.tries % 30 == 0):
                how = "ARP request sent" if asked else "no address on the port to ask from"
                self.log(f"neigh: dest {w.addr} (id {w.dest_id}) via {w.nexthop} on {port.name}: "
                         f"no MAC yet, {how} (try {w.tries})")
            left += 1
        return left
