"""View instances as timeline bars: phase positions, status categories, slots and hover text."""

from __future__ import annotations

import heapq

import polars as pl
from qtrace.dashboards.inputs import TimeAxis

from qtrace.formatting import duration, escape_html_column, hex_pointer

# How each phase of an instance is drawn, in drawing order (later categories on top).
# key -> (legend name, colour, fill pattern)
PENDING_CATEGORIES: dict[str, tuple[str, str, str]] = {
    "pending": ("RCU pending (destroy_rcu → destroy)", "#f2a35e", ""),
    "pending_at_end": ("RCU pending at end (no destroy)", "#e8772e", "/"),
    "pending_lost": ("lost while RCU pending", "#8c6bb1", "x"),
}
LIVE_CATEGORIES: dict[str, tuple[str, str, str]] = {
    "live": ("live (new → destroy_rcu)", "#4c78a8", ""),
    "current": ("live at end (current view)", "#54a24b", ""),
    "immortal": ("immortal (the empty view)", "#9d9d9d", ""),
    "lost": ("lost while live", "#8c6bb1", "x"),
    "leaked": ("leaked (live after a newer view)", "#d62728", ""),
}
CATEGORY_ORDER = (*PENDING_CATEGORIES, *LIVE_CATEGORIES)

LIVE_BAR_WIDTH = 0.8  # in slot units
PENDING_BAR_WIDTH = 0.34  # a thin tail, so the two phases read as one split bar


def source_text(source: str = "source", line: str = "line") -> pl.Expr:
    """``file:line`` (or just ``file`` for binary inputs), escaped for a Plotly hover."""
    return escape_html_column(
        pl.when(pl.col(line).is_not_null())
        .then(pl.format("{}:{}", pl.col(source), pl.col(line)))
        .otherwise(pl.col(source))
    )


def instance_phases(views: pl.DataFrame, axis: TimeAxis) -> pl.DataFrame:
    """Raw start/end of both phases of each instance, its categories and its hover text.

    Open-ended phases stop at the end of the trace. Columns added: start_raw, live_end_raw,
    pending_end_raw (null without a destroy_rcu), live_cat, pending_cat, hover.
    """
    end = pl.lit(axis.end, pl.Int64)
    start = axis.point("new")
    rcu = axis.point("rcu")
    # life_end: destroy, the new that reused the pointer (lost), or destroy_rcu when destroy
    # is not traced; the contract's end_* is the same under release at destroy.
    life = "life_end" if "life_end_seq" in views.columns else "end"
    finish = pl.coalesce(axis.point(life), end)
    freed_at_rcu = pl.col(f"{life}_seq") == pl.col("rcu_seq")
    status = pl.col("status")
    live_cat = (
        pl.when(status == "leaked")
        .then(pl.lit("leaked"))
        .when(status == "current")
        .then(pl.lit("current"))
        .when(status == "immortal")
        .then(pl.lit("immortal"))
        .when((status == "lost") & rcu.is_null())
        .then(pl.lit("lost"))
        .otherwise(pl.lit("live"))
    )
    pending_cat = (
        pl.when(rcu.is_null() | freed_at_rcu.fill_null(False))
        .then(None)
        .when(status == "lost")
        .then(pl.lit("pending_lost"))
        .when(status == "rcu_pending")
        .then(pl.lit("pending_at_end"))
        .otherwise(pl.lit("pending"))
    )
    return views.with_columns(
        start.alias("start_raw"),
        pl.coalesce(rcu, finish).alias("live_end_raw"),
        pl.when(rcu.is_null() | freed_at_rcu.fill_null(False))
        .then(None)
        .otherwise(finish)
        .alias("pending_end_raw"),
        live_cat.alias("live_cat"),
        pending_cat.alias("pending_cat"),
        hover_text(axis, views.columns).alias("hover"),
    )


def _when_text(axis: TimeAxis, stem: str, label: str) -> pl.Expr:
    seq = pl.col(f"{stem}_seq")
    if axis.has_clock:
        ts = pl.col(f"{stem}_ts_ns")
        text = pl.format(label + " +{} ns (seq {})", ts - axis.origin, seq)
        present = ts.is_not_null()
    else:
        text = pl.format(label + " seq {}", seq)
        present = seq.is_not_null()
    return pl.when(present).then(text).otherwise(None)


def hover_text(axis: TimeAxis, columns: list[str]) -> pl.Expr:
    """Hover of one instance: pointers, generation, status, exact times and durations."""
    lines = [
        pl.format("<b>view {}</b> · generation {}", hex_pointer("view"), pl.col("generation")),
        pl.format("root {} · run {}", hex_pointer("root"), pl.col("run")),
        pl.format(
            "status {}{}",
            pl.col("status"),
            pl.when(pl.col("uncertain")).then(pl.lit(" (uncertain)")).otherwise(pl.lit("")),
        ),
        _when_text(axis, "new", "new"),
        _when_text(axis, "rcu", "destroy_rcu"),
        _when_text(axis, "destroy", "destroy"),
        pl.when(pl.col("live_ns").is_not_null()).then(
            pl.format("live {} ns ({})", pl.col("live_ns"), duration(pl.col("live_ns")))
        ),
        pl.when(pl.col("grace_ns").is_not_null()).then(
            pl.format("RCU grace {} ns ({})", pl.col("grace_ns"), duration(pl.col("grace_ns")))
        ),
        pl.format("source {}", source_text()),
    ]
    if "lost_seq" in columns:
        lines.insert(
            6,
            pl.when(pl.col("lost_seq").is_not_null()).then(
                pl.format("pointer reused by a flatview_new at seq {}", pl.col("lost_seq"))
            ),
        )
    if "root_label" in columns:  # the root's name, under its pointer
        lines.insert(2, escape_html_column(pl.col("root_label")))
    return pl.concat_str(lines, separator="<br>", ignore_nulls=True)


def assign_slots(phases: pl.DataFrame) -> pl.DataFrame:
    """Give each instance a row (slot) inside its lane so live phases never overlap.

    Interval partitioning is sequential (each choice depends on the ones before), which no
    polars expression can express; it runs only over the instances drawn in detail.
    Adds ``slot`` (0-based within the lane).
    """
    ordered = phases.sort("lane", "start_raw", "new_seq")
    lanes_col = ordered.get_column("lane").to_list()
    starts = ordered.get_column("start_raw").to_list()
    ends = ordered.get_column("live_end_raw").to_list()
    slots: list[int] = []
    current_lane: int | None = None
    busy: list[tuple[int, int]] = []  # (live end, slot) of instances still live
    free: list[int] = []
    used = 0
    for lane, start, end in zip(lanes_col, starts, ends, strict=True):
        if lane != current_lane:
            current_lane, busy, free, used = lane, [], [], 0
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            slot = heapq.heappop(free)
        else:
            slot, used = used, used + 1
        heapq.heappush(busy, (max(end, start), slot))
        slots.append(slot)
    return ordered.with_columns(pl.Series("slot", slots, dtype=pl.Int64))
