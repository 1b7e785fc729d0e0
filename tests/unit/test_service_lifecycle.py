"""Test that deleted services and their dests follow the kernel's trash rules.

- the kernel keeps a deleted service alive (refcount) while trashed dests reference it;
- a new service therefore gets another slot, and adding the same real server to it creates a fresh dest
  (no connection counts or stats carried over from the deleted service);
- once the old connections expire, the old slot is free again;
- a service deleted and added again with the same identity (`ipvsadm -C` then `-R`) takes its old dests back
  from the trash with their connections (ip_vs_trash_get_dest matches protocol + VIP:port, not the object),
  so established connections keep being forwarded.
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


def test_clear_and_reload_revives_dests_with_their_connections() -> None:
    core = Core(conn_max=64, svc_max=4, dest_max=8)
    conns = ConnTable(core)
    a = model.ServiceKey(model.Proto.TCP, ip_address("10.10.0.1"), 80)
    rs = model.Dest(ip_address("10.2.0.11"), 80, model.Fwd.MASQ, 1)
    core.add_service(model.Service(a, "rr"))
    core.add_dest(a, rs)
    (old,) = core.dest_infos(a)
    flow = Flow(ip_address("10.1.0.5"), 40000, ip_address("10.10.0.1"), 80)
    assert conns.batch_schedule([flow], now_ns=S) == [old.id]
    core.flush()  # ipvsadm -C: the conn's dest goes to the trash
    assert conns.batch_lookup([flow], now_ns=2 * S) == [old.id]  # the conn is still in the table
    core.add_service(model.Service(a, "rr"))  # ipvsadm -R: same service identity again
    core.add_dest(a, rs)
    (again,) = core.dest_infos(a)
    assert again.id == old.id  # the same dest, revived
    assert again.activeconns + again.inactconns == 1  # with its live connection
    assert conns.batch_schedule([flow], now_ns=3 * S) == [old.id]  # and the conn still maps to it
    assert len(core.services()) == 1
