"""Test that the Python engine (lb.engine.control.PyCore) is configured and listed exactly like the C core.

- the same ipvsadm command sequences through ConfigState over Core and over PyCore give the same `-S`,
  `-L -n`, `--stats`, `--thresholds`, `--timeout` output, the same raw services()/dest_infos() (ids, flags,
  last weights, mark services as the C core stores them) after every step;
- the same refused commands give the same IpvsError (op, errno, message) and change nothing in either;
- the same mistakes made directly on the cores (past ConfigState's checks) fail alike: unknown or too-long
  scheduler, duplicates, full service and dest tables, bad weights/thresholds/forwarding, unknown ids,
  events that would go below zero, bad next-hop ports, timeouts too large;
- with traffic (the same SYN/ACK frames through lb_process_batch and through the Python engine), the
  connection counts, per-service and per-dest stats, `-Z`, `-c` and the trash (a dest deleted while its
  connections live keeps its id and counts, and comes back with them on `-a`) agree;
- lbadm talks to a PyCore balancer over a real unix socket: commands, listings, -c, --set, refused changes.
"""

from __future__ import annotations

import errno
import io
import threading
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from lb import model
from lb.cli import options as o
from lb.cli import render
from lb.cli.ipvsadm import Lbadm
from lb.config import emit_rules
from lb.core.batch import PacketBatch, process_batch
from lb.core.conn import ConnTable
from lb.core.core import EV_BIND_ACTIVE, EV_UNBIND_ACTIVE, EV_UNBIND_TEMPLATE, Core, Flow
from lb.daemon.server import Server
from lb.engine.control import PyCore
from lb.errors import IpvsError, LbError
from lb.state import ConfigState

A4 = IPv4Address
K80 = model.ServiceKey(model.Proto.TCP, A4("10.0.0.1"), 80)

Cores = tuple[Core, PyCore]


def cores(svc_max: int = 8, dest_max: int = 16, conn_max: int = 1024) -> Cores:
    return (Core(conn_max=conn_max, svc_max=svc_max, dest_max=dest_max),
            PyCore(conn_max=conn_max, svc_max=svc_max, dest_max=dest_max))


def raw_view(core: Any) -> list[Any]:
    """What the core itself reports: services in its order, dests with ids, flags, counts, stats."""
    out: list[Any] = []
    for st in core.services():
        out.append((st.service, st.stats))
        out.append([(i.id, i.dest, i.flags, i.activeconns, i.inactconns, i.persistconns, i.last_weight,
                     i.stats) for i in core.dest_infos(st.service.key)])
    return out


def view(st: ConfigState) -> tuple[Any, ...]:
    status = st.status()
    listings = tuple(render.list_all(status, fmt) for fmt in (
        o.FMT_NUMERIC, o.FMT_NUMERIC | o.FMT_STATS, o.FMT_NUMERIC | o.FMT_THRESHOLDS,
        o.FMT_NUMERIC | o.FMT_PERSISTENTCONN | o.FMT_NOSORT, o.FMT_NUMERIC | o.FMT_TUN_INFO))
    return (emit_rules(status), listings, render.list_timeout(st.timeouts), raw_view(st.core))


def err(exc: IpvsError) -> tuple[str, int, str]:
    return (str(exc.op), exc.errno, str(exc))


def any_err(exc: LbError) -> tuple[Any, ...]:
    return err(exc) if isinstance(exc, IpvsError) else (type(exc).__name__, str(exc))


STEPS = [
    "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n"
    "-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 3",
    "-A -u 10.0.0.1:53 -s wlc\n-a -u 10.0.0.1:53 -r 10.0.1.3:53 -g -w 2 -x 10 -y 5",
    "-A -t 10.0.0.2:443 -s sh -b sh-fallback,sh-port -p 600 -M 255.255.255.0",
    "-a -t 10.0.0.2:443 -r 10.0.1.4 -i\n-a -t 10.0.0.2:443 -r 10.0.1.5 -i -w 0",
    "-A -f 7 -s mh -b mh-port\n-a -f 7 -r 10.0.1.6:0 -g",
    "-A -f 7 -6 -s lc\n-a -f 7 -6 -r 2001:db8::6 -g",
    "-A -t [2001:db8::1]:80 -s wrr -p -M 64\n-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -m -w 5",
    "-A -t 10.0.0.3:9 -s twos\n-A -u 10.0.0.4:0 -s lblcr -o -p 30",
    "-E -t 10.0.0.1:80 -s wlc -p 120\n-e -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 0",
    "-E -f 7 -s dh\n-e -f 7 -r 10.0.1.6:0 -i -w 9 -x 4",
    "-d -t 10.0.0.1:80 -r 10.0.1.2:8080\n-a -t 10.0.0.1:80 -r 10.0.1.9:80 -m",
    "--set 60 0 30\n-Z\n-Z -u 10.0.0.1:53",
    "-D -t 10.0.0.2:443\n-A -t 10.0.0.5:80 -s nq\n-a -t 10.0.0.5:80 -r 10.0.1.10 -m",
    "-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 3\n-E -t 10.0.0.1:80 -s fo",
    "-C",
    "-A -t 10.0.0.9:80 -s ovf\n-a -t 10.0.0.9:80 -r 10.0.1.11:80 -m -x 3 -y 1\n-A -t 10.0.0.1:80",
]

BAD = [
    "-A -t 10.0.0.1:80 -s rr",                                  # EEXIST
    "-A -t 10.0.0.7:80 -s nosuch",                              # ENOENT
    "-A -t 10.0.0.7:80 -s rr\n-A -t 10.0.0.7:80 -s wrr",        # EEXIST after a good line
    "-E -t 10.0.0.8:80 -s rr",                                  # ESRCH
    "-E -t 10.0.0.1:80 -s nosuch",                              # ENOENT
    "-D -t 10.0.0.8:80",
    "-Z -t 10.0.0.8:80",
    "-a -t 10.0.0.8:80 -r 10.0.1.1",                            # ESRCH
    "-a -t 10.0.0.1:80 -r 10.0.1.1:80",                         # EEXIST
    "-a -t 10.0.0.1:80 -r 10.0.1.77 -x 1 -y 2",                 # ERANGE
    "-e -t 10.0.0.1:80 -r 10.0.1.77",                           # ENOENT
    "-d -t 10.0.0.1:80 -r 10.0.1.77",
    "-a -t 10.0.0.1:80 -r 224.0.0.1",                           # EINVAL: not unicast
    "-a -t 10.0.0.1:80 -r [2001:db8::9]:80 -m",                 # EINVAL: family
    "-A -t [2001:db8::1]:81 -p -M 0",                           # EINVAL: v6 netmask
    "-d -t 10.0.0.1:80 -r 10.0.1.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1:80\n-D -t 10.0.0.66:1",
]


def test_command_sequences_agree_after_every_step() -> None:
    c, p = cores()
    sc, sp = ConfigState(c), ConfigState(p)
    assert sp.sched_names == sc.sched_names
    assert view(sp) == view(sc)
    for text in STEPS:
        rc, rp = sc.apply_text(text + "\n"), sp.apply_text(text + "\n")
        assert (rp.changed_dest_ids, rp.removed_dest_ids) == (rc.changed_dest_ids, rc.removed_dest_ids), text
        assert view(sp) == view(sc), text
    assert view(sp)[2] == "Timeout (tcp tcpfin udp): 60 120 30\n"


def test_refused_commands_fail_alike_and_change_nothing() -> None:
    c, p = cores()
    sc, sp = ConfigState(c), ConfigState(p)
    base = ("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n"
            "-A -t [2001:db8::1]:80 -s wrr\n")
    sc.apply_text(base)
    sp.apply_text(base)
    before = view(sc)
    for text in BAD:
        with pytest.raises(LbError) as ec:
            sc.apply_text(text + "\n")
        with pytest.raises(LbError) as ep:
            sp.apply_text(text + "\n")
        assert any_err(ep.value) == any_err(ec.value), text
        assert view(sp) == view(sc) == before, text


def test_core_failure_rolls_back_alike() -> None:
    """A change set that passes validation but the core refuses (service table full) is undone in both."""
    c, p = cores(svc_max=3)
    states = [ConfigState(c), ConfigState(p)]
    for st in states:
        st.apply_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -m\n-A -u 10.0.0.1:53\n")
        st.svc_max = 1 << 20
    before = [view(st) for st in states]
    text = "-D -t 10.0.0.1:80\n-A -t 10.0.0.5:80\n-A -t 10.0.0.6:80\n-A -t 10.0.0.7:80\n"
    errs = []
    for st in states:
        with pytest.raises(IpvsError) as e:
            st.apply_text(text)
        errs.append(err(e.value))
    assert errs[0] == errs[1] and errs[0][1] == errno.ENOMEM
    assert [view(st) for st in states] == before
    assert before[0] == before[1]


def _svc(addr: str = "10.0.0.1", port: int = 80, sched: str = "rr", **kw: Any) -> model.Service:
    a = IPv6Address(addr) if ":" in addr else A4(addr)
    return model.Service(model.ServiceKey(model.Proto.TCP, a, port), sched, **kw)


def _dest(addr: str = "10.0.1.1", port: int = 80, **kw: Any) -> model.Dest:
    return model.Dest(A4(addr), port, **kw)


Call = Callable[[Any], Any]


def _mark(addr: model.Addr, proto: model.Proto = model.Proto.UDP, port: int = 9) -> model.ServiceKey:
    return model.ServiceKey(proto, addr, port, 3)

DIRECT: list[tuple[str, Call]] = [
    ("add unknown sched", lambda k: k.add_service(_svc("10.0.0.9", sched="nosuch"))),
    ("add long sched", lambda k: k.add_service(_svc("10.0.0.9", sched="x" * 16))),
    ("add v6 netmask", lambda k: k.add_service(_svc("2001:db8::1", flags=1, netmask=0))),
    ("edit v6 netmask", lambda k: k.edit_service(_svc("2001:db8::5", flags=1, netmask=200))),
    ("edit long sched", lambda k: k.edit_service(_svc(sched="y" * 20))),
    ("add dup", lambda k: k.add_service(_svc(sched="nosuch"))),
    ("add dup2", lambda k: k.add_service(_svc(sched="wlc"))),
    ("edit missing", lambda k: k.edit_service(_svc("10.0.0.9"))),
    ("edit unknown sched missing svc", lambda k: k.edit_service(_svc("10.0.0.9", sched="nosuch"))),
    ("del missing", lambda k: k.del_service(_svc("10.0.0.9").key)),
    ("zero missing", lambda k: k.zero(_svc("10.0.0.9").key)),
    ("dest to missing", lambda k: k.add_dest(_svc("10.0.0.9").key, _dest(weight=-1))),
    ("dest weight", lambda k: k.add_dest(K80, _dest("10.0.1.7", weight=-1))),
    ("dest thresholds", lambda k: k.add_dest(K80, _dest("10.0.1.7", u_threshold=1, l_threshold=2))),
    ("dest fwd", lambda k: k.add_dest(K80, _dest("10.0.1.7", fwd=model.Fwd.LOCALNODE))),
    ("dest dup", lambda k: k.add_dest(K80, _dest())),
    ("edit dest missing", lambda k: k.edit_dest(K80, _dest("10.0.1.7"))),
    ("edit dest weight", lambda k: k.edit_dest(K80, _dest(weight=-5))),
    ("del dest missing", lambda k: k.del_dest(K80, _dest("10.0.1.7").key)),
    ("del dest missing svc", lambda k: k.del_dest(_svc("10.0.0.9").key, _dest().key)),
    ("dest_infos missing", lambda k: k.dest_infos(_svc("10.0.0.9").key)),
    ("sched_batch missing", lambda k: k.sched_batch(_svc("10.0.0.9").key, [])),
    ("service_stats missing", lambda k: k.service_stats(_svc("10.0.0.9").key)),
    ("dest_info missing", lambda k: k.dest_info(77)),
    ("event bad id", lambda k: k.dest_event(77, EV_BIND_ACTIVE)),
    ("event bad event", lambda k: k.dest_event(0, 99)),
    ("event below zero", lambda k: k.dest_event(0, EV_UNBIND_ACTIVE)),
    ("event below zero tpl", lambda k: k.dest_event(0, EV_UNBIND_TEMPLATE)),
    ("nexthop bad id", lambda k: k.set_nexthop(77, 0, bytes(6))),
    ("nexthop bad port", lambda k: k.set_nexthop(0, 9, bytes(6))),
    ("timeouts too large", lambda k: ConnTable(k).set_timeouts(model.Timeouts(9_000_000, 0, 0))),
    ("dest table full", lambda k: [k.add_dest(K80, _dest(f"10.0.2.{i}")) for i in range(1, 6)]),
    ("svc table full", lambda k: [k.add_service(_svc(f"10.0.3.{i}")) for i in range(1, 6)]),
    ("edit sched", lambda k: k.edit_service(_svc(sched="mh", flags=model.SVC_F_SCHED1))),
    ("event ok", lambda k: k.dest_event(0, EV_BIND_ACTIVE)),
    ("nexthop ok", lambda k: k.set_nexthop(0, -1, bytes(6))),
    ("del dest ok", lambda k: k.del_dest(K80, _dest().key)),
    ("re-add dest", lambda k: k.add_dest(K80, _dest(weight=4))),
    ("fwmark v4 and v6", lambda k: [k.add_service(model.Service(_mark(A4("1.2.3.4")))),
                                    k.add_service(model.Service(_mark(IPv6Address("::1"))))]),
    ("fwmark dup by mark", lambda k: k.add_service(model.Service(_mark(A4(0), model.Proto.TCP, 0)))),
    ("zero all", lambda k: k.zero(None)),
    ("flush", lambda k: k.flush()),
]


def _outcome(call: Call, core: Any) -> Any:
    try:
        r = call(core)
    except IpvsError as exc:
        return err(exc)
    return ("ok", r if not isinstance(r, list) else None)


def test_direct_core_calls_fail_alike() -> None:
    """Past ConfigState's validation, each core refuses the same mistakes with the same (op, errno)."""
    c, p = cores(svc_max=4, dest_max=4)
    for k in (c, p):
        k.add_service(_svc())
        k.add_service(_svc("2001:db8::5", sched="wrr"))
        k.add_dest(K80, _dest())
    for name, call in DIRECT:
        assert _outcome(call, p) == _outcome(call, c), name
        assert raw_view(p) == raw_view(c), name
    assert ConnTable(p).get_timeouts() == ConnTable(c).get_timeouts() == model.Timeouts()  # type: ignore[arg-type]


# ---- traffic: the same frames through both engines ----

CMAC = bytes.fromhex("020000000002")
LBMAC = bytes.fromhex("020000000001")
RSMAC = bytes.fromhex("0200000000aa")


def _frame(client: int, flags: str, dport: int = 80) -> bytes:
    return bytes(Ether(src=CMAC, dst=LBMAC) / IP(src=f"10.0.9.{client}", dst="10.0.0.1", ttl=64)
                 / TCP(sport=40000 + client, dport=dport, flags=flags, seq=1000,
                       ack=1 if "A" in flags else 0))


def _configure(st: ConfigState, text: str) -> None:
    st.apply_text(text)
    st.core.set_port(0, LBMAC, A4("10.0.0.254"), 1500)
    for s in st.core.services():
        for i in st.core.dest_infos(s.service.key):
            st.core.set_nexthop(i.id, 0, RSMAC)


def _run_c(core: Core, frames: list[bytes], now_ns: int) -> list[tuple[int, int, bytes]]:
    b = PacketBatch(max(len(frames), 1))
    b.fill([(f, 0) for f in frames])
    process_batch(core, b, now_ns)
    return [(v, r, f) for v, r, _port, f in b]


def _run_py(core: PyCore, frames: list[bytes], now_ns: int) -> list[tuple[int, int, bytes]]:
    res = core.engine.process([(f, 0) for f in frames], now_ns)
    return [(int(r.verdict), int(r.reason), r.frame) for r in res]


def _conns(lines: str) -> list[str]:
    return sorted(lines.splitlines()[2:])


def test_traffic_counts_stats_zero_conns_and_trash_agree() -> None:
    c, p = cores()
    sc, sp = ConfigState(c), ConfigState(p)
    rules = ("-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n"
             "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 2\n-A -t 10.0.0.1:81 -s rr -p 300\n"
             "-a -t 10.0.0.1:81 -r 10.0.1.3 -g\n")
    _configure(sc, rules)
    _configure(sp, rules)
    now = 5_000_000_000
    syns = [_frame(i, "S") for i in range(1, 7)] + [_frame(i, "S", 81) for i in range(1, 4)]
    acks = [_frame(i, "A") for i in range(1, 4)]
    assert _run_py(p, syns, now) == _run_c(c, syns, now)
    assert _run_py(p, acks, now + 1000) == _run_c(c, acks, now + 1000)
    assert view(sp) == view(sc)
    listing = render.list_all(sp.status(), o.FMT_NUMERIC)
    assert "  -> 10.0.1.2:80                  Masq    2      4          0         \n" in listing
    t = now + 2_000_000_000
    lc = render.list_conn(ConnTable(c).dump(t), o.FMT_NUMERIC)
    lp = render.list_conn(p.conns(t), o.FMT_NUMERIC)
    assert lp.splitlines()[:2] == lc.splitlines()[:2] and _conns(lp) == _conns(lc) and len(_conns(lc)) == 12

    # -d while connections use the dest: it leaves the listing, keeps its id, comes back with its counts
    ids_before = {i.dest.key: i.id for i in c.dest_infos(K80)}
    for st in (sc, sp):
        st.apply_text("-d -t 10.0.0.1:80 -r 10.0.1.2:80\n-a -t 10.0.0.1:80 -r 10.0.1.4:80 -m\n")
    assert view(sp) == view(sc)
    for st in (sc, sp):
        st.apply_text("-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 7\n")
    assert view(sp) == view(sc)
    back = _dest("10.0.1.2").key
    assert {i.dest.key: i.id for i in p.dest_infos(K80)}[back] == ids_before[back]

    # -Z for one service, then for all
    for st in (sc, sp):
        st.apply_text("-Z -t 10.0.0.1:81\n")
    assert view(sp) == view(sc)
    for st in (sc, sp):
        st.apply_text("-Z\n")
    assert view(sp) == view(sc)

    # everything expires: a deleted dest nothing points at any more is freed, its id taken by the next one
    for st in (sc, sp):
        st.apply_text("-d -t 10.0.0.1:80 -r 10.0.1.1:80\n")
    late = now + 10_000 * 1_000_000_000
    c.tick(late)
    p.tick(late)
    assert view(sp) == view(sc)
    for st in (sc, sp):
        st.apply_text("-a -t 10.0.0.1:80 -r 10.0.1.8:80 -m\n")
    assert view(sp) == view(sc)
    assert p.conns(late) == [] and ConnTable(c).dump(late) == []
    flows = [Flow(A4(f"10.0.9.{i}"), 1000 + i, A4("10.0.0.1"), 80) for i in range(20)]
    assert p.sched_batch(K80, flows, late) == c.sched_batch(K80, flows, late)


# ---- the control socket over a PyCore ----


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Server, PyCore]]:
    core = PyCore(conn_max=4096, svc_max=64, dest_max=512)
    srv = Server(ConfigState(core), str(tmp_path / "lb.sock"), conns=lambda: core.conns(10**10)).start()
    stop = threading.Event()
    t = threading.Thread(target=srv.serve_forever, args=(stop, 0.02), daemon=True)
    t.start()
    yield srv, core
    stop.set()
    t.join(5)
    srv.close()


def lbadm(srv: Server, *args: str, stdin: str = "") -> tuple[int, str, str]:
    out, e = io.StringIO(), io.StringIO()
    rc = Lbadm("ipvsadm", srv.path, stdin=io.StringIO(stdin), stdout=out, stderr=e).run(["ipvsadm", *args])
    return rc, out.getvalue(), e.getvalue()


def test_lbadm_over_the_socket(daemon: tuple[Server, PyCore]) -> None:
    srv, core = daemon
    assert lbadm(srv, "-A", "-t", "10.0.0.1:80", "-s", "rr") == (0, "", "")
    assert lbadm(srv, "-a", "-t", "10.0.0.1:80", "-r", "10.0.1.2:8080", "-m", "-w", "2")[0] == 0
    assert lbadm(srv, "-a", "-t", "10.0.0.1:80", "-r", "10.0.1.1", "-g")[0] == 0
    assert lbadm(srv, "-L", "-n") == (0, (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  10.0.0.1:80 rr\n"
        "  -> 10.0.1.1:80                  Route   1      0          0         \n"
        "  -> 10.0.1.2:8080                Masq    2      0          0         \n"), "")
    assert lbadm(srv, "-R", stdin="-A -u 10.0.0.1:53 -s wlc\n-a -u 10.0.0.1:53 -r 10.0.1.3:53 -m\n")[0] == 0
    assert lbadm(srv, "-S", "-n")[1] == (
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1\n"
        "-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 2\n"
        "-A -u 10.0.0.1:53 -s wlc\n-a -u 10.0.0.1:53 -r 10.0.1.3:53 -m -w 1\n")
    assert lbadm(srv, "-a", "-t", "10.0.0.1:80", "-r", "10.0.1.1") == (
        255, "", "Destination already exists\n")
    assert lbadm(srv, "-E", "-t", "10.0.0.9:80") == (255, "", "No such service\n")
    # traffic in the engine shows up in -L -n and -c
    core.set_port(0, LBMAC, A4("10.0.0.254"), 1500)
    for i in core.dest_infos(K80):
        core.set_nexthop(i.id, 0, RSMAC)
    res = core.engine.process([(_frame(1, "S"), 0), (_frame(2, "S"), 0)], 10**10 - 10**9)
    assert [r.verdict for r in res] == [1, 1]
    rc, out, _ = lbadm(srv, "-L", "-n", "-c")
    assert rc == 0 and out.startswith("IPVS connection entries\npro expire state")
    assert sorted(out.splitlines()[2:]) == [
        "TCP 00:59  SYN_RECV    10.0.9.1:40001     10.0.0.1:80        10.0.1.1:80",
        "TCP 00:59  SYN_RECV    10.0.9.2:40002     10.0.0.1:80        10.0.1.2:8080"]
    assert "Masq    2      1          0" in lbadm(srv, "-L", "-n")[1]
    assert lbadm(srv, "--set", "60", "0", "30")[0] == 0
    assert lbadm(srv, "-L", "--timeout")[1] == "Timeout (tcp tcpfin udp): 60 120 30\n"
    assert core.get_timeouts() == model.Timeouts(60, 120, 30)
    assert lbadm(srv, "-C")[0] == 0
    assert lbadm(srv, "-S", "-n")[1] == ""


def _random_command(rng: Any) -> str:
    vip = rng.choice(("-t 10.0.0.1:80", "-t 10.0.0.2:80", "-u 10.0.0.1:53", "-f 3"))
    rip = rng.choice(("10.0.1.1", "10.0.1.2:8080", "10.0.1.3", "10.0.1.4:0"))
    sched = rng.choice(("rr", "wrr", "wlc", "sh", "mh", "lblc", "twos", "nosuch"))
    opt = rng.choice(("", "", " -p 60", " -p 60 -M 255.255.0.0", " -b flag-1"))
    fwd = rng.choice(("-m", "-g", "-i"))
    w = rng.choice((0, 1, 5))
    th = rng.choice(("", " -x 5 -y 2", " -x 1 -y 3"))
    commands = (f"-A {vip} -s {sched}{opt}", f"-E {vip} -s {sched}{opt}", f"-D {vip}", f"-Z {vip}", "-Z",
                f"-a {vip} -r {rip} {fwd} -w {w}{th}", f"-e {vip} -r {rip} {fwd} -w {w}{th}",
                f"-d {vip} -r {rip}", "--set 30 0 0", "-C")
    return str(rng.choices(commands, weights=(6, 2, 1, 1, 1, 8, 2, 2, 1, 0.3))[0])


@pytest.mark.parametrize("seed", range(4))
def test_random_command_streams_agree(seed: int) -> None:
    """Random ipvsadm commands (good and bad) through both: same outcome, same state, every step."""
    import random  # noqa: PLC0415

    rng = random.Random(seed)
    c, p = cores(svc_max=4, dest_max=8)
    sc, sp = ConfigState(c), ConfigState(p)
    for _ in range(120):
        text = "\n".join(_random_command(rng) for _ in range(rng.choice((1, 1, 2, 3)))) + "\n"
        outcomes = []
        for st in (sc, sp):
            try:
                r = st.apply_text(text)
                outcomes.append(("ok", r.changed_dest_ids, r.removed_dest_ids))
            except LbError as exc:
                outcomes.append(any_err(exc))
        assert outcomes[0] == outcomes[1], text
        assert view(sp) == view(sc), text
