"""Three rtnetlink questions the next-hop resolver asks, each with a hard deadline.

- `route_get(addr)`: what `ip route get ADDR` answers (egress interface index, gateway or None);
- `neigh_get(addr)`: the MAC in the namespace's neighbour table for ADDR, if its state is usable;
- `neigh_replace(addr, mac, ifindex)`: `ip neigh replace ADDR lladdr MAC dev IF nud reachable`.

They run between batches of the data path, so none of them may block: one plain NETLINK_ROUTE socket per
question, a deadline for the whole exchange (default 0.25 s), `NetlinkTimeoutError` when the kernel is silent.
(The resolver used pyroute2 here before: ~15 ms per question plus a one-second import on the first
off-link dest, with reads that have no deadline at all.)  Message layouts: linux/netlink.h,
linux/rtnetlink.h (struct rtmsg), linux/neighbour.h (struct ndmsg).
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
RTM_NEWNEIGH = 28
RTM_GETNEIGH = 30
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
NDA_DST = 1
NDA_LLADDR = 2

NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_DELAY = 0x08
NUD_PROBE = 0x10
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
#: neighbour states whose MAC can be used (INCOMPLETE and FAILED cannot)
USABLE = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT

_NLH = struct.Struct("=IHHII")          # nlmsghdr: len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")    # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BBHiHBB")      # family, pad1, pad2, ifindex, state, flags, type
_RTA = struct.Struct("=HH")             # rtattr: len, type

DEFAULT_TIMEOUT_S = 0.25


class NetlinkTimeoutError(OSError):
    """The kernel did not answer within the deadline."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, data: bytes) -> bytes:
    ln = _RTA.size + len(data)
    return _RTA.pack(ln, kind) + data + b"\0" * (_align(ln) - ln)


def attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    """The rtattrs between off and end (first of each type wins)."""
    out: dict[int, bytes] = {}
    while off + _RTA.size <= end:
        ln, kind = _RTA.unpack_from(buf, off)
        if ln < _RTA.size or off + ln > end:
            break
        out.setdefault(kind & 0x3FFF, buf[off + _RTA.size:off + ln])
        off += _align(ln)
    return out


def messages(buf: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, payload) of each netlink message in one datagram."""
    off = 0
    while off + _NLH.size <= len(buf):
        ln, kind, _flags, seq, _pid = _NLH.unpack_from(buf, off)
        if ln < _NLH.size or off + ln > len(buf):
            break
        yield kind, seq, buf[off + _NLH.size:off + ln]
        off += _align(ln)


_seq = 0


def _exchange(kind: int, flags: int, body: bytes, timeout_s: float) -> Iterator[tuple[int, bytes]]:
    """Send one request; yield (type, payload) of the answers until DONE (dumps) or the first answer.
    Raises OSError(errno) on a netlink error, NetlinkTimeoutError when the deadline passes."""
    global _seq
    _seq = (_seq + 1) & 0x7FFFFFFF
    seq = _seq
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as s:
        s.bind((0, 0))
        s.setblocking(False)
        s.send(_NLH.pack(_NLH.size + len(body), kind, flags, seq, 0) + body)
        dump = bool(flags & NLM_F_DUMP)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                raise NetlinkTimeoutError(f"netlink: no answer within {timeout_s} s")
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            for mkind, mseq, payload in messages(data):
                if mseq != seq:
                    continue
                if mkind == NLMSG_DONE:
                    return
                if mkind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if err:
                        raise OSError(err, f"netlink: {os.strerror(err)}")
                    return                                # an ACK
                yield mkind, payload
                if not dump:
                    return


def route_get(addr: IPv4Address, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[int, IPv4Address | None]:
    """(egress ifindex, gateway or None) of the route to addr: the kernel's answer to `ip route get`.
    OSError (e.g. ENETUNREACH) when there is no route, NetlinkTimeoutError when the kernel is silent."""
    body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0) + _attr(RTA_DST, addr.packed)
    for kind, payload in _exchange(RTM_GETROUTE, NLM_F_REQUEST, body, timeout_s):
        if kind != RTM_NEWROUTE or len(payload) < _RTMSG.size:
            continue
        a = attrs(payload, _RTMSG.size, len(payload))
        oif = struct.unpack("=i", a[RTA_OIF])[0] if len(a.get(RTA_OIF, b"")) == 4 else 0
        gw = IPv4Address(a[RTA_GATEWAY]) if len(a.get(RTA_GATEWAY, b"")) == 4 else None
        return oif, gw
    raise OSError(0, "netlink: no route message in the answer")


def neigh_get(addr: IPv4Address, timeout_s: float = DEFAULT_TIMEOUT_S,
              ifindex: int = 0) -> bytes | None:
    """The MAC of addr in the neighbour table (on ifindex, if given) when its state is usable, else None."""
    body = _NDMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0)
    found = None
    for kind, payload in _exchange(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, body, timeout_s):
        if kind != RTM_NEWNEIGH or len(payload) < _NDMSG.size or found is not None:
            continue                                      # keep reading to DONE: the socket is closed after
        family, _p1, _p2, idx, state, _flags, _type = _NDMSG.unpack_from(payload)
        if family != socket.AF_INET or (ifindex and idx != ifindex) or not state & USABLE:
            continue
        a = attrs(payload, _NDMSG.size, len(payload))
        mac = a.get(NDA_LLADDR, b"")
        if a.get(NDA_DST) == addr.packed and len(mac) == 6 and mac != b"\0" * 6:
            found = bytes(mac)
    return found


def neigh_replace(addr: IPv4Address, mac: bytes, ifindex: int, state: int = NUD_REACHABLE,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """`ip neigh replace addr lladdr mac dev <ifindex> nud <state>` (needs CAP_NET_ADMIN)."""
    body = (_NDMSG.pack(socket.AF_INET, 0, 0, ifindex, state, 0, 0) + _attr(NDA_DST, addr.packed)
            + _attr(NDA_LLADDR, mac))
    for _ in _exchange(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body,
                       timeout_s):
        pass
