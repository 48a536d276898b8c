"""Fleet figures: one point per artifact of a ``qtrace batch``, for the batch's index page.

They read a fleet table (one row per artifact: ``artifact``, ``leaks``,
``max_concurrent_views``) and a per-artifact grace table (``artifact``, ``grace_ms_median``,
``grace_ms_max``), both built by the batch from its outputs.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from qtrace.formatting import escape_html_column

MAX_BARS = 60  # more bars than this are unreadable; the table has every artifact


def leaks_per_artifact(fleet: pl.DataFrame) -> go.Figure:
    """Horizontal bars of leaked views for the artifacts with the most leaks."""
    top = fleet.filter(pl.col("leaks") > 0).sort(["leaks", "artifact"], descending=[True, False])
    # Plotly renders a subset of HTML in labels: artifact names must not become markup.
    shown = top.head(MAX_BARS).with_columns(escape_html_column(pl.col("artifact")).alias("label"))
    figure = go.Figure(
        go.Bar(
            y=shown["label"].to_list()[::-1],
            x=shown["leaks"].to_list()[::-1],
            orientation="h",
        )
    )
    title = "Leaked views per artifact"
    if top.height > MAX_BARS:
        title += f" (top {MAX_BARS} of {top.height})"
    if top.is_empty():
        title += ": none"
    figure.update_layout(
        title=title,
        xaxis_title="leaked views",
        yaxis={"automargin": True},
        height=max(320, 120 + 22 * shown.height),
    )
    return figure


def max_concurrency_distribution(fleet: pl.DataFrame) -> go.Figure:
    """How many artifacts reached each maximum number of views alive at once."""
    figure = go.Figure(go.Histogram(x=fleet["max_concurrent_views"].to_list()))
    figure.update_layout(
        title="Max concurrent views across artifacts",
        xaxis_title="max views alive at once (per root)",
        yaxis_title="artifacts",
    )
    return figure


def grace_distribution(grace: pl.DataFrame) -> go.Figure:
    """Per-artifact RCU grace times (destroy_rcu to destroy): medians and maxima."""
    figure = go.Figure()
    for column, label in (("grace_ms_median", "median"), ("grace_ms_max", "max")):
        values = grace[column].drop_nulls().to_list() if column in grace.columns else []
        figure.add_trace(go.Histogram(x=values, name=f"{label} per artifact", opacity=0.7))
    figure.update_layout(
        title="RCU grace time across artifacts",
        barmode="overlay",
        xaxis_title="grace time (ms)",
        yaxis_title="artifacts",
    )
    return figure
