"""The views table: one row per view instance, from the kernel's instance rows.

The kernel (qtrace/_kernel.c) pairs the events into instances and gives each its status and
the rows of its events; this module turns those into the public columns (VIEW_SCHEMA):
seq and time of each event, where each phase ended, durations, and the event's origin.
"""

from __future__ import annotations

import polars as pl

from qtrace.runs import attach_origin

# The kernel's status codes index this tuple: keep the order.
STATUSES = ("freed", "rcu_pending", "immortal", "current", "leaked", "lost")
# Statuses whose instances are findings (lost ones also show as new_while_live or
# reused_before_destroy anomalies).
FLAGGED_STATUSES = ("leaked", "lost")

VIEW_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.Int64(),
    "view": pl.UInt64(),
    "generation": pl.Int64(),
    "root": pl.UInt64(),
    "status": pl.String(),
    "new_seq": pl.Int64(),
    "new_ts_ns": pl.Int64(),
    "rcu_seq": pl.Int64(),
    "rcu_ts_ns": pl.Int64(),
    "destroy_seq": pl.Int64(),
    "destroy_ts_ns": pl.Int64(),
    "end_seq": pl.Int64(),  # pin end under the chosen root release; null = pinned at the end
    "end_ts_ns": pl.Int64(),
    "live_ns": pl.Int64(),  # null without a clock, and where the clock stepped back
    "grace_ns": pl.Int64(),
    "uncertain": pl.Boolean(),
    "source": pl.String(),
    "line": pl.Int64(),
    "offset": pl.Int64(),
    "lost_seq": pl.Int64(),  # the flatview_new that ended a lost instance
    "live_end_seq": pl.Int64(),  # end of the live phase (destroy_rcu, or what ended it)
    "life_end_seq": pl.Int64(),  # where the instance stopped existing; null = exists at end
    "life_end_ts_ns": pl.Int64(),
}

# The events that can end each phase of an instance, first found first (by their column
# prefixes: ``{event}_seq``, ``{event}_ts_ns``).
LIVE_END = ("rcu", "destroy", "lost")


def life_end(*, destroy_traced: bool) -> tuple[str, ...]:
    """What ends an instance's life; without destroy events, its destroy_rcu frees it."""
    return ("destroy", "lost") if destroy_traced else ("destroy", "lost", "rcu")


def pin_end(*, destroy_traced: bool, root_release: str) -> tuple[str, ...]:
    """What ends an instance's pin on its root under ``root_release``."""
    return LIVE_END if root_release == "destroy_rcu" else life_end(destroy_traced=destroy_traced)


def _pick(prefixes: tuple[str, ...], happened: set[str]) -> tuple[pl.Expr, pl.Expr]:
    """The first of these events that happened: its seq and its timestamp together.

    ``happened``: the prefixes of events some instance has; the others are left out, and
    where one is left, its columns are shared rather than copied (a million rows).
    """
    prefixes = tuple(p for p in prefixes if p in happened)
    if not prefixes:
        return pl.lit(None, pl.Int64), pl.lit(None, pl.Int64)
    if len(prefixes) == 1:
        return pl.col(f"{prefixes[0]}_seq"), pl.col(f"{prefixes[0]}_ts_ns")
    seq = pl.coalesce([pl.col(f"{p}_seq") for p in prefixes])
    # Built from the last event outwards so each level is a plain when/then/otherwise.
    ts: pl.Expr = pl.lit(None, pl.Int64)
    for p in reversed(prefixes):
        ts = pl.when(pl.col(f"{p}_seq").is_not_null()).then(pl.col(f"{p}_ts_ns")).otherwise(ts)
    return seq, ts


def non_negative(duration: pl.Expr) -> pl.Expr:
    """A duration, null where the clock stepped back (a negative one is never reported)."""
    return pl.when(duration >= 0).then(duration)


def _shared_texts(values: pl.Series) -> pl.Series:
    """A categorical column as strings, each row pointing at one copy of its distinct text.

    (Casting a million rows of a file name copied the name into every row.)
    """
    distinct = values.unique().drop_nulls()
    position = values.to_physical().replace_strict(
        distinct.to_physical(), pl.int_range(distinct.len(), eager=True), default=None
    )
    return distinct.cast(pl.String).gather(position).alias(values.name)


def views_table(
    found: pl.DataFrame, events: pl.DataFrame, *, destroy_traced: bool, root_release: str
) -> pl.DataFrame:
    """The views table (VIEW_SCHEMA) of the kernel's instance rows, in (run, new_seq) order.

    ``events``: the events table the rows index (-1: no such event).
    """
    statuses = pl.Series(STATUSES, dtype=pl.String)
    stamps = {}
    for prefix in ("new", "rcu", "destroy", "lost"):
        row = found[f"{prefix}_row"]
        at = row.set(row < 0, None) if prefix != "new" else row
        stamps[f"{prefix}_seq"] = events["seq"].gather(at)
        stamps[f"{prefix}_ts_ns"] = events["ts_ns"].gather(at)
    frame = found.with_columns(
        status_name=statuses.gather(found["status"].cast(pl.UInt32)), **stamps
    )
    happened = {p for p in ("rcu", "destroy", "lost") if found[f"{p}_row"].max() != -1}
    life_end_seq, life_end_ts = _pick(life_end(destroy_traced=destroy_traced), happened)
    live_end_seq, live_end_ts = _pick(LIVE_END, happened)
    end_seq, end_ts = _pick(
        pin_end(destroy_traced=destroy_traced, root_release=root_release), happened
    )
    views = frame.select(
        "id",
        pl.col("run").cast(pl.Int64),
        "view",
        pl.col("generation").cast(pl.Int64),
        "root",
        pl.col("status_name").alias("status"),
        "new_seq",
        "new_ts_ns",
        "rcu_seq",
        "rcu_ts_ns",
        "destroy_seq",
        "destroy_ts_ns",
        end_seq.alias("end_seq"),
        end_ts.alias("end_ts_ns"),
        non_negative(live_end_ts - pl.col("new_ts_ns")).alias("live_ns"),
        non_negative(pl.col("destroy_ts_ns") - pl.col("rcu_ts_ns")).alias("grace_ns"),
        (pl.col("uncertain") > 0).alias("uncertain"),
        pl.col("new_row").alias("row"),
        "lost_seq",
        live_end_seq.alias("live_end_seq"),
        life_end_seq.alias("life_end_seq"),
        life_end_ts.alias("life_end_ts_ns"),
    )
    # Creation order is new_seq order; runs of several processes interleave in it. A trace
    # of one process is in (run, id) order already: its million rows are not copied.
    key = views["run"].cast(pl.UInt64) * (1 << 40) + views["id"].cast(pl.UInt64)
    in_order = views if key.is_sorted() else views[key.arg_sort()]
    placed = attach_origin(in_order, events)
    if placed.schema["source"] == pl.Categorical:
        placed = placed.with_columns(_shared_texts(placed["source"]))
    return placed.drop("id").select([pl.col(c).cast(t) for c, t in VIEW_SCHEMA.items()])


__all__ = [
    "FLAGGED_STATUSES",
    "LIVE_END",
    "STATUSES",
    "VIEW_SCHEMA",
    "life_end",
    "pin_end",
    "views_table",
]
