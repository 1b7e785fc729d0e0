"""The on-disk record of a running lab: /run/pyvs/labs/<name>/state.json.

Every namespace is written here *before* it is created and every process right after it is started, so
`lb lab down` (or the next `up`) can remove exactly what a lab made, even after Ctrl-C, a crash mid-setup
or a reboot of the CLI process.  Processes are recorded with their /proc start time, so a PID that was
reused by somebody else's process is never signalled.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LABS_DIR = Path(os.environ.get("PYVS_LABS_DIR", "/run/pyvs/labs"))
#: Lab names become namespace prefixes ("<name>-real3"): short, simple words only.
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
#: Node names a lab can create (used to find leftovers of a lab whose state file was lost).
NODE_RE = r"(client|lb|router|switch|real[0-9]+)"


def check_name(name: str) -> str:
    """Validate a lab name: 1-8 chars, lowercase letter first, then letters/digits."""
    if not NAME_RE.match(name):
        raise ValueError(f"bad lab name {name!r}: 1-8 characters, [a-z][a-z0-9]*")
    return name


def lab_dir(name: str) -> Path:
    return LABS_DIR / name


def leftover_re(name: str) -> re.Pattern[str]:
    """Matches the namespace names lab `name` could have created."""
    return re.compile(rf"^{re.escape(name)}-{NODE_RE}$")


@dataclass(slots=True)
class ProcRecord:
    pid: int
    start: int | None
    node: str
    role: str          # "httpd", "tundecap", "balancer", "capture", ...
    argv: list[str]


@dataclass(slots=True)
class LabState:
    """What one lab made; saved after every change."""

    name: str
    mode: str = ""
    servers: int = 0
    balancer: str = ""
    scheduler: str = ""
    vip: str = ""
    io: str = "afpacket"
    engine: str = "c"
    namespaces: list[str] = field(default_factory=list)
    procs: list[ProcRecord] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return lab_dir(self.name) / "state.json"

    @property
    def socket(self) -> Path:
        return lab_dir(self.name) / "lb.sock"

    def save(self) -> None:
        d = lab_dir(self.name)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = d / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        tmp.replace(self.path)

    def add_ns(self, ns: str) -> None:
        if ns not in self.namespaces:
            self.namespaces.append(ns)
            self.save()

    def add_proc(self, rec: ProcRecord) -> None:
        self.procs.append(rec)
        self.save()

    def drop_proc(self, pid: int) -> None:
        self.procs = [p for p in self.procs if p.pid != pid]
        self.save()

    @classmethod
    def load(cls, name: str) -> LabState | None:
        path = lab_dir(name) / "state.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        procs = [ProcRecord(**p) for p in raw.pop("procs", [])]
        known = set(cls.__dataclass_fields__)
        return cls(procs=procs, **{k: v for k, v in raw.items() if k in known})


def list_labs() -> list[str]:
    """Names of the labs that have a state directory."""
    if not LABS_DIR.is_dir():
        return []
    return sorted(p.name for p in LABS_DIR.iterdir() if (p / "state.json").exists())
