"""Maglev hashing (twin of csched/src/sched_mh.c, kernel ip_vs_mh.c; Eisenbud et al., NSDI'16, 3.4).

The lookup table has 4093 slots (CONFIG_IP_VS_MH_TAB_INDEX default 12 -> primes[12 - 8]).

Permutation (ip_vs_mh_permutate), per dest in list order, with the fixed keys of generate_hash_secret():
  offset = hsiphash(ntohl(addr) + port, key1) % 4093,   skip = hsiphash(same, key2) % 4092 + 1,
  turns  = (last_weight / gcd) >> rshift, or 1 when that is 0 but last_weight is not,
where gcd is the gcd of the positive last_weights and rshift = max(0, fls(max_last_weight / gcd) - 6).

Population (ip_vs_mh_populate): dests take turns in list order; a dest with `turns` t claims its next t
free preferred slots (offset, offset + skip, offset + 2 skip, ... mod 4093) before the next dest's go,
round and round until all 4093 slots are claimed.  Dests with turns 0 (last_weight 0) claim nothing.

last_weight (kernel __ip_vs_update_dest) follows the weight except that an edit to 0 leaves it: a
quiesced dest keeps its slots, so its clients are refused (or, with mh-fallback, walk on) instead of
being reshuffled to other dests.

Lookup: slot = hsiphash(ntohl(addr_fold(saddr)) + port, key1) % 4093 (port: the source port with mh-port,
TCP/UDP/SCTP only).  Unavailable = weight <= 0 or OVERLOAD.  mh-fallback re-hashes with offsets
(i + slot) % 4093 for i = 0..4092 until an available dest turns up; an empty slot ends the walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from lb.sched.ref.base import DEST_F_OVERLOAD, U32, FlowLike, RefDest, RefScheduler, RefService, SchedRng
from lb.sched.ref.hashing import addr_fold, flow_port, hsiphash_u32, svc_af

SVC_F_SCHED_MH_FALLBACK = 0x0008
SVC_F_SCHED_MH_PORT = 0x0010
PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
TAB_INDEX_CONFIG = 12
TAB_SIZE = PRIMES[TAB_INDEX_CONFIG - 8]
TAB_BITS = TAB_INDEX_CONFIG // 2
HASH1_KEY = 2654435761
HASH2_KEY = 2654446892


def unavailable(d: RefDest) -> bool:
    return d.weight <= 0 or bool(d.flags & DEST_F_OVERLOAD)


def hashkey(fold: int, port: int, key: int, offset: int) -> int:
    """ip_vs_mh_hashkey: hsiphash of the u32 offset + port + ntohl(addr_fold)."""
    return hsiphash_u32((offset + port + fold) & U32, key, key)


@dataclass(slots=True)
class DestSetup:
    """ip_vs_mh_dest_setup: where a dest's preferences start, its step, its next slot, its turns."""

    dest: RefDest
    perm: int
    skip: int
    turns: int


class MaglevState:
    """The lookup table plus the gcd/shift the last rebuild used."""

    def __init__(self) -> None:
        self.lookup: list[RefDest | None] = [None] * TAB_SIZE
        self.gcd = 0
        self.rshift = 0


class MaglevHashing(RefScheduler):
    name = "mh"
    flags_ok = SVC_F_SCHED_MH_FALLBACK | SVC_F_SCHED_MH_PORT

    # -- table building --

    @staticmethod
    def gcd_weight(svc: RefService) -> int:
        g = 0
        for d in svc.dests:
            if d.last_weight > 0:
                g = gcd(d.last_weight, g) if g > 0 else d.last_weight
        return g

    @staticmethod
    def shift_weight(svc: RefService, g: int) -> int:
        if g < 1:
            return 0
        weight = max([0, *(d.last_weight for d in svc.dests)])
        shift = (weight // g).bit_length() - TAB_BITS  # bit_length() is the kernel's fls()
        return max(shift, 0)

    @staticmethod
    def populate(svc: RefService, g: int, rshift: int) -> list[RefDest | None]:
        if g < 1:
            return [None] * TAB_SIZE
        af = svc_af(svc.key)
        setup: list[DestSetup] = []
        for d in svc.dests:
            fold = addr_fold(af, d.addr)
            offset = hashkey(fold, d.port, HASH1_KEY, 0) % TAB_SIZE
            skip = hashkey(fold, d.port, HASH2_KEY, 0) % (TAB_SIZE - 1) + 1
            turns = (d.last_weight // g) >> rshift or int(d.last_weight != 0)
            setup.append(DestSetup(d, offset, skip, turns))
        table: list[RefDest | None] = [None] * TAB_SIZE
        taken = [False] * TAB_SIZE
        n = 0
        while True:
            for ds in setup:
                for _ in range(ds.turns):  # turns < 1: this dest claims nothing
                    while taken[ds.perm]:
                        ds.perm = (ds.perm + ds.skip) % TAB_SIZE
                    taken[ds.perm] = True
                    table[ds.perm] = ds.dest
                    n += 1
                    if n == TAB_SIZE:
                        return table

    def rebuild(self, svc: RefService) -> None:
        s: MaglevState = svc.sched_data
        s.gcd = self.gcd_weight(svc)
        s.rshift = self.shift_weight(svc, s.gcd)
        if svc.num_dests > TAB_SIZE:  # ip_vs_mh_reassign refuses (-EINVAL), the table stays
            return
        s.lookup = self.populate(svc, s.gcd, s.rshift)

    # -- hooks --

    def init_service(self, svc: RefService) -> None:
        svc.sched_data = MaglevState()
        self.rebuild(svc)

    def done_service(self, svc: RefService) -> None:
        svc.sched_data = None

    def add_dest(self, svc: RefService, dest: RefDest) -> None:
        self.rebuild(svc)

    def del_dest(self, svc: RefService, dest: RefDest) -> None:
        self.rebuild(svc)

    def upd_dest(self, svc: RefService, dest: RefDest) -> None:
        self.rebuild(svc)

    def schedule(self, svc: RefService, flow: FlowLike, now: int, rng: SchedRng) -> RefDest | None:
        s: MaglevState = svc.sched_data
        fold = addr_fold(svc_af(svc.key), flow.saddr)
        port = flow_port(svc.flags, SVC_F_SCHED_MH_PORT, flow.proto, flow.sport)
        ihash = hashkey(fold, port, HASH1_KEY, 0) % TAB_SIZE
        d = s.lookup[ihash]
        if d is None:
            return None
        if not unavailable(d):
            return d
        if not svc.flags & SVC_F_SCHED_MH_FALLBACK:
            return None
        for offset in range(TAB_SIZE):
            roffset = (offset + ihash) % TAB_SIZE
            d = s.lookup[hashkey(fold, port, HASH1_KEY, roffset) % TAB_SIZE]
            if d is None:
                break
            if not unavailable(d):
                return d
        return None
