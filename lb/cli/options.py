"""ipvsadm 1.31's command line, as data: commands, options, the commands_v_options table, and a parser.

Mirrors ipvsadm.c: CMD_* / OPT_* (the bit of option j is 1 << j, j = OPTC_*), cmdnames[], optnames[],
commands_v_options[][] ('+' compulsory, 'x' illegal, '1' exclusive, ' ' optional), parse_options() (popt
behaviour: short-option clusters, `--long=value`, optional `-p` argument, leftover arguments) and the checks
process_options() makes before talking to the kernel.  Every error carries ipvsadm's exact text and exit
status: `fail(2, ...)` becomes `UsageError` (exit 2); popt and "Try ... -h" errors exit 255.

`parse_args(argv)` returns a `Command`; nothing here talks to a balancer.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address

from lb import model
from lb.errors import LbError, NotSupportedError, UsageError


class Cmd(IntEnum):
    """ipvsadm's CMD_* (values as in ipvsadm.c); HELP and VERSION are the -h / -v exits."""

    NONE = 0
    ADD = 1
    EDIT = 2
    DEL = 3
    FLUSH = 4
    LIST = 5
    ADDDEST = 6
    DELDEST = 7
    EDITDEST = 8
    TIMEOUT = 9
    STARTDAEMON = 10
    STOPDAEMON = 11
    RESTORE = 12
    SAVE = 13
    ZERO = 14
    HELP = 100
    VERSION = 101


CMDNAMES = ("add-service", "edit-service", "delete-service", "flush", "list", "add-server", "delete-server",
            "edit-server", "set", "start-daemon", "stop-daemon", "restore", "save", "zero")


class Optc(IntEnum):
    """ipvsadm's OPTC_* indices; the option bit is `1 << value`."""

    NUMERIC = 0
    CONNECTION = 1
    SERVICE = 2
    SCHEDULER = 3
    PERSISTENT = 4
    NETMASK = 5
    SERVER = 6
    FORWARD = 7
    WEIGHT = 8
    UTHRESHOLD = 9
    LTHRESHOLD = 10
    MCAST = 11
    TIMEOUT = 12
    DAEMON = 13
    STATS = 14
    RATE = 15
    THRESHOLDS = 16
    PERSISTENTCONN = 17
    NOSORT = 18
    SYNCID = 19
    EXACT = 20
    ONEPACKET = 21
    PERSISTENCE_ENGINE = 22
    SCHED_FLAGS = 23
    MCAST_GROUP = 24
    MCAST_PORT = 25
    MCAST_TTL = 26
    SYNC_MAXLEN = 27
    TUN_INFO = 28
    TUN_TYPE = 29
    TUN_PORT = 30
    TUN_NOCSUM = 31
    TUN_CSUM = 32
    TUN_REMCSUM = 33


def opt(o: Optc) -> int:
    """The OPT_* bit of an OPTC_* index."""
    return 1 << int(o)


OPTNAMES = ("numeric", "connection", "service-address", "scheduler", "persistent", "netmask", "real-server",
            "forwarding-method", "weight", "u-threshold", "l-threshold", "mcast-interface", "timeout",
            "daemon",
            "stats", "rate", "thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
            "sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen", "tun-info", "tun-type",
            "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum")

#: commands_v_options, one string per command (CMD_ADD .. CMD_ZERO), one character per OPTC_* column.
#: Columns: -n -c svc -s -p -M -r fwd -w -x -y -mc tot dmn -st -rt thr -pc srt sid -ex ops -pe -b grp port
#: ttl size tinf type tprt nocs csum remc
COMMANDS_V_OPTIONS: tuple[str, ...] = (
    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",  # ADD
    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",  # EDIT
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",  # DEL
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",  # FLUSH
    " 11xxxxxxxxx11       xxxxxxx xxxxx",  # LIST
    "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",  # ADDDEST
    "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",  # DELDEST
    "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",  # EDITDEST
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",  # TIMEOUT
    "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx",  # STARTDAEMON
    "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx",  # STOPDAEMON
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",  # RESTORE
    " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",  # SAVE
    "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",  # ZERO
)

# Printing format flags (FMT_*).
FMT_NONE = 0x0000
FMT_NUMERIC = 0x0001
FMT_RULE = 0x0002
FMT_STATS = 0x0004
FMT_RATE = 0x0008
FMT_THRESHOLDS = 0x0010
FMT_PERSISTENTCONN = 0x0020
FMT_NOSORT = 0x0040
FMT_EXACT = 0x0080
FMT_TUN_INFO = 0x0100

MAX_TIMEOUT = model.MAX_TIMEOUT
INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1

#: ipvsadm 1.31's SCHEDULERS file and PERSISTENCE_ENGINES file, as compiled into its usage text.
USAGE_SCHEDULERS = "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh"
USAGE_PE_LIST = "sip"
IPVSADM_VERSION = "v1.31 2019/12/24"


class PoptError(LbError):
    """A popt-level error or ipvsadm's tryhelp_exit: printed as is, exit status 255 (exit(-1))."""

    exit_code = 255


def tryhelp(prog: str) -> PoptError:
    return PoptError(f"Try `{prog} -h' or '{prog} --help' for more information.")


_ANY4 = IPv4Address(0)


@dataclass
class Command:
    """One parsed ipvsadm command line (ipvsadm.c struct ipvs_command_entry + options + format)."""

    cmd: Cmd = Cmd.NONE
    options: int = 0
    format: int = FMT_NONE
    # service fields (ipvs_service_t)
    af: int = 4
    proto: model.Proto = model.Proto.TCP
    addr: model.Addr = _ANY4
    port: int = 0
    fwmark: int = 0
    sched: str = ""
    flags: int = 0
    timeout: int = 0
    netmask: int = model.V4_FULL_MASK
    pe_name: str = ""
    # dest fields (ipvs_dest_t)
    d_af: int = 4
    d_addr: model.Addr = _ANY4
    d_port: int = 0
    fwd: model.Fwd = model.Fwd.DROUTE
    weight: int = 1
    u_threshold: int = 0
    l_threshold: int = 0
    # --set
    timeouts: model.Timeouts | None = None
    # pyvs extensions (not part of ipvsadm's option table)
    json: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def has(self, o: Optc) -> bool:
        return bool(self.options & opt(o))

    @property
    def service_key(self) -> model.ServiceKey:
        return model.ServiceKey(self.proto, self.addr, self.port, self.fwmark)

    @property
    def service(self) -> model.Service:
        return model.Service(self.service_key, self.sched or model.DEFAULT_SCHED, self.flags, self.timeout,
                             self.netmask, self.pe_name)

    @property
    def dest(self) -> model.Dest:
        return model.Dest(self.d_addr, self.d_port, self.fwd, self.weight, self.u_threshold, self.l_threshold)


# ---- small C-library emulations ----

_STRTOL_RE = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)\Z")


def string_to_number(s: str, lo: int, hi: int) -> int:
    """ipvsadm string_to_number: strtol base 10 over the whole string, then a range check; -1 on failure."""
    m = _STRTOL_RE.match(s)
    if not m:
        return -1
    n = int(m.group(1))
    return n if lo <= n <= hi else -1


def inet_aton(text: str) -> int | None:
    """glibc inet_aton: a, a.b, a.b.c or a.b.c.d, each part decimal, 0octal or 0xhex; host-order int."""
    try:  # the common case, a plain dotted quad (inet_pton takes no other form, so the value is the same)
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        pass
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or text.endswith("."):
        return None
    vals = []
    for p in parts:
        if not p:
            return None
        try:
            if p[:2].lower() == "0x":
                v = int(p[2:], 16) if p[2:] else 0
            elif p.startswith("0") and len(p) > 1:
                v = int(p[1:], 8)
            else:
                if not p.isdigit():
                    return None
                v = int(p)
        except ValueError:
            return None
        vals.append(v)
    last_bits = 32 - 8 * (len(vals) - 1)
    if any(v > 255 for v in vals[:-1]) or vals[-1] >= (1 << last_bits):
        return None
    n = 0
    for v in vals[:-1]:
        n = (n << 8) | v
    return (n << last_bits) | vals[-1]


def _host_to_v4(name: str) -> IPv4Address | None:
    n = inet_aton(name)
    if n is not None:
        return IPv4Address(n)
    try:
        return IPv4Address(socket.gethostbyname(name))
    except (OSError, UnicodeError, ValueError):
        return None


def _service_to_port(name: str, proto: model.Proto) -> int:
    try:
        return socket.getservbyname(name, proto.name.lower())
    except (OSError, UnicodeError):
        return -1


SERVICE_NONE, SERVICE_ADDR, SERVICE_PORT = 0, 1, 2


def parse_service(buf: str, proto: model.Proto) -> tuple[int, model.Addr | None, int | None]:
    """ipvsadm parse_service: (SERVICE_* bits, address, port or None)."""
    if buf == "" or (buf.isdigit() and buf.isascii()):
        return SERVICE_NONE, None, None
    portp: str | None = None
    if buf.startswith("["):
        inner, sep, rest = buf[1:].partition("]")
        if not sep or not rest.startswith(":"):
            return SERVICE_NONE, None, None
        buf, portp = inner, rest[1:]
    addr: model.Addr | None
    try:
        # an IPv6 literal has at least two colons (ipaddress: "At least 3 parts expected"), so "a.b.c.d:port"
        # skips the doomed IPv6 parse
        addr = IPv6Address(buf) if buf.count(":") >= 2 and "%" not in buf else None
    except ValueError:
        addr = None
    if addr is None:
        if portp is None and ":" in buf:
            buf, _, portp = buf.rpartition(":")
        addr = _host_to_v4(buf)
        if addr is None:
            return SERVICE_NONE, None, None
    result = SERVICE_ADDR
    port: int | None = None
    if portp is not None:
        result |= SERVICE_PORT
        port = string_to_number(portp, 0, 65535)
        if port == -1:
            port = _service_to_port(portp, proto)
        if port == -1:
            return SERVICE_NONE, None, None
    return result, addr, port


def parse_timeout(buf: str | None, lo: int, hi: int) -> int:
    if buf is None:
        return model.DEFAULT_PERSISTENT_TIMEOUT
    i = string_to_number(buf, lo, hi)
    if i == -1:
        raise UsageError(f"invalid timeout value `{buf}' specified")
    return i


def parse_fwmark(buf: str) -> int:
    m = _STRTOL_RE.match(buf)
    if not m or not 0 < int(m.group(1)) <= UINT_MAX:
        raise UsageError(f"invalid fwmark value `{buf}' specified")
    return int(m.group(1))


def parse_sched_flags(sched: str, arg: str) -> int:
    sched = sched or model.DEFAULT_SCHED
    flags = 0
    named = {"sh-fallback": ("sh", model.SVC_F_SCHED_SH_FALLBACK),
             "sh-port": ("sh", model.SVC_F_SCHED_SH_PORT),
             "mh-fallback": ("mh", model.SVC_F_SCHED_MH_FALLBACK),
             "mh-port": ("mh", model.SVC_F_SCHED_MH_PORT)}
    generic = {"flag-1": model.SVC_F_SCHED1, "flag-2": model.SVC_F_SCHED2, "flag-3": model.SVC_F_SCHED3}
    tokens = [t for t in arg.split(",") if t] or [""]
    for flag in tokens:
        if flag in generic:
            flags |= generic[flag]
        elif flag in named:
            owner, bit = named[flag]
            flags |= bit
            if sched != owner:
                raise UsageError(f"incompatible scheduler flag `{flag}'")
        else:
            raise UsageError(f"invalid scheduler flag `{flag}'")
    return flags


# ---- the popt option table: long name -> (short, takes_arg, tag) ----

_ARG_NONE, _ARG_STRING, _ARG_OPTIONAL = 0, 1, 2
_LONG: dict[str, tuple[str, int]] = {
    "add-service": ("A", _ARG_NONE), "edit-service": ("E", _ARG_NONE), "delete-service": ("D", _ARG_NONE),
    "clear": ("C", _ARG_NONE), "list": ("L", _ARG_NONE), "zero": ("Z", _ARG_NONE),
    "add-server": ("a", _ARG_NONE), "edit-server": ("e", _ARG_NONE), "delete-server": ("d", _ARG_NONE),
    "set": ("set", _ARG_NONE), "help": ("h", _ARG_NONE), "version": ("v", _ARG_NONE),
    "restore": ("R", _ARG_NONE), "save": ("S", _ARG_NONE),
    "start-daemon": ("start-daemon", _ARG_STRING), "stop-daemon": ("stop-daemon", _ARG_STRING),
    "tcp-service": ("t", _ARG_STRING), "udp-service": ("u", _ARG_STRING),
    "sctp-service": ("sctp-service", _ARG_STRING), "fwmark-service": ("f", _ARG_STRING),
    "scheduler": ("s", _ARG_STRING), "persistent": ("p", _ARG_OPTIONAL), "netmask": ("M", _ARG_STRING),
    "real-server": ("r", _ARG_STRING), "masquerading": ("m", _ARG_NONE), "ipip": ("i", _ARG_NONE),
    "gatewaying": ("g", _ARG_NONE), "weight": ("w", _ARG_STRING), "u-threshold": ("x", _ARG_STRING),
    "l-threshold": ("y", _ARG_STRING), "numeric": ("n", _ARG_NONE), "connection": ("c", _ARG_NONE),
    "mcast-interface": ("mcast-interface", _ARG_STRING), "syncid": ("I", _ARG_STRING),
    "timeout": ("timeout", _ARG_NONE), "daemon": ("daemon", _ARG_NONE), "stats": ("stats", _ARG_NONE),
    "rate": ("rate", _ARG_NONE), "thresholds": ("thresholds", _ARG_NONE),
    "persistent-conn": ("persistent-conn", _ARG_NONE), "nosort": ("nosort", _ARG_NONE),
    "sort": ("sort", _ARG_NONE), "exact": ("X", _ARG_NONE), "ipv6": ("6", _ARG_NONE), "ops": ("o", _ARG_NONE),
    "pe": ("pe", _ARG_STRING), "sched-flags": ("b", _ARG_STRING), "mcast-group": ("mcast-group", _ARG_STRING),
    "mcast-port": ("mcast-port", _ARG_STRING), "mcast-ttl": ("mcast-ttl", _ARG_STRING),
    "sync-maxlen": ("sync-maxlen", _ARG_STRING), "tun-info": ("tun-info", _ARG_NONE),
    "tun-type": ("tun-type", _ARG_STRING), "tun-port": ("tun-port", _ARG_STRING),
    "tun-nocsum": ("tun-nocsum", _ARG_NONE), "tun-csum": ("tun-csum", _ARG_NONE),
    "tun-remcsum": ("tun-remcsum", _ARG_NONE),
}
_SHORT: dict[str, int] = {}
for _long, (_tag, _kind) in _LONG.items():
    if len(_tag) == 1 and _tag not in "I":
        _SHORT[_tag] = _kind
_SHORT["l"] = _ARG_NONE  # { "list", 'l' } is a second entry in ipvsadm's table

_COMMANDS = {"A": Cmd.ADD, "E": Cmd.EDIT, "D": Cmd.DEL, "a": Cmd.ADDDEST, "e": Cmd.EDITDEST,
             "d": Cmd.DELDEST, "C": Cmd.FLUSH, "L": Cmd.LIST, "l": Cmd.LIST, "Z": Cmd.ZERO,
             "set": Cmd.TIMEOUT, "R": Cmd.RESTORE,
             "S": Cmd.SAVE, "start-daemon": Cmd.STARTDAEMON, "stop-daemon": Cmd.STOPDAEMON}


class _Popt:
    """Just enough of popt's poptGetNextOpt/poptGetArg for ipvsadm's table."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.i = 1
        self.cluster = ""       # remaining characters of a short-option cluster
        self.current = ""       # the argv element being parsed (poptBadOption)
        self.leftovers: list[str] = []
        self.only_args = False

    def next(self) -> tuple[str, str | None] | None:
        """(tag, optarg) of the next option, or None at the end; raises PoptError for popt errors."""
        while True:
            if self.cluster:
                ch, self.cluster = self.cluster[0], self.cluster[1:]
                kind = _SHORT.get(ch)
                if kind is None:
                    raise PoptError(f"{self.current}: unknown option")
                if kind == _ARG_NONE:
                    return ch, None
                if self.cluster:
                    arg, self.cluster = self.cluster, ""
                    return ch, arg
                return ch, self._take(kind)
            if self.i >= len(self.argv):
                return None
            a = self.argv[self.i]
            self.i += 1
            if self.only_args or not a.startswith("-") or a == "-":
                self.leftovers.append(a)
                continue
            if a == "--":
                self.only_args = True
                continue
            self.current = a
            if a.startswith("--"):
                name, eq, value = a[2:].partition("=")
                entry = _LONG.get(name)
                if entry is None:
                    raise PoptError(f"{a}: unknown option")
                tag, kind = entry
                if eq:
                    if kind == _ARG_NONE:
                        raise PoptError(f"{a}: option does not take an argument")
                    return tag, value
                if kind == _ARG_NONE:
                    return tag, None
                return tag, self._take(kind)
            self.cluster = a[1:]

    def _take(self, kind: int) -> str | None:
        if self.i >= len(self.argv):
            if kind == _ARG_OPTIONAL:
                return None
            raise PoptError(f"{self.current}: missing argument")
        nxt = self.argv[self.i]
        if kind == _ARG_OPTIONAL and nxt.startswith("-"):
            return None
        self.i += 1
        return nxt

    def get_arg(self) -> str | None:
        while self.i < len(self.argv):      # popt collects the rest as leftovers when asked
            self.leftovers.append(self.argv[self.i])
            self.i += 1
        return self.leftovers.pop(0) if self.leftovers else None


def parse_args(argv: list[str], prog: str = "ipvsadm") -> Command:
    """ipvsadm parse_options + process_options' checks: argv (argv[0] = program) → Command.

    Raises UsageError (ipvsadm fail(2, ...)), PoptError (exit 255) or NotSupportedError.
    """
    ce = Command()
    p = _Popt(argv)
    sched_flags_arg = ""

    try:
        first = p.next()
    except PoptError:
        first = None            # any popt error on the first option: tryhelp_exit
    if first is None:
        raise tryhelp(prog)
    tag, optarg = first
    if tag == "h":
        ce.cmd = Cmd.HELP
        return ce
    if tag == "v":
        ce.cmd = Cmd.VERSION
        return ce
    if tag not in _COMMANDS:
        raise tryhelp(prog)
    ce.cmd = _COMMANDS[tag]
    if ce.cmd in (Cmd.STARTDAEMON, Cmd.STOPDAEMON) and optarg not in ("master", "backup"):
        raise UsageError("illegal start-daemon parameter specified" if ce.cmd == Cmd.STARTDAEMON
                         else "illegal start_daemon specified")

    def set_option(o: Optc) -> None:
        if ce.options & opt(o):
            raise UsageError(f"multiple '{OPTNAMES[o]}' options specified")
        ce.options |= opt(o)

    while True:
        nxt = p.next()
        if nxt is None:
            break
        tag, optarg = nxt
        arg = optarg or ""
        if tag in _COMMANDS or tag in ("h", "v"):
            # ipvsadm's option loop has no case for commands: popt hands them to `default:`.
            raise UsageError(f"invalid option `{p.current}'")
        if tag in ("t", "u", "sctp-service"):
            set_option(Optc.SERVICE)
            ce.proto = {"t": model.Proto.TCP, "u": model.Proto.UDP}.get(tag, model.Proto.SCTP)
            res, addr, port = parse_service(arg, ce.proto)
            if not res & SERVICE_ADDR or addr is None:
                raise UsageError("illegal virtual server address[:port] specified")
            ce.addr = addr
            ce.af = addr.version
            if addr.version == 6:
                ce.netmask = model.V6_FULL_PREFIX
            if port is not None:
                ce.port = port
        elif tag == "f":
            set_option(Optc.SERVICE)
            ce.af = 4
            ce.proto = model.Proto.TCP
            ce.fwmark = parse_fwmark(arg)
        elif tag == "s":
            set_option(Optc.SCHEDULER)
            ce.sched = arg[: 16 - 1]
        elif tag == "p":
            set_option(Optc.PERSISTENT)
            ce.flags |= model.SVC_F_PERSISTENT
            ce.timeout = parse_timeout(optarg, 1, MAX_TIMEOUT)
        elif tag == "M":
            set_option(Optc.NETMASK)
            if ce.af != 6:
                mask = _host_to_v4(arg)
                if mask is None:
                    raise UsageError("illegal virtual server persistent mask specified")
                ce.netmask = int(mask)
            else:
                m = re.match(r"\s*([+-]?\d+)", arg)   # atoi
                ce.netmask = int(m.group(1)) if m else 0
                if not 1 <= ce.netmask <= 128:
                    raise UsageError("illegal ipv6 netmask specified")
        elif tag == "r":
            set_option(Optc.SERVER)
            res, addr, port = parse_service(arg, ce.proto)
            if not res & SERVICE_ADDR or addr is None:
                raise UsageError("illegal real server address[:port] specified")
            ce.d_addr = addr
            ce.d_af = addr.version
            ce.d_port = port if port is not None else ce.port   # "copy vport to dport if not specified"
        elif tag in ("i", "g", "m"):
            set_option(Optc.FORWARD)
            ce.fwd = {"i": model.Fwd.TUNNEL, "g": model.Fwd.DROUTE, "m": model.Fwd.MASQ}[tag]
        elif tag == "w":
            set_option(Optc.WEIGHT)
            ce.weight = string_to_number(arg, 0, 65535)
            if ce.weight == -1:
                raise UsageError("illegal weight specified")
        elif tag == "x":
            set_option(Optc.UTHRESHOLD)
            ce.u_threshold = string_to_number(arg, 0, INT_MAX)
            if ce.u_threshold == -1:
                raise UsageError("illegal u_threshold specified")
        elif tag == "y":
            set_option(Optc.LTHRESHOLD)
            ce.l_threshold = string_to_number(arg, 0, INT_MAX)
            if ce.l_threshold == -1:
                raise UsageError("illegal l_threshold specified")
        elif tag == "c":
            set_option(Optc.CONNECTION)
        elif tag == "n":
            set_option(Optc.NUMERIC)
            ce.format |= FMT_NUMERIC
        elif tag == "mcast-interface":
            set_option(Optc.MCAST)
        elif tag == "I":
            set_option(Optc.SYNCID)
            if string_to_number(arg, 0, 255) == -1:
                raise UsageError("illegal syncid specified")
        elif tag == "timeout":
            set_option(Optc.TIMEOUT)
        elif tag == "daemon":
            set_option(Optc.DAEMON)
        elif tag == "stats":
            set_option(Optc.STATS)
            ce.format |= FMT_STATS
        elif tag == "rate":
            set_option(Optc.RATE)
            ce.format |= FMT_RATE
        elif tag == "thresholds":
            set_option(Optc.THRESHOLDS)
            ce.format |= FMT_THRESHOLDS
        elif tag == "persistent-conn":
            set_option(Optc.PERSISTENTCONN)
            ce.format |= FMT_PERSISTENTCONN
        elif tag == "nosort":
            set_option(Optc.NOSORT)
            ce.format |= FMT_NOSORT
        elif tag == "sort":
            pass
        elif tag == "X":
            set_option(Optc.EXACT)
            ce.format |= FMT_EXACT
        elif tag == "6":
            if ce.fwmark:
                ce.af = 6
                ce.addr = IPv6Address(0)
                ce.netmask = model.V6_FULL_PREFIX
            else:
                raise UsageError("-6 used before -f\n")
        elif tag == "o":
            set_option(Optc.ONEPACKET)
            ce.flags |= model.SVC_F_ONEPACKET
        elif tag == "pe":
            set_option(Optc.PERSISTENCE_ENGINE)
            ce.pe_name = arg[:16]
        elif tag == "b":
            set_option(Optc.SCHED_FLAGS)
            sched_flags_arg = arg[:127]
        elif tag == "mcast-group":
            set_option(Optc.MCAST_GROUP)
        elif tag == "mcast-port":
            set_option(Optc.MCAST_PORT)
            if string_to_number(arg, 1, 65535) == -1:
                raise UsageError("illegal mcast-port specified")
        elif tag == "mcast-ttl":
            set_option(Optc.MCAST_TTL)
            if string_to_number(arg, 1, 255) == -1:
                raise UsageError("illegal mcast-ttl specified")
        elif tag == "sync-maxlen":
            set_option(Optc.SYNC_MAXLEN)
            if string_to_number(arg, 1, 65535 - 20 - 8) == -1:
                raise UsageError("illegal sync-maxlen specified")
        elif tag == "tun-info":
            set_option(Optc.TUN_INFO)
            ce.format |= FMT_TUN_INFO
        elif tag == "tun-type":
            set_option(Optc.TUN_TYPE)
            if arg not in ("ipip", "gue", "gre"):
                raise UsageError("illegal tunnel type specified")
            ce.extra["tun-type"] = arg
        elif tag == "tun-port":
            set_option(Optc.TUN_PORT)
            if string_to_number(arg, 1, 65535) == -1:
                raise UsageError("illegal tunnel port specified")
        elif tag == "tun-nocsum":
            set_option(Optc.TUN_NOCSUM)
        elif tag == "tun-csum":
            set_option(Optc.TUN_CSUM)
        elif tag == "tun-remcsum":
            set_option(Optc.TUN_REMCSUM)
        else:  # pragma: no cover - every table entry is handled above
            raise UsageError(f"invalid option `{p.current}'")

    if ce.cmd == Cmd.TIMEOUT:
        a0, a1, a2 = p.get_arg(), p.get_arg(), p.get_arg()
        if a0 is None or a1 is None or a2 is None:
            raise UsageError("--set option requires 3 timeout values")
        ce.timeouts = model.Timeouts(parse_timeout(a0, 0, MAX_TIMEOUT), parse_timeout(a1, 0, MAX_TIMEOUT),
                                     parse_timeout(a2, 0, MAX_TIMEOUT))
    extra_arg = p.get_arg()
    if extra_arg is not None:
        raise UsageError(f"unexpected argument {extra_arg}")
    if sched_flags_arg:
        ce.flags &= ~model.SVC_F_SCHED_MASK
        ce.flags |= parse_sched_flags(ce.sched, sched_flags_arg)

    generic_opt_check(ce.cmd, ce.options)
    _process_checks(ce)
    return ce


def generic_opt_check(command: Cmd, options: int) -> None:
    """ipvsadm generic_opt_check: the first violated cell of the commands_v_options row."""
    i = int(command) - 1
    row = COMMANDS_V_OPTIONS[i]
    count = 0
    last = 0
    for j, cell in enumerate(row):
        if not options & (1 << j):
            if cell == "+":
                raise UsageError(f"You need to supply the '{OPTNAMES[j]}' option for the "
                                 f"'{CMDNAMES[i]}' command")
        else:
            if cell == "x":
                raise UsageError(f"Illegal '{OPTNAMES[j]}' option with the '{CMDNAMES[i]}' command")
            if cell == "1":
                count += 1
                if count == 1:
                    last = j
                    continue
                raise UsageError(f"The option '{OPTNAMES[j]}' conflicts with the '{OPTNAMES[last]}' "
                                 f"option in the '{CMDNAMES[i]}' command")


_TUN_OPTS = opt(Optc.TUN_TYPE) | opt(Optc.TUN_PORT) | opt(Optc.TUN_NOCSUM) | opt(Optc.TUN_CSUM) | \
    opt(Optc.TUN_REMCSUM)


def _process_checks(ce: Command) -> None:
    """The checks of ipvsadm process_options between option parsing and the kernel call."""
    if ce.cmd in (Cmd.ADD, Cmd.EDIT):
        if not ce.fwmark and not ce.port and not ce.flags & model.SVC_F_PERSISTENT:
            raise UsageError("Zero port specified for non-persistent service")
        if ce.flags & model.SVC_F_ONEPACKET and not ce.fwmark and ce.proto != model.Proto.UDP:
            raise UsageError("One-Packet Scheduling is only for UDP virtual services")
        if not ce.sched:
            ce.sched = model.DEFAULT_SCHED
    if ce.cmd in (Cmd.ADDDEST, Cmd.EDITDEST):
        if not ce.fwmark and ce.fwd in (model.Fwd.TUNNEL, model.Fwd.DROUTE):
            ce.d_port = ce.port
        if ce.d_af != ce.af and ce.fwd != model.Fwd.TUNNEL:
            raise UsageError("Different address family is allowed only for tunneling servers")
        if ce.options & _TUN_OPTS and ce.fwd != model.Fwd.TUNNEL:
            raise UsageError("Tunnel options conflict with forward method")
        _tunnel_opt_check(ce)
    if ce.cmd == Cmd.LIST:
        o = ce.options
        if (o & (opt(Optc.CONNECTION) | opt(Optc.TIMEOUT) | opt(Optc.DAEMON))
                and o & (opt(Optc.STATS) | opt(Optc.RATE) | opt(Optc.THRESHOLDS))) or \
                (o & (opt(Optc.TIMEOUT) | opt(Optc.DAEMON)) and o & opt(Optc.PERSISTENTCONN)):
            raise UsageError("options conflicts in the list command")
    if ce.cmd in (Cmd.STARTDAEMON, Cmd.STOPDAEMON):
        raise NotSupportedError("pyvs has no connection sync daemon (--start-daemon/--stop-daemon)")
    if ce.has(Optc.SERVICE) and ce.proto == model.Proto.SCTP and not ce.fwmark:
        raise NotSupportedError("SCTP virtual services are not supported by pyvs (--sctp-service)")
    if ce.options & (_TUN_OPTS & ~opt(Optc.TUN_TYPE)) or ce.extra.get("tun-type", "ipip") != "ipip":
        raise NotSupportedError("pyvs tunnels are IPIP only (--tun-type gue|gre, --tun-port, --tun-*csum)")


def _tunnel_opt_check(ce: Command) -> None:
    """ipvsadm tunnel_opt_check for the default/ipip tunnel type (the only one pyvs has)."""
    tun = ce.extra.get("tun-type", "ipip")
    table = {"ipip": "xxxx", "gue": "+111", "gre": "x11x"}[tun]
    cols = (Optc.TUN_PORT, Optc.TUN_NOCSUM, Optc.TUN_CSUM, Optc.TUN_REMCSUM)
    count = 0
    last = cols[0]
    for cell, k in zip(table, cols, strict=True):
        if not ce.options & opt(k):
            if cell == "+":
                raise UsageError(f"You need to supply the '{OPTNAMES[k]}' option for the '{tun}' tunnel type")
        else:
            if cell == "x":
                raise UsageError(f"Illegal '{OPTNAMES[k]}' option with the '{tun}' tunnel type")
            if cell == "1":
                count += 1
                if count == 1:
                    last = k
                    continue
                raise UsageError(f"The option '{OPTNAMES[k]}' conflicts with the '{OPTNAMES[last]}' "
                                 f"option in the '{tun}' tunnel type")
