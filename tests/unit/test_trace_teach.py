"""Test that `lb trace`'s balancer step comes from the live balancer's trace ring when it can be asked.

- LiveTrace arms a running daemon's ring over its real unix socket for the lab client's connections to the
  VIP, and after the traffic reads back one record per connection (keyed by client address and port) and
  stops the ring;
- the step text shows the service lookup, every dest's weight and counts as the scheduler saw them, the
  wlc arithmetic, the pick, the state change, the forwarding method and the rewritten fields, and says
  whether the pick agrees with where the capture saw the SYN go;
- without a socket (or with a daemon that cannot trace), LiveTrace says why and holds no records, so the
  ladder falls back to the replay.
"""

from __future__ import annotations

import threading
from pathlib import Path

from test_trace_core import CIP, OTHER, VIP, _core, _syn

from lb.core.batch import PacketBatch, process_batch
from lb.daemon.server import Server
from lb.state import ConfigState
from lb.teach.trace import LiveTrace, live_step_text


def test_live_trace_over_the_socket(tmp_path: Path) -> None:
    core = _core()
    server = Server(ConfigState(core), str(tmp_path / "lb.sock")).start()
    stop = threading.Event()
    th = threading.Thread(target=server.serve_forever, args=(stop, 0.02), daemon=True)
    th.start()
    try:
        live = LiveTrace(tmp_path / "lb.sock")
        assert live.arm(2, CIP, VIP), live.error
        batch = PacketBatch(8)
        for src, port in ((OTHER, 1), (CIP, 40100), (CIP, 40101), (CIP, 40102)):
            batch.add(_syn(src, port))
        process_batch(core, batch, 10_000)     # between polls, as the run loop does
        live.collect()
    finally:
        stop.set()
        th.join(timeout=5)
        server.close()
    assert sorted(live.records) == [(CIP, 40100), (CIP, 40101)]
    assert live.error == ""
    rec = live.records[(CIP, 40100)]
    names = {"10.1.0.11": "real1", "10.1.0.12": "real2", "10.1.0.13": "real3"}
    picked = names[rec.conn_daddr]
    text = live_step_text(rec, names, picked)
    assert "live balancer's data plane" in text
    assert "service lookup: TCP 10.0.0.100:80" in text and "scheduler wlc, 3 real servers" in text
    for d in rec.dests:
        assert f"{names[d.addr]} {d.addr}:8080: weight {d.weight}, active {d.activeconns}, " \
               f"inactive {d.inactconns}" in text
    assert "the rule's winner" in text
    assert "NONE -> SYN_RECV, forwarding MASQ" in text
    assert "ip.dst" in text and "l4.dport" in text
    assert "agrees with the record" in text
    other = next(n for n in names.values() if n != picked)
    assert f"DISAGREES with the record ({picked})" in live_step_text(rec, names, other)


def test_live_trace_unavailable(tmp_path: Path) -> None:
    none = LiveTrace(None)
    assert not none.arm(1, CIP, VIP) and "no control socket" in none.error
    gone = LiveTrace(tmp_path / "nobody.sock")
    assert not gone.arm(1, CIP, VIP)
    gone.collect()
    assert gone.records == {} and "Can't initialize ipvs" in gone.error
