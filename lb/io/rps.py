"""CPU placement of the balancer: its own CPUs (`lb run --cpus`) and where its ports' receive softirq runs
(`lb run --rps-cpus`, Receive Packet Steering).

Why it matters (bench/e2e/run.py measures it): AF_PACKET copies each received frame into the ring in the
receive softirq of the ingress device, and every frame `lb run` sends runs the peer's whole receive path
inside our sendmmsg when the peer is a veth.  On a two-core machine the balancer's process is the
bottleneck, so the receive work of its ingress port is best steered to the other core: RPS on the port's
rx queues (`/sys/class/net/DEV/queues/rx-N/rps_cpus`, a hex CPU mask).  The sysfs of a device belongs to
the network namespace that mounted /sys; `ip netns exec` mounts the namespace's own, and `apply` checks
that the sysfs entry has the ifindex this namespace knows the device by before it writes anything.  The
old masks are put back by `restore`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

SYS_NET = Path("/sys/class/net")


def parse_cpus(text: str) -> set[int]:
    """'1', '0,2', '0-3' -> CPU numbers."""
    cpus: set[int] = set()
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep:
            if int(lo) > int(hi):
                raise ValueError(f"bad CPU range {part!r}")
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    if not cpus or min(cpus) < 0:
        raise ValueError(f"bad CPU list {text!r}")
    return cpus


def pin(cpus: set[int]) -> None:
    """Run this process (and the workers it forks) on `cpus` only."""
    os.sched_setaffinity(0, cpus)


def check_mask(mask: str) -> str:
    m = mask.lower().removeprefix("0x").replace(",", "")
    int(m, 16)  # ValueError if not hex
    return m


class Rps:
    """RPS masks written on devices, remembered so they can be put back."""

    def __init__(self, log: Callable[[str], None] | None = None, sys_net: Path = SYS_NET) -> None:
        self.log = log
        self.sys_net = sys_net
        self.saved: list[tuple[Path, str]] = []

    def queues(self, dev: str) -> list[Path]:
        """The rps_cpus files of dev's rx queues, if dev's sysfs entry is this namespace's device."""
        base = self.sys_net / dev
        try:
            if int((base / "ifindex").read_text()) != socket.if_nametoindex(dev):
                return []
        except (OSError, ValueError):
            return []
        return sorted(base.glob("queues/rx-*/rps_cpus"))

    def apply(self, devs: Iterable[str], mask: str) -> int:
        """Write mask to every rx queue of devs; returns how many queues were set."""
        mask = check_mask(mask)
        done = 0
        for dev in devs:
            files = self.queues(dev)
            if not files and self.log:
                self.log(f"rps: {dev}: sysfs shows another namespace's device (use `ip netns exec`)")
            for f in files:
                try:
                    old = f.read_text().strip()
                    f.write_text(mask + "\n")
                except OSError as exc:
                    if self.log:
                        self.log(f"rps: {f}: {exc.strerror}")
                    continue
                self.saved.append((f, old))
                done += 1
            if files and self.log:
                self.log(f"rps: {dev}: receive softirq on CPU mask {mask} ({len(files)} queue(s))")
        return done

    def restore(self) -> None:
        for f, old in reversed(self.saved):
            try:
                f.write_text(old + "\n")
            except OSError:
                continue
        self.saved.clear()
