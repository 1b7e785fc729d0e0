# ruff: noqa: UP031  - printf-style % formatting is the point: the formats are copied from ipvsadm.c
"""Write the golden listings of this folder from scenario.json with ipvsadm 1.31's own printf formats.

There is no ipvsadm binary on this kernel (no IPVS), so the goldens are built by hand from ipvsadm.c:
every format string below is copied from print_title / print_service_entry / print_largenum /
print_sched_flags / list_conn / print_conn / list_timeout / list_all (Python's % follows C printf for
%s %-Ns %Nd; %llu and %u are written %d).  usage.txt and version.txt were produced by compiling
ipvsadm.c's own usage_exit() and version() with gcc.  This script shares no code with lb/.

Run: python tests/golden/ipvsadm-1.31/build.py   (rewrites the *.txt files next to it)
"""

import ipaddress
import json
from pathlib import Path

HERE = Path(__file__).parent
SC = json.loads((HERE / "scenario.json").read_text())
FWD_SWITCH = {"Masq": "-m", "Route": "-g", "Tunnel": "-i"}
PROTO_OPT = {"TCP": "-t", "UDP": "-u"}
NUMERIC, RULE, STATS, RATE, THRESH, PCONN, EXACT = 1, 2, 4, 8, 0x10, 0x20, 0x80


def largenum(i, fmt):
    if fmt & EXACT:
        ln = len("%d" % i)
        return "%*d" % (9 if ln <= 8 else ln + 1, i)
    if i < 100000000:
        return "%9d" % i
    if i < 1000000000:
        return "%8dK" % (i // 1000)
    if i < 100000000000:
        return "%8dM" % (i // 1000000)
    if i < 100000000000000:
        return "%8dG" % (i // 1000000000)
    return "%8dT" % (i // 1000000000000)


def v6(a):
    return ":" in a


def addrport(a, port):          # FMT_NUMERIC branch of addrport_to_anyname
    return "%s%s%s:%u" % ("[" if v6(a) else "", a, "]" if v6(a) else "", port)


def sched_flags(svc):
    out = ""
    if svc["sched"] == "sh":
        if svc["flags"] & 0x08:
            out += "sh-fallback,"
        if svc["flags"] & 0x10:
            out += "sh-port,"
    elif svc["sched"] == "mh":
        if svc["flags"] & 0x08:
            out += "mh-fallback,"
        if svc["flags"] & 0x10:
            out += "mh-port,"
    else:
        for bit, name in ((0x08, "flag-1,"), (0x10, "flag-2,"), (0x20, "flag-3,")):
            if svc["flags"] & bit:
                out += name
    return out[:-1]


def title(fmt):
    if fmt & STATS:
        return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
    if fmt & RATE:
        return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
    if fmt & THRESH:
        return "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
    if fmt & PCONN:
        return "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
    if not fmt & RULE:
        return ("Prot LocalAddress:Port Scheduler Flags\n"
                "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
    return ""


def service_entry(se, fmt):
    out = ""
    is6 = v6(se["addr"])
    if se["fwmark"]:
        if fmt & RULE:
            name = ("-f %d -6" if is6 else "-f %d") % se["fwmark"]
        else:
            name = ("FWM  %d IPv6" if is6 else "FWM  %d") % se["fwmark"]
    else:
        vname = addrport(se["addr"], se["port"])
        if fmt & RULE:
            name = "%s %s" % (PROTO_OPT[se["proto"]], vname)
        else:
            name = "%-4s %s" % (se["proto"], vname)
            if not is6:
                name = name[:33]
    if fmt & RULE:
        out += "-A %s -s %s" % (name, se["sched"])
        if se["flags"] & 1:
            out += " -p %u" % se["timeout"]
            if not is6 and se["netmask"] != "255.255.255.255":
                out += " -M %s" % se["netmask"]
            if is6 and se["netmask"] != 128:
                out += " -M %i" % se["netmask"]
        if se["flags"] & 4:
            out += " -o"
        if se["flags"] & 0x38:
            out += " -b " + sched_flags(se)
    elif fmt & STATS:
        out += "%-33s" % name + "".join(largenum(v, fmt) for v in se["stats"])
    elif fmt & RATE:
        out += "%-33s" % name + "".join(largenum(v, fmt) for v in se["rates"])
    else:
        out += "%s %s" % (name, se["sched"])
        if se["flags"] & 0x38:
            out += " (" + sched_flags(se) + ")"
        if se["flags"] & 1:
            out += " persistent %u" % se["timeout"]
            if not is6 and se["netmask"] != "255.255.255.255":
                out += " mask %s" % se["netmask"]
            if is6 and se["netmask"] != 128:
                out += " mask %i" % se["netmask"]
        if se["flags"] & 4:
            out += " ops"
    out += "\n"
    dests = sorted(se["dests"], key=lambda d: (int(ipaddress.ip_address(d["addr"])), d["port"]))
    for e in dests:
        dname = addrport(e["addr"], e["port"])
        if not fmt & RULE and not v6(e["addr"]):
            dname = dname[:28]
        if fmt & RULE:
            line = "-a %s -r %s %s -w %d" % (name, dname, FWD_SWITCH[e["fwd"]], e["weight"])
            if e["fwd"] == "Tunnel":      # print_tunnel_rule, tunnel type 0 = ipip
                line += " --tun-type %s" % "ipip"
            out += line + "\n"
        elif fmt & STATS:
            out += "  -> %-28s" % dname + "".join(largenum(v, fmt) for v in e["stats"]) + "\n"
        elif fmt & RATE:
            r = e["rates"]
            out += "  -> %-28s %8u %8u %8u" % (dname, r[0], r[1], r[2]) + largenum(r[3], fmt) + \
                largenum(r[4], fmt) + "\n"
        elif fmt & THRESH:
            out += "  -> %-28s %-10u %-10u %-10u %-10u\n" % (dname, e["u"], e["l"], e["active"], e["inact"])
        elif fmt & PCONN:
            out += "  -> %-28s %-9u %-11u %-10u %-10u\n" % (dname, e["weight"], e["persist"], e["active"],
                                                           e["inact"])
        else:
            out += "  -> %-28s %-7s %-6d %-10u %-10u\n" % (dname, e["fwd"], e["weight"], e["active"],
                                                         e["inact"])
    return out


def list_all(fmt):
    out = ""
    if not fmt & RULE:
        out += "IP Virtual Server version %d.%d.%d (size=%d)\n" % (*SC["version"], SC["size"])
    out += title(fmt)
    for i in SC["sorted_services"]:
        out += service_entry(SC["services"][i], fmt)
    return out


def list_conn(fmt):
    out = "IPVS connection entries\n"
    if fmt & PCONN:
        out += "pro expire %-11s %-18s %-18s %-18s %-16s %s\n" % ("state", "source", "virtual", "destination",
                                                                   "pe name", "pe_data")
    else:
        out += "pro expire %-11s %-18s %-18s %s\n" % ("state", "source", "virtual", "destination")
    for c in SC["conns"]:
        exp = "%02d:%02d" % (c["expires"] // 60, c["expires"] % 60)
        out += "%-3s %-6s %-11s %-18s %-18s %s\n" % (c["proto"], exp, c["state"], addrport(*c["c"]),
                                                     addrport(*c["v"]), addrport(*c["d"]))
    return out


FILES = {
    "list_n.txt": list_all(NUMERIC),
    "list_n_stats.txt": list_all(NUMERIC | STATS),
    "list_n_stats_exact.txt": list_all(NUMERIC | STATS | EXACT),
    "list_n_rate.txt": list_all(NUMERIC | RATE),
    "list_n_thresholds.txt": list_all(NUMERIC | THRESH),
    "list_n_persistent_conn.txt": list_all(NUMERIC | PCONN),
    "save_n.txt": list_all(NUMERIC | RULE),
    "list_n_conn.txt": list_conn(NUMERIC),
    "list_n_conn_persistent.txt": list_conn(NUMERIC | PCONN),
    "list_timeout.txt": "Timeout (tcp tcpfin udp): %d %d %d\n" % tuple(SC["timeouts"]),
}

if __name__ == "__main__":
    for name, text in FILES.items():
        (HERE / name).write_text(text)
