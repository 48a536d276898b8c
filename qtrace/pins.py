"""Root pins: the spans, roots and concurrency tables, from the kernel's pin records.

The kernel (qtrace/_kernel.c) keeps every root's *live* and *RCU-pending* levels as it walks
the trace (an instance adds +1 live at ``flatview_new``, moves to pending at
``flatview_destroy_rcu`` and leaves at its pin end; half-open pins, levels compared after
each event) and records the spans read off them: ``pinned`` (any pin), ``pending_only``
(pending pins only) and the overlap classes (two or more pins). This module names and
stamps them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from qtrace.instances import non_negative

ROOT = ["run", "root"]

CONCURRENCY_SCHEMA = {
    "run": pl.Int64(),
    "root": pl.UInt64(),
    "seq": pl.Int64(),
    "ts_ns": pl.Int64(),
    "live": pl.Int64(),
    "pending": pl.Int64(),
}

# The kernel's span kinds: 0 and 1 are intervals, 2.. the overlap classes.
INTERVAL_KINDS = ("pinned", "pending_only")
PHASES = ("live+pending", "live+live", "pending+pending")
# The order reports list the overlap classes in.
REPORTED_PHASES = ("live+live", "live+pending", "pending+pending")

INTERVAL_COLUMNS = [
    "run",
    "root",
    "kind",
    "start_seq",
    "end_seq",
    "start_ts_ns",
    "end_ts_ns",
    "duration_ns",
    "duration_events",
]
OVERLAP_COLUMNS = [
    "run",
    "root",
    "start_seq",
    "end_seq",
    "start_ts_ns",
    "end_ts_ns",
    "phases",
    "instances",
    "duration_ns",
    "duration_events",
]
ROOT_COLUMNS = [
    "run",
    "root",
    "instances",
    "max_concurrent",
    "pinned_at_end",
    "first_seq",
    "last_seq",
    "first_ts_ns",
    "last_ts_ns",
    "leaked",
    "intervals",
    "pinned_ns",
    "pending_only_windows",
    "pending_only_ns",
]


def _at(rows: pl.Series, events: pl.DataFrame, column: str) -> pl.Series:
    """``events[column]`` at each row (null where the row is -1 or null)."""
    return events[column].gather(rows.set(rows < 0, None))


def _root_rank(roots: pl.DataFrame) -> pl.Series:
    """Each root record's place in (run, root) order, indexed by the kernel's ``rid``."""
    by_root = roots.select(pl.arg_sort_by(["run", "root"])).to_series()
    return by_root.arg_sort().cast(pl.UInt64)  # the inverse permutation


def _sorted_by_root(rank: pl.Series, rid: pl.Series, then: pl.Series) -> pl.Series:
    """The row order that sorts rows by (run, root) of their ``rid``, then by ``then``
    (non-negative, below 2**40, unique within a root).

    One packed UInt64 key: sorting a table of millions of rows by several columns, and
    copying every column while it did, cost more than building the table.
    """
    key = rank.gather(rid) * (1 << 40) + then.cast(pl.UInt64)
    return key.arg_sort()


def _grouped_by_root(rank: pl.Series, rid: pl.Series) -> pl.Series:
    """The row order that sorts rows by (run, root) of their ``rid`` and keeps their order
    within a root: a grouping (rows keep their order in a group), not a sort of every row."""
    groups = (
        rank.gather(rid)
        .alias("rank")
        .to_frame()
        .with_row_index("row")
        .group_by("rank")
        .agg("row")
        .sort("rank")
    )
    return groups["row"].explode()


def span_tables(
    found: pl.DataFrame, roots: pl.DataFrame, runs: pl.DataFrame, events: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The root intervals, the overlaps (``root_intervals``, ``overlaps``) and how many spans
    the clock gave a negative duration (reported as null), from the kernel's spans."""
    # (run, root, start_seq, kind): start rows are in seq order, and at most one span of a
    # kind starts at one event of one root.
    order = _sorted_by_root(_root_rank(roots), found["rid"], found["start_row"] * 8 + found["kind"])
    kind = found["kind"].gather(order)
    is_interval = kind < len(INTERVAL_KINDS)
    intervals = spans(found[order.filter(is_interval)], roots, runs, events)
    found_overlaps = spans(found[order.filter(~is_interval)], roots, runs, events)
    negative = negative_spans(intervals) + negative_spans(found_overlaps)
    return root_intervals(intervals), overlaps(found_overlaps), negative


def spans(
    found: pl.DataFrame, roots: pl.DataFrame, runs: pl.DataFrame, events: pl.DataFrame
) -> pl.DataFrame:
    """Every span of the kernel with its run, root, stamps and durations.

    A span still open at the end is measured to its run's last FlatView event: in events
    (``runs.flatview_events``) and in time. A duration the clock made negative is null.
    """
    last_ts = events["ts_ns"].gather(runs["last_fv_row"])
    rid = found["rid"]
    run = roots["run"].gather(rid)
    return pl.DataFrame(
        {
            "run": run.cast(pl.Int64),
            "root": roots["root"].gather(rid),
            "kind": found["kind"],
            "start_seq": _at(found["start_row"], events, "seq"),
            "end_seq": _at(found["end_row"], events, "seq"),
            "start_ts_ns": _at(found["start_row"], events, "ts_ns"),
            "end_ts_ns": _at(found["end_row"], events, "ts_ns"),
            "instances": found["peak"].set(found["peak"] < 0, None),
            "run_last_ts_ns": last_ts.gather(run),
            "run_end_pos": runs["flatview_events"].gather(run),
            "start_pos": found["start_pos"],
            "end_pos": found["end_pos"].set(found["end_pos"] < 0, None),
        }
    ).select(
        pl.exclude("run_last_ts_ns", "run_end_pos", "start_pos", "end_pos"),
        duration_ns=pl.coalesce("end_ts_ns", "run_last_ts_ns") - pl.col("start_ts_ns"),
        duration_events=pl.coalesce("end_pos", "run_end_pos") - pl.col("start_pos"),
    )


def negative_spans(stamped: pl.DataFrame) -> int:
    """How many spans the clock gave a negative duration (they are reported as null)."""
    return int((stamped["duration_ns"] < 0).sum())


def root_intervals(stamped: pl.DataFrame) -> pl.DataFrame:
    """Lifetime intervals (``pinned``) and windows pinned only by pending views.

    ``stamped``: the interval spans, in (run, root, start_seq, kind) order.
    """
    kinds = pl.Series(INTERVAL_KINDS, dtype=pl.String)
    return stamped.with_columns(
        kinds.gather(stamped["kind"].cast(pl.UInt32)).alias("kind"),
        non_negative(pl.col("duration_ns")).alias("duration_ns"),
    ).select(INTERVAL_COLUMNS)


def overlaps(stamped: pl.DataFrame) -> pl.DataFrame:
    """Spans where two or more instances pin one root, by the phases of those instances.

    ``live+pending`` whenever both phases are present, else ``live+live`` or
    ``pending+pending``; a change of class starts a new span. ``stamped``: the overlap
    spans, in (run, root, start_seq) order.
    """
    phases = pl.Series(PHASES, dtype=pl.String)
    return stamped.with_columns(
        phases.gather((stamped["kind"] - len(INTERVAL_KINDS)).cast(pl.UInt32)).alias("phases"),
        non_negative(pl.col("duration_ns")).alias("duration_ns"),
    ).select(OVERLAP_COLUMNS)


def _known_sum(durations: pl.Expr) -> pl.Expr:
    # A run without a clock has spans but no durations: its total is unknown (null), not 0 ns.
    unknown = (durations.len() > 0) & (durations.count() == 0)
    return pl.when(unknown).then(None).otherwise(durations.sum())


def _per_root_spans(intervals: pl.DataFrame) -> pl.DataFrame:
    pinned, pending_only = pl.col("kind") == "pinned", pl.col("kind") == "pending_only"
    return intervals.group_by(ROOT).agg(
        intervals=pinned.sum().cast(pl.Int64),
        pinned_ns=_known_sum(pl.col("duration_ns").filter(pinned)),
        pending_only_ns=_known_sum(pl.col("duration_ns").filter(pending_only)),
        pending_only_windows=pending_only.sum().cast(pl.Int64),
    )


def overlap_summary(
    found_overlaps: pl.DataFrame, has_clock: bool
) -> dict[str, dict[str, int | None]]:
    """Per overlap class: how many spans, and their length in events and (with a clock) ns."""
    summary: dict[str, dict[str, int | None]] = {}
    for phase in REPORTED_PHASES:
        rows = found_overlaps.filter(pl.col("phases") == phase)
        summary[phase] = {
            "count": rows.height,
            "duration_events": int(rows["duration_events"].sum()),
            "duration_ns": int(rows["duration_ns"].sum()) if has_clock else None,
        }
    return summary


@dataclass(frozen=True)
class SpanSummary:
    """What reports read of the spans, kept when the span tables themselves are let go.

    ``per_root``: each root's interval counts and pinned times (``_per_root_spans``);
    ``overlaps``: ``overlap_summary``; ``negative``: spans the clock made negative.
    """

    per_root: pl.DataFrame
    overlaps: dict[str, dict[str, int | None]]
    negative: int


def span_summary(
    found: pl.DataFrame,
    roots: pl.DataFrame,
    runs: pl.DataFrame,
    events: pl.DataFrame,
    *,
    has_clock: bool,
) -> SpanSummary:
    """The summary of the kernel's spans, read off the span tables, which are then let go.

    A storm of short views has about one span per event: reports need only these sums, and
    the tables are built again (``span_tables``) if a caller reads them.
    """
    intervals, found_overlaps, negative = span_tables(found, roots, runs, events)
    return SpanSummary(
        per_root=_per_root_spans(intervals),
        overlaps=overlap_summary(found_overlaps, has_clock),
        negative=negative,
    )


def _finish_roots(per_root: pl.DataFrame, spans_per_root: pl.DataFrame) -> pl.DataFrame:
    return (
        per_root.join(spans_per_root, on=ROOT, how="left")
        .with_columns(
            pl.col("max_concurrent").fill_null(0),
            pl.col("pinned_at_end").fill_null(False),
            pl.col("intervals").fill_null(0),
            pl.col("pending_only_windows").fill_null(0),
        )
        .select(ROOT_COLUMNS)
        .sort(ROOT)
    )


def roots_table(
    roots: pl.DataFrame, spans_per_root: pl.DataFrame, events: pl.DataFrame
) -> pl.DataFrame:
    """One row per (run, root) from the kernel's root records (the nil root left out).

    ``spans_per_root``: ``SpanSummary.per_root``.
    """
    found = roots.filter(pl.col("root") != 0)
    per_root = pl.DataFrame(
        {
            "run": found["run"].cast(pl.Int64),
            "root": found["root"],
            "instances": found["instances"],
            "max_concurrent": found["max_concurrent"],
            "pinned_at_end": found["pinned_at_end"] > 0,
            "first_seq": _at(found["first_row"], events, "seq"),
            "last_seq": _at(found["last_step_row"], events, "seq"),
            "first_ts_ns": found["min_new_ts"],
            "last_ts_ns": _at(found["last_step_row"], events, "ts_ns"),
            "leaked": found["leaked"],
        }
    )
    return _finish_roots(per_root, spans_per_root)


def concurrency(steps: pl.DataFrame, roots: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """The public concurrency table (CONCURRENCY_SCHEMA) in (run, root, seq) order."""
    # The kernel records a root's levels once per event that changes them, in event order.
    order = _grouped_by_root(_root_rank(roots), steps["rid"])
    rid, row = steps["rid"].gather(order), steps["row"].gather(order)
    return pl.DataFrame(
        {
            "run": roots["run"].gather(rid).cast(pl.Int64),
            "root": roots["root"].gather(rid),
            "seq": events["seq"].gather(row),
            "ts_ns": events["ts_ns"].gather(row),
            "live": steps["live"].gather(order),
            "pending": steps["pending"].gather(order),
        },
        schema=CONCURRENCY_SCHEMA,
    )


def clip_steps(
    steps: pl.DataFrame, begin_seq: int, end_seq: int, begin_ts: int | None
) -> pl.DataFrame:
    """The concurrency table inside a window, starting with the levels entering it.

    ``begin_ts``: the time of the window's first FlatView event (None when there is none).
    """
    entering = (
        steps.filter(pl.col("seq") < begin_seq)
        .group_by(ROOT)
        .agg(pl.all().sort_by("seq").last())
        .filter((pl.col("live") + pl.col("pending")) > 0)
        .with_columns(seq=pl.lit(begin_seq, pl.Int64), ts_ns=pl.lit(begin_ts, pl.Int64))
        .select(steps.columns)
    )
    inside = steps.filter(pl.col("seq").is_between(begin_seq, end_seq))
    return pl.concat([entering, inside], how="vertical").sort(["run", "root", "seq"])


def window_roots(
    views: pl.DataFrame, clipped: pl.DataFrame, intervals: pl.DataFrame
) -> pl.DataFrame:
    """``roots_table`` of a window: its views, its clipped steps and its spans."""
    level = pl.col("live") + pl.col("pending")
    # The table is in (run, root, seq) order, and group_by keeps that order in a group.
    levels = clipped.group_by(ROOT).agg(
        max_concurrent=level.max().cast(pl.Int64),
        last_seq=pl.col("seq").last(),
        last_ts_ns=pl.col("ts_ns").last(),
        pinned_at_end=level.last() > 0,
    )
    # Grouped first and filtered after: filtering every view first would copy them.
    per_root = (
        views.group_by(ROOT)
        .agg(
            instances=pl.len().cast(pl.Int64),
            leaked=(pl.col("status") == "leaked").sum().cast(pl.Int64),
            first_seq=pl.col("new_seq").min(),
            first_ts_ns=pl.col("new_ts_ns").min(),
        )
        .filter(pl.col("root") != 0)
        .join(levels, on=ROOT, how="left")
    )
    return _finish_roots(per_root, _per_root_spans(intervals))
