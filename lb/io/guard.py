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

import contextlib
import os
import subprocess
import tempfile
import time
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
    """The netdev-ingress drop table for a set of AF_PACKET devices.

    The first update runs `nft` and waits, so the guard is in place before the balancer forwards anything.
    Later ones (every change set) run `nft` in the background and `poll()` reaps it from the run loop's
    housekeeping: with 10 000 VIPs one `nft -f` takes a few hundred ms, which the data plane used to spend
    waiting.  Updates that arrive meanwhile collapse into the newest (each script replaces the whole table).
    """

    def __init__(self, devices: Iterable[str], table: str = "pyvs", log: Callable[[str], None] | None = None,
                 enabled: bool = True) -> None:
        self.devices = list(devices)
        self.table = table
        self.log = log
        self.enabled = enabled and bool(self.devices)
        self.active = False
        self._last = ""
        self._pending: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._inflight = ""
        self._file: Path | None = None

    def _argv(self, path: Path) -> list[str]:
        return ["nft", "-f", str(path)]

    def _nft(self, script: str) -> bool:
        # own session: a ^C to the balancer's process group must not kill the cleanup
        try:
            proc = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True,
                                  timeout=10, check=False, start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            if self.log:
                self.log(f"guard: nft unavailable ({exc}): the namespace's kernel also sees VIP traffic")
            return False
        return self._done(script, proc.returncode, proc.stderr)

    def _done(self, script: str, rc: int, stderr: str) -> bool:
        if rc != 0:
            if self.log:
                self.log(f"guard: nft failed: {stderr.strip()}")
            return False
        first = not self.active
        self._last = script
        self.active = True
        if first and self.log:
            self.log(f"guard: netdev ingress drop for VIP/NAT-reply traffic on {', '.join(self.devices)}")
        return True

    def update(self, vips: Iterable[IPv4Address], rips: Iterable[IPv4Address],
               local: Iterable[IPv4Address]) -> None:
        if not self.enabled:
            return
        script = ruleset(self.table, self.devices, vips, rips, local)
        if not self.active and self._proc is None:
            if script != self._last:
                self._nft(script)
            return
        self._pending = script
        self.poll()

    @property
    def busy(self) -> bool:
        """An `nft` is running or an update waits for one."""
        return self._proc is not None or (self._pending is not None and self._pending != self._last)

    def poll(self) -> None:
        """Reap a finished background `nft`; start the newest pending script if it differs."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return
            _, err = self._proc.communicate()
            self._done(self._inflight, self._proc.returncode, err)
            self._proc = None
            if self._file is not None:
                self._file.unlink(missing_ok=True)
                self._file = None
        script, self._pending = self._pending, None
        if script is None or script == self._last:
            return
        fd, name = tempfile.mkstemp(prefix="pyvs-guard-", suffix=".nft")
        with os.fdopen(fd, "w") as f:
            f.write(script)
        self._file, self._inflight = Path(name), script
        try:
            self._proc = subprocess.Popen(self._argv(self._file), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                          start_new_session=True)
        except OSError as exc:
            if self.log:
                self.log(f"guard: nft unavailable ({exc}): the namespace's kernel also sees VIP traffic")
            self._file.unlink(missing_ok=True)
            self._file = None

    def wait(self, timeout: float = 10.0) -> None:
        """Finish the background work (in-flight and pending updates), waiting at most about `timeout`."""
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            self.poll()

    def close(self) -> None:
        self.wait()
        if self._proc is not None:      # still running after the wait: end it (it is ours, by its PID)
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self.active:
            self._nft(f"table netdev {self.table} {{}}\ndelete table netdev {self.table}\n")
            self.active = False
            self._last = ""
