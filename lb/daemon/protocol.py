"""The control socket's wire format: versioned JSON lines (one request, one response, each one line).

    request:  {"v": 1, "id": 7, "op": "apply", "args": {"changes": [...]}}
    response: {"v": 1, "id": 7, "ok": true, "result": {...}}
              {"v": 1, "id": 7, "ok": false, "error": {"type": "IpvsError", "message": "...", ...}}

Operations: ping, apply (a list of lb.config.Change, applied atomically), status (services, dests,
counters, rates, timeouts, version), service (one service by key), conns (the connection table),
timeouts, trace (the data plane's trace ring, versioned on its own by "tv": arm it for the next N new
connections from a client address / to a VIP, read its records, stop it; see `trace_args`).
A line longer than MAX_LINE is refused.  This module converts model values to and from JSON-able dicts; it
does no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from lb import model
from lb.config import KINDS, Change
from lb.errors import ProtocolError

VERSION = 1
MAX_LINE = 4 * 1024 * 1024
OPS = ("ping", "apply", "status", "service", "conns", "timeouts", "trace")
#: Version of the trace request's arguments and records (lb.core.trace.TraceRecord fields).
TRACE_VERSION = 1
TRACE_ACTIONS = ("arm", "read", "stop")
TRACE_MAX_COUNT = 1024


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def request(req_id: int, op: str, args: dict[str, Any] | None = None) -> bytes:
    return encode({"v": VERSION, "id": req_id, "op": op, "args": args or {}})


def decode_request(line: bytes) -> tuple[int, str, dict[str, Any]]:
    """(id, op, args) of a request line; ProtocolError for anything malformed."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed request: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed request: not an object")
    if obj.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {obj.get('v')!r} (this daemon speaks {VERSION})")
    req_id, op, args = obj.get("id", 0), obj.get("op"), obj.get("args", {})
    if not isinstance(req_id, int) or not isinstance(op, str) or not isinstance(args, dict):
        raise ProtocolError("malformed request: id, op or args has the wrong type")
    if op not in OPS:
        raise ProtocolError(f"unknown operation {op!r}")
    return req_id, op, args


# ---- model <-> dict ----


def _req(d: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    v = d.get(name)
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is int):
        raise ProtocolError(f"field {name!r} missing or of the wrong type")
    return v


def _addr(text: Any) -> model.Addr:
    try:
        return model.parse_addr(str(text))
    except ValueError:
        raise ProtocolError(f"bad address {text!r}") from None


def key_to_dict(k: model.ServiceKey) -> dict[str, Any]:
    return {"proto": int(k.proto), "addr": str(k.addr), "port": k.port, "fwmark": k.fwmark}


def key_from_dict(d: Any) -> model.ServiceKey:
    if not isinstance(d, dict):
        raise ProtocolError("service key must be an object")
    try:
        proto = model.Proto(_req(d, "proto", int))
    except ValueError:
        raise ProtocolError("bad protocol") from None
    return model.ServiceKey(proto, _addr(d.get("addr")), _req(d, "port", int), _req(d, "fwmark", int))


def service_to_dict(s: model.Service) -> dict[str, Any]:
    return {"key": key_to_dict(s.key), "sched": s.sched, "flags": s.flags, "timeout": s.timeout,
            "netmask": s.netmask, "pe_name": s.pe_name}


def service_from_dict(d: Any) -> model.Service:
    if not isinstance(d, dict):
        raise ProtocolError("service must be an object")
    return model.Service(key_from_dict(d.get("key")), _req(d, "sched", str), _req(d, "flags", int),
                         _req(d, "timeout", int), _req(d, "netmask", int), str(d.get("pe_name", "")))


def dest_to_dict(x: model.Dest) -> dict[str, Any]:
    return {"addr": str(x.addr), "port": x.port, "fwd": int(x.fwd), "weight": x.weight,
            "u_threshold": x.u_threshold, "l_threshold": x.l_threshold}


def dest_from_dict(d: Any) -> model.Dest:
    if not isinstance(d, dict):
        raise ProtocolError("dest must be an object")
    try:
        fwd = model.Fwd(_req(d, "fwd", int))
    except ValueError:
        raise ProtocolError("bad forwarding method") from None
    return model.Dest(_addr(d.get("addr")), _req(d, "port", int), fwd, _req(d, "weight", int),
                      _req(d, "u_threshold", int), _req(d, "l_threshold", int))


def timeouts_to_dict(t: model.Timeouts) -> dict[str, int]:
    return {"tcp": t.tcp, "tcpfin": t.tcpfin, "udp": t.udp}


def timeouts_from_dict(d: Any) -> model.Timeouts:
    if not isinstance(d, dict):
        raise ProtocolError("timeouts must be an object")
    return model.Timeouts(_req(d, "tcp", int), _req(d, "tcpfin", int), _req(d, "udp", int))


def change_to_dict(c: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": c.kind}
    if c.service is not None:
        out["service"] = service_to_dict(c.service)
    if c.key is not None:
        out["key"] = key_to_dict(c.key)
    if c.dest is not None:
        out["dest"] = dest_to_dict(c.dest)
    if c.timeouts is not None:
        out["timeouts"] = timeouts_to_dict(c.timeouts)
    return out


def change_from_dict(d: Any) -> Change:
    if not isinstance(d, dict) or d.get("kind") not in KINDS:
        raise ProtocolError("change must be an object with a known kind")
    kind = d["kind"]
    service = service_from_dict(d["service"]) if "service" in d else None
    key = key_from_dict(d["key"]) if "key" in d else None
    dest = dest_from_dict(d["dest"]) if "dest" in d else None
    timeouts = timeouts_from_dict(d["timeouts"]) if "timeouts" in d else None
    need = {"add_service": service, "edit_service": service, "del_service": key, "add_dest": dest,
            "edit_dest": dest, "del_dest": dest, "set_timeout": timeouts}
    if kind in need and need[kind] is None:
        raise ProtocolError(f"change {kind} lacks its argument")
    if kind in ("add_dest", "edit_dest", "del_dest") and key is None:
        raise ProtocolError(f"change {kind} lacks its service key")
    return Change(kind, service, key, dest, timeouts)


def _stats_to_list(s: model.Stats | model.Rates) -> list[int]:
    return [int(getattr(s, f)) for f in s.__slots__]


def status_to_dict(st: model.ServiceStatus) -> dict[str, Any]:
    return {"service": service_to_dict(st.service), "stats": _stats_to_list(st.stats),
            "rates": _stats_to_list(st.rates),
            "dests": [{"dest": dest_to_dict(d.dest), "active": d.activeconns, "inact": d.inactconns,
                       "persist": d.persistconns, "stats": _stats_to_list(d.stats),
                       "rates": _stats_to_list(d.rates)} for d in st.dests]}


def status_from_dict(d: Any) -> model.ServiceStatus:
    if not isinstance(d, dict):
        raise ProtocolError("status must be an object")
    dests = tuple(model.DestStatus(dest_from_dict(x["dest"]), x["active"], x["inact"], x["persist"],
                                   model.Stats(*x["stats"]), model.Rates(*x["rates"])) for x in d["dests"])
    return model.ServiceStatus(service_from_dict(d["service"]), dests, model.Stats(*d["stats"]),
                               model.Rates(*d["rates"]))


def conn_to_dict(c: model.ConnInfo) -> dict[str, Any]:
    return {"proto": int(c.proto), "caddr": str(c.caddr), "cport": c.cport, "vaddr": str(c.vaddr),
            "vport": c.vport, "daddr": str(c.daddr), "dport": c.dport, "state": c.state,
            "expires_s": c.expires_s, "fwd": int(c.fwd), "flags": c.flags, "template": c.template,
            "pe_name": c.pe_name, "pe_data": c.pe_data}


def conn_from_dict(d: dict[str, Any]) -> model.ConnInfo:
    return model.ConnInfo(model.Proto(d["proto"]), _addr(d["caddr"]), d["cport"], _addr(d["vaddr"]),
                          d["vport"], _addr(d["daddr"]), d["dport"], d["state"], d["expires_s"],
                          model.Fwd(d["fwd"]), d["flags"], d["template"], d["pe_name"], d["pe_data"])


# ---- trace ----


def trace_request(action: str, *, count: int = 0, client: str | None = None, vip: str | None = None,
                  vport: int = 0, after: int = 0) -> dict[str, Any]:
    """The args of a `trace` request: arm (count, optional client / vip / vport filter), read (records with
    seq > after) or stop."""
    return {"tv": TRACE_VERSION, "action": action, "count": count, "client": client, "vip": vip,
            "vport": vport, "after": after}


def trace_args(d: dict[str, Any]) -> dict[str, Any]:
    """Validated trace args: action, count, client, vip, vport, after (ProtocolError when malformed)."""
    if d.get("tv") != TRACE_VERSION:
        raise ProtocolError(f"unsupported trace version {d.get('tv')!r} (this daemon speaks {TRACE_VERSION})")
    action = d.get("action")
    if action not in TRACE_ACTIONS:
        raise ProtocolError(f"trace action must be one of {', '.join(TRACE_ACTIONS)}")
    out: dict[str, Any] = {"action": action}
    for name, hi in (("count", TRACE_MAX_COUNT), ("vport", 0xFFFF), ("after", 2**63 - 1)):
        v = d.get(name, 0)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
            raise ProtocolError(f"trace field {name!r} must be an integer in [0, {hi}]")
        out[name] = v
    for name in ("client", "vip"):
        v = d.get(name)
        out[name] = None if v in (None, "") else str(_addr(v))
    if out["client"] and out["vip"] and _addr(out["client"]).version != _addr(out["vip"]).version:
        raise ProtocolError("trace client and vip must be of the same address family")
    return out
