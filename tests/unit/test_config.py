"""Test that ipvsadm-save text round-trips through lbadm's parser, state and -S emitter.

- published-style ipvsadm-save files (man page examples, /etc/sysconfig/ipvsadm with service names,
  keepalived-style mixes, IPv6 and fwmark) restore into a fresh balancer, and their -S restores again to
  the same -S;
- random configurations (hypothesis): apply → -S → -R into a fresh state → the same -S;
- the tokenizer follows config_stream.c ("ipvsadm" tokens dropped, blank lines skipped) and skips comments;
- a bad line reports ipvsadm's message and its line number.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb import model
from lb.config import Change, emit_rules, parse_rules, tokenize
from lb.core.core import Core
from lb.errors import UsageError
from lb.state import ConfigState

SAMPLES = Path(__file__).resolve().parents[1] / "golden" / "ipvsadm-1.31" / "save-samples"


def fresh() -> ConfigState:
    return ConfigState(Core(conn_max=1024, svc_max=64, dest_max=512))


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.txt")))
def test_published_samples_restore_and_round_trip(name: str) -> None:
    text = (SAMPLES / name).read_text()
    a = fresh()
    a.apply_text(text)
    saved = emit_rules(a.status())
    n_services = sum(1 for _n, toks in tokenize(text) if toks[0] == "-A")
    n_dests = sum(1 for _n, toks in tokenize(text) if toks[0] == "-a")
    assert saved.count("-A ") == n_services and saved.count("-a ") == n_dests
    b = fresh()
    b.apply_text(saved)
    assert emit_rules(b.status()) == saved


def test_named_sample_resolves_service_names() -> None:
    changes = parse_rules((SAMPLES / "sysconfig-named-dr.txt").read_text())
    assert changes[0].service is not None and changes[0].service.key.port == 80
    assert changes[3].service is not None and changes[3].service.timeout == 300


def test_tokenizer_like_config_stream() -> None:
    text = "# comment\n\n  ipvsadm -A -t 10.0.0.1:80   -s rr  \n\t\n-a -t 10.0.0.1:80 ipvsadm -r 10.0.0.2\n"
    assert tokenize(text) == [
        (3, ["-A", "-t", "10.0.0.1:80", "-s", "rr"]),
        (5, ["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2"]),
    ]


def test_bad_line_reports_ipvsadm_message_and_line() -> None:
    with pytest.raises(UsageError) as exc:
        parse_rules("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.2 -w 99999\n")
    assert str(exc.value) == "illegal weight specified"
    assert exc.value.lineno == 2  # type: ignore[attr-defined]


def test_listing_lines_are_not_restorable() -> None:
    with pytest.raises(Exception, match="only configuration commands"):
        parse_rules("-L -n\n")


def test_change_kinds() -> None:
    ch = parse_rules(
        "-D -t 10.0.0.1:80\n-C\n-Z\n-Z -u 10.0.0.1:53\n--set 10 20 30\n-d -t 10.0.0.1:80 -r 10.0.0.2\n"
    )
    assert [c.kind for c in ch] == ["del_service", "flush", "zero", "zero", "set_timeout", "del_dest"]
    assert ch[2].key is None and ch[3].key is not None
    assert ch[4].timeouts == model.Timeouts(10, 20, 30)


# ---- hypothesis: random configurations round-trip through -S / -R ----

SCHEDS = ("rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq", "mh", "fo", "ovf", "lblc", "lblcr", "twos")


@st.composite
def configs(draw: st.DrawFn) -> list[Change]:
    changes: list[Change] = []
    keys: set[model.ServiceKey] = set()
    for _ in range(draw(st.integers(1, 5))):
        v6 = draw(st.booleans())
        fwmark = draw(st.sampled_from([0, 0, 0, draw(st.integers(1, 2**32 - 1))]))
        proto = draw(st.sampled_from([model.Proto.TCP, model.Proto.UDP]))
        if fwmark:
            addr: model.Addr = IPv6Address(0) if v6 else IPv4Address(0)
            port, proto = 0, model.Proto.TCP
        else:
            addr = (
                IPv6Address(draw(st.integers(1, 2**128 - 1)) | (0x2001 << 112))
                if v6
                else IPv4Address((10 << 24) | draw(st.integers(1, 2**24 - 2)))
            )
            port = draw(st.integers(1, 65535))
        key = model.ServiceKey(proto, addr, port, fwmark)
        if key in keys:
            continue
        keys.add(key)
        sched = draw(st.sampled_from(SCHEDS))
        flags = 0
        if draw(st.booleans()):
            flags |= model.SVC_F_PERSISTENT
        if proto == model.Proto.UDP and draw(st.booleans()):
            flags |= model.SVC_F_ONEPACKET
        if sched in ("sh", "mh"):
            flags |= draw(st.sampled_from([0, 0x08, 0x10, 0x18]))
        timeout = draw(st.integers(1, model.MAX_TIMEOUT)) if flags & model.SVC_F_PERSISTENT else 0
        if v6:
            netmask = draw(st.integers(1, 128)) if flags & model.SVC_F_PERSISTENT else 128
        else:
            plen = draw(st.integers(0, 32)) if flags & model.SVC_F_PERSISTENT else 32
            netmask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
        changes.append(
            Change("add_service", service=model.Service(key, sched, flags, timeout, netmask), key=key)
        )
        seen: set[tuple[model.Addr, int]] = set()
        for _ in range(draw(st.integers(0, 4))):
            fwd = draw(st.sampled_from([model.Fwd.MASQ, model.Fwd.DROUTE, model.Fwd.TUNNEL]))
            daddr: model.Addr = (
                IPv6Address((0x2001 << 112) | draw(st.integers(1, 2**64)))
                if v6
                else IPv4Address((10 << 24) | draw(st.integers(1, 2**24 - 2)))
            )
            dport = draw(st.integers(0, 65535)) if (fwd == model.Fwd.MASQ or fwmark) else port
            if (daddr, dport) in seen:
                continue
            seen.add((daddr, dport))
            u = draw(st.integers(0, 2**31 - 1))
            low = draw(st.integers(0, u))
            dest = model.Dest(daddr, dport, fwd, draw(st.integers(0, 65535)), u, low)
            changes.append(Change("add_dest", key=key, dest=dest))
    return changes


@given(configs())
def test_random_configs_round_trip(changes: list[Change]) -> None:
    a = fresh()
    a.apply(changes)
    saved = emit_rules(a.status())
    b = fresh()
    b.apply_text(saved)
    assert emit_rules(b.status()) == saved
    assert {s.key for s in b.services()} == {s.key for s in a.services()}
