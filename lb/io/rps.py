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

Priority (`lb run --rt-priority N`, `realtime` below): a kernel balancer (IPVS, nftables) does its work in
softirq, which no task can delay; `lb run` is a task, and on a busy CPU it waits behind whatever shares it
(the real servers' processes in the lab, anyone else's work) while frames sit in its ring.  SCHED_FIFO at
a low priority lets the balancer run as soon as a frame wakes it, as the kernel's own path would.  It does
not spin: the pump sleeps in poll() when its rings are empty, and the kernel's RT throttling
(kernel.sched_rt_runtime_us, 95 % by default) still leaves the CPU to others under overload.  Measured
(keep-alive HTTP through `lb run`, bench/e2e/tcp.py lab, shared 2-CPU box): NAT ~31 k -> ~50 k req/s with
two other busy tasks on the balancer's CPU; see the report of issue 7.
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


def rt_throttled() -> bool | None:
    """True when the kernel caps real-time tasks below 100 % of a CPU (sched_rt_runtime_us != -1), None when
    that cannot be read."""
    try:
        return int(Path("/proc/sys/kernel/sched_rt_runtime_us").read_text()) >= 0
    except (OSError, ValueError):
        return None


def rt_priority_arg(text: str) -> int:
    """argparse type of `--rt-priority` (lb run, lb tun-decap): 0..99."""
    import argparse  # noqa: PLC0415

    n = int(text)
    if not 0 <= n <= 99:
        raise argparse.ArgumentTypeError(f"must be 0..99, not {n}")
    return n


def realtime(priority: int, log: Callable[[str], None] | None = None) -> bool:
    """Run this process under SCHED_FIFO at `priority` (1..99; 0: leave the normal policy); each `lb run`
    worker calls it for itself.  Without CAP_SYS_NICE, or with real-time throttling turned off (a FIFO task
    that never slept could then hold its CPU for good), the policy is left as it is and a line is logged.
    Returns whether SCHED_FIFO is now in force."""
    if priority <= 0:
        return False
    if not 1 <= priority <= 99:
        raise ValueError(f"real-time priority must be 1..99, not {priority}")
    if rt_throttled() is False:
        if log:
            log("rt-priority: kernel.sched_rt_runtime_us is -1 (no RT throttling): staying SCHED_OTHER")
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        if log:
            log(f"rt-priority: SCHED_FIFO {priority} not permitted (needs CAP_SYS_NICE): staying SCHED_OTHER")
        return False
    if log:
        log(f"rt-priority: SCHED_FIFO {priority}")
    return True
