"""The ladder: a packet's journey, hop by hop, as `lb explain` and `lb trace` show it.

A `Ladder` is a list of events between named nodes (client, balancer, real server): a `Hop` is one frame on
one link (its dissected headers and the fields that changed since the same packet's previous hop, each with
a reason), a `Step` is something a node did in between (the balancer's service lookup, scheduler decision,
connection state change, rewrite; the real server's decapsulation).  Text and HTML renderers both draw from
this one structure, and both the offline explainer and the lab tracer build it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lb.teach import reasons
from lb.teach.pcap import Header, dissect


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One header field that differs from the packet's previous hop."""

    layer: str
    name: str
    old: str
    new: str
    reason: str


@dataclass(slots=True)
class Hop:
    """One frame between two nodes."""

    src: str                       # node id
    dst: str                       # node id
    label: str                     # "SYN (request)", "SYN-ACK (reply)" ...
    where: str                     # where it was seen: "link client:eth0 -> lb:eth0"
    frame: bytes
    headers: list[Header] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)
    added: list[tuple[str, str]] = field(default_factory=list)    # (layer, reason)
    removed: list[str] = field(default_factory=list)
    note: str = ""
    index: int = 0

    def changed(self, layer: str, name: str) -> bool:
        return any(c.layer == layer and c.name == name for c in self.changes) or any(
            a == layer for a, _ in self.added)


@dataclass(slots=True)
class Step:
    """Something a node did between hops (the balancer's own steps)."""

    node: str
    title: str
    text: str


@dataclass(slots=True)
class Ladder:
    """One mode's story: the nodes (columns, left to right), the events in order, and where the facts came
    from (which engine rewrote the packets; captured or built frames)."""

    mode: str
    title: str
    nodes: list[tuple[str, str]]              # (id, label)
    events: list[Hop | Step] = field(default_factory=list)
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def hops(self) -> list[Hop]:
        return [e for e in self.events if isinstance(e, Hop)]

    def add_hop(self, hop: Hop) -> Hop:
        hop.index = len(self.hops) + 1
        if not hop.headers:
            hop.headers = dissect(hop.frame)
        self.events.append(hop)
        return hop

    def add_step(self, node: str, title: str, text: str) -> None:
        self.events.append(Step(node, title, text))

    def node_label(self, node: str) -> str:
        for nid, label in self.nodes:
            if nid == node:
                return label
        return node


def _pair_layers(before: list[Header], after: list[Header]) -> list[tuple[Header | None, Header | None]]:
    """Match headers of two hops of the same packet by layer.  A plain "IPv4" before pairs with the inner
    header after an encapsulation (and the other way round for decapsulation)."""
    def key(h: Header, other_has_outer: bool) -> str:
        if h.layer == "IPv4" and other_has_outer:
            return "IPv4 (inner)"
        return h.layer

    b_outer = any(h.layer == "IPv4 (outer)" for h in before)
    a_outer = any(h.layer == "IPv4 (outer)" for h in after)
    bmap = {key(h, a_outer): h for h in before}
    amap = {key(h, b_outer): h for h in after}
    order = list(dict.fromkeys([*amap.keys(), *bmap.keys()]))
    return [(bmap.get(k), amap.get(k)) for k in order]


def diff_hop(prev: Hop, hop: Hop, mode: str, direction: str) -> None:
    """Fill hop.changes/added/removed from the same packet's previous hop."""
    hop.changes.clear()
    hop.added.clear()
    hop.removed.clear()
    for b, a in _pair_layers(prev.headers, hop.headers):
        if a is None and b is not None:
            hop.removed.append(b.layer)
            continue
        if b is None and a is not None:
            hop.added.append((a.layer, reasons.layer_added_reason(mode, a.layer)))
            continue
        assert a is not None and b is not None
        old = dict(b.fields)
        for name, value in a.fields:
            if name in old and old[name] != value:
                hop.changes.append(FieldChange(a.layer, name, old[name], value,
                                               reasons.field_reason(mode, direction, a.layer, name)))
