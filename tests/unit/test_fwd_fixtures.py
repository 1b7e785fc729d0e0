"""Test that each documented packet case gets its verdict, reason and exact output frame, in both engines.

Katran-style fixtures (input, expected output, verdict) with Cilium names from tests/packets.py; each row runs
on the C core (lb_process_batch) and on the Python twin engine:
- NAT: a SYN is DNATed VIP:80 -> RIP:8080 (port translation, TTL - 1, checksums fixed); the reply is SNATed
  back and leaves by the client's port to the client's MAC; IP options and an 802.1Q tag are kept; a UDP
  checksum of 0 stays 0.
- DR: only the MACs change (and the TTL, as IPVS >= 5.3 does).
- TUN: IPIP with the balancer's port address outside, DF/TTL copied, ECN encapsulated; too big with DF ->
  ICMP fragmentation needed (MTU - 20) back to the client.
- The balancer's own ICMP errors: TTL 1 -> time exceeded; no destination -> port unreachable.
- ICMP errors quoting a NAT connection are rewritten and forwarded in both directions; a real server's
  "fragmentation needed" about our IPIP packet reaches the client as one about its request (MTU - 20).
- Not ours (unknown service, other host, ARP, echo) -> PASS; unresolved next hop -> PASS NO_ROUTE.
- Broken input (bad checksum, fragment, short, bad version/length, impossible or missing TCP flags) -> DROP.
- IPv6: NAT both ways, UDP, DR; hop limit 1 and no destination -> ICMPv6 from the VIP; ICMPv6 errors about a
  NAT conn forwarded both ways; TUN, echo -> PASS; fragments -> DROP.
"""

from __future__ import annotations

from dataclasses import dataclass

import packets as P  # noqa: N812 - Cilium-style short name for the packet table
import pytest
from fwd_engines import make
from scapy.packet import Packet

from lb.fwd import FWD
from lb.fwd.parse import Reason, Verdict

Frame = Packet | bytes


@dataclass(frozen=True)
class Case:
    desc: str
    frame: Frame
    expected: Frame | None  # None: the frame is not rewritten (DROP / PASS)
    verdict: Verdict
    reason: Reason
    in_port: int = 0
    out_port: int = 0
    setup: tuple[tuple[Frame, int], ...] = ()


SYN = ((P.nat_syn_in, 0),)
DATA = ((P.nat_syn_in, 0), (P.nat_reply_in, 1), (P.nat_data_in, 0))
TX, DROP, PASS = Verdict.TX, Verdict.DROP, Verdict.PASS

CASES = (
    Case("nat syn in", P.nat_syn_in, P.nat_syn_out, TX, Reason.OK, 0, 1),
    Case("nat reply out", P.nat_reply_in, P.nat_reply_out, TX, Reason.OK, 1, 0, SYN),
    Case("nat data in", P.nat_data_in, P.nat_data_out, TX, Reason.OK, 0, 1, (*SYN, (P.nat_reply_in, 1))),
    Case("nat ip options kept", P.nat_opts_in, P.nat_opts_out, TX, Reason.OK, 0, 1),
    Case("nat vlan tag kept", P.nat_vlan_in, P.nat_vlan_out, TX, Reason.OK, 0, 1),
    Case("udp nat", P.udp_in, P.udp_out, TX, Reason.OK, 0, 1),
    Case("udp zero checksum stays zero", P.udp_zero_csum_in, P.udp_zero_csum_out, TX, Reason.OK, 0, 1),
    Case("dr syn", P.dr_syn_in, P.dr_syn_out, TX, Reason.OK, 0, 1),
    Case("tun syn", P.tun_syn_in, P.tun_syn_out, TX, Reason.OK, 0, 1),
    Case("tun frag needed", P.tun_big_in, P.tun_big_out, TX, Reason.MTU, 0, 0),
    Case("ttl 1", P.ttl1_in, P.ttl1_out, TX, Reason.TTL, 0, 0),
    Case("no destination", P.nodest_in, P.nodest_out, TX, Reason.NO_DEST, 0, 0),
    Case("icmp frag needed from rs (nat)", P.nat_icmp_rs_in, P.nat_icmp_rs_out, TX, Reason.OK, 1, 0, DATA),
    Case("icmp from client side (nat)", P.nat_icmp_cl_in, P.nat_icmp_cl_out, TX, Reason.OK, 0, 1, DATA),
    Case(
        "icmp frag needed about ipip (tun)",
        P.tun_icmp_rs_in,
        P.tun_icmp_rs_out,
        TX,
        Reason.OK,
        1,
        0,
        ((P.tun_syn_in, 0),),
    ),
    Case("icmp error for no conn", P.nat_icmp_rs_in, None, PASS, Reason.ICMP_UNTRACKED, 1),
    Case("unknown service", P.unknown_svc_in, None, PASS, Reason.NO_SERVICE),
    Case("other host", P.other_host_in, None, PASS, Reason.NO_SERVICE),
    Case("arp", P.arp_in, None, PASS, Reason.SLOW_PATH),
    Case("icmp echo", P.echo_in, None, PASS, Reason.SLOW_PATH),
    Case("next hop unresolved", P.noroute_in, None, PASS, Reason.NO_ROUTE),
    Case("bad ip checksum", P.bad_csum_in, None, DROP, Reason.PARSE_CSUM),
    Case("fragment", P.fragment_in, None, DROP, Reason.FRAGMENT),
    Case("short frame", P.short_in, None, DROP, Reason.PARSE_SHORT),
    Case("bad ip version", P.bad_version_in, None, DROP, Reason.PARSE_IP_VERSION),
    Case("total length beyond frame", P.bad_totlen_in, None, DROP, Reason.PARSE_TOTLEN),
    Case("tcp ack without conn", P.not_syn_in, None, DROP, Reason.NOT_SYN),
    Case("tcp syn+fin", P.synfin_in, None, DROP, Reason.TCP_FLAGS),
    Case("tcp no flags", P.noflags_in, None, DROP, Reason.TCP_FLAGS),
    Case("ipv6 nat syn in", P.nat6_syn_in, P.nat6_syn_out, TX, Reason.OK, 0, 1),
    Case("ipv6 nat reply out", P.nat6_reply_in, P.nat6_reply_out, TX, Reason.OK, 1, 0, ((P.nat6_syn_in, 0),)),
    Case("ipv6 udp nat", P.udp6_in, P.udp6_out, TX, Reason.OK, 0, 1),
    Case("ipv6 dr syn", P.dr6_syn_in, P.dr6_syn_out, TX, Reason.OK, 0, 1),
    Case("ipv6 tun: slow path", P.tun6_syn_in, None, PASS, Reason.SLOW_PATH),
    Case("ipv6 hop limit 1", P.hlim1_in, P.hlim1_out, TX, Reason.TTL, 0, 0),
    Case("ipv6 no destination", P.nodest6_in, P.nodest6_out, TX, Reason.NO_DEST, 0, 0),
    Case("ipv6 fragment", P.frag6_in, None, DROP, Reason.FRAGMENT),
    Case("ipv6 icmp echo", P.echo6_in, None, PASS, Reason.SLOW_PATH),
    Case(
        "icmpv6 too big from rs (nat)",
        P.nat6_icmp_rs_in,
        P.nat6_icmp_rs_out,
        TX,
        Reason.OK,
        1,
        0,
        ((P.nat6_syn_in, 0),),
    ),
    Case(
        "icmpv6 from client side (nat)",
        P.nat6_icmp_cl_in,
        P.nat6_icmp_cl_out,
        TX,
        Reason.OK,
        0,
        1,
        ((P.nat6_syn_in, 0),),
    ),
    Case("icmpv6 error for no conn", P.nat6_icmp_rs_in, None, PASS, Reason.ICMP_UNTRACKED, 1),
)


@pytest.mark.parametrize("backend", ["c", "py"])
@pytest.mark.parametrize("case", CASES, ids=[c.desc for c in CASES])
def test_fixture(case: Case, backend: str) -> None:
    eng = make(backend)
    P.configure(eng)
    for frame, port in case.setup:
        (res,) = eng.process([(bytes(frame), port)], 0)
        assert res.verdict == Verdict.TX, f"setup frame got {res.verdict.name} {res.reason.name}"
    raw = bytes(case.frame)
    (res,) = eng.process([(raw, case.in_port)], 0)
    assert (res.verdict, res.reason) == (case.verdict, case.reason)
    if case.expected is None:
        assert res.frame == raw
    else:
        assert res.frame.hex() == bytes(case.expected).hex()
        assert res.out_port == case.out_port
    assert eng.reason_counts()[case.reason.name] >= 1


@pytest.mark.parametrize("backend", ["c", "py"])
def test_counters(backend: str) -> None:
    """A NAT SYN, its reply and a data segment count 1 conn, 2 packets in and 1 out, bytes = IP lengths."""
    eng = make(backend)
    P.configure(eng)
    for frame, port in DATA:
        eng.process([(bytes(frame), port)], 0)
    stats = eng.stats()[P.NAT_SVC]
    ip_len = [len(bytes(f)) - 14 for f, _ in DATA]
    assert (stats.conns, stats.inpkts, stats.outpkts) == (1, 2, 1)
    assert (stats.inbytes, stats.outbytes) == (ip_len[0] + ip_len[2], ip_len[1])


@pytest.mark.parametrize("backend", ["c", "py"])
def test_small_stride(backend: str) -> None:
    """In a 256-byte slot an ICMP error quotes only what fits; an IPIP packet that cannot grow is dropped."""
    eng = make(backend)
    P.configure(eng)
    ttl1 = (
        P.client()
        / P.IP(src=P.CIP, dst=P.VIP, ttl=1)
        / P.TCP(sport=1, dport=P.NAT_PORT, flags="S")
        / bytes(186)
    )
    tun = P.client() / P.IP(src=P.CIP, dst=P.VIP) / P.TCP(sport=2, dport=P.TUN_PORT, flags="S") / bytes(200)
    res = eng.process([(bytes(ttl1), 0), (bytes(tun), 0)], 0, stride=256)
    assert (res[0].verdict, res[0].reason, len(res[0].frame)) == (Verdict.TX, Reason.TTL, 256)
    assert res[0].frame[42:] == bytes(ttl1)[14:228]
    assert (res[1].verdict, res[1].reason) == (Verdict.DROP, Reason.MTU)


@pytest.mark.parametrize("backend", ["c", "py"])
def test_removed_dest_drops(backend: str) -> None:
    """A conn whose dest was deleted: its packets are dropped silently; new SYNs get port unreachable."""
    eng = make(backend)
    P.configure(eng)
    eng.process([(bytes(P.nat_syn_in), 0)], 0)
    eng.del_dest(P.NAT_SVC, P.model.DestKey(P.IPv4Address(P.RIP1), P.NAT_RPORT))
    data, syn = eng.process([(bytes(P.nat_data_in), 0), (bytes(P.nat_opts_in), 0)], 0)
    assert (data.verdict, data.reason) == (Verdict.DROP, Reason.NO_DEST)
    assert (syn.verdict, syn.reason) == (Verdict.TX, Reason.NO_DEST)


def test_fwd_registry() -> None:
    """The C forwarding-method table (LB_FWD_LIST) and lb.fwd.FWD list the same methods in the same order."""
    from lb.core._ffi import ffi, lib  # noqa: PLC0415 - the compiled core, as the other C-backed tests

    c_side = [
        (ffi.string(lib.lb_fwd_name(i)).decode(), "-" + chr(lib.lb_fwd_flag(i)), lib.lb_fwd_value(i))
        for i in range(lib.lb_fwd_count())
    ]
    assert c_side == [(m.name, m.ipvsadm_flag, int(m.fwd)) for m in FWD]
    assert [m.ipvsadm_flag for m in FWD] == [m.fwd.switch for m in FWD]


@pytest.mark.parametrize("backend", ["c", "py"])
def test_expired_conn_not_found(backend: str) -> None:
    """A conn past its time is not used, even with no expiry pass since (same tick): a new one is made."""
    eng = make(backend)
    P.configure(eng)
    udp_timeout = 300 * 10**9
    eng.process([(bytes(P.udp_in), 0)], 0)
    eng.process([(bytes(P.arp_in), 0)], udp_timeout - 1)
    (res,) = eng.process([(bytes(P.udp_in), 0)], udp_timeout + 1)
    assert (res.verdict, res.reason) == (Verdict.TX, Reason.OK)
    assert eng.stats()[P.UDP_SVC].conns == 2
