"""Test that a deleted service's slot is not reused while its dests still carry connections.

- the kernel keeps a deleted service alive (refcount) while trashed dests reference it;
- a new service therefore gets another slot, and adding the same real server to it creates a fresh dest
  (no connection counts or stats carried over from the deleted service);
- once the old connections expire, the old slot is free again.
"""

from __future__ import annotations

from ipaddress import ip_address

from lb import model
from lb.core.conn import ConnTable
from lb.core.core import Core, Flow

S = 1_000_000_000


def test_deleted_service_slot_kept_while_referenced() -> None:
    core = Core(conn_max=64, svc_max=4, dest_max=8)
    conns = ConnTable(core)
    a = model.ServiceKey(model.Proto.TCP, ip_address("10.10.0.1"), 80)
    b = model.ServiceKey(model.Proto.TCP, ip_address("10.10.0.2"), 80)
    rs = model.Dest(ip_address("10.2.0.11"), 80, model.Fwd.MASQ, 1)
    core.add_service(model.Service(a, "rr"))
    core.add_dest(a, rs)
    old_id = core.dest_infos(a)[0].id
    flow = Flow(ip_address("10.1.0.5"), 40000, ip_address("10.10.0.1"), 80)
    assert conns.batch_schedule([flow], now_ns=S) == [old_id]  # a new connection on rs, in the table
    core.del_service(a)
    core.add_service(model.Service(b, "rr"))
    core.add_dest(b, rs)
    (new,) = core.dest_infos(b)
    assert new.id != old_id
    assert (new.activeconns, new.inactconns) == (0, 0)
    assert core.dest_info(old_id).inactconns + core.dest_info(old_id).activeconns == 1
    # the old connection expires (an hour is past every TCP state's timeout)
    assert conns.expire(now_ns=S + 3600 * S) >= 1
    core.add_service(model.Service(a, "rr"))
    core.add_dest(a, rs)
    (again,) = core.dest_infos(a)
    assert (again.activeconns, again.inactconns) == (0, 0)
