"""``qtrace diff --format html``: both sides' tables with the differences marked, one plot.

Reads a ``qtrace.diff.DiffResult`` only; the page is built with the shared shell and
tables of ``html`` (escaping included), and works offline (plotly.js inline).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
from qtrace.dashboards.html import Column, document, html_table

from qtrace.diff import DiffResult
from qtrace.formatting import escape_html

# Rows that differ between A and B stand out.
STYLE = 'tr[data-changed="yes"] td { background: #fff0c2; font-weight: 600; }'


def _table(rows: list[dict[str, Any]], columns: list[str], table_id: str, what: str) -> str:
    """``rows`` (dicts with ``changed``) as a sortable table of ``columns``."""
    frame = pl.DataFrame(
        [{c: None if r[c] is None else str(r[c]) for c in columns} for r in rows],
        schema=dict.fromkeys(columns, pl.String),
    ).with_columns(changed=pl.Series([bool(r["changed"]) for r in rows], dtype=pl.Boolean))
    return html_table(
        frame,
        [Column(c, pl.col(c)) for c in columns],
        table_id=table_id,
        empty=f"No {what}.",
        what=what,
        row_attributes={"changed": pl.when(pl.col("changed")).then(pl.lit("yes"))},
    )


def _pairs(pairs: list[tuple[str, int, int]], label: str) -> list[dict[str, Any]]:
    return [{label: n, "A": va, "B": vb, "changed": va != vb} for n, va, vb in pairs]


def _timeline_figure(result: DiffResult) -> str:
    if not result.timelines:
        return ""
    figure = go.Figure()
    for label, timeline in result.timelines.items():
        name = result.a if label == "A" else result.b
        figure.add_trace(
            go.Scatter(
                x=timeline["t"].to_list(),
                y=timeline["live_views"].to_list(),
                mode="lines",
                line_shape="hv",
                # Plotly renders a subset of HTML in names: a file name must not become markup.
                name=escape_html(f"{label}: {name}"),
            )
        )
    figure.update_layout(
        title="Views alive (not yet destroy_rcu), both runs from their first view",
        xaxis_title=f"since first view ({result.time_unit})",
        yaxis_title="live views",
    )
    return str(figure.to_html(full_html=False, include_plotlyjs=True))


def diff_page(result: DiffResult) -> str:
    """The comparison page's HTML."""
    sections = [
        "<h2>Counts</h2>",
        _table(_pairs(result.counts, "count"), ["count", "A", "B"], "qtrace-diff-counts", "counts"),
    ]
    if result.statuses:
        sections += [
            "<h2>View statuses</h2>",
            _table(
                _pairs(result.statuses, "status"),
                ["status", "A", "B"],
                "qtrace-diff-statuses",
                "statuses",
            ),
        ]
    if result.roots:
        columns = ["run", "rank", "name", "root_a", "root_b", "instances_a", "instances_b"]
        columns += ["max_concurrent_a", "max_concurrent_b"]
        sections += [
            "<h2>Roots, matched by first use</h2>",
            _table(result.roots, columns, "qtrace-diff-roots", "roots"),
        ]
    if result.artifacts:
        columns = ["artifact", "status_a", "status_b", "leaks_a", "leaks_b"]
        columns += ["anomalies_a", "anomalies_b"]
        sections += [
            "<h2>Artifacts</h2>",
            _table(result.artifacts, columns, "qtrace-diff-artifacts", "artifacts"),
        ]
    title = f"qtrace diff: {result.a} vs {result.b}"
    verdicts = ""
    if any(result.verdicts):
        verdicts = (
            f"<p>Verdict A: {escape_html(result.verdicts[0])}<br>"
            f"Verdict B: {escape_html(result.verdicts[1])}</p>"
        )
    body = f"""<header><h1>{escape_html(title)}</h1>
<p>A: {escape_html(result.a)}<br>B: {escape_html(result.b)}</p>{verdicts}
<p>{"Highlighted rows differ." if result.differs else "No differences."}</p></header>
<section>{"".join(sections)}</section>
<section>{_timeline_figure(result)}</section>"""
    return document(title, body, head=f"<style>{STYLE}</style>")


__all__ = ["diff_page"]
