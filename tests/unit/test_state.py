"""Test that ConfigState changes the balancer atomically, with the kernel's errors.

- a -R text with a refused line in the middle changes nothing (model and C core alike);
- a change set that passes validation but fails in the core (service table full: ENOMEM) is rolled back:
  services, dests and their order are what they were;
- errors come in the kernel's order with ipvsadm's messages (EEXIST before a bad scheduler on -A, ESRCH,
  ENOENT, ERANGE for thresholds, "Scheduler or persistence engine not found");
- -E / -e replace the whole service / dest like ipvsadm does; --set 0 keeps a timeout;
- load_rules applies text to a bare Core and returns the ids of new dests; -Z zeroes counters and rates.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lb import model
from lb.config import Change, emit_rules, parse_rules
from lb.core.core import EV_BIND_ACTIVE, Core
from lb.errors import ConfigError, IpvsError
from lb.state import ConfigState, load_rules

BASE = """-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 2
-A -u 10.0.0.1:53 -s wlc
-a -u 10.0.0.1:53 -r 10.0.1.3:53 -g -w 1
"""
K80 = model.ServiceKey(model.Proto.TCP, IPv4Address("10.0.0.1"), 80)


def state(svc_max: int = 16) -> ConfigState:
    st = ConfigState(Core(conn_max=1024, svc_max=svc_max, dest_max=256))
    st.apply_text(BASE)
    return st


def snapshot(st: ConfigState) -> tuple[str, list[tuple[model.ServiceKey, list[model.Dest]]]]:
    core_view = [(s.service.key, [d.dest for d in s.dests]) for s in st.core.services()]
    return emit_rules(st.status()), core_view


def test_bad_line_in_the_middle_changes_nothing() -> None:
    st = state()
    before = snapshot(st)
    text = """-A -t 10.0.0.2:80 -s wlc
-a -t 10.0.0.2:80 -r 10.0.2.1:80 -m
-d -t 10.0.0.1:80 -r 10.0.1.1:80
-a -t 10.0.0.9:80 -r 10.0.2.2:80 -m
-A -t 10.0.0.3:80
"""
    with pytest.raises(IpvsError) as exc:
        st.apply_text(text)
    assert str(exc.value) == "Service not defined" and exc.value.exit_code == 255
    assert snapshot(st) == before


def test_unparsable_line_changes_nothing() -> None:
    st = state()
    before = snapshot(st)
    with pytest.raises(ConfigError, match="line 2: illegal weight specified"):
        st.apply_text("-C\n-a -t 10.0.0.1:80 -r 10.0.9.9 -w 70000\n")
    assert snapshot(st) == before


def test_core_failure_is_rolled_back() -> None:
    st = state(svc_max=3)
    before = snapshot(st)
    st.svc_max = 1 << 20  # let validation pass so the core itself refuses the 4th service
    text = (
        "-D -t 10.0.0.1:80\n-e -u 10.0.0.1:53 -r 10.0.1.3 -w 7\n-A -t 10.0.0.5:80\n-A -t 10.0.0.6:80\n"
        "-A -t 10.0.0.7:80\n"
    )
    with pytest.raises(IpvsError) as exc:
        st.apply_text(text)
    assert str(exc.value) == "Memory allocation problem"
    assert snapshot(st) == before
    # the restored service still schedules onto its dests
    assert st.core.sched_batch(K80, []) == []


def test_flush_rolled_back_restores_everything() -> None:
    st = state(svc_max=2)
    before = snapshot(st)
    st.svc_max = 1 << 20
    with pytest.raises(IpvsError):
        st.apply_text("-C\n-A -t 10.0.0.5:80\n-A -t 10.0.0.6:80\n-A -t 10.0.0.7:80\n")
    assert snapshot(st) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-A -t 10.0.0.1:80 -s bogus", "Service already exists"),
        ("-A -t 10.0.0.2:80 -s bogus", "Scheduler or persistence engine not found"),
        ("-A -t 10.0.0.2:80 --pe sip", "Scheduler or persistence engine not found"),
        ("-E -t 10.0.0.2:80 -s rr", "No such service"),
        ("-E -t 10.0.0.1:80 -s bogus", "Scheduler or persistence engine not found"),
        ("-D -t 10.0.0.2:80", "No such service"),
        ("-Z -t 10.0.0.2:80", "No such service"),
        ("-a -t 10.0.0.2:80 -r 10.0.1.1", "Service not defined"),
        ("-a -t 10.0.0.1:80 -r 10.0.1.1 -m", "Destination already exists"),
        ("-e -t 10.0.0.1:80 -r 10.0.1.9 -m", "No such destination"),
        ("-d -t 10.0.0.1:80 -r 10.0.1.9", "No such destination"),
        ("-a -t 10.0.0.1:80 -r 10.0.1.9 -m -x 10 -y 20", "Numerical result out of range"),
        ("-a -t 10.0.0.1:80 -r 10.0.1.9 -m -y 5", "Numerical result out of range"),
        (
            "-a -t 10.0.0.1:80 -r 224.0.0.1 -m",
            "Invalid operation.  Possibly wrong module version, address not unicast, ...",
        ),
    ],
)
def test_kernel_errors(text: str, message: str) -> None:
    st = state()
    before = snapshot(st)
    with pytest.raises(IpvsError) as exc:
        st.apply_text(text)
    assert str(exc.value) == message
    assert snapshot(st) == before


def test_edit_replaces_like_ipvsadm() -> None:
    st = state()
    st.apply_text("-E -t 10.0.0.1:80 -p\n-e -t 10.0.0.1:80 -r 10.0.1.2:80 -m -x 100\n")
    svc = next(s for s in st.services() if s.key == K80)
    assert (svc.sched, svc.persistent, svc.timeout) == ("wlc", True, 360)  # -s omitted: back to wlc
    d = next(d for d in st.dests(K80) if d.port == 80 and d.addr == IPv4Address("10.0.1.2"))
    assert (d.weight, d.u_threshold, d.fwd) == (1, 100, model.Fwd.MASQ)
    info = next(i for i in st.core.dest_infos(K80) if i.dest.addr == IPv4Address("10.0.1.2"))
    assert info.dest == d


def test_set_zero_keeps_timeout() -> None:
    st = state()
    st.apply(parse_rules("--set 1000 0 60\n"))
    assert st.timeouts == model.Timeouts(1000, 120, 60)


def test_load_rules_on_bare_core_returns_new_dest_ids() -> None:
    core = Core(conn_max=1024, svc_max=8, dest_max=64)
    ids = load_rules(core, BASE)
    assert len(ids) == 3
    assert sorted(ids) == sorted(i.id for s in core.services() for i in core.dest_infos(s.service.key))
    assert load_rules(core, "-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 5\n") == [
        next(i.id for i in core.dest_infos(K80) if i.dest.addr == IPv4Address("10.0.1.1"))
    ]
    with pytest.raises(IpvsError):
        load_rules(core, "-A -t 10.0.0.1:80\n")
    assert len(core.services()) == 2


def test_zero_resets_counters_and_rates() -> None:
    st = state()
    st.tick(0.0)
    st.tick(2.0)
    st.apply([Change("zero", key=K80)])
    s = next(x for x in st.status() if x.service.key == K80)
    assert s.stats == model.Stats() and s.rates == model.Rates()


def test_state_adopts_an_already_configured_core() -> None:
    st = state()
    st.core.dest_event(st.core.dest_infos(K80)[0].id, EV_BIND_ACTIVE)
    again = ConfigState(st.core)
    assert emit_rules(again.status()) == emit_rules(st.status())
    assert sum(d.activeconns for s in again.status() for d in s.dests) == 1
