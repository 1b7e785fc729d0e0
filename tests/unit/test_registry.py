"""Test that the C scheduler registry, the Python twins and ipvsadm agree on the schedulers.

- The C registry (LB_SCHED_LIST through lb_sched_name) holds exactly the twins of lb.sched.ref.SCHEDULERS,
  in the same order, and exactly ipvsadm 1.31's documented `-s` list plus `twos` (kernel 6.3, newer than
  ipvsadm's text).
- Each scheduler accepts the same -b flags in C (lb_sched_flags_ok) and in its twin: sh and mh take
  flag-1/flag-2 (sh-fallback/sh-port, mh-fallback/mh-port), all others none.
- The twin model's flag and event constants are the C ones, and its hash_32 is the C core's.
"""

from __future__ import annotations

import pytest

from lb import model
from lb.core._ffi import lib
from lb.sched import c_schedulers, info, names
from lb.sched.ref import SCHED_NAMES, SCHEDULERS, base

#: ipvsadm 1.31 usage text: "-s scheduler  one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh".
IPVSADM_131_SCHEDULERS = (
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
)
#: Kernel schedulers newer than ipvsadm 1.31's text (ipvsadm passes any name through to the kernel).
NEWER_KERNEL_SCHEDULERS = ("twos",)

#: Which -b flags each scheduler takes (ipvsadm's print_sched_flags names only sh and mh flags).
EXPECTED_FLAGS_OK = {
    "sh": model.SVC_F_SCHED_SH_FALLBACK | model.SVC_F_SCHED_SH_PORT,
    "mh": model.SVC_F_SCHED_MH_FALLBACK | model.SVC_F_SCHED_MH_PORT,
}


def test_c_registry_matches_ipvsadm() -> None:
    assert set(names()) == set(IPVSADM_131_SCHEDULERS) | set(NEWER_KERNEL_SCHEDULERS)
    assert len(names()) == len(set(names()))


def test_c_registry_order_is_lb_sched_list() -> None:
    assert names() == [n for n in SCHED_NAMES if n in names()]


def test_every_c_scheduler_has_a_twin() -> None:
    assert list(SCHEDULERS) == names()


@pytest.mark.parametrize("name", [s.name for s in c_schedulers()])
def test_flags_ok(name: str) -> None:
    got = info(name)
    assert got is not None
    assert got.flags_ok == EXPECTED_FLAGS_OK.get(name, 0)
    if name in SCHEDULERS:
        assert SCHEDULERS[name].flags_ok == got.flags_ok


def test_twin_names_match_their_modules() -> None:
    for name, cls in SCHEDULERS.items():
        assert cls.name == name


def test_constants_match_lb_api_h() -> None:
    assert base.DEST_F_AVAILABLE == lib.LB_DEST_F_AVAILABLE
    assert base.DEST_F_OVERLOAD == lib.LB_DEST_F_OVERLOAD
    events = {
        "BIND_ACTIVE": base.EV_BIND_ACTIVE, "BIND_INACTIVE": base.EV_BIND_INACTIVE,
        "BIND_TEMPLATE": base.EV_BIND_TEMPLATE, "TO_INACTIVE": base.EV_TO_INACTIVE,
        "TO_ACTIVE": base.EV_TO_ACTIVE, "UNBIND_ACTIVE": base.EV_UNBIND_ACTIVE,
        "UNBIND_INACTIVE": base.EV_UNBIND_INACTIVE, "UNBIND_TEMPLATE": base.EV_UNBIND_TEMPLATE,
    }
    for suffix, value in events.items():
        assert getattr(lib, f"LB_EV_{suffix}") == value


def test_hash_32_matches_c() -> None:
    if not hasattr(lib, "lb_hash_hash32"):
        pytest.skip("lb_hash_hash32 not in this build")
    for val in (0, 1, 0x0A000001, 0xFFFFFFFF, 0xDEADBEEF, 123456789):
        for bits in (1, 8, 10, 16, 31):
            assert base.hash_32(val, bits) == lib.lb_hash_hash32(val, bits)


def test_sched_rng_known_values() -> None:
    """splitmix64's published first output from state 0; seed 0 means state = gamma (lb_core_new)."""
    rng = base.SchedRng(0)
    # Seed 0 is replaced by the gamma, so the first state is 2 * gamma: the second splitmix64 output of 0.
    ref = base.SchedRng.__new__(base.SchedRng)
    ref.state = 0
    first, second = ref.next_u64(), ref.next_u64()
    assert first == 0xE220A8397B1DCDAF
    assert rng.next_u64() == second
