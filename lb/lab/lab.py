"""One lab, start to finish: build a topology, start real servers and a balancer, talk to it, tear it down.

`Lab.up(spec)` builds `netns/<mode>.toml` for N real servers in namespaces named `<lab>-<node>`, starts
`lb.lab.httpd` (and `lb.lab.tundecap` for TUN) on every real server, starts the chosen balancer in
`<lab>-lb`, and waits (bounded) until an HTTP request from the client through the VIP succeeds.  Every
namespace and process is recorded in /run/pyvs/labs/<lab>/state.json as it is made, so `down(name)` removes
exactly what the lab made from any process, also after a crash.  A `Lab` used as a context manager always
tears down; `lb lab up` keeps it for later `exec`/`lbadm`/`down`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_interface
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from lb.lab import balancer as bal
from lb.lab import capture, predict
from lb.lab.netns import (
    NetnsError,
    NetnsSet,
    delete_netns,
    list_netns,
    ns_argv,
    proc_alive,
    proc_start_time,
    stop_pid,
)
from lb.lab.state import LabState, check_name, lab_dir, leftover_re, list_labs
from lb.lab.topology import Endpoint, Topology, build, load

DEFAULT_NAME = "pyvs"
#: What each real-server program prints once it serves (httpd: bound; tundecap: the VIP is on its device).
READY = {"httpd": "httpd ", "tundecap": " holds "}


@dataclass(slots=True)
class LabSpec:
    """What `lb lab up` was asked for."""

    mode: str
    servers: int = 2
    scheduler: str = "rr"
    weights: tuple[int, ...] = ()
    io: str = "afpacket"
    engine: str = "c"
    name: str = DEFAULT_NAME
    balancer: str = ""                 # "" = bal.default_balancer(mode)
    port: int = 80
    udp_port: int = 9000
    extra_lb_args: list[str] = field(default_factory=list)

    def resolved(self) -> LabSpec:
        check_name(self.name)
        b = self.balancer or bal.default_balancer(self.mode)
        bal.check(b, self.mode)
        w = self.weights or (1,) * self.servers
        if len(w) != self.servers:
            raise ValueError(f"--weights has {len(w)} values for {self.servers} servers")
        if any(x < 0 for x in w):
            raise ValueError("weights must be >= 0")
        return LabSpec(self.mode, self.servers, self.scheduler, tuple(w), self.io, self.engine, self.name, b,
                       self.port, self.udp_port, list(self.extra_lb_args))


class LabError(RuntimeError):
    """The lab could not be built or did not start answering."""


class _Interrupted(BaseException):
    """SIGTERM/SIGHUP during `up`: unwinds like KeyboardInterrupt so the lab is torn down."""


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signum)


class Lab:
    """A built lab.  Prefer `with Lab.up(spec) as lab:` (always torn down)."""

    def __init__(self, spec: LabSpec, topo: Topology, net: NetnsSet, state: LabState) -> None:
        self.spec = spec
        self.topo = topo
        self.net = net
        self.state = state
        self.service = bal.Service(topo.vip, spec.port, spec.udp_port, spec.scheduler, tuple(topo.rips),
                                   spec.weights)
        self.balancer_proc: subprocess.Popen[bytes] | None = None

    # ---- building ------------------------------------------------------------------------------------
    @classmethod
    def up(cls, spec: LabSpec, *, keep: bool = False, wait_tries: int = 40) -> Lab:
        """Build and start a lab; on any failure (or SIGINT/SIGTERM) everything made so far is removed."""
        spec = spec.resolved()
        old = LabState.load(spec.name)
        if old is not None and (old.namespaces or old.procs):
            raise LabError(f"lab {spec.name!r} is already up (or left over): "
                           f"run `lb lab down --name {spec.name}`")
        leftovers = [ns for ns in list_netns() if leftover_re(spec.name).match(ns)]
        if leftovers:
            raise LabError(f"namespaces of lab {spec.name!r} exist: {' '.join(leftovers)}; run `lb lab down`")
        topo = load(spec.mode, spec.servers)
        state = LabState(name=spec.name, mode=spec.mode, servers=spec.servers, balancer=spec.balancer,
                         scheduler=spec.scheduler, vip=topo.vip, io=spec.io, engine=spec.engine)
        state.save()
        net = NetnsSet(spec.name, state)
        lab = cls(spec, topo, net, state)
        old_handlers = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
        atexit.register(lab._atexit)
        try:
            build(topo, net)
            lab._start_servers()
            lab._wait_servers()
            lab._start_balancer()
            lab._wait(wait_tries)
            state.info = {"map": lab.map_text()}
            state.save()
        except BaseException:
            lab.down()
            raise
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
        if keep:
            net.keep()
            atexit.unregister(lab._atexit)
        return lab

    def _atexit(self) -> None:
        self.down()

    def _log(self, node: str, role: str) -> Path:
        return lab_dir(self.spec.name) / f"{node}-{role}.log"

    def _start_servers(self) -> None:
        for node, argv in self.topo.processes:
            role = argv[0]
            self.net.spawn(node, role, [sys.executable, "-m", f"lb.lab.{role}", *argv[1:]],
                           log=self._log(node, role))

    def _wait_servers(self, timeout: float = 20.0) -> None:
        """Bounded wait until every real-server process has said it is ready (so that the first request to
        *each* server succeeds, not only the one the readiness probe happens to reach)."""
        waiting = [r for r in self.net.procs if r.role in READY]
        deadline = time.monotonic() + timeout
        while waiting:
            for r in list(waiting):
                if READY[r.role] in _read(self._log(r.node, r.role)):
                    waiting.remove(r)
                elif proc_start_time(r.pid) != r.start or _is_defunct(r.pid):
                    raise LabError(f"{r.node} {r.role} exited:\n{self.log_tail(r.node, r.role)}")
            if waiting and time.monotonic() > deadline:
                names = ", ".join(f"{r.node} {r.role}" for r in waiting)
                raise LabError(f"not ready after {timeout:.0f}s: {names}")
            if waiting:
                time.sleep(0.02)

    def _start_balancer(self) -> None:
        b, topo, svc = self.spec.balancer, self.topo, self.service
        lbn = topo.balancer
        if b == "nft":
            if topo.mode == "nat":
                self.net.sysctl(lbn, "net.ipv4.ip_forward", 1)
            self.net.nft(lbn, bal.nft_script(topo, svc, tuple(topo.server_macs)))
        elif b == "nft-dnat":
            for key, value in (("net.ipv4.ip_forward", 1), ("net.ipv4.conf.all.send_redirects", 0),
                               (f"net.ipv4.conf.{topo.server_side.dev}.send_redirects", 0)):
                self.net.sysctl(lbn, key, value)
            for node, argv in bal.dnat_return_routes(topo):
                self.net.run_ip(node, *argv)
            self.net.nft(lbn, bal.dnat_script(topo, svc))
        elif b == "route":
            for key, value in bal.route_sysctls(topo):
                self.net.sysctl(lbn, key, value)
            self.net.run_ip(lbn, *bal.route_argv(topo, svc))
        elif b == "py":
            argv = bal.pyfwd_argv(topo, svc, tuple(topo.server_macs))
            self.balancer_proc = self.net.spawn(lbn, "balancer", argv, log=self._log(lbn, "balancer"))
        else:
            rules = lab_dir(self.spec.name) / "rules"
            rules.write_text(bal.rules_text(topo, svc), encoding="utf-8")
            sock = self.state.socket
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            taps = self._tap_prepare() if self.spec.io == "tap" else []
            argv = [*bal.lb_run_argv(topo, rules, sock, self.spec.io, self.spec.engine,
                                     ifaces=[t.tap for t in taps] or None),
                    *(a for t in taps for a in t.run_args), *self.spec.extra_lb_args]
            self.balancer_proc = self.net.spawn(lbn, "balancer", argv, log=self._log(lbn, "balancer"))
            # Both engines serve the control socket once their rules are loaded: it is the sign of life.
            def started() -> bool:
                return sock.exists()
            deadline = time.monotonic() + 15
            while not started():
                if self.balancer_proc.poll() is not None or time.monotonic() > deadline:
                    raise LabError(f"`lb run` did not open {sock}:\n{self.log_tail(lbn, 'balancer')}")
                time.sleep(0.05)
            if taps:
                self._tap_attach(taps)

    def _tap_prepare(self) -> list[TapWiring]:
        """`--io tap`: the balancer is a host of its own behind a TAP device on each of its links.

        Each balancer veth end becomes a port of a bridge `lbbr<i>` in the balancer namespace, loses its
        address and takes another MAC; `lb run` creates `tap<i>` and owns the topology's address and MAC for
        that link itself (its own ARP); `_tap_attach` bridges the TAP in and moves the balancer's routes and
        neighbour entries onto it."""
        topo, lbn = self.topo, self.topo.balancer
        out = []
        for i, dev in enumerate(topo.balancer_ifaces):
            ep = Endpoint(lbn, dev)
            cidr, mac = next((c, m) for d, c, m in topo.addrs if d == ep)
            w = TapWiring(dev, f"tap{i}", f"lbbr{i}", cidr, mac)
            self.net.run_ip(lbn, "addr", "flush", "dev", dev)
            self.net.set_mac(lbn, dev, _other_mac(mac))
            self.net.bridge(lbn, w.bridge, [dev])
            out.append(w)
        return out

    def _tap_attach(self, taps: list[TapWiring]) -> None:
        lbn = self.topo.balancer
        deadline = time.monotonic() + 10
        for w in taps:
            while not self.net.has_link(lbn, w.tap):
                if time.monotonic() > deadline:
                    raise LabError(f"`lb run --io tap` made no {w.tap}:\n{self.log_tail(lbn, 'balancer')}")
                time.sleep(0.05)
            self.net.run_ip(lbn, "link", "set", "dev", w.tap, "master", w.bridge)
            self.net.run_ip(lbn, "link", "set", "dev", w.tap, "up")
        for node, to, via in self.topo.routes:
            if node == lbn:
                w = next(t for t in taps if ip_address(via) in ip_interface(t.cidr).network)
                self.net.run_ip(lbn, "route", "replace", to, "via", via, "dev", w.tap, "onlink")
        for dev, addr, mac in self.topo.neighs:
            if dev.node == lbn:
                w = next(t for t in taps if t.dev == dev.dev)
                self.net.neigh(lbn, w.tap, addr, mac)

    def _wait(self, tries: int) -> None:
        r = self.client_run(["wait", self.url(), "--tries", str(tries)], timeout=tries * 1.5 + 5, check=False)
        if r.returncode != 0:
            logs = "\n".join(self.log_tail(n, role) for n, role in self._roles())
            raise LabError(f"no answer through {self.url()} after {tries} tries: {r.stdout.strip()}\n{logs}")

    def _roles(self) -> list[tuple[str, str]]:
        return [(r.node, r.role) for r in self.net.procs]

    def log_tail(self, node: str, role: str, lines: int = 10) -> str:
        try:
            text = self._log(node, role).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return f"--- {node} {role}:\n" + "\n".join(text.splitlines()[-lines:])

    # ---- using ---------------------------------------------------------------------------------------
    def ns(self, node: str) -> str:
        return self.net.name(node)

    def url(self, path: str = "/") -> str:
        return f"http://{self.topo.vip}:{self.spec.port}{path}"

    def exec(self, node: str, argv: Sequence[str], timeout: float = 60.0,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a bounded command inside a lab node."""
        r = subprocess.run(ns_argv(self.ns(node), argv), capture_output=True, text=True, timeout=timeout,
                           check=False)
        if check and r.returncode != 0:
            raise LabError(f"{node}: {' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def client_run(self, args: Sequence[str], timeout: float = 120.0,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "lb.lab.client", *args]
        return self.exec("client", argv, timeout=timeout, check=check)

    def client_popen(self, args: Sequence[str]) -> subprocess.Popen[str]:
        """Start the client in the background (e.g. a long transfer); caller waits on it (bounded)."""
        return subprocess.Popen(ns_argv(self.ns("client"), [sys.executable, "-m", "lb.lab.client", *args]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def _json_lines(text: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def get(self, count: int, path: str = "/", source: str = "") -> list[dict[str, object]]:
        """`count` sequential HTTP requests from the client, each on a new connection (from `source`)."""
        extra = ["--source", source] if source else []
        return self._json_lines(self.client_run(["get", self.url(path), "--count", str(count), *extra],
                                                timeout=10 + count * 4).stdout)

    def client_addrs(self, n: int) -> list[str]:
        """The client's address plus n-1 more on its link (same /24, hosts .50, .51, ...), added on demand:
        more clients for the source-hashing schedulers.  Inside the client namespace only."""
        ep = self.topo.client_if
        first = self.topo.addr_of(ep)
        base = first.rsplit(".", 1)[0]
        out = [first]
        for j in range(n - 1):
            a = f"{base}.{50 + j}"
            self.net.run_ip(ep.node, "addr", "replace", f"{a}/24", "dev", ep.dev)
            out.append(a)
        return out

    def big(self, nbytes: int, rate: float = 0.0) -> dict[str, object]:
        out = self.client_run(["big", self.url(), "--bytes", str(nbytes), "--rate", str(rate)], timeout=180)
        return self._json_lines(out.stdout)[0]

    def udp(self, count: int) -> list[dict[str, object]]:
        target = f"{self.topo.vip}:{self.spec.udp_port}"
        return self._json_lines(self.client_run(["udp", target, "--count", str(count)],
                                                timeout=10 + count * 3).stdout)

    def server_of(self, rip: str) -> str:
        return self.topo.servers[self.topo.rips.index(rip)]

    def lbadm(self, args: Sequence[str], input_text: str | None = None,
              timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """`lbadm ARGS` against this lab's balancer (LB_SOCKET); runs from here: the socket is a file."""
        env = dict(os.environ, LB_SOCKET=str(self.state.socket))
        return subprocess.run([*bal.lbadm_command(), *args], capture_output=True, text=True, env=env,
                              input=input_text, timeout=timeout, check=False)

    def rules(self) -> str:
        """The lab's service as ipvsadm-save lines (what the balancer was started with)."""
        return bal.rules_text(self.topo, self.service)

    def listing(self) -> dict[str, Any]:
        """`lbadm -L -n --stats --json` of this lab's balancer, parsed."""
        r = self.lbadm(["-L", "-n", "--stats", "--json"])
        if r.returncode != 0:
            raise LabError(f"lbadm -L -n --stats --json: exit {r.returncode}: {r.stderr.strip()}")
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    def predictor(self) -> predict.Predictor:
        """The TCP service's scheduler twin from the lab's rules (not caught up yet: see lb.lab.predict)."""
        return predict.predictor(self.rules(), predict.tcp_key(self.topo.vip, self.spec.port))

    def caught_up_predictor(self) -> predict.Predictor:
        """rr/wrr twin that has replayed every pick the balancer made so far (checked against its counts)."""
        p = self.predictor()
        p.catch_up(predict.dest_conns(self.listing(), p.key))
        return p

    def server_at(self, label: str) -> str:
        """Server name ("real2") of a dest label "RIP:PORT"."""
        return self.server_of(label.rsplit(":", 1)[0])

    @contextlib.contextmanager
    def capture(self, where: Endpoint, bpf: str = "ip", max_packets: int = 20000) -> Iterator[Capture]:
        """tcpdump on one lab link while the block runs; `.frames` is filled when the block ends."""
        path = lab_dir(self.spec.name) / f"cap-{where.node}-{where.dev}-{time.monotonic_ns()}.pcap"
        log = path.with_suffix(".log")
        proc = self.net.spawn(where.node, "capture",
                              ["tcpdump", "-Z", "root", "--immediate-mode", "-i", where.dev, "-n", "-U",
                               "-s", "128", "-c", str(max_packets), "-w", str(path), bpf], log=log)
        cap = Capture(where, path)
        try:
            deadline = time.monotonic() + 5
            while "listening on" not in _read(log):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise LabError(f"tcpdump on {where.node}:{where.dev} did not start: {_read(log).strip()}")
                time.sleep(0.05)
            yield cap
        finally:
            _wait_quiet(path)        # the last frames of the block (FIN/ACKs in flight) reach the file
            self.net.stop(proc)
            cap.frames = list(capture.read_pcap(path)) if path.exists() else []
            with contextlib.suppress(OSError):
                path.unlink()
            with contextlib.suppress(OSError):
                log.unlink()

    # ---- describing and ending -----------------------------------------------------------------------
    def map_text(self) -> str:
        t, s = self.topo, self.spec
        lines = [f"lab {s.name}: {t.mode.upper()} ({t.fwd}), balancer {s.balancer}, scheduler {s.scheduler}, "
                 f"{len(t.servers)} real servers",
                 f"  VIP {t.vip}  tcp :{s.port}  udp :{s.udp_port}",
                 f"  client  {t.addr_of(t.client_if):<11} namespace {self.ns('client')}"]
        for node, rip, mac, w in zip(t.servers, t.rips, t.server_macs, s.weights, strict=True):
            lines.append(f"  {node:<7} {rip:<11} {mac}  weight {w}  namespace {self.ns(node)}")
        lines.append(f"  balancer namespace {self.ns(t.balancer)} on {', '.join(t.balancer_ifaces)}")
        lines.append(f"  try: lb lab exec --name {s.name} client -- curl -s {self.url()}")
        if s.balancer == "lb" and s.engine == "c":
            lines.append(f"       lb lab lbadm --name {s.name} -- -L -n")
        lines.append(f"  end: lb lab down --name {s.name}")
        return "\n".join(lines)

    def down(self) -> None:
        self.net.teardown()
        down(self.spec.name)
        atexit.unregister(self._atexit)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()


@dataclass(frozen=True, slots=True)
class TapWiring:
    """One balancer link under `--io tap`: veth `dev` and TAP `tap` are ports of `bridge`; the balancer
    (not the kernel) owns `cidr` and `mac` on it."""

    dev: str
    tap: str
    bridge: str
    cidr: str
    mac: str

    @property
    def run_args(self) -> list[str]:
        return ["--port-addr", f"{self.tap}={self.cidr}", "--mac", f"{self.tap}={self.mac}"]


def _other_mac(mac: str) -> str:
    """Another locally administered MAC for the veth end a TAP port takes the place of (02:... -> 06:...)."""
    first, rest = mac.split(":", 1)
    return f"{int(first, 16) ^ 0x04:02x}:{rest}"


@dataclass(slots=True)
class Capture:
    where: Endpoint
    path: Path
    frames: list[capture.Frame] = field(default_factory=list)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _wait_quiet(path: Path, quiet: float = 0.1, limit: float = 1.0) -> None:
    """Bounded wait until `path` (a pcap tcpdump writes with -U) has not grown for `quiet` seconds."""
    deadline = time.monotonic() + limit
    size, since = _size(path), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now_size = _size(path)
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def _is_defunct(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def down(name: str) -> list[str]:
    """Remove every process and namespace lab `name` made (from its state file, plus any namespace that
    matches the lab's naming scheme).  Idempotent; returns what it removed."""
    check_name(name)
    removed: list[str] = []
    state = LabState.load(name)
    if state is not None:
        for rec in reversed(state.procs):
            if proc_start_time(rec.pid) is not None and proc_start_time(rec.pid) == rec.start:
                stop_pid(rec.pid, rec.start, grace=1.0)
                removed.append(f"pid {rec.pid} ({rec.node} {rec.role})")
    pattern = leftover_re(name)
    existing = set(list_netns())
    targets = [ns for ns in (state.namespaces if state else []) if ns in existing]
    targets += sorted(ns for ns in existing if pattern.match(ns) and ns not in targets)
    for ns in reversed(targets):
        delete_netns(ns)
        removed.append(f"netns {ns}")
    d = lab_dir(name)
    if d.is_dir():
        for p in d.iterdir():
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            d.rmdir()
    return removed


def status(name: str | None = None) -> str:
    """Human summary of one lab or of every lab with a state file."""
    names = [name] if name else list_labs()
    if not names:
        return "no labs"
    existing = set(list_netns())
    out = []
    for n in names:
        st = LabState.load(n)
        if st is None:
            out.append(f"lab {n}: not up")
            continue
        alive = [ns for ns in st.namespaces if ns in existing]
        procs = [p for p in st.procs if proc_alive(p.pid, p.start)]
        how = f" (--io {st.io} --engine {st.engine})" if st.balancer == "lb" else ""
        out.append(f"lab {n}: {st.mode.upper()} balancer {st.balancer}{how} scheduler {st.scheduler} "
                   f"{st.servers} servers; namespaces {len(alive)}/{len(st.namespaces)} up; "
                   f"processes {len(procs)}/{len(st.procs)} running")
        out += [f"  pid {p.pid:<7} {p.node:<7} {p.role}" for p in st.procs if p in procs]
        if st.info.get("map"):
            out.append(str(st.info["map"]))
    return "\n".join(out)


__all__ = ["Capture", "Lab", "LabError", "LabSpec", "NetnsError", "down", "status"]
