"""ipvsadm 1.31's listings, byte for byte: -L/-l [-n], --stats, --rate, --thresholds, --persistent-conn,
--exact, --nosort, -c, --timeout, and the -S rules (through lb.config.emit_rules); plus `--json` for each.

Mirrors ipvsadm.c print_title / print_service_entry / print_largenum / print_sched_flags / print_conn /
list_conn / list_all / list_timeout / usage_exit / version.  Inputs are lb.model values (what the daemon
sends back); nothing here talks to a balancer.  Without -n ipvsadm resolves names: port names come from the
services database (getservbyport), host names only from /etc/hosts (never DNS, so a listing cannot hang).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from functools import cache
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

from lb import model
from lb.cli import options as o

# ---- names (addrport_to_anyname) ----


@cache
def _hosts_by_addr() -> dict[model.Addr, str]:
    names: dict[model.Addr, str] = {}
    try:
        text = Path("/etc/hosts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return names
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            try:
                addr = ip_address(fields[0])
            except ValueError:
                continue
            names.setdefault(addr, fields[1])
    return names


@cache
def _port_name(port: int, proto: int) -> str:
    pname = {6: "tcp", 17: "udp", 132: "sctp"}.get(proto)
    if pname:
        try:
            return socket.getservbyport(port, pname)
        except (OSError, OverflowError):
            pass
    return str(port)


def addrport(addr: model.Addr, port: int, proto: int, fmt: int) -> str:
    """ipvsadm addrport_to_anyname: "10.0.0.1:80", "[::1]:80", or host:service names without -n."""
    if fmt & o.FMT_NUMERIC:
        host = str(addr)
        pname = str(port)
    else:
        host = _hosts_by_addr().get(addr, str(addr))
        pname = _port_name(port, proto)
    if addr.version == 6:
        return f"[{host}]:{pname}"
    return f"{host}:{pname}"


# ---- numbers ----


def largenum(i: int, fmt: int) -> str:
    """ipvsadm print_largenum: 9 columns, K/M/G/T scaling unless --exact."""
    if fmt & o.FMT_EXACT:
        s = str(i)
        return s.rjust(9 if len(s) <= 8 else len(s) + 1)
    if i < 100_000_000:
        return f"{i:9d}"
    if i < 1_000_000_000:
        return f"{i // 1000:8d}K"
    if i < 100_000_000_000:
        return f"{i // 1_000_000:8d}M"
    if i < 100_000_000_000_000:
        return f"{i // 1_000_000_000:8d}G"
    return f"{i // 1_000_000_000_000:8d}T"


def sched_flags_text(svc: model.Service) -> str:
    """ipvsadm print_sched_flags (comma-separated names, "" when none)."""
    return ",".join(model.sched_flag_names(svc.sched, svc.flags))


def mask_text(mask: int) -> str:
    """inet_ntoa of an IPv4 netmask held in host order."""
    return str(IPv4Address(mask & 0xFFFFFFFF))


# ---- the listing ----


def title(fmt: int) -> str:
    """ipvsadm print_title."""
    head = "Prot LocalAddress:Port"
    if fmt & o.FMT_STATS:
        return (f"{head:<33s} {'Conns':>8s} {'InPkts':>8s} {'OutPkts':>8s} {'InBytes':>8s} {'OutBytes':>8s}\n"
                "  -> RemoteAddress:Port\n")
    if fmt & o.FMT_RATE:
        return (f"{head:<33s} {'CPS':>8s} {'InPPS':>8s} {'OutPPS':>8s} {'InBPS':>8s} {'OutBPS':>8s}\n"
                "  -> RemoteAddress:Port\n")
    if fmt & o.FMT_THRESHOLDS:
        return (f"{head:<33s} {'Uthreshold':<10s} {'Lthreshold':<10s} {'ActiveConn':<10s} "
                f"{'InActConn':<10s}\n"
                "  -> RemoteAddress:Port\n")
    if fmt & o.FMT_PERSISTENTCONN:
        return (f"{head:<33s} {'Weight':<9s} {'PersistConn':<11s} {'ActiveConn':<10s} {'InActConn':<10s}\n"
                "  -> RemoteAddress:Port\n")
    if fmt & o.FMT_TUN_INFO:
        return ("Prot LocalAddress:Port Scheduler Flags\n"
                "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
    if not fmt & o.FMT_RULE:
        return ("Prot LocalAddress:Port Scheduler Flags\n"
                "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
    return ""


def service_name(svc: model.Service, fmt: int) -> str:
    """The svc_name of print_service_entry ("TCP  10.0.0.1:80", "FWM  1", "-t 10.0.0.1:80", "-f 1 -6")."""
    key = svc.key
    if key.fwmark:
        if fmt & o.FMT_RULE:
            return f"-f {key.fwmark} -6" if key.is_v6 else f"-f {key.fwmark}"
        return f"FWM  {key.fwmark} IPv6" if key.is_v6 else f"FWM  {key.fwmark}"
    vname = addrport(key.addr, key.port, key.proto, fmt)
    if fmt & o.FMT_RULE:
        return f"{key.proto.switch} {vname}"
    name = f"{key.proto.ipvsadm_name:<4s} {vname}"
    return name if key.is_v6 else name[:33]


def _service_line(st: model.ServiceStatus, fmt: int) -> str:
    svc = st.service
    name = service_name(svc, fmt)
    if fmt & o.FMT_STATS:
        s = st.stats
        return f"{name:<33s}" + "".join(largenum(v, fmt) for v in (s.conns, s.inpkts, s.outpkts, s.inbytes,
                                                                    s.outbytes))
    if fmt & o.FMT_RATE:
        r = st.rates
        return f"{name:<33s}" + "".join(largenum(v, fmt) for v in (r.cps, r.inpps, r.outpps, r.inbps,
                                                                    r.outbps))
    line = f"{name} {svc.sched}"
    if svc.sched_flags:
        line += f" ({sched_flags_text(svc)})"
    if svc.persistent:
        line += f" persistent {svc.timeout}"
        if not svc.key.is_v6 and svc.netmask != model.V4_FULL_MASK:
            line += f" mask {mask_text(svc.netmask)}"
        if svc.key.is_v6 and svc.netmask != model.V6_FULL_PREFIX:
            line += f" mask {svc.netmask}"
        if svc.pe_name:
            line += f" pe {svc.pe_name}"
    if svc.onepacket:
        line += " ops"
    return line


def _dest_line(st: model.DestStatus, proto: int, fmt: int) -> str:
    d = st.dest
    dname = addrport(d.addr, d.port, proto, fmt)
    if d.addr.version != 6:
        dname = dname[:28]
    if fmt & o.FMT_STATS:
        s = st.stats
        nums = (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes)
        return f"  -> {dname:<28s}" + "".join(largenum(v, fmt) for v in nums)
    if fmt & o.FMT_RATE:
        r = st.rates
        return (f"  -> {dname:<28s} {r.cps:8d} {r.inpps:8d} {r.outpps:8d}" + largenum(r.inbps, fmt)
                + largenum(r.outbps, fmt))
    if fmt & o.FMT_THRESHOLDS:
        return f"  -> {dname:<28s} {d.u_threshold:<10d} {d.l_threshold:<10d} {st.activeconns:<10d} " \
               f"{st.inactconns:<10d}"
    if fmt & o.FMT_PERSISTENTCONN:
        return f"  -> {dname:<28s} {d.weight:<9d} {st.persistconns:<11d} {st.activeconns:<10d} " \
               f"{st.inactconns:<10d}"
    if fmt & o.FMT_TUN_INFO:
        info = "ipip" if d.fwd == model.Fwd.TUNNEL else "n/a"
        return f"  -> {dname:<28s} {d.fwd.ipvsadm_name:<7s} {info:<13s} {d.weight:<6d} " \
               f"{st.activeconns:<10d} {st.inactconns:<10d}"
    return f"  -> {dname:<28s} {d.fwd.ipvsadm_name:<7s} {d.weight:<6d} {st.activeconns:<10d} " \
           f"{st.inactconns:<10d}"


def service_entry(st: model.ServiceStatus, fmt: int) -> str:
    """ipvsadm print_service_entry (not the -S form: see lb.config.emit_rules)."""
    lines = [_service_line(st, fmt)]
    dests = list(st.dests) if fmt & o.FMT_NOSORT else model.sort_dests(st.dests)
    lines.extend(_dest_line(d, int(st.service.key.proto), fmt) for d in dests)
    return "\n".join(lines) + "\n"


def version_line(version: tuple[int, int, int], size: int) -> str:
    return "IP Virtual Server version %d.%d.%d (size=%d)\n" % (*version, size)  # noqa: UP031


def list_all(services: Sequence[model.ServiceStatus], fmt: int,
             version: tuple[int, int, int] = model.IPVS_VERSION, size: int = model.IPVS_CONN_TAB_SIZE) -> str:
    """ipvsadm list_all (-L / -S)."""
    if fmt & o.FMT_RULE:
        from lb.config import emit_rules  # noqa: PLC0415 - config imports this module's helpers

        return emit_rules(services, fmt)
    items = list(services) if fmt & o.FMT_NOSORT else model.sort_services(list(services))
    return version_line(version, size) + title(fmt) + "".join(service_entry(st, fmt) for st in items)


def list_service(st: model.ServiceStatus, fmt: int) -> str:
    """ipvsadm list_service (-L -t ADDR:PORT)."""
    return title(fmt) + service_entry(st, fmt)


def list_timeout(t: model.Timeouts) -> str:
    return f"Timeout (tcp tcpfin udp): {t.tcp} {t.tcpfin} {t.udp}\n"


def conn_line(c: model.ConnInfo, fmt: int) -> str:
    """ipvsadm print_conn: one line of -c."""
    proto = int(c.proto)
    expires = max(0, int(c.expires_s))
    expire = f"{expires // 60:02d}:{expires % 60:02d}"
    cname = addrport(c.caddr, c.cport, proto, fmt)
    vname = addrport(c.vaddr, c.vport, proto, fmt)
    dname = addrport(c.daddr, c.dport, proto, fmt)
    pname = c.proto.ipvsadm_name
    if fmt & o.FMT_PERSISTENTCONN and c.pe_name:
        return f"{pname:<3s} {expire:<6s} {c.state:<11s} {cname:<18s} {vname:<18s} {dname:<16s} " \
               f"{c.pe_name:<18s} {c.pe_data}\n"
    return f"{pname:<3s} {expire:<6s} {c.state:<11s} {cname:<18s} {vname:<18s} {dname}\n"


def list_conn(conns: Iterable[model.ConnInfo], fmt: int) -> str:
    """ipvsadm list_conn (-L -c)."""
    out = ["IPVS connection entries\n"]
    if fmt & o.FMT_PERSISTENTCONN:
        out.append(f"pro expire {'state':<11s} {'source':<18s} {'virtual':<18s} {'destination':<18s} "
                   f"{'pe name':<16s} pe_data\n")
    else:
        out.append(f"pro expire {'state':<11s} {'source':<18s} {'virtual':<18s} destination\n")
    out.extend(conn_line(c, fmt) for c in conns)
    return "".join(out)


# ---- usage and version (usage_exit, version) ----


def version_text(version: tuple[int, int, int] = model.IPVS_VERSION) -> str:
    return "ipvsadm %s (compiled with popt and IPVS v%d.%d.%d)\n" % (o.IPVSADM_VERSION, *version)  # noqa: UP031


def usage_text(prog: str) -> str:
    """ipvsadm usage_exit's text (after the version line)."""
    p = prog
    return (
        version_text()
        + "Usage:\n"
        f"  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] "
        "[-b sched-flags]\n"
        f"  {p} -D virtual-service\n"
        f"  {p} -C\n"
        f"  {p} -R\n"
        f"  {p} -S [-n]\n"
        f"  {p} -a|e virtual-service -r server-address [options]\n"
        f"  {p} -d virtual-service -r server-address\n"
        f"  {p} -L|l [virtual-service] [options]\n"
        f"  {p} -Z [virtual-service]\n"
        f"  {p} --set tcp tcpfin udp\n"
        f"  {p} --start-daemon {{master|backup}} [daemon-options]\n"
        f"  {p} --stop-daemon {{master|backup}}\n"
        f"  {p} -h\n\n"
        "Commands:\n"
        "Either long or short options are allowed.\n"
        "  --add-service     -A        add virtual service with options\n"
        "  --edit-service    -E        edit virtual service with options\n"
        "  --delete-service  -D        delete virtual service\n"
        "  --clear           -C        clear the whole table\n"
        "  --restore         -R        restore rules from stdin\n"
        "  --save            -S        save rules to stdout\n"
        "  --add-server      -a        add real server with options\n"
        "  --edit-server     -e        edit real server with options\n"
        "  --delete-server   -d        delete real server\n"
        "  --list            -L|-l     list the table\n"
        "  --zero            -Z        zero counters in a service or all services\n"
        "  --set tcp tcpfin udp        set connection timeout values\n"
        "  --start-daemon              start connection sync daemon\n"
        "  --stop-daemon               stop connection sync daemon\n"
        "  --help            -h        display this help message\n\n"
        "virtual-service:\n"
        "  --tcp-service|-t  service-address   service-address is host[:port]\n"
        "  --udp-service|-u  service-address   service-address is host[:port]\n"
        "  --sctp-service    service-address   service-address is host[:port]\n"
        "  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n"
        "\n"
        "Options:\n"
        "  --ipv6         -6                   fwmark entry uses IPv6\n"
        f"  --scheduler    -s scheduler         one of {o.USAGE_SCHEDULERS},\n"
        f"                                      the default scheduler is {model.DEFAULT_SCHED}.\n"
        f"  --pe            engine              alternate persistence engine may be {o.USAGE_PE_LIST},\n"
        "                                      not set by default.\n"
        "  --persistent   -p [timeout]         persistent service\n"
        "  --netmask      -M netmask           persistent granularity mask\n"
        "  --real-server  -r server-address    server-address is host (and port)\n"
        "  --gatewaying   -g                   gatewaying (direct routing) (default)\n"
        "  --ipip         -i                   ipip encapsulation (tunneling)\n"
        "  --masquerading -m                   masquerading (NAT)\n"
        "  --tun-type      type                one of ipip|gue|gre,\n"
        "                                      the default tunnel type is ipip.\n"
        "  --tun-port      port                tunnel destination port\n"
        "  --tun-nocsum                        tunnel encapsulation without checksum\n"
        "  --tun-csum                          tunnel encapsulation with checksum\n"
        "  --tun-remcsum                       tunnel encapsulation with remote checksum\n"
        "  --weight       -w weight            capacity of real server\n"
        "  --u-threshold  -x uthreshold        upper threshold of connections\n"
        "  --l-threshold  -y lthreshold        lower threshold of connections\n"
        "  --connection   -c                   output of current IPVS connections\n"
        "  --timeout                           output of timeout (tcp tcpfin udp)\n"
        "  --daemon                            output of daemon information\n"
        "  --stats                             output of statistics information\n"
        "  --rate                              output of rate information\n"
        "  --exact                             expand numbers (display exact values)\n"
        "  --thresholds                        output of thresholds information\n"
        "  --persistent-conn                   output of persistent connection info\n"
        "  --tun-info                          output of tunnel information\n"
        "  --nosort                            disable sorting output of service/server entries\n"
        "  --sort                              does nothing, for backwards compatibility\n"
        "  --ops          -o                   one-packet scheduling\n"
        "  --numeric      -n                   numeric output of addresses and ports\n"
        "  --sched-flags  -b flags             scheduler flags (comma-separated)\n"
        "Daemon Options:\n"
        "  --syncid sid                        syncid for connection sync (default=255)\n"
        "  --sync-maxlen length                Max sync message length (default=1472)\n"
        "  --mcast-interface interface         multicast interface for connection sync\n"
        "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n"
        "  --mcast-port port                   UDP port (default=8848)\n"
        "  --mcast-ttl ttl                     Multicast TTL (default=1)\n"
    )


# ---- --json ----


def _stats_json(s: model.Stats) -> dict[str, int]:
    return {"conns": s.conns, "inpkts": s.inpkts, "outpkts": s.outpkts, "inbytes": s.inbytes,
            "outbytes": s.outbytes}


def _rates_json(r: model.Rates) -> dict[str, int]:
    return {"cps": r.cps, "inpps": r.inpps, "outpps": r.outpps, "inbps": r.inbps, "outbps": r.outbps}


def dest_json(st: model.DestStatus) -> dict[str, Any]:
    d = st.dest
    return {"address": str(d.addr), "port": d.port, "forward": d.fwd.ipvsadm_name, "weight": d.weight,
            "u_threshold": d.u_threshold, "l_threshold": d.l_threshold, "activeconns": st.activeconns,
            "inactconns": st.inactconns, "persistconns": st.persistconns, "stats": _stats_json(st.stats),
            "rates": _rates_json(st.rates)}


def service_json(st: model.ServiceStatus, fmt: int) -> dict[str, Any]:
    svc = st.service
    key = svc.key
    netmask: int | str = svc.netmask if key.is_v6 else mask_text(svc.netmask)
    dests = list(st.dests) if fmt & o.FMT_NOSORT else model.sort_dests(st.dests)
    return {"protocol": None if key.fwmark else key.proto.ipvsadm_name,
            "address": None if key.fwmark else str(key.addr), "port": None if key.fwmark else key.port,
            "fwmark": key.fwmark or None, "af": "inet6" if key.is_v6 else "inet", "scheduler": svc.sched,
            "sched_flags": model.sched_flag_names(svc.sched, svc.flags), "persistent": svc.persistent,
            "timeout": svc.timeout if svc.persistent else None, "netmask": netmask, "ops": svc.onepacket,
            "pe": svc.pe_name or None, "stats": _stats_json(st.stats), "rates": _rates_json(st.rates),
            "dests": [dest_json(d) for d in dests]}


def list_json(services: Sequence[model.ServiceStatus], fmt: int,
              version: tuple[int, int, int] = model.IPVS_VERSION,
              size: int = model.IPVS_CONN_TAB_SIZE) -> dict[str, Any]:
    items = list(services) if fmt & o.FMT_NOSORT else model.sort_services(list(services))
    return {"version": "%d.%d.%d" % version, "size": size,  # noqa: UP031
            "services": [service_json(st, fmt) for st in items]}


def conn_json(c: model.ConnInfo) -> dict[str, Any]:
    return {"protocol": c.proto.ipvsadm_name, "state": c.state, "expires": int(c.expires_s),
            "source": {"address": str(c.caddr), "port": c.cport},
            "virtual": {"address": str(c.vaddr), "port": c.vport},
            "destination": {"address": str(c.daddr), "port": c.dport},
            "forward": c.fwd.ipvsadm_name, "template": c.template, "pe_name": c.pe_name or None,
            "pe_data": c.pe_data or None}
