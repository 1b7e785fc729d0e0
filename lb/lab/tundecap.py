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
`--kernel-ipip` uses a kernel ipip device instead where the module exists.
"""

from __future__ import annotations

import argparse
import ipaddress
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

IPPROTO_IPIP = 4


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


def inner_packet(frame: bytes, vip: bytes) -> bytes | None:
    """The inner IPv4 packet of an IPIP packet (outer header included), or None when it is not for `vip`."""
    if len(frame) < 40 or frame[0] >> 4 != 4:
        return None
    ihl = (frame[0] & 0x0F) * 4
    if frame[9] != IPPROTO_IPIP or len(frame) < ihl + 20:
        return None
    inner = frame[ihl:]
    if inner[0] >> 4 != 4 or inner[16:20] != vip:
        return None
    total = int.from_bytes(inner[2:4], "big")
    return inner[:total] if 20 <= total <= len(inner) else None


class StopError(Exception):
    """Raised by the signal handler to leave the loop."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise StopError


def run_userspace(vip: str, dev: str) -> int:
    import pytun  # noqa: PLC0415 (only this path needs the extension)

    tun = pytun.TunTapDevice(name=dev, flags=pytun.IFF_TUN | pytun.IFF_NO_PI)
    tun.mtu = 1500
    _ip("addr", "add", f"{vip}/32", "dev", tun.name)
    _ip("link", "set", "dev", tun.name, "up", "arp", "off")
    host_setup(tun.name)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    vip_b = ipaddress.IPv4Address(vip).packed
    passed = dropped = 0
    print(f"tun-decap: {tun.name} holds {vip}; decapsulating IPIP", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while True:
            ready, _, _ = select.select([raw], [], [], 1.0)
            if not ready:
                continue
            frame = raw.recv(65535)
            inner = inner_packet(frame, vip_b)
            if inner is None:
                dropped += 1
                continue
            tun.write(inner)
            passed += 1
    except StopError:
        pass
    finally:
        print(f"tun-decap: passed {passed} dropped {dropped}", flush=True)
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
    return run_userspace(args.vip, args.dev)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vip", required=True, help="virtual IP this real server answers for")
    p.add_argument("--dev", default="tunl-lb", help="TUN (or kernel ipip) device name (default tunl-lb)")
    p.add_argument("--kernel-ipip", action="store_true", help="use the kernel ipip module instead")


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
