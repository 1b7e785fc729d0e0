"""Keep the balancer namespace's own kernel off the traffic the balancer handles.

AF_PACKET only copies frames: the namespace's IP stack still receives everything sent to the balancer's
MAC.  The VIP is not a kernel address there, so the stack would treat VIP packets as not-for-me (and with
forwarding off, answer with ICMP errors or drop them), and NAT replies from real servers (to a client's
address) the same way.  A netfilter netdev-ingress table on each AF_PACKET port drops those frames before
the IP stack: the packet tap that feeds our ring runs earlier in __netif_receive_skb_core (ptype_all taps,
then tc ingress, then nf ingress), so the ring still gets its copy.  Only this namespace is touched; the
table is removed on exit.  ip_forward is checked, never set.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address
from pathlib import Path


def ip_forward_enabled() -> bool:
    """net.ipv4.ip_forward of the current namespace."""
    try:
        return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    except OSError:
        return False


def _set(addrs: Iterable[IPv4Address]) -> str:
    items = sorted({str(a) for a in addrs})
    return "{ " + ", ".join(items) + " }"


def ruleset(table: str, devices: Iterable[str], vips: Iterable[IPv4Address], rips: Iterable[IPv4Address],
            local: Iterable[IPv4Address]) -> str:
    """The nft script that (re)creates the guard table."""
    vips, rips, local = list(vips), list(rips), list(local)
    lines = [f"table netdev {table} {{}}", f"delete table netdev {table}", f"table netdev {table} {{"]
    for i, dev in enumerate(devices):
        lines.append(f"  chain in{i} {{")
        lines.append(f"    type filter hook ingress device \"{dev}\" priority 0; policy accept;")
        if vips:
            lines.append(f"    ip daddr {_set(vips)} counter drop")
        if rips:
            cond = f"ip daddr != {_set(local)} " if local else ""
            lines.append(f"    ip saddr {_set(rips)} {cond}counter drop")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


class KernelGuard:
    """The netdev-ingress drop table for a set of AF_PACKET devices."""

    def __init__(self, devices: Iterable[str], table: str = "pyvs", log: Callable[[str], None] | None = None,
                 enabled: bool = True) -> None:
        self.devices = list(devices)
        self.table = table
        self.log = log
        self.enabled = enabled and bool(self.devices)
        self.active = False
        self._last = ""

    def _nft(self, script: str) -> bool:
        # own session: a ^C to the balancer's process group must not kill the cleanup
        try:
            proc = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True,
                                  timeout=10, check=False, start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            if self.log:
                self.log(f"guard: nft unavailable ({exc}): the namespace's kernel also sees VIP traffic")
            return False
        if proc.returncode != 0:
            if self.log:
                self.log(f"guard: nft failed: {proc.stderr.strip()}")
            return False
        return True

    def update(self, vips: Iterable[IPv4Address], rips: Iterable[IPv4Address],
               local: Iterable[IPv4Address]) -> None:
        if not self.enabled:
            return
        script = ruleset(self.table, self.devices, vips, rips, local)
        if script == self._last:
            return
        if self._nft(script):
            self._last = script
            self.active = True
            if self.log:
                self.log(f"guard: netdev ingress drop for VIP/NAT-reply traffic on {', '.join(self.devices)}")

    def close(self) -> None:
        if self.active:
            self._nft(f"table netdev {self.table} {{}}\ndelete table netdev {self.table}\n")
            self.active = False
            self._last = ""
