"""The batch's index.html: a sortable, filterable table of artifacts and the fleet figures.

Every artifact name and message is HTML-escaped; links point only at pages qtrace named.
Plotly comes from the one shared ``plotly.min.js`` beside the per-artifact dashboards.
"""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from qtrace.batch.summary import STATUS_UNREADABLE, Row
from qtrace.dashboards import fleet
from qtrace.names.render import root_label_expr

COLUMNS = (
    ("artifact", "artifact", "text"),
    ("status", "status", "text"),
    ("leaks", "leaks", "number"),
    ("anomalies", "anomalies", "number"),
    ("events", "events", "number"),
    ("views", "views", "number"),
    ("max_concurrent_views", "max concurrent", "number"),
    ("duration_s", "duration (s)", "number"),
)

_SCRIPT = """
const table = document.getElementById('fleet');
const body = table.tBodies[0];
let sortKey = null, ascending = true;
// data-max-concurrent-views is row.dataset.maxConcurrentViews in the DOM.
function camel(key) { return key.replace(/-(.)/g, (_, c) => c.toUpperCase()); }
function cell(row, key) {
  const v = row.dataset[camel(key)];
  return table.querySelector(`th[data-key="${key}"]`).dataset.type === 'number'
    ? (v === '' ? -1 : Number(v)) : v;
}
for (const th of table.tHead.rows[0].cells) {
  th.addEventListener('click', () => {
    const key = th.dataset.key;
    ascending = sortKey === key ? !ascending : true;
    sortKey = key;
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cell(a, key), y = cell(b, key);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(r => body.appendChild(r));
  });
}
function applyFilter() {
  const status = document.getElementById('status').value;
  const text = document.getElementById('text').value.toLowerCase();
  const minLeaks = Number(document.getElementById('min-leaks').value || 0);
  const minAnomalies = Number(document.getElementById('min-anomalies').value || 0);
  let shown = 0;
  for (const row of body.rows) {
    const ok = (!status || row.dataset.status === status)
      && row.dataset.artifact.toLowerCase().includes(text)
      && Number(row.dataset.leaks) >= minLeaks
      && Number(row.dataset.anomalies) >= minAnomalies;
    row.hidden = !ok;
    shown += ok;
  }
  document.getElementById('shown').textContent = shown;
}
for (const id of ['status', 'text', 'min-leaks', 'min-anomalies']) {
  document.getElementById(id).addEventListener('input', applyFilter);
}
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.unreadable td { background: #fde2e1; }
tr.findings td { background: #fff4d6; }
.filters { margin: 1em 0; display: flex; gap: 1em; flex-wrap: wrap; }
.figures { max-width: 1100px; }
.figure { min-width: 0; }
"""


def _value(row: Row, key: str) -> object:
    """The row's value for ``key``; numbers of an unreadable artifact are unknown, not 0."""
    if row.status == STATUS_UNREADABLE and key not in ("artifact", "status"):
        return None
    return getattr(row, key)


def _cell(row: Row, key: str) -> str:
    value = _value(row, key)
    if key == "artifact":
        name = html.escape(row.artifact)
        if row.dashboard:
            return f'<a href="{html.escape(row.dashboard, quote=True)}">{name}</a>'
        if row.error:
            return f"{name}<br><small>{html.escape(row.error)}</small>"
        return name
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _data_attributes(row: Row) -> str:
    parts = []
    for key, _, _ in COLUMNS:
        value = _value(row, key)
        shown = "" if value is None else str(value)
        parts.append(f'data-{key.replace("_", "-")}="{html.escape(shown, quote=True)}"')
    return " ".join(parts)


def _roots_by_name(roots: pl.DataFrame | None) -> str:
    """A table of the named roots across the fleet: in how many artifacts each region was a
    root, the most views that pinned it at once, and its leaked views; empty when none is
    named."""
    if roots is None or "name" not in roots.columns:
        return ""
    named = roots.filter(pl.col("name").is_not_null())
    if named.height == 0:
        return ""
    table = (
        named.group_by(root_label_expr().alias("region"))
        .agg(
            artifacts=pl.col("artifact").n_unique(),
            most=pl.col("max_concurrent").max(),
            leaked=pl.col("leaked").sum(),
        )
        .sort("most", "region", descending=[True, False])
    )
    body = "".join(
        f"<tr><td>{html.escape(str(region))}</td><td class=number>{artifacts}</td>"
        f"<td class=number>{most}</td><td class=number>{leaked}</td></tr>"
        for region, artifacts, most, leaked in table.rows()
    )
    return (
        "<h2>Roots by name</h2><table id=roots-by-name><thead><tr><th>region</th>"
        "<th>artifacts</th><th>most views at once</th><th>leaked views</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def fleet_page(
    rows: list[Row],
    grace: pl.DataFrame,
    plotly_src: str | None,
    roots: pl.DataFrame | None = None,
) -> str:
    """The index page's HTML. ``plotly_src`` is the relative URL of plotly.min.js; ``roots``
    (the batch's roots table) adds the named roots across the fleet."""
    fleet_table = pl.DataFrame(
        {
            "artifact": [r.artifact for r in rows],
            "leaks": [r.leaks for r in rows],
            "max_concurrent_views": [r.max_concurrent_views for r in rows],
        },
        schema={"artifact": pl.String, "leaks": pl.Int64, "max_concurrent_views": pl.Int64},
    )
    readable = pl.DataFrame(
        {"max_concurrent_views": [r.max_concurrent_views for r in rows if r.error is None]},
        schema={"max_concurrent_views": pl.Int64},
    )
    figures = [
        fleet.leaks_per_artifact(fleet_table),
        fleet.max_concurrency_distribution(readable),
        fleet.grace_distribution(grace),
    ]
    figure_html = "\n".join(
        '<div class="figure">'
        + f.to_html(
            full_html=False,
            include_plotlyjs=False,
            default_width="100%",
            config={"responsive": True},
        )
        + "</div>"
        for f in figures
    )
    head_cells = "".join(
        f'<th data-key="{key.replace("_", "-")}" data-type="{kind}">{label}</th>'
        for key, label, kind in COLUMNS
    )
    body_rows = "\n".join(
        f'<tr class="{row.status}" {_data_attributes(row)}>'
        + "".join(f'<td class="{kind}">{_cell(row, key)}</td>' for key, _, kind in COLUMNS)
        + "</tr>"
        for row in rows
    )
    plotly_tag = (
        f'<script src="{html.escape(plotly_src, quote=True)}"></script>' if plotly_src else ""
    )
    statuses = sorted({row.status for row in rows})
    options = "".join(f'<option value="{s}">{s}</option>' for s in statuses)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>qtrace batch: {len(rows)} artifacts</title>
<style>{_STYLE}</style>{plotly_tag}</head>
<body>
<h1>qtrace batch: {len(rows)} artifacts</h1>
<div class="filters">
<label>status <select id="status"><option value="">all</option>{options}</select></label>
<label>artifact contains <input id="text" type="search"></label>
<label>leaks at least <input id="min-leaks" type="number" min="0" value="0"></label>
<label>anomalies at least <input id="min-anomalies" type="number" min="0" value="0"></label>
<span><span id="shown">{len(rows)}</span> shown</span>
</div>
<table id="fleet"><thead><tr>{head_cells}</tr></thead>
<tbody>
{body_rows}
</tbody></table>
{_roots_by_name(roots)}
<h2>Fleet</h2>
<div class="figures">{figure_html}</div>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_fleet_page(
    path: Path,
    rows: list[Row],
    grace: pl.DataFrame,
    plotly_src: str,
    roots: pl.DataFrame | None = None,
) -> None:
    """Write the index page to ``path``."""
    path.write_text(fleet_page(rows, grace, plotly_src, roots), encoding="utf-8")
