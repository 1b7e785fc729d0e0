"""Plain-text rendering of a ladder (terminal output of `lb explain` / `lb trace`).

Changed fields are marked `*field=value*` (or bold yellow when writing to a colour terminal; NO_COLOR
switches colour off, https://no-color.org), new headers are marked `+`, and every change gets a line with
its old value, new value and reason.  Output without colour is stable: the golden files under
tests/golden/explain/ hold it.
"""

from __future__ import annotations

import os
import textwrap
from typing import TextIO

from lb.teach.ladder import Hop, Ladder, Step

_BOLD_YELLOW = "\x1b[1;33m"
_GREEN = "\x1b[32m"
_CYAN = "\x1b[36m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"
WIDTH = 100


def want_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def changed(self, text: str) -> str:
        return f"{_BOLD_YELLOW}{text}{_RESET}" if self.color else f"*{text}*"

    def added(self, text: str) -> str:
        return f"{_GREEN}{text}{_RESET}" if self.color else f"+{text}"

    def title(self, text: str) -> str:
        return f"{_CYAN}{text}{_RESET}" if self.color else text

    def dim(self, text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if self.color else text


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ") or [indent]


def _hop_lines(ladder: Ladder, hop: Hop, st: _Style) -> list[str]:
    arrow = f"{ladder.node_label(hop.src)} -> {ladder.node_label(hop.dst)}"
    lines = [st.title(f"[{hop.index}] {arrow}: {hop.label}"), st.dim(f"    seen on {hop.where}")]
    added = {layer for layer, _ in hop.added}
    for h in hop.headers:
        parts = []
        for name, value in h.fields:
            cell = f"{name}={value}"
            parts.append(st.changed(cell) if hop.changed(h.layer, name) and h.layer not in added else cell)
        layer = st.added(h.layer) if h.layer in added else h.layer
        pad = " " * max(1, 14 - len(h.layer) - (1 if h.layer in added and not st.color else 0))
        lines.extend(textwrap.wrap("  ".join(parts), WIDTH, initial_indent=f"    {layer}{pad}",
                                   subsequent_indent=" " * 18))
    for layer, reason in hop.added:
        lines.extend(_wrap(f"+ {layer}: {reason}", "      "))
    for layer in hop.removed:
        lines.extend(_wrap(f"- {layer}: removed", "      "))
    for c in hop.changes:
        lines.extend(_wrap(f"* {c.layer}.{c.name}: {c.old} -> {c.new}  ({c.reason})", "      "))
    if hop.note:
        lines.extend(_wrap(f"note: {hop.note}", "      "))
    return lines


def _step_lines(ladder: Ladder, step: Step) -> list[str]:
    who = "balancer" if step.node == "lb" else step.node
    head = f"    [{who}] {step.title}: "
    out: list[str] = []
    for i, para in enumerate(step.text.split("\n")):
        if i == 0:
            out.extend(textwrap.wrap(para, WIDTH, initial_indent=head, subsequent_indent=" " * 8))
        else:
            out.extend(textwrap.wrap(para, WIDTH, initial_indent=" " * 8, subsequent_indent=" " * 10))
    return out


def render(ladder: Ladder, color: bool = False) -> str:
    """The whole ladder as text."""
    st = _Style(color)
    lines = [st.title(ladder.title), "=" * min(WIDTH, len(ladder.title))]
    lines.append("nodes: " + ", ".join(label for _, label in ladder.nodes))
    if ladder.source:
        lines.extend(_wrap(f"source: {ladder.source}", ""))
    lines.append(f"marks: {st.changed('field=value')} changed at this hop, {st.added('Header')} added here")
    lines.append("")
    for event in ladder.events:
        if isinstance(event, Hop):
            lines.extend(_hop_lines(ladder, event, st))
        else:
            lines.extend(_step_lines(ladder, event))
        lines.append("")
    for note in ladder.notes:
        lines.extend(_wrap(f"- {note}", ""))
    return "\n".join(lines).rstrip() + "\n"
