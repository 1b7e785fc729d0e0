"""Test that `lb explain --html` pages render in headless Chromium as a reader needs them.

- the page is self-contained: no external URL is referenced (no src=/href= to http(s), no @import);
- it renders in Chromium (Debian package `chromium`); in the rendered DOM each mode's SVG has exactly one
  visible arrow (`line.hop-arrow`, non-zero width, an arrow head) per hop heading of that mode;
- changed fields are marked: highlighted cells (`td.changed`) have a coloured background and the `*` marker,
  the NAT page marks IPv4.dst on the request and IPv4.src on the reply, the TUN page marks the added outer
  header;
- `--all` puts the comparison table and the three modes on one page;
- a screenshot is saved to build/artifacts/ for humans.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lb.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")

# Run inside the rendered page (a test copy; the page itself has no script): collect what a reader sees.
_PROBE = """<script>
window.addEventListener('load', () => {
  const out = {modes: {}};
  for (const sec of document.querySelectorAll('section.mode')) {
    const arrows = [...sec.querySelectorAll('svg line.hop-arrow')].map(l => {
      const b = l.getBBox(); return {w: b.width, head: l.getAttribute('marker-end') || ''};
    });
    const changed = [...sec.querySelectorAll('td.changed')].map(td => ({
      field: td.dataset.field, bg: getComputedStyle(td).backgroundColor,
      marker: getComputedStyle(td, '::before').content}));
    const added = [...sec.querySelectorAll('tr.added th')].map(th => th.textContent);
    out.modes[sec.id] = {hops: sec.querySelectorAll('h3').length, arrows, changed, added};
  }
  out.compare = document.querySelectorAll('table.compare th').length;
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--user-data-dir=" + str(ARTIFACTS / ".chromium-profile"), *args],
                          capture_output=True, text=True, timeout=90, check=False)


def _probe(page: Path, tmp: Path) -> dict[str, object]:
    probed = tmp / "probe.html"
    html = page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>")
    probed.write_text(html, encoding="utf-8")
    r = _chromium("--virtual-time-budget=3000", "--dump-dom", probed.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"chromium did not render the page: {r.stderr[-500:]}"
    text = m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text)


@pytest.fixture(scope="module")
def all_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_factory.mktemp("html")
    page = tmp / "explain-all.html"
    assert main(["explain", "--all", "--engine", "c", "--color", "never", "--html", str(page)]) == 0
    return page, _probe(page, tmp)


def test_self_contained(all_page: tuple[Path, dict[str, object]]) -> None:
    html = all_page[0].read_text(encoding="utf-8")
    assert not re.search(r'(src|href)\s*=\s*"https?:', html)
    assert "@import" not in html and "<script" not in html


def test_one_arrow_per_hop(all_page: tuple[Path, dict[str, object]]) -> None:
    modes = all_page[1]["modes"]
    assert isinstance(modes, dict) and set(modes) == {"mode-nat", "mode-dr", "mode-tun"}
    expected_hops = {"mode-nat": 4, "mode-dr": 3, "mode-tun": 3}
    for sec, info in modes.items():
        assert info["hops"] == expected_hops[sec]
        assert len(info["arrows"]) == info["hops"]
        assert all(a["w"] > 50 and a["head"].startswith("url(#arrow-") for a in info["arrows"])


def test_changed_fields_marked(all_page: tuple[Path, dict[str, object]]) -> None:
    modes = all_page[1]["modes"]
    assert isinstance(modes, dict)
    for info in modes.values():
        assert info["changed"], "every mode changes something"
        for cell in info["changed"]:
            assert cell["bg"] not in ("rgba(0, 0, 0, 0)", "transparent")
            assert "*" in cell["marker"]
    nat_fields = [c["field"] for c in modes["mode-nat"]["changed"]]
    assert "IPv4.dst" in nat_fields and "IPv4.src" in nat_fields
    dr_fields = {c["field"] for c in modes["mode-dr"]["changed"]}
    assert "IPv4.dst" not in dr_fields and "Ethernet.dst" in dr_fields
    assert modes["mode-tun"]["added"] == ["IPv4 (outer) (added)"]
    assert all_page[1]["compare"] == 4 + 5       # corner + 3 modes, 5 row titles


def test_screenshot(all_page: tuple[Path, dict[str, object]]) -> None:
    shot = ARTIFACTS / "explain-all.png"
    shot.unlink(missing_ok=True)
    _chromium(f"--screenshot={shot}", "--window-size=1280,2400", all_page[0].as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000
    shutil.copy(all_page[0], ARTIFACTS / "explain-all.html")
