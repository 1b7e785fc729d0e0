"""ipvsadm-save text ⇄ configuration changes: parse `-R` input, emit `-S` rules, validate.

`parse_rules(text)` reads what `ipvsadm-save` / `lbadm -S` print (and what people write by hand for
`ipvsadm -R`): one ipvsadm command line per line, tokenised like ipvsadm's config_stream.c (whitespace
separated, a token "ipvsadm" anywhere is ignored, blank lines skipped) and parsed with the same option
table as the command line (lb.cli.options).  Lines starting with '#' are skipped, as the ipvsadm-restore
script does with `grep -v '^#'`.  Each line becomes a `Change`, the unit lb.state.ConfigState applies.

`emit_rules(services, fmt)` is ipvsadm's list_all(FMT_RULE) (print_service_entry's rule branch): sorted
services, each "-A ..." followed by its sorted dests "-a ... -r ... -g -w 1".  No core calls here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lb import model
from lb.cli import options as o
from lb.errors import ConfigError, LbError


@dataclass(frozen=True, slots=True)
class Change:
    """One configuration change: what ipvsadm would send to the kernel for one command.

    kind: add_service, edit_service, del_service, flush, zero, add_dest, edit_dest, del_dest, set_timeout.
    """

    kind: str
    service: model.Service | None = None      # add_service / edit_service
    key: model.ServiceKey | None = None       # every per-service kind (None for zero = all services)
    dest: model.Dest | None = None            # add_dest / edit_dest / del_dest (only the key part is used)
    timeouts: model.Timeouts | None = None    # set_timeout


KINDS = ("add_service", "edit_service", "del_service", "flush", "zero", "add_dest", "edit_dest", "del_dest",
         "set_timeout")


def change_from_command(ce: o.Command) -> Change:
    """The configuration change of a parsed command line (ValueError for listing commands)."""
    c = ce.cmd
    if c == o.Cmd.ADD:
        return Change("add_service", service=ce.service, key=ce.service_key)
    if c == o.Cmd.EDIT:
        return Change("edit_service", service=ce.service, key=ce.service_key)
    if c == o.Cmd.DEL:
        return Change("del_service", key=ce.service_key)
    if c == o.Cmd.FLUSH:
        return Change("flush")
    if c == o.Cmd.ZERO:
        return Change("zero", key=ce.service_key if ce.has(o.Optc.SERVICE) else None)
    if c == o.Cmd.ADDDEST:
        return Change("add_dest", key=ce.service_key, dest=ce.dest)
    if c == o.Cmd.EDITDEST:
        return Change("edit_dest", key=ce.service_key, dest=ce.dest)
    if c == o.Cmd.DELDEST:
        return Change("del_dest", key=ce.service_key, dest=ce.dest)
    if c == o.Cmd.TIMEOUT:
        return Change("set_timeout", timeouts=ce.timeouts)
    raise ValueError(f"{c.name} is not a configuration change")


def tokenize(text: str) -> list[tuple[int, list[str]]]:
    """(line number, tokens) per non-empty, non-comment line, as config_stream_read splits them."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        tokens = [t for t in line.split() if t != "ipvsadm"]
        if tokens:
            out.append((n, tokens))
    return out


def parse_rules(text: str, prog: str = "ipvsadm") -> list[Change]:
    """Every line of ipvsadm-save / -R text as a Change.

    A bad line raises the same error ipvsadm prints for it (UsageError exit 2, PoptError exit 255) with
    `.lineno` set; nothing is applied by parsing.
    """
    changes = []
    for n, tokens in tokenize(text):
        try:
            ce = o.parse_args([prog, *tokens], prog)
            if ce.cmd == o.Cmd.RESTORE:
                raise o.tryhelp(prog)          # ipvsadm: "avoid infinite loop"
            try:
                changes.append(change_from_command(ce))
            except ValueError:
                raise ConfigError(f"line {n}: only configuration commands may be restored, not "
                                  f"`{' '.join(tokens)}'") from None
        except LbError as exc:
            exc.lineno = n  # type: ignore[attr-defined]
            raise
    return changes


def parse_rules_checked(text: str) -> list[Change]:
    """parse_rules for the daemon side: every failure becomes ConfigError naming the line."""
    try:
        return parse_rules(text)
    except ConfigError:
        raise
    except LbError as exc:
        raise ConfigError(f"line {getattr(exc, 'lineno', '?')}: {exc}") from exc


# ---- -S (ipvsadm print_service_entry with FMT_RULE) ----


def service_rule(svc: model.Service, fmt: int) -> tuple[str, str]:
    """(svc_name as -S prints it, the whole "-A ..." line)."""
    from lb.cli.render import mask_text, sched_flags_text, service_name  # noqa: PLC0415

    name = service_name(svc, fmt | o.FMT_RULE)
    line = f"-A {name} -s {svc.sched}"
    if svc.persistent:
        line += f" -p {svc.timeout}"
        if not svc.key.is_v6 and svc.netmask != model.V4_FULL_MASK:
            line += f" -M {mask_text(svc.netmask)}"
        if svc.key.is_v6 and svc.netmask != model.V6_FULL_PREFIX:
            line += f" -M {svc.netmask}"
    if svc.pe_name:
        line += f" --pe {svc.pe_name}"
    if svc.onepacket:
        line += " -o"
    if svc.sched_flags:
        line += f" -b {sched_flags_text(svc)}"
    return name, line


def dest_rule(svc_name: str, dest: model.Dest, proto: int, fmt: int) -> str:
    from lb.cli.render import addrport  # noqa: PLC0415

    dname = addrport(dest.addr, dest.port, proto, fmt)
    line = f"-a {svc_name} -r {dname} {dest.fwd.switch} -w {dest.weight}"
    if dest.fwd == model.Fwd.TUNNEL:
        line += " --tun-type ipip"       # print_tunnel_rule: IPIP is tunnel type 0
    return line


def emit_rules(services: Sequence[model.ServiceStatus], fmt: int = o.FMT_NUMERIC) -> str:
    """ipvsadm -S [-n] text for these services."""
    fmt |= o.FMT_RULE
    items = list(services) if fmt & o.FMT_NOSORT else model.sort_services(list(services))
    lines = []
    for st in items:
        name, line = service_rule(st.service, fmt)
        lines.append(line)
        dests = list(st.dests) if fmt & o.FMT_NOSORT else model.sort_dests(st.dests)
        lines.extend(dest_rule(name, d.dest, int(st.service.key.proto), fmt) for d in dests)
    return "".join(line + "\n" for line in lines)
