"""Test that --workers followers track worker 0's configuration:
- a snapshot applied to an empty core reproduces services, dests (in list order) and weights;
- edits, removals and additions are applied as the smallest set of calls: a dest that did not change
  keeps its id (its connections are not disturbed);
- snapshots travel over a pipe (Publisher -> Follower), the newest wins, on_change fires once per change.
"""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address

from lb import model
from lb.core.core import Core
from lb.io.workers import Follower, Publisher, snapshot, sync_core

VIP = IPv4Address("10.1.0.100")
UDP = model.ServiceKey(model.Proto.UDP, VIP, 5000)
TCP = model.ServiceKey(model.Proto.TCP, VIP, 80)


def dest(last: int, weight: int = 1, fwd: model.Fwd = model.Fwd.MASQ) -> model.Dest:
    return model.Dest(IPv4Address(f"10.2.0.{last}"), 5000, fwd, weight)


def view(core: Core) -> list[tuple[model.Service, list[model.Dest]]]:
    return [(st.service, [d.dest for d in st.dests]) for st in core.services()]


def leader() -> Core:
    a = Core(conn_max=64)
    a.add_service(model.Service(UDP, "rr"))
    for i in (2, 3, 4):
        a.add_dest(UDP, dest(i))
    a.add_service(model.Service(TCP, "wlc"))
    a.add_dest(TCP, dest(9, 3, model.Fwd.DROUTE))
    return a


def test_snapshot_reproduces_configuration() -> None:
    a, b = leader(), Core(conn_max=64)
    assert sync_core(b, json.loads(snapshot(a)))
    assert view(b) == view(a)
    assert not sync_core(b, json.loads(snapshot(a)))  # nothing left to do


def test_changes_are_minimal() -> None:
    a, b = leader(), Core(conn_max=64)
    sync_core(b, json.loads(snapshot(a)))
    kept = {d.dest.key: d.id for d in b.dest_infos(UDP)}
    a.edit_dest(UDP, dest(3, weight=5))
    a.del_dest(UDP, dest(4).key)
    a.add_dest(UDP, dest(7))
    a.del_service(TCP)
    a.edit_service(model.Service(UDP, "wrr"))
    assert sync_core(b, json.loads(snapshot(a)))
    assert view(b) == view(a)
    after = {d.dest.key: d.id for d in b.dest_infos(UDP)}
    assert after[dest(2).key] == kept[dest(2).key]
    assert after[dest(3).key] == kept[dest(3).key]  # edited in place, not re-added


def test_publisher_follower_over_a_pipe() -> None:
    a, b = leader(), Core(conn_max=64)
    r, w = os.pipe()
    pub = Publisher([w])
    changes = []
    fol = Follower(r, b, on_change=lambda: changes.append(1))
    try:
        assert fol.poll() == 0  # nothing yet
        pub.publish(a)
        a.add_dest(UDP, dest(8))
        pub.publish(a)  # two snapshots queued: the follower applies the newest
        assert fol.poll() == 1
        assert view(b) == view(a)
        assert changes == [1]
    finally:
        pub.close()
        fol.close()
