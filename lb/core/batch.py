"""`PacketBatch`: the frames of one `lb_process_batch` call, allocated once and reused.

One bytearray slab holds `capacity` slots of `stride` bytes (frame i at i * stride; the stride is the headroom
a frame may grow into: IPIP adds 20 bytes, an ICMP error built in place up to 576), beside parallel arrays
(length, in port, out port, verdict, reason).  cffi sees all of them through `ffi.from_buffer`, made once
here and kept alive with the batch, so a call costs no allocation and no copy (cffi ref.rst: from_buffer).
`process_batch(core, batch, now_ns)` is the hot call.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from lb.core._ffi import ffi, lib

if TYPE_CHECKING:
    from lb.core.core import Core

VERDICT_DROP = lib.LB_VERDICT_DROP
VERDICT_TX = lib.LB_VERDICT_TX
VERDICT_PASS = lib.LB_VERDICT_PASS
STRIDE_DEFAULT = lib.LB_BATCH_STRIDE_DEFAULT
STRIDE_MIN = lib.LB_BATCH_STRIDE_MIN

#: Reason names in lb_reason.h order ("OK", "NO_SERVICE", ...).
REASON_NAMES: tuple[str, ...] = tuple(
    ffi.string(lib.lb_reason_name(i)).decode() for i in range(lib.lb_reason_max())
)
#: Reason prose, same order.
REASON_TEXTS: tuple[str, ...] = tuple(
    ffi.string(lib.lb_reason_text(i)).decode() for i in range(lib.lb_reason_max())
)


class PacketBatch:
    """A reusable batch of up to `capacity` frames of at most `stride` bytes each (after rewriting)."""

    def __init__(self, capacity: int = 256, stride: int = STRIDE_DEFAULT) -> None:
        if not STRIDE_MIN <= stride <= 65535:
            raise ValueError(f"stride {stride} not in [{STRIDE_MIN}, 65535]")
        self.capacity = capacity
        self.stride = stride
        self.slab = bytearray(capacity * stride)
        self.lens = array("H", bytes(2 * capacity))
        self.in_port = bytearray(capacity)
        self.out_port = bytearray(capacity)
        self.verdict = bytearray(capacity)
        self.reason = bytearray(capacity)
        self._keep = (
            ffi.from_buffer("uint8_t[]", self.slab),
            ffi.from_buffer("uint16_t[]", self.lens),
            ffi.from_buffer("uint8_t[]", self.in_port),
            ffi.from_buffer("uint8_t[]", self.out_port),
            ffi.from_buffer("uint8_t[]", self.verdict),
            ffi.from_buffer("uint8_t[]", self.reason),
        )
        c = ffi.new("struct lb_batch *")
        c.slab, c.len, c.in_port, c.out_port, c.verdict, c.reason = self._keep
        c.stride = stride
        c.n = 0
        self.c: Any = c

    @property
    def n(self) -> int:
        return int(self.c.n)

    def clear(self) -> None:
        self.c.n = 0

    def add(self, frame: bytes | bytearray | memoryview, in_port: int = 0) -> int:
        """Copy a frame into the next slot; returns its index (ValueError when full or too long)."""
        i = self.c.n
        if i >= self.capacity:
            raise ValueError("batch full")
        n = len(frame)
        if n > self.stride or n > 0xFFFF:
            raise ValueError(f"frame of {n} bytes does not fit a {self.stride}-byte slot")
        off = i * self.stride
        self.slab[off : off + n] = frame
        self.lens[i] = n
        self.in_port[i] = in_port
        self.c.n = i + 1
        return int(i)

    def fill(self, frames: Iterable[tuple[bytes, int]]) -> None:
        """Replace the batch contents with (frame, in_port) pairs."""
        self.clear()
        for frame, port in frames:
            self.add(frame, port)

    def frame(self, i: int) -> bytes:
        """Frame i as it is now (after processing: as it leaves, for verdict TX)."""
        off = i * self.stride
        return bytes(self.slab[off : off + self.lens[i]])

    def __iter__(self) -> Iterator[tuple[int, int, int, bytes]]:
        """(verdict, reason, out_port, frame) per frame."""
        for i in range(self.n):
            yield self.verdict[i], self.reason[i], self.out_port[i], self.frame(i)


def process_batch(core: Core, batch: PacketBatch, now_ns: int) -> int:
    """Run the batch through the C core in place (`lb_process_batch`); returns how many frames got TX."""
    rc = int(lib.lb_process_batch(core.ptr, batch.c, now_ns))
    if rc < 0:
        raise OSError(-rc, f"lb_process_batch: {rc}")
    return rc


def reason_counts(core: Core) -> dict[str, int]:
    """Packets per reason name since the core started (or was zeroed)."""
    return {name: int(lib.lb_reason_count(core.ptr, i)) for i, name in enumerate(REASON_NAMES)}


__all__ = [
    "REASON_NAMES",
    "REASON_TEXTS",
    "STRIDE_DEFAULT",
    "STRIDE_MIN",
    "VERDICT_DROP",
    "VERDICT_PASS",
    "VERDICT_TX",
    "PacketBatch",
    "process_batch",
    "reason_counts",
]
