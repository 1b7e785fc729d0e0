"""Internet checksums, the Python twin of csched/src/csum.c.

- `csum_add`: the RFC 1071 one's-complement sum of big-endian 16-bit words (an odd last byte is the high
  half of a word), folded to 16 bits after each call as the C code does.
- `csum_fold`: fold the carries back in and complement: the value that goes into a header.
- `ip4_send_check`: recompute an IPv4 header checksum from scratch (kernel `ip_send_check`).
- `csum_replace`: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), over the 16-bit words of an old and a new value
  (kernel `inet_proto_csum_replace4/2` as tcp/udp_dnat_handler use them).
"""

from __future__ import annotations


def csum_add(total: int, buf: bytes | bytearray | memoryview, off: int, n: int) -> int:
    """Add n bytes of buf from off to a running one's-complement sum."""
    end = off + n
    i = off
    while i + 1 < end:
        total += (buf[i] << 8) | buf[i + 1]
        i += 2
    if i < end:
        total += buf[i] << 8
    return (total & 0xFFFF) + (total >> 16)


def csum_fold(total: int) -> int:
    """Fold a running sum to 16 bits and complement it."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip4_send_check(buf: bytearray, off: int) -> None:
    """Recompute the checksum of the IPv4 header at buf[off:]."""
    hl = (buf[off] & 0x0F) * 4
    buf[off + 10] = 0
    buf[off + 11] = 0
    c = csum_fold(csum_add(0, buf, off, hl))
    buf[off + 10] = c >> 8
    buf[off + 11] = c & 0xFF


def csum_replace(check: int, old: bytes, new: bytes) -> int:
    """The checksum after the 16-bit words of `old` were replaced by those of `new` (same length)."""
    total = ~check & 0xFFFF
    for i in range(0, len(old), 2):
        total += ~((old[i] << 8) | old[i + 1]) & 0xFFFF
        total += (new[i] << 8) | new[i + 1]
    return csum_fold(total)
