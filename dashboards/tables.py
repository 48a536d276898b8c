"""The dashboard's sortable tables of leaks, anomalies and roots (``html.html_table``)."""

from __future__ import annotations

import polars as pl
from qtrace.dashboards.html import Column, html_table
from qtrace.dashboards.inputs import TimeAxis

from qtrace.formatting import duration, hex_pointer


def _when(axis: TimeAxis, stem: str) -> Column:
    if axis.has_clock:
        raw = pl.col(f"{stem}_ts_ns") - axis.origin
        return Column("time since start (ns)", raw.cast(pl.String), raw)
    return Column("seq", pl.col(f"{stem}_seq").cast(pl.String), pl.col(f"{stem}_seq"))


def _source() -> Column:
    return Column(
        "source",
        pl.when(pl.col("line").is_not_null())
        .then(pl.format("{}:{}", pl.col("source"), pl.col("line")))
        .otherwise(pl.col("source")),
        css="src",
    )


def leaks_table(views: pl.DataFrame, lanes: pl.DataFrame, axis: TimeAxis) -> str:
    """Views still live after a newer view of their root was built, and lost views.

    The same rows as the JSON report's ``leaks``: a lost view's pointer was reused by a
    flatview_new before the view was destroyed.
    """
    leaked = (
        views.filter(pl.col("status").is_in(["leaked", "lost"]))
        .join(lanes.select("run", "root", "lane", "label"), on=["run", "root"], how="left")
        .sort("run", "new_seq")
    )
    start = pl.col("new_ts_ns") if axis.has_clock else pl.col("new_seq")
    life_end = "life_end_ts_ns" if axis.has_clock else "life_end_seq"
    held = pl.coalesce(pl.col(life_end), pl.lit(axis.end)) - start
    held_text = (
        pl.format("{} ns ({})", held, duration(held))
        if axis.has_clock
        else pl.format("{} events", held)
    )
    columns = [
        Column("status", pl.col("status")),
        Column("root", pl.col("label"), css="ptr"),
        Column("view", hex_pointer("view"), css="ptr"),
        Column("generation", pl.col("generation").cast(pl.String), pl.col("generation")),
        _when(axis, "new"),
        Column("held (to its end or the trace end)", held_text, held),
        Column(
            "uncertain",
            pl.when(pl.col("uncertain")).then(pl.lit("yes")).otherwise(pl.lit("")),
        ),
        _source(),
    ]
    return html_table(
        leaked,
        columns,
        table_id="qtrace-leaks",
        empty="No leaked or lost views.",
        what="leaked or lost views",
    )


def anomalies_table(anomalies: pl.DataFrame, lanes: pl.DataFrame, axis: TimeAxis) -> str:
    """Everything the model found odd, in trace order."""
    found = anomalies.join(
        lanes.select("run", "root", "lane", "label"), on=["run", "root"], how="left"
    ).sort("seq", "kind")
    when = (
        Column(
            "time since start (ns)",
            (pl.col("ts_ns") - axis.origin).cast(pl.String),
            pl.col("ts_ns") - axis.origin,
        )
        if axis.has_clock
        else Column("seq", pl.col("seq").cast(pl.String), pl.col("seq"))
    )
    columns = [
        Column("kind", pl.col("kind")),
        when,
        Column("root", pl.coalesce(pl.col("label"), hex_pointer("root")), css="ptr"),
        Column("view", hex_pointer("view"), css="ptr"),
        Column("generation", pl.col("generation").cast(pl.String), pl.col("generation")),
        Column(
            "uncertain",
            pl.when(pl.col("uncertain")).then(pl.lit("yes")).otherwise(pl.lit("")),
        ),
        Column("detail", pl.col("detail")),
        Column("pinned by", pl.col("pinned_by").fill_null("")),
        _source(),
    ]
    return html_table(
        found, columns, table_id="qtrace-anomalies", empty="No anomalies.", what="anomalies"
    )


def roots_table(roots: pl.DataFrame, views: pl.DataFrame, lanes: pl.DataFrame) -> str:
    """One row per root with its counts and where its first view was built."""
    first_source = views.select(
        "run",
        "root",
        pl.col("new_seq").alias("first_seq"),
        "source",
        "line",
    )
    table = (
        roots.join(lanes.select("run", "root", "lane", "label"), on=["run", "root"], how="left")
        .join(first_source, on=["run", "root", "first_seq"], how="left")
        .sort("lane", "first_seq")
    )

    def num(name: str, header: str) -> Column:
        return Column(header, pl.col(name).cast(pl.String), pl.col(name))

    columns = [
        Column("root", pl.col("label"), css="ptr"),
        num("instances", "view instances"),
        num("max_concurrent", "most at once"),
        Column(
            "pinned at end",
            pl.when(pl.col("pinned_at_end")).then(pl.lit("yes")).otherwise(pl.lit("no")),
        ),
        num("first_seq", "first seq"),
        num("last_seq", "last seq"),
        _source(),
    ]
    return html_table(table, columns, table_id="qtrace-roots", empty="No roots.", what="roots")
