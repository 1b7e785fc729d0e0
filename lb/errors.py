"""Errors of the control plane, with ipvsadm's exact wording.

`IpvsError(op, errno)` is what the kernel (here: ConfigState or the C core) returns for a configuration
operation; its message comes from the same (operation, errno) table as libipvs `ipvs_strerror`, so
`lbadm` prints exactly what ipvsadm 1.31 prints.  `UsageError` is a command-line problem (ipvsadm's
`fail(2, ...)`).  Everything derives from `LbError`.
"""

from __future__ import annotations

import errno as _errno
import os
from enum import StrEnum


class Op(StrEnum):
    """Configuration operations, named after the libipvs functions ipvs_strerror keys on."""

    ADD_SERVICE = "add_service"
    EDIT_SERVICE = "update_service"
    DEL_SERVICE = "del_service"
    ZERO = "zero_service"
    ADD_DEST = "add_dest"
    EDIT_DEST = "update_dest"
    DEL_DEST = "del_dest"
    FLUSH = "flush"
    SET_TIMEOUT = "set_timeout"
    GET_SERVICES = "get_services"
    GET_DESTS = "get_dests"
    GET_SERVICE = "get_service"


# (op or None for "any", errno) -> message; first match wins, in libipvs's table order.
_STRERROR: tuple[tuple[Op | None, int, str], ...] = (
    (Op.ADD_SERVICE, _errno.EEXIST, "Service already exists"),
    (Op.ADD_SERVICE, _errno.ENOENT, "Scheduler or persistence engine not found"),
    (Op.EDIT_SERVICE, _errno.ESRCH, "No such service"),
    (Op.EDIT_SERVICE, _errno.ENOENT, "Scheduler or persistence engine not found"),
    (Op.DEL_SERVICE, _errno.ESRCH, "No such service"),
    (Op.ZERO, _errno.ESRCH, "No such service"),
    (Op.ADD_DEST, _errno.ESRCH, "Service not defined"),
    (Op.ADD_DEST, _errno.EEXIST, "Destination already exists"),
    (Op.EDIT_DEST, _errno.ESRCH, "Service not defined"),
    (Op.EDIT_DEST, _errno.ENOENT, "No such destination"),
    (Op.DEL_DEST, _errno.ESRCH, "Service not defined"),
    (Op.DEL_DEST, _errno.ENOENT, "No such destination"),
    (Op.GET_SERVICES, _errno.ESRCH, "No such service"),
    (Op.GET_DESTS, _errno.ESRCH, "No such service"),
    (Op.GET_SERVICE, _errno.ESRCH, "No such service"),
    (None, _errno.EPERM, "Permission denied (you must be root)"),
    (None, _errno.EINVAL, "Invalid operation.  Possibly wrong module version, address not unicast, ..."),
    (None, _errno.ENOPROTOOPT, "Protocol not available"),
    (None, _errno.ENOMEM, "Memory allocation problem"),
    (None, _errno.EOPNOTSUPP, "Operation not supported with IPv6"),
    (None, _errno.EAFNOSUPPORT, "Operation not supported with specified address family"),
    (None, _errno.EMSGSIZE, "Module is wrong version"),
)


def ipvs_strerror(op: Op | None, err: int) -> str:
    """The message ipvsadm prints after a failed `op` returned `err` (libipvs ipvs_strerror)."""
    for table_op, table_err, message in _STRERROR:
        if (table_op is None or table_op == op) and table_err == err:
            return message
    return os.strerror(err)


class LbError(Exception):
    """Base of all pyvs control-plane errors; `str()` is the user-facing message."""

    #: process exit status lbadm uses for this error (ipvsadm: fail(2) → 2; a failed kernel call → 255).
    exit_code = 1

    def to_dict(self) -> dict[str, object]:
        return {"type": type(self).__name__, "message": str(self)}


class UsageError(LbError):
    """A command line (or a line of -R input) ipvsadm would reject before talking to the kernel."""

    exit_code = 2


class IpvsError(LbError):
    """A configuration operation the kernel would refuse, with its errno."""

    exit_code = 255

    def __init__(self, op: Op, err: int, detail: str = "") -> None:
        self.op = op
        self.errno = err
        self.detail = detail
        super().__init__(ipvs_strerror(op, err))

    def to_dict(self) -> dict[str, object]:
        return {"type": "IpvsError", "message": str(self), "op": self.op.value, "errno": self.errno,
                "detail": self.detail}


class ConfigError(LbError):
    """A config file (ipvsadm-save text) that cannot be parsed; names the line and the offending value."""

    exit_code = 2


class ProtocolError(LbError):
    """A malformed request or response on the control socket."""

    exit_code = 1


class NotSupportedError(UsageError):
    """An ipvsadm feature pyvs parses but does not implement (SCTP, fwmark services, sync daemon...)."""


def error_from_dict(data: dict[str, object]) -> LbError:
    """Rebuild an error sent over the control socket (inverse of `LbError.to_dict`)."""
    kind = data.get("type")
    message = str(data.get("message", "error"))
    if kind == "IpvsError":
        op_value = data.get("op")
        err = data.get("errno")
        if isinstance(op_value, str) and isinstance(err, int):
            try:
                return IpvsError(Op(op_value), err, str(data.get("detail", "")))
            except ValueError:
                pass
    classes: dict[str, type[LbError]] = {
        "UsageError": UsageError,
        "ConfigError": ConfigError,
        "ProtocolError": ProtocolError,
        "NotSupportedError": NotSupportedError,
    }
    cls = classes.get(str(kind), LbError)
    return cls(message)
