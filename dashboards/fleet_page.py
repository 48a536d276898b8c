"""The batch's index.html: a sortable, filterable table of artifacts and the fleet figures.

Built with the shared page shell and tables of ``html`` (every artifact name and message
escaped there); links point only at pages qtrace named. Plotly comes from the one shared
``plotly.min.js`` beside the per-artifact dashboards.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from qtrace.dashboards import fleet
from qtrace.dashboards.html import Column, document, html_table

from qtrace.batch.summary import STATUS_UNREADABLE, Row
from qtrace.formatting import escape_html, escape_html_column
from qtrace.names.render import root_label_expr

# (row field, header, numeric)
COLUMNS = (
    ("artifact", "artifact", False),
    ("status", "status", False),
    ("leaks", "leaks", True),
    ("anomalies", "anomalies", True),
    ("events", "events", True),
    ("views", "views", True),
    ("max_concurrent_views", "max concurrent", True),
    ("duration_s", "duration (s)", True),
)
NUMBERS = [name for name, _, numeric in COLUMNS if numeric]

# The filters above the table; sorting is the shared sort script's.
FILTER_SCRIPT = """
(function () {
  var body = document.getElementById('fleet').tBodies[0];
  function applyFilter() {
    var status = document.getElementById('status').value;
    var text = document.getElementById('text').value.toLowerCase();
    var minLeaks = Number(document.getElementById('min-leaks').value || 0);
    var minAnomalies = Number(document.getElementById('min-anomalies').value || 0);
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var ok = (!status || row.dataset.status === status)
        && row.dataset.artifact.toLowerCase().includes(text)
        && Number(row.dataset.leaks || 0) >= minLeaks
        && Number(row.dataset.anomalies || 0) >= minAnomalies;
      row.hidden = !ok;
      shown += ok;
    });
    document.getElementById('shown').textContent = shown;
  }
  ['status', 'text', 'min-leaks', 'min-anomalies'].forEach(function (id) {
    document.getElementById(id).addEventListener('input', applyFilter);
  });
})();
"""

STYLE = """
tr[data-status="unreadable"] td { background: #fde2e1; }
tr[data-status="findings"] td { background: #fff4d6; }
.filters { margin: 1em 0; display: flex; gap: 1em; flex-wrap: wrap; }
.figures { max-width: 1100px; }
.table-wrap { max-height: none; }
"""


def _frame(rows: list[Row]) -> pl.DataFrame:
    """One row per artifact; an unreadable artifact's numbers are unknown (null), not 0."""

    def value(row: Row, name: str) -> object:
        return None if row.status == STATUS_UNREADABLE else getattr(row, name)

    return pl.DataFrame(
        {
            "artifact": [r.artifact for r in rows],
            "status": [r.status for r in rows],
            "error": [r.error for r in rows],
            "dashboard": [r.dashboard for r in rows],
            **{name: [value(r, name) for r in rows] for name in NUMBERS},
        },
        schema={
            "artifact": pl.String,
            "status": pl.String,
            "error": pl.String,
            "dashboard": pl.String,
            **{name: pl.Float64 if name == "duration_s" else pl.Int64 for name in NUMBERS},
        },
    )


def _columns() -> list[Column]:
    columns = []
    for name, header, numeric in COLUMNS:
        if name == "duration_s":
            columns.append(Column(header, pl.col(name).round(3).cast(pl.String), pl.col(name)))
        elif numeric:
            columns.append(Column(header, pl.col(name).cast(pl.String), pl.col(name)))
        elif name == "artifact":
            columns.append(Column(header, _artifact_cell(), markup=True))
        else:
            columns.append(Column(header, pl.col(name)))
    return columns


def _roots_by_name(roots: pl.DataFrame | None) -> str:
    """The named roots across the fleet: in how many artifacts each region was a root, the
    most views that pinned it at once, and its leaked views; nothing when none is named."""
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

    def number(name: str, header: str) -> Column:
        return Column(header, pl.col(name).cast(pl.String), pl.col(name))

    columns = [
        Column("region", pl.col("region")),
        number("artifacts", "artifacts"),
        number("most", "most views at once"),
        number("leaked", "leaked views"),
    ]
    rendered = html_table(
        table, columns, table_id="roots-by-name", empty="", what="named roots", row_attributes={}
    )
    return f"<section><h2>Roots by name</h2>{rendered}</section>"


def fleet_page(
    rows: list[Row],
    grace: pl.DataFrame,
    plotly_src: str | None,
    roots: pl.DataFrame | None = None,
) -> str:
    """The index page's HTML. ``plotly_src`` is the relative URL of plotly.min.js; ``roots``
    (the batch's roots table) adds the named roots across the fleet."""
    table = _frame(rows)
    fleet_table = table.select("artifact", "leaks", "max_concurrent_views").with_columns(
        pl.col("leaks").fill_null(0), pl.col("max_concurrent_views").fill_null(0)
    )
    readable = table.filter(pl.col("status") != STATUS_UNREADABLE).select("max_concurrent_views")
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
    attributes = {
        "status": pl.col("status"),
        "artifact": pl.col("artifact"),
        "leaks": pl.col("leaks"),
        "anomalies": pl.col("anomalies"),
    }
    rendered = html_table(
        table,
        _columns(),
        table_id="fleet",
        empty="No artifacts.",
        what="artifacts",
        row_attributes=attributes,
    )
    plotly_tag = f'<script src="{escape_html(plotly_src)}"></script>' if plotly_src else ""
    statuses = sorted({row.status for row in rows})
    options = "".join(f'<option value="{s}">{s}</option>' for s in statuses)
    title = f"qtrace batch: {len(rows)} artifacts"
    body = f"""<header><h1>{escape_html(title)}</h1></header>
<section>
<div class="filters">
<label>status <select id="status"><option value="">all</option>{options}</select></label>
<label>artifact contains <input id="text" type="search"></label>
<label>leaks at least <input id="min-leaks" type="number" min="0" value="0"></label>
<label>anomalies at least <input id="min-anomalies" type="number" min="0" value="0"></label>
<span><span id="shown">{len(rows)}</span> shown</span>
</div>
{rendered}
</section>
{_roots_by_name(roots)}
<section><h2>Fleet</h2>
<div class="figures">{figure_html}</div></section>"""
    return document(
        title, body, head=f"<style>{STYLE}</style>{plotly_tag}", scripts=(FILTER_SCRIPT,)
    )


def _artifact_cell() -> pl.Expr:
    """The artifact's name, linked to its dashboard (a page qtrace named), or with its error.

    Built from escaped parts only: the one cell of the table that holds markup.
    """
    name = escape_html_column(pl.col("artifact"))
    return (
        pl.when(pl.col("dashboard").is_not_null())
        .then(pl.format('<a href="{}">{}</a>', escape_html_column(pl.col("dashboard")), name))
        .when(pl.col("error").is_not_null())
        .then(pl.format("{}<br><small>{}</small>", name, escape_html_column(pl.col("error"))))
        .otherwise(name)
    )


def write_fleet_page(
    path: Path,
    rows: list[Row],
    grace: pl.DataFrame,
    plotly_src: str,
    roots: pl.DataFrame | None = None,
) -> None:
    """Write the index page to ``path``."""
    path.write_text(fleet_page(rows, grace, plotly_src, roots), encoding="utf-8")
