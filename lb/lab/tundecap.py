"""`lb tun-decap`: a userspace IPIP decapsulator for TUN-mode (-i) real servers.

The kernel here has no `ipip` module, so a real server cannot terminate the balancer's IPIP tunnel itself.
This program does the kernel's job (net/ipv4/ipip.c receive path) from userspace:
1. a TUN device (python-pytun, IFF_TUN|IFF_NO_PI) holds the VIP as a /32, so the VIP is a local address;
2. a raw socket for IP protocol 4 receives every IPIP packet addressed to this host (outer header included);
3. the outer header is stripped and the inner packet, if it is IPv4 to the VIP, is written into the TUN
   device: the kernel sees it arrive on that device and the local TCP/UDP stack answers it.
Replies leave through the normal route (src = VIP, straight to the client), never through the balancer.
rp_filter is turned off (the inner source is not reachable through the TUN device) and ARP for the VIP is
suppressed (arp_ignore=1, arp_announce=2), as for a DR real server.

Two implementations of step 3, with the same checks and the same counters:
- `--impl c` (default): csched/src/tundecap.c sleeps in a blocking recvmmsg (MSG_WAITFORONE: one system
  call per wake-up) that takes up to 64 queued packets, writes each inner packet into the TUN device, and
  returns to Python after 4096 packets, 200 ms without traffic, or a signal (so SIGTERM stays prompt);
- `--impl python`: `run_python` below, one select + recv + write per packet: the readable twin.
The environment variable LB_TUNDECAP_IMPL (c|python) sets the default, so a lab or benchmark can pick the
implementation without passing a flag through.  `--kernel-ipip` uses a kernel ipip device instead where the
module exists.  On exit (SIGTERM/SIGINT) one line gives the counters (rx, passed, dropped by reason);
SIGUSR1 prints the same line, prefixed `now`, without stopping.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import select
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

from lb.io.rps import realtime, rt_priority_arg

IPPROTO_IPIP = 4
IMPLS = ("c", "python")
ENV_IMPL = "LB_TUNDECAP_IMPL"
SLOT = 65536  # receive buffer per packet: any IPv4 datagram fits
POLL_MS = 200  # the C loop returns to Python after this long without a packet
BUDGET = 4096  # ... or after this many packets

#: Verdicts of classify(), in the order the checks run; index = LB_TD_* in lb_api_tundecap.h.
REASONS = ("pass", "short", "outer_version", "outer_hlen", "not_ipip", "inner_version", "not_vip",
           "inner_len")
PASS = 0


def _proc_sys(key: str, value: int) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    path.write_text(f"{value}\n", encoding="ascii")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def host_setup(dev: str) -> None:
    """Sysctls of a TUN real server (inside its own namespace)."""
    for scope in ("all", dev):
        _proc_sys(f"net.ipv4.conf.{scope}.rp_filter", 0)
    _proc_sys("net.ipv4.conf.all.arp_ignore", 1)
    _proc_sys("net.ipv4.conf.all.arp_announce", 2)


def classify(frame: bytes | memoryview, vip: bytes) -> tuple[int, int, int]:
    """(verdict, inner offset, inner length) of one IPIP packet as a raw socket hands it over (outer IPv4
    header first).  verdict is PASS or the index in REASONS of the first check that failed."""
    if len(frame) < 40:
        return REASONS.index("short"), 0, 0          # no room for two IPv4 headers
    if frame[0] >> 4 != 4:
        return REASONS.index("outer_version"), 0, 0
    ihl = (frame[0] & 0x0F) * 4
    if ihl < 20 or len(frame) < ihl + 20:
        return REASONS.index("outer_hlen"), 0, 0     # no whole inner IPv4 header after the outer one
    if frame[9] != IPPROTO_IPIP:
        return REASONS.index("not_ipip"), 0, 0
    if frame[ihl] >> 4 != 4:
        return REASONS.index("inner_version"), 0, 0
    if bytes(frame[ihl + 16:ihl + 20]) != vip:
        return REASONS.index("not_vip"), 0, 0         # only the VIP this server holds is delivered
    total = int.from_bytes(frame[ihl + 2:ihl + 4], "big")
    if not 20 <= total <= len(frame) - ihl:
        return REASONS.index("inner_len"), 0, 0       # the inner length is the packet's, not the link's
    return PASS, ihl, total


def inner_packet(frame: bytes, vip: bytes) -> bytes | None:
    """The inner IPv4 packet of an IPIP packet (outer header included), or None when it is not for `vip`."""
    verdict, off, length = classify(frame, vip)
    return frame[off:off + length] if verdict == PASS else None


@dataclass(slots=True)
class DecapStats:
    """Counters of one run (the fields of struct lb_tundecap_stats, same names)."""

    rx_pkts: int = 0
    rx_bytes: int = 0
    passed: int = 0
    passed_bytes: int = 0
    tun_errs: int = 0
    rx_trunc: int = 0
    drop_short: int = 0
    drop_outer_version: int = 0
    drop_outer_hlen: int = 0
    drop_not_ipip: int = 0
    drop_inner_version: int = 0
    drop_not_vip: int = 0
    drop_inner_len: int = 0

    def drop(self, verdict: int) -> None:
        name = f"drop_{REASONS[verdict]}"
        setattr(self, name, getattr(self, name) + 1)

    @property
    def dropped(self) -> int:
        return self.rx_trunc + sum(getattr(self, f"drop_{r}") for r in REASONS[1:])

    @classmethod
    def from_c(cls, st: Any) -> DecapStats:
        """From a cffi `struct lb_tundecap_stats`."""
        return cls(**{f.name: int(getattr(st, f.name)) for f in fields(cls)})

    def summary(self) -> str:
        """The exit line's counters: `passed P dropped D (rx R, <reason> N..., tun errors E)`."""
        parts = [f"rx {self.rx_pkts}"]
        parts += [f"{r} {getattr(self, 'drop_' + r)}" for r in REASONS[1:] if getattr(self, "drop_" + r)]
        if self.rx_trunc:
            parts.append(f"truncated {self.rx_trunc}")
        parts.append(f"tun errors {self.tun_errs}")
        return f"passed {self.passed} dropped {self.dropped} ({', '.join(parts)})"


def parse_summary(line: str) -> DecapStats:
    """The counters of an exit (or SIGUSR1) line printed by summary(); the inverse of summary()."""
    body = line.split("passed ", 1)[1]
    nums = dict(re.findall(r"([a-z_]+(?: errors)?) (\d+)", "passed " + body))
    st = DecapStats(rx_pkts=int(nums.get("rx", 0)), passed=int(nums.get("passed", 0)),
                    tun_errs=int(nums.get("tun errors", 0)), rx_trunc=int(nums.get("truncated", 0)))
    for r in REASONS[1:]:
        setattr(st, f"drop_{r}", int(nums.get(r, 0)))
    return st


class StopError(Exception):
    """Raised by the signal handler to leave the loop."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise StopError


class Report:
    """SIGUSR1 asks for the counters so far (`tun-decap: now passed ...`); the loops print them between
    packets (Python) or between lb_tundecap_poll calls (C), never from inside the signal handler."""

    def __init__(self) -> None:
        self.wanted = False

    def ask(self, signum: int, frame: FrameType | None) -> None:
        self.wanted = True

    def due(self) -> bool:
        wanted, self.wanted = self.wanted, False
        return wanted

    @staticmethod
    def show(st: DecapStats) -> None:
        print(f"tun-decap: now {st.summary()}", flush=True)


def run_python(raw: socket.socket, tun_fd: int, vip: bytes, st: DecapStats, report: Report) -> None:
    """The readable twin of lb_tundecap_poll: one packet at a time, until StopError."""
    buf = bytearray(SLOT)
    while True:
        if report.due():
            report.show(st)
        ready, _, _ = select.select([raw], [], [], 1.0)
        if ready:
            handle_one(raw, tun_fd, vip, st, buf)


def handle_one(raw: socket.socket, tun_fd: int, vip: bytes, st: DecapStats, buf: bytearray) -> bool:
    """Receive one packet (False when none is queued), check it, write its inner packet into the TUN fd."""
    try:
        # MSG_TRUNC: the socket then returns the packet's real length, so an oversize one is seen.
        n = raw.recv_into(buf, len(buf), socket.MSG_TRUNC | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    st.rx_pkts += 1
    st.rx_bytes += n
    if n > len(buf):
        st.rx_trunc += 1
        return True
    view = memoryview(buf)[:n]
    verdict, off, length = classify(view, vip)
    if verdict != PASS:
        st.drop(verdict)
        return True
    try:
        written = os.write(tun_fd, view[off:off + length])
    except OSError:
        written = -1
    if written != length:
        st.tun_errs += 1
        return True
    st.passed += 1
    st.passed_bytes += length
    return True


def run_c(raw: socket.socket, tun_fd: int, vip: bytes, st: DecapStats, report: Report) -> None:
    """lb_tundecap_poll in a loop until StopError; `st` holds the C counters when it returns."""
    from lb.core._ffi import ffi, lib  # noqa: PLC0415 (only this path needs the extension)

    ctx = lib.lb_tundecap_open(raw.fileno(), tun_fd, vip, ffi.NULL)
    if ctx == ffi.NULL:
        raise OSError("lb_tundecap_open failed")
    cst = ffi.new("struct lb_tundecap_stats *")
    try:
        while True:
            rc = lib.lb_tundecap_poll(ctx, BUDGET, POLL_MS)
            if rc < 0 and rc != -errno.EINTR:  # EINTR: a signal; its handler runs now, at the next bytecode
                raise OSError(-rc, os.strerror(-rc))
            if report.due():
                lib.lb_tundecap_stats(ctx, cst)
                report.show(DecapStats.from_c(cst))
    finally:
        lib.lb_tundecap_stats(ctx, cst)
        lib.lb_tundecap_close(ctx)
        got = DecapStats.from_c(cst)
        for f in fields(st):
            setattr(st, f.name, getattr(got, f.name))


def c_available() -> bool:
    try:
        from lb.core._ffi import lib  # noqa: PLC0415
    except ImportError:
        return False
    return hasattr(lib, "lb_tundecap_poll")


def run_userspace(vip: str, dev: str, impl: str = "c", rt_priority: int = 0) -> int:
    import pytun  # noqa: PLC0415 (only this path needs the extension)

    if impl == "c" and not c_available():
        print("tun-decap: lb._csched has no lb_tundecap (rebuild with `pip install -e .`): "
              "using --impl python", flush=True)
        impl = "python"
    tun = pytun.TunTapDevice(name=dev, flags=pytun.IFF_TUN | pytun.IFF_NO_PI)
    tun.mtu = 1500
    _ip("addr", "add", f"{vip}/32", "dev", tun.name)
    _ip("link", "set", "dev", tun.name, "up", "arp", "off")
    host_setup(tun.name)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    vip_b = ipaddress.IPv4Address(vip).packed
    st = DecapStats()
    print(f"tun-decap: {tun.name} holds {vip}; decapsulating IPIP ({impl})", flush=True)
    report = Report()
    # Optional: the kernel's ipip decapsulates in softirq, ahead of every task.  Not the default: on the
    # 2-core lab a SCHED_FIFO decapsulator made TUN keep-alive req/s worse (0.60x vs 0.77x nft DNAT), since
    # the server's own TCP receive runs inside our write() and its HTTP process then waits behind us.
    realtime(rt_priority, log=lambda m: print(f"tun-decap: {m}", flush=True))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGUSR1, report.ask)
    try:
        (run_c if impl == "c" else run_python)(raw, tun.fileno(), vip_b, st, report)
    except StopError:
        pass
    finally:
        print(f"tun-decap: {st.summary()}", flush=True)
        raw.close()
        tun.close()
    return 0


def run_kernel(vip: str, dev: str) -> int:
    """Let a kernel ipip device do the work; this process only holds the setup until stopped."""
    if subprocess.run(["ip", "link", "show", "dev", dev], capture_output=True, check=False).returncode != 0:
        try:
            _ip("link", "add", "name", dev, "type", "ipip")
        except subprocess.CalledProcessError as e:
            print(f"tun-decap: no kernel ipip here ({e.stderr.decode().strip()}); "
                  "run without --kernel-ipip", file=sys.stderr)
            return 1
    _ip("addr", "add", f"{vip}/32", "dev", dev)
    _ip("link", "set", "dev", dev, "up")
    host_setup(dev)
    print(f"tun-decap: kernel ipip {dev} holds {vip}", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while True:
            signal.pause()
    except StopError:
        return 0


def handler(args: argparse.Namespace) -> int:
    ipaddress.IPv4Address(args.vip)
    if args.kernel_ipip:
        return run_kernel(args.vip, args.dev)
    return run_userspace(args.vip, args.dev, args.impl, args.rt_priority)


def default_impl() -> str:
    impl = os.environ.get(ENV_IMPL, "c")
    return impl if impl in IMPLS else "c"


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vip", required=True, help="virtual IP this real server answers for")
    p.add_argument("--dev", default="tunl-lb", help="TUN (or kernel ipip) device name (default tunl-lb)")
    p.add_argument("--impl", choices=IMPLS, default=default_impl(),
                   help=f"decapsulation loop: c (batched, default) or python (the readable twin); "
                        f"the default comes from ${ENV_IMPL} when set")
    p.add_argument("--kernel-ipip", action="store_true", help="use the kernel ipip module instead")
    p.add_argument("--rt-priority", type=rt_priority_arg, default=0, metavar="N",
                   help="run the decapsulator SCHED_FIFO N (default 0: normal scheduling; 1 measured worse "
                        "here, the server's own HTTP process then waits behind it)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tun-decap", help="userspace IPIP decapsulator for TUN real servers",
                       description=__doc__.splitlines()[0] if __doc__ else None)
    _add_args(p)
    p.set_defaults(func=handler)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lb.lab.tundecap")
    _add_args(ap)
    return handler(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
