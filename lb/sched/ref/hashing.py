"""The hash functions of the hashing schedulers (twin of csched/include/lb_hash.h).

The kernel's sh, dh, mh, lblc and lblcr turn an address (and maybe a port) into a table index with:

- `addr_fold`: the address as a 32-bit host-order number; an IPv6 address is the XOR of its four 32-bit
  words (every ip_vs_*_hashkey() does `addr->ip6[0] ^ addr->ip6[1] ^ addr->ip6[2] ^ addr->ip6[3]`).
- `hash_32` (include/linux/hash.h): multiply by 0x61C88647 and keep the top bits (sh, dh, lblc, lblcr).
- `hsiphash_u32` (lib/siphash.c on 64-bit hosts): mh's keyed hash.  On 64-bit kernels "HalfSipHash" is
  SipHash-1-3 with two 64-bit key words: one compression round and three finalisation rounds, returning
  the low 32 bits.  mh hashes a single u32, so the message is its four bytes (little-endian, as x86 holds
  them) in the final block together with the length: b = (4 << 56) | v.
"""

from __future__ import annotations

from lb import model
from lb.sched.ref.base import U32, U64, hash_32

#: SipHash's initial state: "somepseudorandomlygeneratedbytes".
SIPHASH_CONST = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)

#: The protocols whose first four payload bytes are the ports (ip_vs_sh_get_port / ip_vs_mh_get_port).
PORT_PROTOS = frozenset({6, 17, 132})


def addr_fold(af_version: int, addr: model.Addr) -> int:
    """ntohl(addr_fold): IPv4 as an integer; IPv6 as the XOR of its four big-endian 32-bit words.

    `af_version` is the *service's* family (4 or 6): the kernel folds with svc->af.  An IPv4 address
    under an IPv6 service folds to itself (the other words are zero).
    """
    raw = addr.packed.ljust(16, b"\0")
    if af_version == 6:
        w = [int.from_bytes(raw[i:i + 4], "big") for i in (0, 4, 8, 12)]
        return w[0] ^ w[1] ^ w[2] ^ w[3]
    return int.from_bytes(raw[:4], "big")


def _rol64(w: int, s: int) -> int:
    return ((w << s) | (w >> (64 - s))) & U64


def _sipround(v: list[int]) -> None:
    v0, v1, v2, v3 = v
    v0 = (v0 + v1) & U64
    v1 = _rol64(v1, 13) ^ v0
    v0 = _rol64(v0, 32)
    v2 = (v2 + v3) & U64
    v3 = _rol64(v3, 16) ^ v2
    v0 = (v0 + v3) & U64
    v3 = _rol64(v3, 21) ^ v0
    v2 = (v2 + v1) & U64
    v1 = _rol64(v1, 17) ^ v2
    v2 = _rol64(v2, 32)
    v[:] = [v0, v1, v2, v3]


def hsiphash_u32(value: int, k0: int, k1: int) -> int:
    """The kernel's `hsiphash(&value, 4, {k0, k1})` on a 64-bit little-endian host."""
    v = [SIPHASH_CONST[0] ^ k0, SIPHASH_CONST[1] ^ k1, SIPHASH_CONST[2] ^ k0, SIPHASH_CONST[3] ^ k1]
    b = (4 << 56) | (value & U32)
    v[3] ^= b
    _sipround(v)
    v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(3):
        _sipround(v)
    return (v[0] ^ v[1] ^ v[2] ^ v[3]) & U32


def flow_port(flags: int, port_flag: int, flow_proto: int, sport: int) -> int:
    """The client port sh-port/mh-port mix into the hash: the source port for TCP/UDP/SCTP, else 0."""
    if flags & port_flag and int(flow_proto) in PORT_PROTOS:
        return sport
    return 0


def svc_af(svc_key: model.ServiceKey) -> int:
    """The service's address family as 4 or 6 (svc->af)."""
    return 6 if svc_key.is_v6 else 4


__all__ = ["PORT_PROTOS", "addr_fold", "flow_port", "hash_32", "hsiphash_u32", "svc_af"]
