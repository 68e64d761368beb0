"""reports/fleet.html: one self-contained page (no network) for an instructor's fleet run.

A lab x check grid built from summary.json's data: one row per lab, worst first; one column per
check, grouped by suite. A red cell carries the failure's message and hint (shown on hover and
when clicked, under the grid). Filters: by lab (text), by suite, only failures; the page's
address can set them too (``fleet.html#failures&suite=lab3&lab=attendee-0``), so a link in a
chat or a CI summary opens the view that matters.

The table is rendered here, in Python; the page's script only hides rows and columns, so the page
reads the same with scripts off. Everything comes from summary data, which is redacted already;
the page is redacted once more before it is written.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from pytest_workshop.report.redact import Redactor
from pytest_workshop.report.summary import BAD, failing, worst_first

MARK = {"PASS": "✓", "FAIL": "✗", "ERROR": "!", "SKIP": "-"}

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
.filters { margin: .8em 0; display: flex; gap: 1em; align-items: center; flex-wrap: wrap; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 2px 5px; text-align: center; white-space: nowrap; }
th.lab { text-align: left; position: sticky; left: 0; background: #fafafa; }
thead th { font-weight: 600; font-size: 12px; background: #f3f3f3; }
td.PASS { background: #e5f5e5; color: #287a28; }
td.FAIL { background: #f8d7d7; color: #a11; cursor: pointer; font-weight: 700; }
td.ERROR { background: #fde9c8; color: #8a5200; cursor: pointer; font-weight: 700; }
td.SKIP { background: #f1f1f1; color: #888; }
td.none { background: #fff; }
[hidden] { display: none !important; }
#detail { margin-top: 1em; padding: .6em .8em; border-left: 4px solid #a11; background: #fff5f5; }
#detail .hint { font-weight: 600; }
.counts { color: #555; }
"""

SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('tbody tr'));
  var labBox = document.getElementById('lab'), suiteBox = document.getElementById('suite'),
      onlyBox = document.getElementById('failures'), detail = document.getElementById('detail');
  function apply() {
    var text = labBox.value.toLowerCase(), suite = suiteBox.value, only = onlyBox.checked;
    var cols = document.querySelectorAll('[data-suite]');
    var failingCols = {};
    rows.forEach(function (row) {
      var show = row.dataset.lab.toLowerCase().indexOf(text) >= 0 && (!only || row.dataset.failing === '1');
      row.hidden = !show;
      if (show) row.querySelectorAll('td.FAIL, td.ERROR').forEach(function (c) { failingCols[c.dataset.check] = 1; });
    });
    cols.forEach(function (c) {
      c.hidden = (suite && c.dataset.suite !== suite) || (only && !failingCols[c.dataset.check]);
    });
    var shown = rows.filter(function (r) { return !r.hidden; }).length;
    document.getElementById('shown').textContent = shown + ' of ' + rows.length + ' labs shown';
  }
  function fromHash() {
    var parts = decodeURIComponent(location.hash.replace(/^#/, '')).split('&');
    parts.forEach(function (p) {
      var kv = p.split('=');
      if (kv[0] === 'failures') onlyBox.checked = true;
      if (kv[0] === 'suite') suiteBox.value = kv[1] || '';
      if (kv[0] === 'lab') labBox.value = kv[1] || '';
    });
  }
  document.querySelectorAll('td.FAIL, td.ERROR').forEach(function (cell) {
    cell.addEventListener('click', function () {
      detail.hidden = false;
      detail.querySelector('.what').textContent = cell.dataset.check + ' on ' + cell.parentNode.dataset.lab;
      detail.querySelector('.message').textContent = cell.dataset.message;
      detail.querySelector('.hint').textContent = 'hint: ' + cell.dataset.hint;
    });
  });
  [labBox, suiteBox, onlyBox].forEach(function (el) { el.addEventListener('input', apply); });
  window.addEventListener('hashchange', function () { fromHash(); apply(); });
  fromHash();
  apply();
})();
"""


def _cell(cid: str, found: dict[str, Any] | None, suite: str) -> str:
    e = html.escape
    if found is None:
        return f'<td class="none" data-suite="{e(suite)}" data-check="{e(cid)}"></td>'
    outcome = found["outcome"]
    tip = f"{cid} {found.get('title', '')}: {outcome}"
    extra = ""
    if outcome in BAD or outcome == "SKIP":
        tip += f"\n{found.get('message', '')}"
    if outcome in BAD:
        tip += f"\nhint: {found.get('hint', '')}"
        extra = f' data-message="{e(found.get("message", ""))}" data-hint="{e(found.get("hint", ""))}"'
    return (
        f'<td class="{outcome}" data-suite="{e(suite)}" data-check="{e(cid)}" title="{e(tip)}"{extra}>'
        f"{MARK.get(outcome, '?')}</td>"
    )


def _row(name: str, lab_checks: dict[str, dict[str, Any]], columns: list[str], checks: dict[str, str]) -> str:
    """One lab's row: its name, passed/run, and a cell per check column."""
    e = html.escape
    counted = [c for c in lab_checks.values() if c["outcome"] != "SKIP"]
    passed = sum(1 for c in counted if c["outcome"] == "PASS")
    cells = "".join(_cell(cid, lab_checks.get(cid), checks[cid]) for cid in columns)
    return (
        f'<tr data-lab="{e(name)}" data-failing="{1 if failing(lab_checks) else 0}"><th class="lab">{e(name)} '
        f'<span class="counts">{passed}/{len(counted)}</span></th>{cells}</tr>'
    )


def render(summary: dict[str, Any], redact: Redactor | None = None) -> str:
    labs: dict[str, dict[str, dict[str, Any]]] = summary.get("labs", {})
    checks: dict[str, str] = {}  # check ID -> suite
    titles: dict[str, str] = {}
    for lab_checks in labs.values():
        for check_id, c in lab_checks.items():
            checks.setdefault(check_id, c.get("suite", ""))
            titles.setdefault(check_id, c.get("title", ""))
    columns = sorted(checks, key=lambda cid: (checks[cid], cid))
    suites = sorted(set(checks.values()))

    order = worst_first(labs)
    e = html.escape
    head = "".join(
        f'<th data-suite="{e(checks[cid])}" data-check="{e(cid)}" title="{e(titles[cid])}">{e(cid)}</th>'
        for cid in columns
    )
    body = [_row(name, labs[name], columns, checks) for name in order]
    healthy = sum(1 for name in order if not failing(labs[name]))
    options = "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in suites)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fleet: {healthy} of {len(order)} labs pass</title>
<style>{STYLE}</style></head>
<body>
<h1>Fleet: {healthy} of {len(order)} labs pass every check</h1>
<div class="counts">run {e(str(summary.get("run", "")))} &middot; generated {e(str(summary.get("generated", "")))} &middot;
 {len(columns)} checks &middot; a red cell is a failing check: hover or click it for the message and the hint</div>
<div class="filters">
 <label>lab <input id="lab" type="search" placeholder="name contains"></label>
 <label>suite <select id="suite"><option value="">all</option>{options}</select></label>
 <label><input id="failures" type="checkbox"> only failures</label>
 <span id="shown"></span>
</div>
<table><thead><tr><th class="lab">lab</th>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<div id="detail" hidden><div class="what"></div><div class="message"></div><div class="hint"></div></div>
<script>{SCRIPT}</script>
</body></html>
"""
    return redact.text(page) if redact else page


def write(path: Path, summary: dict[str, Any], redact: Redactor | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(summary, redact), encoding="utf-8")


def read_summary(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
