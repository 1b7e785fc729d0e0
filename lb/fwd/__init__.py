"""Forwarding methods: the readable Python twins of csched/src/xmit_*.c, and their table.

`FWD` mirrors LB_FWD_LIST (csched/include/lb_xmit.h): name, ipvsadm flag, C enum value (model.Fwd, the
kernel's IP_VS_CONN_F_* values) and the twin's transmitter for client -> server packets (`xmit_in`) and, for
NAT only, server -> client packets (`xmit_reply`).  Modules: parse.py (frame parse), csum.py (checksums),
xmit.py (shared steps: next hop, TTL, MTU, Ethernet), nat.py / dr.py / tun.py (one per method), icmp.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lb import model
from lb.fwd import dr, nat, tun
from lb.fwd.parse import Pkt
from lb.fwd.xmit import ConnLike, PortLike

Xmit = Callable[[Sequence[PortLike], Pkt, ConnLike], None]


@dataclass(frozen=True, slots=True)
class FwdMethod:
    """One forwarding method (struct lb_xmit_ops)."""

    name: str
    ipvsadm_flag: str
    fwd: model.Fwd
    xmit_in: Xmit
    xmit_reply: Xmit | None


#: In LB_FWD_LIST order.
FWD: tuple[FwdMethod, ...] = (
    FwdMethod("masq", "-m", model.Fwd.MASQ, nat.xmit_in, nat.xmit_reply),
    FwdMethod("droute", "-g", model.Fwd.DROUTE, dr.xmit_in, None),
    FwdMethod("tunnel", "-i", model.Fwd.TUNNEL, tun.xmit_in, None),
)

#: By C enum value (conn.fwd).
BY_FWD: dict[int, FwdMethod] = {int(m.fwd): m for m in FWD}

__all__ = ["BY_FWD", "FWD", "FwdMethod"]
