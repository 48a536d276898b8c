"""Sortable HTML tables of leaks, anomalies and roots, built as polars string expressions."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from qtrace.dashboards.inputs import TimeAxis
from qtrace.dashboards.instances import human_ns

from qtrace.export import hex_pointer

MAX_TABLE_ROWS = 1_000


def html_escape(expr: pl.Expr) -> pl.Expr:
    """HTML-escape text for element content and quoted attribute values."""
    return (
        expr.cast(pl.String)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
        .str.replace_all('"', "&quot;", literal=True)
        .str.replace_all("'", "&#x27;", literal=True)
    )


@dataclass(frozen=True)
class Column:
    """One table column: header, cell text, and a numeric sort key when text would mis-sort."""

    header: str
    text: pl.Expr
    sort_key: pl.Expr | None = None
    css: str = ""


def _cell(column: Column) -> pl.Expr:
    text = html_escape(column.text).fill_null("")
    if column.sort_key is None:
        return pl.format(
            f'<td class="{column.css}">{{}}</td>' if column.css else "<td>{}</td>", text
        )
    key = column.sort_key.cast(pl.String).fill_null("")
    return pl.format('<td class="num" data-v="{}">{}</td>', key, text)


def html_table(
    frame: pl.DataFrame, columns: list[Column], *, table_id: str, empty: str, what: str
) -> str:
    """A sortable table (rows tagged with their lane for the root filter), capped in length."""
    if frame.height == 0:
        return f'<p class="empty" id="{table_id}-empty">{empty}</p>'
    shown = frame.head(MAX_TABLE_ROWS)
    rows = shown.select(
        pl.concat_str(
            [
                pl.format('<tr data-lane="{}">', pl.col("lane").fill_null(-1)),
                *[_cell(c) for c in columns],
                pl.lit("</tr>"),
            ]
        ).alias("row")
    ).get_column("row")
    heads = "".join(
        f'<th scope="col" tabindex="0" class="{"num" if c.sort_key is not None else ""}">'
        f"{c.header}</th>"
        for c in columns
    )
    note = ""
    if frame.height > shown.height:
        note = (
            f'<p class="note">Showing the first {shown.height:,} of {frame.height:,} {what} '
            "(all of them are in the JSON report).</p>"
        )
    return (
        f'{note}<div class="table-wrap"><table class="sortable" id="{table_id}">'
        f"<thead><tr>{heads}</tr></thead><tbody>{''.join(rows.to_list())}</tbody></table></div>"
    )


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
        pl.format("{} ns ({})", held, human_ns(held))
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
