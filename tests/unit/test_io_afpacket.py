"""Test that the Python ring readers of lb/io/afpacket.py walk rings the way the kernel lays them out
(no root: the rings are built in memory):
- TPACKET_V2: a slot is read as soon as its own tp_status says TP_STATUS_USER, given back (TP_STATUS_KERNEL)
  once copied; the reader stops at a kernel-owned slot, resumes there, wraps, and skips snapped or corrupt
  slots (giving them back too);
- TPACKET_V3: a block is read only once its block_status says TP_STATUS_USER, then given back whole;
- the TX ring slot of a V2 socket uses the V2 header (tp_status first, data at 32), of a V3 socket the V3 one;
- `lb run --rx-ring` defaults to v2, takes v3, refuses anything else; the default ring size follows the
  version (v2 512 blocks, v3 128) unless --ring-blocks is given; AFPacketPort refuses a bad ring shape.
"""

from __future__ import annotations

import struct

import pytest

from lb.cli.main import build_parser
from lb.io.afpacket import (
    TP_STATUS_KERNEL,
    TP_STATUS_SEND_REQUEST,
    TP_STATUS_USER,
    TPACKET_V2,
    TPACKET_V3,
    AFPacketPort,
)

FS = 256  # V2 slot size in these tests
MAC = 66  # where the kernel puts the frame in a slot (TPACKET_ALIGN(hdrlen + 16) - 14)


def fake_port(version: int, *, frame_nr: int = 4, block_size: int = 1024, block_nr: int = 2,
              tx_frames: int = 0) -> AFPacketPort:
    p = object.__new__(AFPacketPort)
    p.version = version
    p.frame_size, p.frame_nr = FS, frame_nr
    p.block_size, p.block_nr = block_size, block_nr
    p.rx_size = frame_nr * FS if version == TPACKET_V2 else block_size * block_nr
    p.tx_frame_size, p.tx_frame_nr, p._tx_head = FS, tx_frames, 0
    p.ring = bytearray(p.rx_size + tx_frames * FS)  # type: ignore[assignment]
    p._frame = p._block = p._left = p._next = 0
    return p


def v2_put(ring: bytearray, slot: int, data: bytes, *, wire: int | None = None, mac: int = MAC) -> None:
    base = slot * FS
    ring[base + mac:base + mac + len(data)] = data
    # tp_status, tp_len, tp_snaplen, tp_mac, tp_net: status written last, as the kernel does
    wire_len = wire if wire is not None else len(data)
    struct.pack_into("=IIHH", ring, base + 4, wire_len, len(data), mac, mac + 14)
    struct.pack_into("=I", ring, base, TP_STATUS_USER)


def status_v2(ring: bytearray, slot: int) -> int:
    return int(struct.unpack_from("=I", ring, slot * FS)[0])


def test_v2_walk() -> None:
    p = fake_port(TPACKET_V2)
    ring = p.ring
    assert isinstance(ring, bytearray)
    buf = bytearray(2048)
    assert p.recv(buf) == 0  # empty ring
    v2_put(ring, 0, b"A" * 60)
    assert p.recv(buf) == 60 and buf[:60] == b"A" * 60  # a lone frame, at once
    assert status_v2(ring, 0) == TP_STATUS_KERNEL
    assert p.recv(buf) == 0  # slot 1 still the kernel's
    v2_put(ring, 1, b"B" * 70)
    v2_put(ring, 2, b"C" * 64, wire=9000)  # snapped: skipped
    v2_put(ring, 3, b"D" * 80, mac=FS - 20)  # corrupt: would run past the slot, skipped
    v2_put(ring, 0, b"E" * 90)  # the ring wraps
    assert p.recv(buf) == 70 and buf[:70] == b"B" * 70
    assert p.recv(buf) == 90 and buf[:90] == b"E" * 90
    assert [status_v2(ring, i) for i in range(4)] == [TP_STATUS_KERNEL] * 4
    assert p.recv(buf) == 0 and p._frame == 1


def v3_block(ring: bytearray, block: int, bs: int, frames: list[bytes]) -> None:
    base = block * bs
    off = 48
    for i, f in enumerate(frames):
        nxt = (MAC + len(f) + 15) & ~15
        # tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status, tp_mac, tp_net
        struct.pack_into("=IIIIIIHH", ring, base + off, nxt if i + 1 < len(frames) else 0, 0, 0, len(f),
                         len(f), TP_STATUS_USER, MAC, MAC + 14)
        ring[base + off + MAC:base + off + MAC + len(f)] = f
        off += nxt
    struct.pack_into("=III", ring, base + 8, TP_STATUS_USER, len(frames), 48)


def test_v3_walk() -> None:
    p = fake_port(TPACKET_V3)
    ring = p.ring
    assert isinstance(ring, bytearray)
    buf = bytearray(2048)
    assert p.recv(buf) == 0
    v3_block(ring, 0, p.block_size, [b"a" * 60, b"b" * 61])
    assert p.recv(buf) == 60 and buf[:60] == b"a" * 60
    assert struct.unpack_from("=I", ring, 8)[0] == TP_STATUS_USER  # block not finished: still ours
    assert p.recv(buf) == 61
    assert struct.unpack_from("=I", ring, 8)[0] == TP_STATUS_KERNEL  # given back whole
    assert p.recv(buf) == 0


@pytest.mark.parametrize(("version", "status_off", "data_off"), [(TPACKET_V2, 0, 32), (TPACKET_V3, 20, 48)])
def test_tx_slot_layout(version: int, status_off: int, data_off: int) -> None:
    p = fake_port(version, tx_frames=2)
    sent: list[bytes] = []

    class Sock:
        def send(self, data: bytes) -> int:
            sent.append(data)
            return 0

    p.sock = Sock()  # type: ignore[assignment]
    ring = p.ring
    assert isinstance(ring, bytearray)
    assert p.send(b"Z" * 60)
    slot = p.rx_size
    assert struct.unpack_from("=I", ring, slot + status_off)[0] == TP_STATUS_SEND_REQUEST
    assert ring[slot + data_off:slot + data_off + 60] == b"Z" * 60
    assert sent == [b""]  # one kick
    assert p.send(b"Y" * 61)
    assert not p.send(b"X" * 62)  # both slots still the kernel's
    assert not fake_port(version, tx_frames=2).send(b"W" * (FS - data_off + 1))  # larger than a slot


def test_rx_ring_option() -> None:
    parse = build_parser().parse_args
    assert parse(["run", "--iface", "a"]).rx_ring == "v2"
    assert parse(["run", "--iface", "a", "--rx-ring", "v3"]).rx_ring == "v3"
    with pytest.raises(SystemExit):
        parse(["run", "--iface", "a", "--rx-ring", "v1"])


def test_bad_ring_shape() -> None:
    with pytest.raises(ValueError, match="v2 or v3"):
        AFPacketPort(0, "lo", rx_ring="v1")
    with pytest.raises(ValueError, match="multiple"):
        AFPacketPort(0, "lo", block_size=4096, frame_size=1000)


def test_ring_blocks_default() -> None:
    from lb.run import ring_blocks  # noqa: PLC0415

    parse = build_parser().parse_args
    assert ring_blocks(parse(["run", "--iface", "a"])) == 512  # v2: 64 MiB of 2-KiB slots
    assert ring_blocks(parse(["run", "--iface", "a", "--rx-ring", "v3"])) == 128
    assert ring_blocks(parse(["run", "--iface", "a", "--ring-blocks", "64"])) == 64
