"""Test that the dotted-quad fast paths parse exactly what the slow paths do.

- model.parse_addr (inet_pton, then IPv4Address from bytes) gives ipaddress.ip_address's answer, or raises
  ValueError where it does, for tricky strings and for any text hypothesis makes from address characters;
- lb.cli.options.inet_aton (inet_pton first) gives the glibc-style emulation's value (hex, octal, short
  forms and rejects included), here spelled out as the expected host-order integers.
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb.cli.options import inet_aton
from lb.model import parse_addr

TRICKY = ["1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3.04", "1.2.3", "256.1.1.1", " 1.2.3.4",
          "1.2.3.4 ", "0x1.2.3.4", "1..2.3", "1.2.3.4.", "", "::1", "::ffff:1.2.3.4", "fe80::1%eth0",
          "1.2.3.4\x00", "\u0661.2.3.4", "+1.2.3.4", "1.2.3.-4", "10.10.0.100"]


def _same(text: str) -> None:
    try:
        want = ip_address(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_addr(text)
        return
    got = parse_addr(text)
    assert got == want and type(got) is type(want) and str(got) == str(want)


@pytest.mark.parametrize("text", TRICKY)
def test_parse_addr_matches_ipaddress(text: str) -> None:
    _same(text)


@given(st.text(alphabet="0123456789.:abcdefx% ", max_size=20))
def test_parse_addr_matches_ipaddress_on_generated_text(text: str) -> None:
    _same(text)


@pytest.mark.parametrize(("text", "want"), [
    ("1.2.3.4", 0x01020304), ("10.10.0.100", 0x0A0A0064), ("255.255.255.255", 0xFFFFFFFF),
    ("010.1.1.1", 0x08010101), ("0x0a.1.1.1", 0x0A010101), ("10.1", 0x0A000001), ("167772161", 0x0A000001),
    ("1.2.3.4.", None), ("256.1.1.1", None), ("1..2.3", None), ("", None), ("1.2.3.08", None),
])
def test_inet_aton_keeps_glibc_forms(text: str, want: int | None) -> None:
    assert inet_aton(text) == want
