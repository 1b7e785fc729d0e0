"""Test that the hashing schedulers (sh, dh, mh, lblc, lblcr) make the picks worked out by hand.

Every case runs on both engines (the C core and the Python twin) and on the kernel's arithmetic:
- the hash helpers give the kernel's numbers (hash_32; hsiphash against lib/siphash's 64-bit test vector);
- sh fills 256 buckets weight by weight in list order, keeps a client on one server, mixes in the port
  with sh-port, and walks past an unavailable server with sh-fallback;
- dh deals servers round-robin into 256 buckets whatever their weights and hashes the destination address;
- mh has 4093 slots shared out in turns (1 : 2 -> 1365 : 2728), keeps a quiesced server's slots, scales
  big weights down with the gcd/shift rule, and walks on with mh-fallback;
- lblc/lblcr cache, replace and expire entries on the time passed in (no clock, no sleeping).
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest

from lb import model
from lb.core._ffi import ffi, lib
from lb.core.core import Core, Flow
from lb.sched.ref import SCHEDULERS
from lb.sched.ref.base import (
    EV_BIND_ACTIVE,
    EV_BIND_INACTIVE,
    RefDest,
    RefFlow,
    RefService,
    SchedRng,
    hash_32,
)
from lb.sched.ref.hashing import addr_fold, hsiphash_u32

S = 10**9
VIP = model.parse_addr("10.0.0.100")
KEY = model.ServiceKey(model.Proto.TCP, VIP, 80)
SH_FALLBACK = MH_FALLBACK = 0x0008
SH_PORT = MH_PORT = 0x0010
MH_KEY1 = 2654435761


def ip(text: str) -> IPv4Address:
    addr = model.parse_addr(text)
    assert isinstance(addr, IPv4Address)
    return addr


class Engine:
    """One service on one engine, driven by server address ("10.0.0.1") and answering with addresses."""

    def __init__(self, engine: str, sched: str, flags: int = 0) -> None:
        self.engine, self.sched, self.flags = engine, sched, flags
        self.rng = SchedRng()
        if engine == "c":
            self.core = Core(conn_max=1024, svc_max=4, dest_max=64)
            self.core.add_service(model.Service(KEY, sched, flags))
        else:
            self.ref = RefService(SCHEDULERS[sched](), flags, KEY)

    def set_flags(self, flags: int) -> None:
        self.flags = flags
        if self.engine == "c":
            self.core.edit_service(model.Service(KEY, self.sched, flags))
        else:
            self.ref.flags = flags

    def add(self, addr: str, weight: int, u: int = 0) -> None:
        d = model.Dest(ip(addr), 80, weight=weight, u_threshold=u)
        if self.engine == "c":
            self.core.add_dest(KEY, d)
        else:
            self.ref.add_dest(d)

    def edit(self, addr: str, weight: int, u: int = 0) -> None:
        d = model.Dest(ip(addr), 80, weight=weight, u_threshold=u)
        if self.engine == "c":
            self.core.edit_dest(KEY, d)
        else:
            self.ref.edit_dest(d)

    def delete(self, addr: str) -> None:
        k = model.DestKey(ip(addr), 80)
        if self.engine == "c":
            self.core.del_dest(KEY, k)
        else:
            self.ref.del_dest(k)

    def _id_of(self, addr: str) -> int:
        return next(i.id for i in self.core.dest_infos(KEY) if str(i.dest.addr) == addr)

    def _addr_of(self, dest_id: int) -> str | None:
        return None if dest_id < 0 else str(self.core.dest_info(dest_id).dest.addr)

    def event(self, addr: str, ev: int) -> None:
        if self.engine == "c":
            self.core.dest_event(self._id_of(addr), ev)
        else:
            d = self.ref.find(model.DestKey(ip(addr), 80))
            assert d is not None
            d.account(ev)

    def pick(self, saddr: str, sport: int = 1024, daddr: str = "10.0.0.100", now: int = 0) -> str | None:
        if self.engine == "c":
            f = Flow(ip(saddr), sport, ip(daddr), 80)
            return self._addr_of(self.core.sched_batch(KEY, [f], now)[0])
        d = self.ref.schedule(RefFlow(ip(saddr), sport, ip(daddr), 80), now, self.rng)
        return None if d is None else str(d.addr)

    def tick(self, now: int) -> None:
        if self.engine == "c":
            self.core.tick(now)
        else:
            self.ref.tick(now)

    def table(self) -> list[str | None]:
        """sh/dh buckets or mh slots as server addresses."""
        if self.engine == "c":
            fns = {"sh": lib.lb_sched_sh_table, "dh": lib.lb_sched_dh_table, "mh": lib.lb_sched_mh_table}
            fn = fns[self.sched]
            out = ffi.new("int32_t[]", 4096)
            n = fn(self.core.ptr, self.core.svc_cfg(KEY), out, 4096)
            names = {i.id: str(i.dest.addr) for i in self.core.dest_infos(KEY)}
            return [names.get(out[i]) for i in range(n)]
        data: Any = self.ref.sched_data
        slots: list[RefDest | None] = data.lookup if self.sched == "mh" else data
        return [None if d is None else str(d.addr) for d in slots]

    def entry(self, daddr: str) -> tuple[list[str], int]:
        """lblc/lblcr: the cached servers for daddr (newest first) and the entry's last use."""
        if self.engine == "c":
            raw = ffi.new("uint8_t[16]", ip(daddr).packed + bytes(12))
            out = ffi.new("int32_t[]", 8)
            lastuse = ffi.new("uint64_t *")
            cfg = self.core.svc_cfg(KEY)
            n = lib.lb_sched_locality_lookup(self.core.ptr, cfg, raw, out, 8, lastuse, ffi.NULL)
            assert n >= 0
            return [str(self._addr_of(out[i])) for i in range(n)], int(lastuse[0]) if n else 0
        en = SCHEDULERS[self.sched].lookup(self.ref, ip(daddr))  # type: ignore[attr-defined]
        if en is None:
            return [], 0
        dests = [en.dest] if self.sched == "lblc" else en.dests
        return [str(d.addr) for d in dests], en.lastuse

    def entries_counter(self) -> int:
        if self.engine == "c":
            return int(lib.lb_sched_locality_entries(self.core.ptr, self.core.svc_cfg(KEY)))
        return int(self.ref.sched_data.entries)


ENGINES = ["c", "py"]


def test_hash_helpers_match_the_kernel() -> None:
    # hash_32(0x0a000005, 8): 0x0a000005 * 0x61C88647 = 0xAEEA9F63 (mod 2^32), top byte 0xAE = 174
    assert hash_32(0x0A000005, 8) == 174 == lib.lb_hash_hash32(0x0A000005, 8)
    # lib/siphash test vector (64-bit): key bytes 00..0f, message 00 01 02 03 -> 0x88d38328
    k0, k1 = 0x0706050403020100, 0x0F0E0D0C0B0A0908
    assert hsiphash_u32(0x03020100, k0, k1) == 0x88D38328 == lib.lb_hash_hsiphash32(0x03020100, k0, k1)
    for v in (0, 1, 0x0A000001, 0xFFFFFFFF):
        assert hsiphash_u32(v, MH_KEY1, MH_KEY1) == lib.lb_hash_hsiphash32(v, MH_KEY1, MH_KEY1)
    # the IPv6 fold: XOR of the four big-endian words
    assert addr_fold(6, model.parse_addr("2001:db8::1:2")) == 0x20010DB8 ^ 0x00010002


@pytest.mark.parametrize("engine", ENGINES)
def test_sh_fills_by_weight_and_hashes_the_client(engine: str) -> None:
    e = Engine(engine, "sh")
    e.add("10.0.0.1", 2)  # A
    e.add("10.0.0.2", 1)  # B, now first in the list: B A A B A A ... (bucket i is B when i % 3 == 0)
    table = e.table()
    assert len(table) == 256
    assert table == [("10.0.0.2" if i % 3 == 0 else "10.0.0.1") for i in range(256)]
    assert table.count("10.0.0.2") == 86  # 256 = 3 * 85 + 1
    # 10.0.0.5 -> hash 174, 174 % 3 == 0 -> B, whatever its port; 10.0.0.6 -> hash 16 -> A
    assert e.pick("10.0.0.5", 1234) == e.pick("10.0.0.5", 4321) == "10.0.0.2"
    assert e.pick("10.0.0.6") == "10.0.0.1"
    # sh-port: hash_32(1234 + 0x0a000005, 8) = 7 -> A; port 1235 -> 105 -> B
    e.set_flags(SH_PORT)
    assert e.pick("10.0.0.5", 1234) == "10.0.0.1"
    assert e.pick("10.0.0.5", 1235) == "10.0.0.2"


@pytest.mark.parametrize("engine", ENGINES)
def test_sh_fallback_skips_unavailable(engine: str) -> None:
    e = Engine(engine, "sh")
    e.add("10.0.0.1", 2)
    e.add("10.0.0.2", 1)
    e.edit("10.0.0.2", 0)  # quiesced: still one bucket per round, but refused
    assert e.table()[174] == "10.0.0.2"
    assert e.pick("10.0.0.5") is None
    e.set_flags(SH_FALLBACK)  # probe (0 + 2 * 174) & 255 = 92 -> 92 % 3 = 2 -> A
    assert e.pick("10.0.0.5") == "10.0.0.1"
    # OVERLOAD: A with u_threshold 1 and an active conn; 10.0.0.6 -> 16 (A) -> probes 32 (A), 33 (B)
    e.edit("10.0.0.2", 1)
    e.edit("10.0.0.1", 2, u=1)
    e.event("10.0.0.1", EV_BIND_ACTIVE)
    assert e.pick("10.0.0.6") == "10.0.0.2"
    e.set_flags(0)
    assert e.pick("10.0.0.6") is None


@pytest.mark.parametrize("engine", ENGINES)
def test_dh_deals_round_robin_and_hashes_the_destination(engine: str) -> None:
    e = Engine(engine, "dh")
    e.add("10.0.0.1", 5)
    e.add("10.0.0.2", 1)  # weights do not matter: B A B A ...
    assert e.table() == [("10.0.0.2" if i % 2 == 0 else "10.0.0.1") for i in range(256)]
    # daddr 10.0.0.5 -> 174 (even: B) from any client; 10.0.0.10 -> 151 (odd: A)
    assert e.pick("10.9.9.9", daddr="10.0.0.5") == e.pick("10.8.8.8", daddr="10.0.0.5") == "10.0.0.2"
    assert e.pick("10.9.9.9", daddr="10.0.0.10") == "10.0.0.1"
    e.edit("10.0.0.2", 0)
    assert e.pick("10.9.9.9", daddr="10.0.0.5") is None


def mh_slot(addr: str, port: int = 0) -> int:
    """The kernel's slot for a client: hsiphash(ntohl(addr) + port, key1) % 4093."""
    return hsiphash_u32((int(ip(addr)) + port) & 0xFFFFFFFF, MH_KEY1, MH_KEY1) % 4093


@pytest.mark.parametrize("engine", ENGINES)
def test_mh_table_shares_and_quiescing(engine: str) -> None:
    e = Engine(engine, "mh")
    assert e.table() == [None] * 4093
    e.add("10.0.0.1", 2)  # A: 2 turns a round
    e.add("10.0.0.2", 1)  # B: 1 turn, first in the list
    table = e.table()
    assert len(table) == 4093
    # 3 slots a round; 4093 = 3 * 1364 + 1 and B claims the odd one
    assert (table.count("10.0.0.2"), table.count("10.0.0.1")) == (1365, 2728)
    # B claims first: its offset hsiphash(ntohl(10.0.0.2) + 80, key1) % 4093
    assert table[mh_slot("10.0.0.2", 80)] == "10.0.0.2"
    clients = [f"10.1.0.{i}" for i in range(1, 21)]
    for c in clients:
        assert e.pick(c, 999) == table[mh_slot(c)]
    # mh-port: the slot moves with the source port
    e.set_flags(MH_PORT)
    assert e.pick("10.1.0.1", 999) == table[mh_slot("10.1.0.1", 999)]
    e.set_flags(0)
    # A quiesced (weight 0): last_weight stays 2, the table does not move, A's clients are refused
    e.edit("10.0.0.1", 0)
    assert e.table() == table
    to_a = next(c for c in clients if table[mh_slot(c)] == "10.0.0.1")
    assert e.pick(to_a) is None
    e.set_flags(MH_FALLBACK)
    assert e.pick(to_a) == "10.0.0.2"
    # big weights: 1000 and 1 -> rshift = fls(1000) - 6 = 4, turns 62 and 1: 63 a round,
    # 4093 = 64 * 63 + 61 -> B 64 + 1 = 65, A 64 * 62 + 60 = 4028
    e.edit("10.0.0.1", 1000)
    table = e.table()
    assert (table.count("10.0.0.2"), table.count("10.0.0.1")) == (65, 4028)


def test_mh_whole_table_c_equals_twin() -> None:
    c, py = Engine("c", "mh"), Engine("py", "mh")
    for i, w in enumerate([3, 1, 4, 1, 5, 9, 2, 6], start=1):
        for e in (c, py):
            e.add(f"10.0.1.{i}", w)
    assert c.table() == py.table()
    for e in (c, py):
        e.delete("10.0.1.3")
        e.edit("10.0.1.6", 0)
    assert c.table() == py.table()


@pytest.mark.parametrize("engine", ENGINES)
def test_lblc_caches_replaces_and_expires(engine: str) -> None:
    e = Engine(engine, "lblc")
    e.add("10.0.0.1", 1)  # A
    e.add("10.0.0.2", 1)  # B, first in the list
    # equal load: the first candidate (B) wins ties; the timer is armed at t = 0
    assert e.pick("10.9.0.1", daddr="10.0.0.5", now=0) == "10.0.0.2"
    e.event("10.0.0.2", EV_BIND_INACTIVE)
    assert e.pick("10.9.0.2", daddr="10.0.0.5", now=10 * S) == "10.0.0.2"  # cached, though busier
    assert e.entry("10.0.0.5") == (["10.0.0.2"], 10 * S)
    # B: 2 active > weight 1 while A has 0 * 2 < 1 -> overloaded: A replaces B in the entry
    e.event("10.0.0.2", EV_BIND_ACTIVE)
    e.event("10.0.0.2", EV_BIND_ACTIVE)
    assert e.pick("10.9.0.3", daddr="10.0.0.5", now=20 * S) == "10.0.0.1"
    assert e.entry("10.0.0.5") == (["10.0.0.1"], 20 * S)
    assert e.entries_counter() == 2  # the kernel does not lower its counter on a replacement
    # full sweeps run at every 30th 60 s firing (30, 60, ... minutes); the entry last used at 20 s
    # goes at the first one at or after 20 s + 24 h = 86420 s: firing 1470, at 88200 s
    e.tick(88199 * S)
    assert e.entry("10.0.0.5")[0] == ["10.0.0.1"]
    e.tick(88200 * S)
    assert e.entry("10.0.0.5") == ([], 0)
    assert e.entries_counter() == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_lblc_expiry_runs_from_schedule_without_ticks(engine: str) -> None:
    e = Engine(engine, "lblc")
    e.add("10.0.0.1", 1)
    e.add("10.0.0.2", 1)
    assert e.pick("10.9.0.1", daddr="10.0.0.7", now=0) == "10.0.0.2"
    e.event("10.0.0.2", EV_BIND_INACTIVE)  # B now busier than A
    # still cached after 23 h (the last full sweep, at 82800 s, keeps it) ...
    assert e.pick("10.9.0.1", daddr="10.0.0.8", now=23 * 3600 * S) == "10.0.0.1"
    assert e.entry("10.0.0.7") == (["10.0.0.2"], 0)
    # ... gone at the sweep of 86400 s (0 + 24 h): the next lookup picks the least loaded (A)
    assert e.pick("10.9.0.1", daddr="10.0.0.7", now=86400 * S) == "10.0.0.1"


@pytest.mark.parametrize("engine", ENGINES)
def test_lblcr_grows_and_sheds_its_set(engine: str) -> None:
    e = Engine(engine, "lblcr")
    e.add("10.0.0.1", 1)
    e.add("10.0.0.2", 1)
    assert e.pick("10.9.0.1", daddr="10.0.0.5", now=0) == "10.0.0.2"
    e.event("10.0.0.2", EV_BIND_ACTIVE)
    e.event("10.0.0.2", EV_BIND_ACTIVE)  # B overloaded: A joins the set at 5 s
    assert e.pick("10.9.0.2", daddr="10.0.0.5", now=5 * S) == "10.0.0.1"
    assert e.entry("10.0.0.5") == (["10.0.0.1", "10.0.0.2"], 5 * S)
    # looked up every 6 h, the entry lives; the set is unchanged since 5 s
    for h in (6, 12, 18, 24):
        assert e.pick("10.9.0.3", daddr="10.0.0.5", now=h * 3600 * S) == "10.0.0.1"
    t = (24 * 3600 + 5) * S  # lastmod + 24 h exactly: not yet ("time_after" is strict)
    assert e.pick("10.9.0.3", daddr="10.0.0.5", now=t) == "10.0.0.1"
    assert e.entry("10.0.0.5")[0] == ["10.0.0.1", "10.0.0.2"]
    # one ns later the most loaded member (B, overhead 512 vs 0) is dropped
    assert e.pick("10.9.0.3", daddr="10.0.0.5", now=t + 1) == "10.0.0.1"
    assert e.entry("10.0.0.5")[0] == ["10.0.0.1"]
    assert e.entries_counter() == 1


def test_lblc_reused_dest_after_delete_and_readd_matches() -> None:
    """A deleted server held by an lblc entry comes back as the same server when re-added (the trash)."""
    picks: dict[str, tuple[str | None, str | None]] = {}
    for engine in ENGINES:
        e = Engine(engine, "lblc")
        e.add("10.0.0.1", 1)
        e.add("10.0.0.2", 1)
        first = e.pick("10.9.0.1", daddr="10.0.0.5", now=0)  # B
        e.delete("10.0.0.2")
        e.add("10.0.0.2", 1)
        # B busier than A: a fresh least-connection pick would be A, the revived cached B is kept
        e.event("10.0.0.1", EV_BIND_INACTIVE)
        e.event("10.0.0.2", EV_BIND_INACTIVE)
        e.event("10.0.0.2", EV_BIND_INACTIVE)
        picks[engine] = (first, e.pick("10.9.0.2", daddr="10.0.0.5", now=S))
    assert picks["c"] == picks["py"] == ("10.0.0.2", "10.0.0.2")
