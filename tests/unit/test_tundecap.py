"""Test that the C decapsulator (csched/src/tundecap.c) and its Python twin (lb/lab/tundecap.py) agree.

- on generated packets (hypothesis: valid IPIP to the VIP, then one field at a time broken: length, outer
  version, IHL, protocol, inner version, inner destination, inner total length, trailing bytes), the C
  verdict, inner offset and inner length equal the Python classify(), and the reasons share their numbering;
- every drop reason is reached by a crafted packet on both sides, and inner_packet() returns the same bytes;
- the same stream of packets through a datagram socket (standing in for the raw socket) into a pipe
  (standing in for the TUN fd) comes out byte-identical from lb_tundecap_poll and from the Python loop, with
  identical counters (passed, dropped per reason, truncated);
- the exit line names what was dropped and why, and parse_summary reads it back;
- --impl defaults to c and follows LB_TUNDECAP_IMPL.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb.core._ffi import ffi, lib
from lb.lab import tundecap
from lb.lab.tundecap import REASONS, DecapStats, classify

VIP = bytes([10, 5, 0, 100])
OTHER = bytes([10, 5, 0, 101])


def ipip(payload: bytes = b"x" * 12, *, ihl_words: int = 5, proto: int = 4, dst: bytes = VIP,
         inner_version: int = 4, inner_total: int | None = None, trailer: bytes = b"") -> bytes:
    """An outer IPv4 header (with ihl_words*4 bytes) + an inner IPv4 header + payload (+ link trailer)."""
    inner_len = 20 + len(payload)
    total = inner_len if inner_total is None else inner_total
    inner = struct.pack("!BBHHHBBH4s4s", (inner_version << 4) | 5, 0, total & 0xFFFF, 1, 0, 64, 17, 0,
                        bytes([10, 1, 0, 2]), dst) + payload
    outer_len = ihl_words * 4
    outer = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl_words, 0, (outer_len + inner_len) & 0xFFFF, 7, 0, 64,
                        proto, 0, bytes([10, 2, 0, 1]), bytes([10, 2, 0, 11]))
    outer += b"\x01" * max(0, outer_len - 20)
    return outer + inner + trailer


def c_classify(frame: bytes, vip: bytes = VIP) -> tuple[int, int, int]:
    off = ffi.new("uint32_t *")
    length = ffi.new("uint32_t *")
    verdict = lib.lb_tundecap_classify(frame, len(frame), vip, off, length)
    return (verdict, off[0], length[0]) if verdict == 0 else (verdict, 0, 0)


def test_reason_numbers_match_the_header() -> None:
    assert len(REASONS) == lib.LB_TD_R_COUNT
    assert lib.LB_TD_PASS == tundecap.PASS == 0
    for i, name in enumerate(REASONS[1:], start=1):
        assert getattr(lib, f"LB_TD_R_{name.upper()}") == i
        assert f"drop_{name}" in {f for f, _ in ffi.typeof("struct lb_tundecap_stats").fields}


CRAFTED = {
    "pass": ipip(),
    "short": ipip()[:39],
    "outer_version": b"\x65" + ipip()[1:],
    "outer_hlen": b"\x44" + ipip()[1:],
    "not_ipip": ipip(proto=41),
    "inner_version": ipip(inner_version=6),
    "not_vip": ipip(dst=OTHER),
    "inner_len": ipip(inner_total=19),
}


@pytest.mark.parametrize("reason", list(CRAFTED))
def test_every_reason_on_both_sides(reason: str) -> None:
    frame = CRAFTED[reason]
    assert classify(frame, VIP)[0] == c_classify(frame)[0] == REASONS.index(reason)
    if reason == "pass":
        assert tundecap.inner_packet(frame, VIP) == frame[20:]
    else:
        assert tundecap.inner_packet(frame, VIP) is None


def test_inner_length_bounds() -> None:
    frame = ipip(b"y" * 30, ihl_words=6, trailer=b"\0" * 6)
    assert classify(frame, VIP) == c_classify(frame) == (0, 24, 50)
    too_long = ipip(b"y" * 30, inner_total=51)
    assert classify(too_long, VIP)[0] == c_classify(too_long)[0] == REASONS.index("inner_len")


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=64))
    frame = bytearray(ipip(payload, ihl_words=draw(st.integers(5, 8)),
                           trailer=draw(st.binary(max_size=8))))
    # break up to three bytes of the headers, or cut the frame anywhere
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, min(len(frame), 60) - 1))
        frame[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        frame = frame[:draw(st.integers(0, len(frame)))]
    return bytes(frame)


@given(frame=frames(), vip=st.sampled_from([VIP, OTHER]))
def test_c_and_python_decide_alike(frame: bytes, vip: bytes) -> None:
    assert c_classify(frame, vip) == classify(frame, vip)


def _stream() -> list[bytes]:
    out = [ipip(bytes([i]) * (i + 1)) for i in range(20)]
    out += list(CRAFTED.values())
    out += [ipip(b"z" * 70000)]  # longer than a receive slot: truncated, dropped
    return out


def _pair() -> tuple[socket.socket, socket.socket, int, int]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    a.setblocking(False)
    r, w = os.pipe()
    fcntl.fcntl(r, fcntl.F_SETFL, os.O_NONBLOCK)
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
    return a, b, r, w


def _drain(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def _run_c(frames: list[bytes]) -> tuple[bytes, DecapStats]:
    a, b, r, w = _pair()
    try:
        for f in frames:
            b.send(f)
        ctx = lib.lb_tundecap_open(a.fileno(), w, VIP, ffi.NULL)
        assert ctx != ffi.NULL
        try:
            assert lib.lb_tundecap_poll(ctx, 1000, 0) == len(frames)
            cst = ffi.new("struct lb_tundecap_stats *")
            lib.lb_tundecap_stats(ctx, cst)
        finally:
            lib.lb_tundecap_close(ctx)
        return _drain(r), DecapStats.from_c(cst)
    finally:
        a.close(), b.close(), os.close(r), os.close(w)


def _run_py(frames: list[bytes]) -> tuple[bytes, DecapStats]:
    a, b, r, w = _pair()
    try:
        for f in frames:
            b.send(f)
        stats = DecapStats()
        buf = bytearray(tundecap.SLOT)
        handled = 0
        while tundecap.handle_one(a, w, VIP, stats, buf):
            handled += 1
        assert handled == len(frames)
        return _drain(r), stats
    finally:
        a.close(), b.close(), os.close(r), os.close(w)


def test_c_loop_and_python_loop_move_the_same_bytes() -> None:
    frames = _stream()
    c_out, c_st = _run_c(frames)
    py_out, py_st = _run_py(frames)
    good = [f[20:] for f in frames[:20]] + [CRAFTED["pass"][20:]]
    assert c_out == py_out == b"".join(good)
    assert c_st == py_st
    assert c_st.passed == 21 and c_st.rx_pkts == len(frames) and c_st.rx_trunc == 1
    assert c_st.passed_bytes == sum(len(g) for g in good)
    for reason in REASONS[1:]:
        assert getattr(c_st, f"drop_{reason}") == 1, reason
    assert c_st.dropped == len(REASONS) - 1 + 1


def test_summary_line() -> None:
    s = DecapStats(rx_pkts=5, passed=3, drop_not_vip=1, rx_trunc=1)
    assert s.summary() == "passed 3 dropped 2 (rx 5, not_vip 1, truncated 1, tun errors 0)"
    full = DecapStats(**{f: i + 1 for i, f in enumerate(DecapStats.__slots__) if "bytes" not in f})
    assert tundecap.parse_summary("tun-decap: now " + full.summary()) == full


def test_impl_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tundecap.ENV_IMPL, raising=False)
    assert tundecap.default_impl() == "c"
    monkeypatch.setenv(tundecap.ENV_IMPL, "python")
    assert tundecap.default_impl() == "python"
    monkeypatch.setenv(tundecap.ENV_IMPL, "bogus")
    assert tundecap.default_impl() == "c"
    assert tundecap.c_available()


def test_rt_priority_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`lb tun-decap --rt-priority N` (default 0, normal scheduling: measured better here) takes 0..99."""
    from lb.cli.main import build_parser  # noqa: PLC0415

    p = build_parser()
    assert p.parse_args(["tun-decap", "--vip", "10.1.0.100"]).rt_priority == 0
    assert p.parse_args(["tun-decap", "--vip", "10.1.0.100", "--rt-priority", "5"]).rt_priority == 5
    with pytest.raises(SystemExit):
        p.parse_args(["tun-decap", "--vip", "10.1.0.100", "--rt-priority", "-1"])
    assert "must be 0..99, not -1" in capsys.readouterr().err
