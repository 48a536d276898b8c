"""Keep the rows the lifetime model reads and split them into QEMU runs.

QEMU builds its empty view (root ``(nil)``) exactly once per process, so every nil-root
``flatview_new`` starts a new run; events before the first one form a run of their own.
"""

from __future__ import annotations

import polars as pl

from qtrace.events import (
    DROPPED_EVENT,
    FLATVIEW_DESTROY,
    FLATVIEW_DESTROY_RCU,
    FLATVIEW_EVENTS,
    FLATVIEW_NEW,
    LOSS_EVENTS,
    MR_FINALIZE,
    UNREADABLE,
)

# Small integer codes instead of event names: the model's frames stay narrow at 10M rows.
# DROP is any place where events may have been lost: a dropped-events record, a
# qtrace_unreadable row, or a FlatView row without both pointers (garbage is never a view).
NEW, RCU, DESTROY, DROP, FINALIZE = range(5)
ORIGIN_COLUMNS = ("source", "line", "offset")
# Row numbers, positions and counts of rows: polars' own index type, narrower than Int64 in
# the usual build (frames of up to 2**32 rows).
IDX = pl.get_index_type()


def _pointer_in(args: pl.Expr) -> pl.Expr:
    """The first ``0x`` pointer in an argument text, as UInt64 (null when there is none)."""
    return args.str.extract(r"0x([0-9a-fA-F]+)", 1).str.to_integer(
        base=16, dtype=pl.UInt64, strict=False
    )


def _dropped_count(args: pl.Expr) -> pl.Expr:
    """How many events a dropped-events record says were lost (``num_events_dropped=0x..``)."""
    text = args.str.extract(r"num_events_dropped=\s*(0x[0-9a-fA-F]+|[0-9]+)", 1)
    return (
        pl.when(text.str.starts_with("0x"))
        .then(text.str.slice(2).str.to_integer(base=16, strict=False))
        .otherwise(text.str.to_integer(strict=False))
        .fill_null(0)
    )


def _unreadable(event: pl.Expr) -> pl.Expr:
    """qtrace_unreadable rows, and FlatView rows whose pointers did not parse.

    Such a FlatView row creates, ends and pairs nothing: the model reads it as a hole in the
    trace, like a dropped-events record.
    """
    garbled = event.is_in(FLATVIEW_EVENTS) & (pl.col("view").is_null() | pl.col("root").is_null())
    return (event == UNREADABLE) | garbled


def unreadable_places(events: pl.DataFrame) -> int:
    """How many places of the events table a reader could not read."""
    return int(events.select(_unreadable(pl.col("event")).sum()).item())


def _code(event: pl.Expr) -> pl.Expr:
    return (
        pl.when(event.is_in(LOSS_EVENTS) | _unreadable(event))
        .then(DROP)
        .when(event == FLATVIEW_NEW)
        .then(NEW)
        .when(event == FLATVIEW_DESTROY_RCU)
        .then(RCU)
        .when(event == FLATVIEW_DESTROY)
        .then(DESTROY)
        .when(event == MR_FINALIZE)
        .then(FINALIZE)
        .cast(pl.Int8)
    )


def prepare(events: pl.DataFrame) -> pl.DataFrame:
    """The model's rows in ``seq`` order, each with its ``run``.

    Columns: ``row`` (index of the event in ``events``, to read its pointers, arguments and
    origin there), ``seq``, ``ts_ns``, ``code`` (NEW, RCU, DESTROY, DROP, FINALIZE),
    ``is_fv`` (a FlatView event), ``is_drop``, ``run`` (0-based), ``pos`` (index among the
    FlatView events, to count events in a span) and ``drops_upto`` (dropped-events records
    up to and including this row, to tell whether a span contains one). Rows before every
    FlatView event that belong to no run are left out.
    """
    rows = (
        events.lazy()
        .select(
            pl.int_range(pl.len(), dtype=IDX).alias("row"),
            "seq",
            "ts_ns",
            "root",
            code=_code(pl.col("event")),
        )
        .filter(pl.col("code").is_not_null())
    )
    # Traces come in seq order; sorting a sorted frame would still copy every column.
    if not events["seq"].is_sorted():
        rows = rows.sort("seq")
    found = rows.collect(engine="in-memory")
    is_fv = pl.col("code") <= DESTROY
    run_start = (pl.col("code") == NEW) & (pl.col("root") == 0)
    first = found.select(
        start=run_start.arg_max(), any_start=run_start.any(), fv=is_fv.arg_max(), any_fv=is_fv.any()
    ).row(0, named=True)
    first_start = first["start"] if first["any_start"] else found.height
    # Rows before the first run start form a run of their own when FlatView events are among
    # them; otherwise they belong to no run.
    pre_run = bool(first["any_fv"]) and first["fv"] < first_start
    if not pre_run:
        found = found.slice(first_start)
    return found.select(
        "row",
        "seq",
        "ts_ns",
        "code",
        is_fv=is_fv,
        is_drop=pl.col("code") == DROP,
        # Runs follow seq: flagged sorted, group_by("run") slices instead of hashing.
        run=(run_start.cast(IDX).cum_sum() - (0 if pre_run else 1)).set_sorted(),
        pos=is_fv.cast(pl.Int64).cum_sum() - 1,
        drops_upto=(pl.col("code") == DROP).cast(IDX).cum_sum(),
    )


def finalized_roots(rows: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """``memory_region_finalize`` rows whose arguments name an MR (as ``root``), in seq order.

    ``pos``: the position of the last FlatView event before the finalize (-1: none).
    """
    finalized = rows.filter(pl.col("code") == FINALIZE).select(
        "run", "seq", "ts_ns", "row", "drops_upto", "pos"
    )
    # Only these few rows have their arguments parsed.
    mr = events.select(_pointer_in(pl.col("args").gather(finalized["row"])).alias("root"))
    return (
        finalized.hstack(mr)
        .filter(pl.col("root").is_not_null() & (pl.col("root") != 0))
        .select("run", "root", "seq", "ts_ns", "row", "drops_upto", "pos")
    )


def attach_origin(frame: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Replace ``row`` by the event's ``source``, ``line`` and ``offset`` from ``events``."""
    origin = events.select(pl.col(ORIGIN_COLUMNS).gather(frame["row"].cast(pl.UInt32)))
    return frame.drop("row").hstack(origin)


def dropped_total(events: pl.DataFrame) -> int:
    """Events lost according to every dropped-events record of the table."""
    drops = events.filter(pl.col("event") == DROPPED_EVENT)
    if drops.height == 0:
        return 0
    return int(drops.select(_dropped_count(pl.col("args")).sum()).item())


def destroy_traced(events: pl.DataFrame) -> bool:
    """Whether the rows trace ``flatview_destroy`` at all (decided once for every run)."""
    return bool(events.select((pl.col("code") == DESTROY).any()).item())


def run_bounds(rows: pl.DataFrame) -> pl.DataFrame:
    """Per run: the last FlatView event (seq, ts, pos) and the dropped-events records so far."""
    return (
        rows.group_by("run")
        .agg(
            run_first_seq=pl.col("seq").min(),
            run_last_seq=pl.col("seq").filter(pl.col("is_fv")).max(),
            run_last_ts_ns=pl.col("ts_ns").filter(pl.col("is_fv")).max(),
            run_end_pos=pl.col("pos").max() + 1,
            drops_before_run=(pl.col("drops_upto") - pl.col("is_drop").cast(IDX)).min(),
            drops_at_run_end=pl.col("drops_upto").max(),
        )
        .sort("run")
    )


def event_counts(rows: pl.DataFrame) -> dict[str, int]:
    """How many of each FlatView event the rows hold."""
    counts = rows.filter(pl.col("is_fv")).group_by("code").len()
    found = dict(zip(counts["code"].to_list(), counts["len"].to_list(), strict=True))
    return {name: int(found.get(code, 0)) for code, name in enumerate(FLATVIEW_EVENTS)}


__all__ = [
    "DESTROY",
    "DROP",
    "FINALIZE",
    "IDX",
    "NEW",
    "RCU",
    "attach_origin",
    "destroy_traced",
    "dropped_total",
    "event_counts",
    "finalized_roots",
    "prepare",
    "run_bounds",
    "unreadable_places",
]
