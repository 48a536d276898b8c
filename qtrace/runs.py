"""The rows the lifetime model reads, and the table of the QEMU runs it found in them.

A run is one QEMU process's life between two of its nil-root ``flatview_new`` (QEMU builds
its empty view exactly once per process). The process is the ``pid`` column where it is not
null; rows without a pid are one stream. Events of a process before its first nil-root view
(a trace started mid-run) form a run of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

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

# Small integer codes instead of event names (the kernel's row codes, qtrace/_kernel.c).
# DROP is a loss point, any place where events may have been lost: a dropped-events record,
# a qtrace_unreadable row, or a FlatView row without both pointers (garbage is never a view).
NEW, RCU, DESTROY, DROP, FINALIZE = range(5)
ORIGIN_COLUMNS = ("source", "line", "offset")

RUN_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.Int64(),
    "pid": pl.Int32(),  # null: the rows had no process id
    "label": pl.String(),  # the source (file) of the run's first event
    "first_seq": pl.Int64(),  # the run's first FlatView event (its nil-root view, usually)
    "last_seq": pl.Int64(),  # its last FlatView event
    "first_ts_ns": pl.Int64(),
    "last_ts_ns": pl.Int64(),
    "flatview_events": pl.Int64(),
    "loss_points": pl.Int64(),  # dropped-events records and unreadable places inside the run
    "clock_steps_back": pl.Int64(),  # FlatView events stamped earlier than the one before
}


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


# The code of each event name the model reads (other names: null).
CODES = {
    FLATVIEW_NEW: NEW,
    FLATVIEW_DESTROY_RCU: RCU,
    FLATVIEW_DESTROY: DESTROY,
    **dict.fromkeys(LOSS_EVENTS, DROP),
    MR_FINALIZE: FINALIZE,
}


def _codes(table: pl.DataFrame) -> pl.Series:
    """Each row's code (null for events the model does not read).

    A table holds a handful of event names: each name's code is looked up once and gathered
    to the rows by the name's categorical code (a when/then chain over the rows cost as much
    as the model's whole pass over them).
    """
    event = table["event"]
    names = event.unique().drop_nulls()
    by_name = names.cast(pl.String).replace_strict(CODES, default=None, return_dtype=pl.Int8)
    physical = event.to_physical()
    top = names.to_physical().max()
    size = (top if isinstance(top, int) else -1) + 1
    lookup = pl.Series([None] * size, dtype=pl.Int8).scatter(names.to_physical(), by_name)
    code = lookup.gather(physical).alias("code")
    if table["view"].null_count() or table["root"].null_count():
        # A FlatView row without both pointers is a hole, as a dropped-events record.
        pointers = table["view"].is_not_null() & table["root"].is_not_null()
        whole = (code.gt(DESTROY) | pointers).fill_null(True)  # no FlatView row (null): kept
        code = code.zip_with(whole, pl.repeat(DROP, len(code), dtype=pl.Int8, eager=True))
    return code


@dataclass(frozen=True)
class ModelRows:
    """The events table in ``seq`` order and the columns the model's kernel reads from it.

    ``code``: NEW, RCU, DESTROY, DROP, FINALIZE, null for other events; ``stream``: a dense
    process id per row (null pid: ``null_stream``), or None when no row has a pid;
    ``finalize_rows`` and ``finalize_mr``: the ``memory_region_finalize`` rows whose
    arguments name an MR, and that MR.
    """

    table: pl.DataFrame
    code: pl.Series
    stream: pl.Series | None
    pids: list[int | None]  # the pid of each stream id
    null_stream: int
    finalize_rows: pl.Series
    finalize_mr: pl.Series
    destroy_traced: bool  # decided once for the whole input

    @property
    def n_streams(self) -> int:
        return len(self.pids)

    @property
    def view(self) -> pl.Series:
        return self.table["view"]

    @property
    def root(self) -> pl.Series:
        return self.table["root"]

    @property
    def ts(self) -> pl.Series:
        return self.table["ts_ns"]


def model_rows(events: pl.DataFrame) -> ModelRows:
    """What the model reads of an events table (``conform``'d)."""
    # Traces come in seq order; sorting a sorted frame would still copy every column.
    table = events if events["seq"].is_sorted() else events.sort("seq")
    code = _codes(table)
    pid = table["pid"]
    pids: list[int | None] = [None]
    if pid.null_count() == pid.len():
        stream, null_stream = None, 0
    else:
        known = pid.drop_nulls().unique(maintain_order=True)
        pids = [*known.to_list(), None]
        null_stream = known.len()
        ids = pl.Series(range(known.len()), dtype=pl.Int32)
        stream = pid.replace_strict(known, ids, default=null_stream, return_dtype=pl.Int32)
    finalize_rows = code.eq(FINALIZE).arg_true()
    mr = table.select(_pointer_in(pl.col("args").gather(finalize_rows))).to_series()
    named = mr.is_not_null() & (mr != 0)
    return ModelRows(
        table=table,
        code=code,
        stream=stream,
        pids=pids,
        null_stream=null_stream,
        finalize_rows=finalize_rows.filter(named).cast(pl.Int64),
        finalize_mr=mr.filter(named),
        destroy_traced=bool((code == DESTROY).any()),
    )


def every_view_timed(views: pl.DataFrame) -> bool:
    """Whether every view instance has a timestamp, so the trace can be laid out in time.

    A trace can have a clock and still views without one: a log of a bare run and a stamped
    run (a QEMU restarted with ``-msg timestamp=on``; its clock ``mixed(none,wall-us)``).
    Its durations are measured where stamps are, but only event order places every view.

    Examples
    --------
    >>> every_view_timed(pl.DataFrame({"new_ts_ns": [1, None]}))
    False
    """
    return views["new_ts_ns"].null_count() == 0


def attach_origin(frame: pl.DataFrame, events: pl.DataFrame, row: str = "row") -> pl.DataFrame:
    """Replace ``row`` (an index into ``events``) by the event's source, line and offset."""
    origin = events.select(pl.col(ORIGIN_COLUMNS).gather(frame[row]))
    return frame.drop(row).hstack(origin)


def dropped_total(events: pl.DataFrame) -> int:
    """Events lost according to every dropped-events record of the table."""
    drops = events.filter(pl.col("event") == DROPPED_EVENT)
    if drops.height == 0:
        return 0
    return int(drops.select(_dropped_count(pl.col("args")).sum()).item())


def run_table(runs: pl.DataFrame, rows: ModelRows) -> pl.DataFrame:
    """One row per run (RUN_TABLE_SCHEMA), numbered in the order of their first events.

    ``runs``: the kernel's runs (stream, first_row, last_fv_row, flatview_events,
    loss_points, clock_steps_back), in that order.
    """
    table = rows.table
    first, last = runs["first_row"], runs["last_fv_row"]
    pids = pl.Series("pid", rows.pids, dtype=pl.Int32)
    return pl.DataFrame(
        {
            "run": pl.int_range(runs.height, dtype=pl.Int64, eager=True),
            "pid": pids.gather(runs["stream"]),
            "label": table["source"].gather(first).cast(pl.String),
            "first_seq": table["seq"].gather(first),
            "last_seq": table["seq"].gather(last),
            "first_ts_ns": table["ts_ns"].gather(first),
            "last_ts_ns": table["ts_ns"].gather(last),
            "flatview_events": runs["flatview_events"],
            "loss_points": runs["loss_points"],
            "clock_steps_back": runs["clock_steps_back"],
        },
        schema=RUN_TABLE_SCHEMA,
    )


__all__ = [
    "DESTROY",
    "DROP",
    "FINALIZE",
    "NEW",
    "RCU",
    "RUN_TABLE_SCHEMA",
    "ModelRows",
    "attach_origin",
    "dropped_total",
    "model_rows",
    "run_table",
    "unreadable_places",
]
