"""Self-contained HTML rendering of ladders: an SVG sequence diagram (one arrow per hop) and header tables.

No external assets: CSS and SVG are inline, so the file can be mailed, opened offline or attached to a CI
run.  Changed fields carry `class="changed"` and a visible `*` marker, added headers `class="added"`; each
hop arrow is a `line.hop-arrow` with `data-hop` so tests (and readers' devtools) can find them.
`page([ladder, ...], compare=True)` adds the side-by-side table of the three modes (`lb explain --all`).
"""

from __future__ import annotations

from html import escape

from lb.teach import reasons
from lb.teach.ladder import Hop, Ladder, Step

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d2430; background: #fbfbfd; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 36px; border-bottom: 2px solid #d8dce6; }
h3 { font-size: 15px; margin: 18px 0 4px; }
.source, .where { color: #5b6475; font-size: 12px; }
svg.ladder { background: #fff; border: 1px solid #d8dce6; border-radius: 6px; margin: 8px 0 16px; }
svg .lifeline { stroke: #aab2c0; stroke-dasharray: 4 4; }
svg .node { fill: #e9eef8; stroke: #6b7a99; }
svg .node-label { font-size: 12px; font-weight: 600; text-anchor: middle; }
svg .hop-arrow { stroke: #2456c7; stroke-width: 2; }
svg .hop-arrow.reply { stroke: #0e8a5b; }
svg .hop-label { font-size: 12px; text-anchor: middle; fill: #1d2430; }
svg .step { font-size: 11px; fill: #7a4b00; }
table.hdr { border-collapse: collapse; margin: 4px 0 10px; font: 12px/1.3 ui-monospace, monospace; }
table.hdr th, table.hdr td { border: 1px solid #d8dce6; padding: 2px 6px; text-align: left; }
table.hdr th { background: #eef1f6; }
td.changed { background: #fff1a8; font-weight: 700; }
td.changed::before { content: "* "; color: #b35900; }
tr.added th { background: #c9f0d8; }
ul.changes li { margin: 2px 0; } ul.steps li { margin: 2px 0; color: #4a3a10; }
table.compare { border-collapse: collapse; margin: 8px 0; }
table.compare th, table.compare td { border: 1px solid #c9cfdb; padding: 6px 8px; vertical-align: top; }
table.compare th { background: #eef1f6; }
"""

_COL_W = 200
_ROW_H = 34
_TOP = 56


def _svg(ladder: Ladder) -> str:
    xs = {nid: 100 + i * _COL_W for i, (nid, _) in enumerate(ladder.nodes)}
    width = 100 * 2 + _COL_W * (len(ladder.nodes) - 1)
    rows = [e for e in ladder.events if isinstance(e, Hop) or e.node != "lb" or e.title.startswith("sched")]
    height = _TOP + _ROW_H * (len(rows) + 1)
    mid = f"arrow-{ladder.mode}"
    out = [f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="sequence diagram, {ladder.mode}">',
           f'<defs><marker id="{mid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>']
    for nid, label in ladder.nodes:
        x = xs[nid]
        out.append(f'<line class="lifeline" x1="{x}" y1="{_TOP - 16}" x2="{x}" y2="{height - 8}"/>')
        out.append(f'<rect class="node" x="{x - 94}" y="8" width="188" height="30" rx="5"/>')
        out.append(f'<text class="node-label" x="{x}" y="28">{escape(label)}</text>')
    y = _TOP
    for event in rows:
        y += _ROW_H
        if isinstance(event, Hop):
            x1, x2 = xs.get(event.src, 20), xs.get(event.dst, 20)     # unknown node: left margin
            reply = "reply" if "reply" in event.label.lower() or event.dst == "client" else ""
            out.append(f'<g class="hop" data-hop="{event.index}"><line class="hop-arrow {reply}" '
                       f'data-hop="{event.index}" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" '
                       f'marker-end="url(#{mid})"/>')
            out.append(f'<text class="hop-label" x="{(x1 + x2) / 2}" y="{y - 6}">[{event.index}] '
                       f'{escape(event.label.split(" (")[0])}</text></g>')
        else:
            out.append(f'<text class="step" x="{xs.get(event.node, 90) + 6}" y="{y - 4}">'
                       f'{escape(event.title)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _hop_html(ladder: Ladder, hop: Hop) -> str:
    added = {layer for layer, _ in hop.added}
    src, dst = escape(ladder.node_label(hop.src)), escape(ladder.node_label(hop.dst))
    hid = f"{ladder.mode}-hop-{hop.index}"
    parts = [f'<h3 id="{hid}">[{hop.index}] {src} &rarr; {dst}: {escape(hop.label)}</h3>',
             f'<div class="where">seen on {escape(hop.where)}</div>', '<table class="hdr">']
    for h in hop.headers:
        cls = ' class="added"' if h.layer in added else ""
        cells = []
        for name, value in h.fields:
            changed = hop.changed(h.layer, name) and h.layer not in added
            mark = ' class="changed"' if changed else ""
            cells.append(f'<td{mark} data-field="{escape(h.layer)}.{escape(name)}">'
                         f'<small>{escape(name)}</small> {escape(value)}</td>')
        tag = " (added)" if h.layer in added else ""
        parts.append(f'<tr{cls}><th>{escape(h.layer)}{tag}</th>{"".join(cells)}</tr>')
    parts.append("</table>")
    items = [f"<li><b>+ {escape(layer)}</b>: {escape(reason)}</li>" for layer, reason in hop.added]
    items += [f"<li><b>* {escape(c.layer)}.{escape(c.name)}</b>: {escape(c.old)} &rarr; {escape(c.new)} "
              f"&mdash; {escape(c.reason)}</li>" for c in hop.changes]
    if items:
        parts.append('<ul class="changes">' + "".join(items) + "</ul>")
    if hop.note:
        parts.append(f"<p><i>{escape(hop.note)}</i></p>")
    return "\n".join(parts)


def section(ladder: Ladder) -> str:
    """One mode: title, source, SVG ladder, then each hop's headers and the balancer's steps in order."""
    parts = [f'<section class="mode" id="mode-{ladder.mode}">', f"<h2>{escape(ladder.title)}</h2>",
             f'<div class="source">{escape(ladder.source)}</div>', _svg(ladder)]
    steps: list[Step] = []
    for event in ladder.events:
        if isinstance(event, Step):
            steps.append(event)
            continue
        if steps:
            parts.append(_steps_html(ladder, steps))
            steps = []
        parts.append(_hop_html(ladder, event))
    if steps:
        parts.append(_steps_html(ladder, steps))
    if ladder.notes:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in ladder.notes) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _steps_html(ladder: Ladder, steps: list[Step]) -> str:
    items = []
    for s in steps:
        body = "<br>".join(escape(line) for line in s.text.split("\n"))
        who = "balancer" if s.node == "lb" else escape(s.node)
        items.append(f"<li><b>{who} &middot; {escape(s.title)}</b>: {body}</li>")
    return '<ul class="steps">' + "".join(items) + "</ul>"


def compare_table(modes: list[str]) -> str:
    """The side-by-side comparison of forwarding modes (docs/teaching.md has the same rows)."""
    rows = (("crosses", "Traffic through the balancer"), ("request", "Request rewrite"),
            ("reply", "Reply path"), ("needs", "Real servers need"), ("fits", "Where it fits"))
    head = "".join(f"<th>{escape(reasons.MODE_SUMMARY[m]['name'])}</th>" for m in modes)
    body = "".join(f"<tr><th>{escape(title)}</th>" + "".join(
        f"<td>{escape(reasons.MODE_SUMMARY[m][key])}</td>" for m in modes) + "</tr>" for key, title in rows)
    return f'<table class="compare"><tr><th></th>{head}</tr>{body}</table>'


def page(ladders: list[Ladder], title: str, compare: bool = False) -> str:
    """A whole self-contained HTML document."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{escape(title)}</h1>",
             '<p class="source">Cells marked <b>*</b> changed at that hop; green rows are headers the '
             "balancer added. Arrows: blue = towards the real server, green = back to the client.</p>"]
    if compare:
        parts.append("<h2>The three forwarding modes side by side</h2>")
        parts.append(compare_table([ladder.mode for ladder in ladders]))
    parts.extend(section(ladder) for ladder in ladders)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
