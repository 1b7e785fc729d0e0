"""The only place the lab calls `ip`, `sysctl` and `nft`.

Every command runs *inside* a namespace the lab created (`ip -n NS ...` or `ip netns exec NS ...`);
nothing here ever touches the root namespace: veth pairs are created inside one lab namespace with the
peer placed straight into another, so no end ever exists in the root namespace.
`NetnsSet` records what it creates and tears it all down on exit unless `keep()` was called
(`lb lab up` keeps a finished lab; tests and `lb demo` always tear down).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from lb.lab.state import LabState, ProcRecord

NETNS_RUN_DIR = "/run/netns"


class NetnsError(RuntimeError):
    """An `ip`/`nft`/`sysctl` command failed; the message carries the command and its stderr."""


def run(argv: Sequence[str], *, check: bool = True, input_text: str | None = None,
        timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run one command, capture its output, raise NetnsError with stderr on failure."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input_text,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        msg = f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}"
        raise NetnsError(msg)
    return proc


def ns_argv(ns: str, argv: Sequence[str]) -> list[str]:
    """argv that runs `argv` inside namespace `ns`."""
    return ["ip", "netns", "exec", ns, *argv]


def ns_run(ns: str, argv: Sequence[str], *, check: bool = True, input_text: str | None = None,
           timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return run(ns_argv(ns, argv), check=check, input_text=input_text, timeout=timeout)


def ip(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ip -n NS args...`: always scoped to a lab namespace."""
    return run(["ip", "-n", ns, *args], check=check)


def list_netns() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_RUN_DIR, name))


def sysctl(ns: str, key: str, value: str | int) -> None:
    ns_run(ns, ["sysctl", "-q", "-w", f"{key}={value}"])


def nft(ns: str, script: str) -> None:
    """Load an nft script (`nft -f -`) inside `ns`."""
    ns_run(ns, ["nft", "-f", "-"], input_text=script)


def link_mac(ns: str, dev: str) -> str:
    out = ip(ns, "-o", "link", "show", "dev", dev).stdout
    words = out.split()
    return words[words.index("link/ether") + 1] if "link/ether" in words else ""


def ns_pids(ns: str) -> list[int]:
    """PIDs of the processes living in namespace `ns` (`ip netns pids`)."""
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(w) for w in out.split() if w.isdigit()]


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: lets us tell our process from a later one that reused the PID."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def proc_alive(pid: int, start_time: int | None) -> bool:
    """`pid` is still the process that started at `start_time` and has not exited.  A lab process whose
    parent (`lb lab up`) is gone is reaped by init; until it is, it stays a zombie, which is not alive."""
    return proc_start_time(pid) == start_time and start_time is not None and not _is_zombie(pid)


def stop_pid(pid: int, start_time: int | None = None, grace: float = 2.0,
             sig: signal.Signals | None = None) -> None:
    """Signal one process (SIGTERM by default; its process group if it leads one), SIGKILL after `grace`.

    Does nothing when `pid` is gone or, given `start_time`, now belongs to another process.
    """
    if proc_start_time(pid) is None or (start_time is not None and proc_start_time(pid) != start_time):
        return
    first = sig or signal.SIGTERM
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, first)
        else:
            os.kill(pid, first)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if proc_start_time(pid) is None or _is_zombie(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def netns_inode(name: str) -> int | None:
    """The nsfs inode of namespace `name` (what /proc/PID/ns/net of its processes points to)."""
    try:
        return os.stat(os.path.join(NETNS_RUN_DIR, name)).st_ino
    except OSError:
        return None


def clock_ticks_now() -> int:
    """Now, in the unit of proc_start_time (clock ticks since boot)."""
    with open("/proc/uptime", encoding="ascii") as f:
        return int(float(f.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


def procs_in_netns(inodes: dict[int, str], started_before: int | None = None) -> list[tuple[int, str, str]]:
    """(pid, namespace, command) of every live process whose network namespace is one of `inodes`
    ({inode: name}), optionally only those started before `started_before` (clock ticks).

    Network namespace inode numbers are reused once a namespace is freed, so a process somebody started in a
    new namespace after ours were deleted can carry an old number; `started_before` (the moment teardown
    began) tells a process that outlived our namespace from such a newcomer."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            link = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        ino = int(link[link.index("[") + 1:link.index("]")]) if "[" in link else -1
        if ino not in inodes or _is_zombie(pid):
            continue
        start = proc_start_time(pid)
        if started_before is not None and (start is None or start > started_before):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        found.append((pid, inodes[ino], cmd))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def delete_netns(name: str) -> None:
    """Stop every process still inside `name` (by PID), then delete it. Idempotent."""
    if not netns_exists(name):
        return
    for pid in ns_pids(name):
        if pid != os.getpid():
            stop_pid(pid, grace=1.0)
    run(["ip", "netns", "del", name], check=False)


class NetnsSet:
    """Namespaces, links, settings and processes of one lab, torn down on exit unless `keep()` was called.

    Use as a context manager; an exception (including KeyboardInterrupt) inside always tears down.
    With a `LabState`, every namespace is recorded before it is created and every process right after
    it starts, so `lb lab down` can finish the job from another process.
    """

    def __init__(self, prefix: str, state: LabState | None = None, tx_csum_offload: bool = False) -> None:
        self.prefix = prefix
        # veth hands frames over with CHECKSUM_PARTIAL (no L4 checksum yet) when tx offload is on; a balancer
        # that reads frames from AF_PACKET and sends them on would forward a wrong checksum.  Real NICs
        # deliver finished checksums, so by default the lab computes them in software on every veth end.
        self.tx_csum_offload = tx_csum_offload
        self.state = state
        self.created: list[str] = []
        self.procs: list[ProcRecord] = []
        self._keep = False

    def __enter__(self) -> NetnsSet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None or not self._keep:
            self.teardown()

    def keep(self) -> None:
        self._keep = True

    def name(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def add_ns(self, node: str) -> str:
        ns = self.name(node)
        if netns_exists(ns):
            raise NetnsError(f"namespace {ns} already exists (another lab with this name is up?)")
        if self.state is not None:
            self.state.add_ns(ns)
        self.created.append(ns)
        run(["ip", "netns", "add", ns])
        ip(ns, "link", "set", "dev", "lo", "up")
        # Each lab namespace decides for itself; start from a known state.
        sysctl(ns, "net.ipv4.ip_forward", 0)
        sysctl(ns, "net.ipv4.conf.all.rp_filter", 0)
        sysctl(ns, "net.ipv4.conf.default.rp_filter", 0)
        return ns

    def veth(self, node_a: str, dev_a: str, node_b: str, dev_b: str) -> None:
        """veth pair created inside node_a's namespace with the peer born inside node_b's."""
        ns_a, ns_b = self.name(node_a), self.name(node_b)
        ip(ns_a, "link", "add", "name", dev_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        ip(ns_a, "link", "set", "dev", dev_a, "up")
        ip(ns_b, "link", "set", "dev", dev_b, "up")
        if not self.tx_csum_offload:
            ns_run(ns_a, ["ethtool", "-K", dev_a, "tx", "off"])
            ns_run(ns_b, ["ethtool", "-K", dev_b, "tx", "off"])

    def bridge(self, node: str, dev: str, ports: Iterator[str] | Sequence[str] = ()) -> None:
        ns = self.name(node)
        if ip(ns, "link", "show", "dev", dev, check=False).returncode != 0:
            ip(ns, "link", "add", "name", dev, "type", "bridge")
            ip(ns, "link", "set", "dev", dev, "up")
        for port in ports:
            ip(ns, "link", "set", "dev", port, "master", dev)

    def set_mac(self, node: str, dev: str, mac: str) -> None:
        ip(self.name(node), "link", "set", "dev", dev, "address", mac)

    def addr(self, node: str, dev: str, cidr: str, *extra: str) -> None:
        ip(self.name(node), "addr", "add", cidr, "dev", dev, *extra)

    def route(self, node: str, dst: str, via: str) -> None:
        ip(self.name(node), "route", "replace", dst, "via", via)

    def sysctl(self, node: str, key: str, value: str | int) -> None:
        sysctl(self.name(node), key, value)

    def run_ip(self, node: str, *args: str) -> None:
        ip(self.name(node), *args)

    def nft(self, node: str, script: str) -> None:
        nft(self.name(node), script)

    def neigh(self, node: str, dev: str, addr: str, mac: str) -> None:
        ip(self.name(node), "neigh", "replace", addr, "lladdr", mac, "dev", dev, "nud", "permanent")

    def has_link(self, node: str, dev: str) -> bool:
        return ip(self.name(node), "link", "show", "dev", dev, check=False).returncode == 0

    def mac(self, node: str, dev: str) -> str:
        return link_mac(self.name(node), dev)

    def spawn(self, node: str, role: str, argv: Sequence[str], log: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `argv` inside node's namespace in its own session; record its PID."""
        full = ns_argv(self.name(node), argv)
        out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env)
        finally:
            if log is not None:
                out.close()  # type: ignore[union-attr]
        rec = ProcRecord(pid=proc.pid, start=proc_start_time(proc.pid), node=node, role=role, argv=list(full))
        self.procs.append(rec)
        if self.state is not None:
            self.state.add_proc(rec)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
        """Stop one process this set started (by PID) and forget it."""
        for rec in [r for r in self.procs if r.pid == proc.pid]:
            stop_pid(rec.pid, rec.start, grace=grace, sig=signal.SIGINT if rec.role == "capture" else None)
            self.procs.remove(rec)
            if self.state is not None:
                self.state.drop_proc(rec.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)

    def teardown(self) -> None:
        for rec in reversed(self.procs):
            stop_pid(rec.pid, rec.start, grace=1.0)
        self.procs.clear()
        for ns in reversed(self.created):
            delete_netns(ns)
        self.created.clear()
        if self.state is not None:
            self.state.procs.clear()
            self.state.namespaces.clear()
            self.state.save()
