"""The FlatView and root MemoryRegion lifetime model: ``analyze(events) -> Analysis``.

The rules are documented in docs/model.md; runs.py splits runs, instances.py pairs events
into instances and anomalies, pins.py turns instances into per-root pin levels and spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import polars as pl

from qtrace.errors import UsageError
from qtrace.events import Trace, conform
from qtrace.instances import (
    ANOMALY_COLUMNS,
    STATUSES,
    build_instances,
    classify_events,
    find_anomalies,
    first_pos,
    flatview_rows,
    instance_views,
    pin_end,
)
from qtrace.pins import (
    CONCURRENCY_SCHEMA,
    Steps,
    concurrency,
    finalized_while_pinned,
    overlaps,
    root_intervals,
    root_levels,
    roots_table,
    table_root_levels,
)
from qtrace.runs import (
    ORIGIN_COLUMNS,
    attach_origin,
    destroy_traced,
    dropped_total,
    event_counts,
    finalized_roots,
    prepare,
    run_bounds,
)

ANOMALY_KINDS: tuple[str, ...] = (
    "new_while_live",
    "reused_before_destroy",
    "orphan_destroy_rcu",
    "double_destroy_rcu",
    "null_root",
    "root_mismatch",
    "orphan_destroy",
    "destroy_without_rcu",
    "root_finalized_while_pinned",
)
ROOT_RELEASES = ("destroy", "destroy_rcu")
WINDOW_UNITS = ("seq", "ns")

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
    "live_ns": pl.Int64(),
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

ANOMALY_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.Int64(),
    "kind": pl.String(),
    "seq": pl.Int64(),
    "ts_ns": pl.Int64(),
    "view": pl.UInt64(),
    "root": pl.UInt64(),
    "generation": pl.Int64(),  # the instance concerned; null for orphans and finalizes
    "uncertain": pl.Boolean(),
    "source": pl.String(),
    "line": pl.Int64(),
    "offset": pl.Int64(),
    "detail": pl.String(),
}


# Statuses whose instances are findings (lost ones also show as new_while_live or
# reused_before_destroy anomalies).
FLAGGED_STATUSES = ("leaked", "lost")


def _quantiles(values: pl.Series) -> dict[str, int | None]:
    present = values.drop_nulls()
    if present.len() == 0:
        return {"count": 0, "p50": None, "p99": None, "max": None}

    def q(x: float) -> int:
        return int(present.quantile(x, interpolation="nearest") or 0)

    top = present.max()
    return {"count": present.len(), "p50": q(0.5), "p99": q(0.99), "max": int(top)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Window:
    """The report's scope: ``begin``/``end`` as given, and the seq range they cover."""

    unit: str
    begin: int | None
    end: int | None
    begin_seq: int
    end_seq: int


@dataclass
class Analysis:
    """Everything the model learned from one input, as polars tables.

    ``views``: one row per view instance; ``roots``: one row per (run, root);
    ``root_intervals``: spans a root is pinned (``pinned``) or pinned only by RCU-pending
    views (``pending_only``); ``overlaps``: spans two or more instances pin one root;
    ``anomalies``: one row per anomaly; ``concurrency``: per-root live and pending levels
    after every event that changes them.
    """

    trace: Trace | None
    destroy_traced: bool
    root_release: str
    runs: int
    has_clock: bool
    views: pl.DataFrame
    roots: pl.DataFrame
    root_intervals: pl.DataFrame
    overlaps: pl.DataFrame
    anomalies: pl.DataFrame
    # The concurrency table, or the steps to build it from on first use (most reports
    # never read its ten million rows).
    _concurrency: pl.DataFrame | Steps = field(repr=False)
    event_counts: dict[str, int] = field(default_factory=dict)
    dropped_events: int = 0
    window: Window | None = None

    @cached_property
    def status_counts(self) -> dict[str, int]:
        """How many instances end in each status (every status of ``STATUSES``, zeros too).

        Reports read this, never the views table, which a large trace may build lazily.
        """
        counts = self.views.group_by("status").len()
        found = dict(zip(counts["status"].to_list(), counts["len"].to_list(), strict=True))
        return {status: int(found.get(status, 0)) for status in STATUSES}

    @cached_property
    def flagged_views(self) -> pl.DataFrame:
        """The leaked and lost instances (``VIEW_SCHEMA``), in (run, new_seq) order."""
        return self.views.filter(pl.col("status").is_in(FLAGGED_STATUSES)).sort(["run", "new_seq"])

    @cached_property
    def uncertain_views(self) -> int:
        """How many instances have a loss point (dropped or unreadable events) in their life."""
        return int(self.views["uncertain"].sum())

    @cached_property
    def pointer_reuse(self) -> tuple[int, int]:
        """(distinct pointers, reused pointers): generation-0 and generation-1 instances."""
        row = self.views.select(
            distinct=(pl.col("generation") == 0).sum(), reused=(pl.col("generation") == 1).sum()
        ).row(0)
        return int(row[0]), int(row[1])

    @cached_property
    def duration_stats(self) -> dict[str, dict[str, int | None]]:
        """``live_ns`` and ``grace_ns`` over the instances: count, p50, p99 and max."""
        return {name: _quantiles(self.views[name]) for name in ("live_ns", "grace_ns")}

    def concurrency_slices(self, rows: int) -> Iterator[pl.DataFrame]:
        """The concurrency table ``rows`` at a time, in its order (a streaming writer's way).

        When the table was not built yet, each slice is built on its own, so a writer never
        holds the whole table (ten million rows for a large trace).
        """
        steps = self._concurrency
        if "concurrency" in self.__dict__ or not isinstance(steps, Steps):
            table = self.concurrency
            for offset in range(0, table.height, rows):
                yield table.slice(offset, rows)
            return
        for offset in range(0, steps.levels.height, rows):
            part = Steps(steps.levels.slice(offset, rows), steps.roots, steps.fv_rows).table()
            yield part.select([pl.col(c).cast(t) for c, t in CONCURRENCY_SCHEMA.items()])

    @cached_property
    def concurrency(self) -> pl.DataFrame:
        """Per-root live and pending levels after each event that changes them.

        In (run, root, seq) order.
        """
        steps = self._concurrency
        table = steps.table() if isinstance(steps, Steps) else steps
        return table.select([pl.col(c).cast(t) for c, t in CONCURRENCY_SCHEMA.items()])


def _window(
    rows: pl.DataFrame, begin: int | None, end: int | None, unit: str, has_clock: bool
) -> Window | None:
    """Translate ``begin``/``end`` into an inclusive seq range (a time window needs a clock)."""
    if begin is None and end is None:
        return None
    if unit not in WINDOW_UNITS:
        raise UsageError(f"unknown window unit {unit!r} (choose seq or ns)")
    if begin is not None and end is not None and end < begin:
        raise UsageError(f"window end {end} is before its begin {begin}")
    if unit == "seq":
        return Window(
            unit, begin, end, begin if begin is not None else -1, end if end is not None else 2**62
        )
    if not has_clock:
        raise UsageError("a time window needs a trace with a clock; give --begin/--end as seq")
    fv = rows.filter(pl.col("is_fv"))
    begin_seq, end_seq = -1, 2**62
    if begin is not None:
        found = fv.filter(pl.col("ts_ns") >= begin)["seq"].min()
        begin_seq = int(found) if isinstance(found, int) else 2**62
    if end is not None:
        found = fv.filter(pl.col("ts_ns") <= end)["seq"].max()
        end_seq = int(found) if isinstance(found, int) else -1
    return Window(unit, begin, end, begin_seq, end_seq)


def _in_window(start: str, end: str, window: Window) -> pl.Expr:
    """A span [start, end) (null end: open) meets the inclusive window."""
    return (pl.col(start) <= window.end_seq) & (
        pl.col(end).is_null() | (pl.col(end) > window.begin_seq)
    )


def _clip_steps(steps: pl.DataFrame, window: Window, at_begin: pl.DataFrame) -> pl.DataFrame:
    """The step function inside the window, starting with the levels entering it.

    ``at_begin``: the ``ts_ns`` and ``pos`` of the window's first FlatView event (no row
    when there is none).
    """
    entering = (
        steps.filter(pl.col("seq") < window.begin_seq)
        .group_by(["run", "root"])
        .agg(pl.all().sort_by("seq").last())
        .filter((pl.col("live") + pl.col("pending")) > 0)
    )
    begin_ts = at_begin["ts_ns"].first() if at_begin.height else None
    begin_pos = at_begin["pos"].first() if at_begin.height else None
    entering = entering.with_columns(
        seq=pl.lit(window.begin_seq, pl.Int64),
        ts_ns=pl.lit(begin_ts, pl.Int64),
        pos=pl.lit(begin_pos, steps.schema["pos"]),
    ).select(steps.columns)
    inside = steps.filter(pl.col("seq").is_between(window.begin_seq, window.end_seq))
    return pl.concat([entering, inside], how="vertical").sort(["run", "root", "seq"])


def analyze(
    events: pl.DataFrame | Trace,
    *,
    root_release: Literal["destroy", "destroy_rcu"] = "destroy",
    begin: int | None = None,
    end: int | None = None,
    window_unit: Literal["seq", "ns"] = "seq",
) -> Analysis:
    """Rebuild every FlatView instance and root pin of a trace.

    Parameters
    ----------
    events
        An events table (``qtrace.read_events``) or a ``Trace`` (``qtrace.read_trace``).
    root_release
        ``"destroy"`` (QEMU today: the root is released in the RCU callback) or
        ``"destroy_rcu"`` (replay as if the root were released when the view is queued).
    begin, end
        Scope the report to a window (inclusive), in ``window_unit``: ``"seq"`` or ``"ns"``.
        The model always runs on the whole input; the window selects the instances whose
        life meets it, the anomalies and pin changes inside it.

    Examples
    --------
    >>> import polars as pl, qtrace
    >>> from qtrace.events import conform
    >>> events = conform(pl.DataFrame({
    ...     "seq": [0, 1, 2], "event": ["flatview_new"] * 3,
    ...     "view": [1, 2, 3], "root": [0, 16, 16]}))
    >>> qtrace.analyze(events).views["status"].to_list()
    ['immortal', 'leaked', 'current']
    """
    if root_release not in ROOT_RELEASES:
        raise UsageError(f"unknown root release {root_release!r} (choose destroy or destroy_rcu)")
    trace = events if isinstance(events, Trace) else None
    table = conform(events.events if isinstance(events, Trace) else events)
    rows = prepare(table)
    traced = destroy_traced(rows)
    bounds = run_bounds(rows)
    has_clock = trace.has_clock if trace is not None else rows["ts_ns"].drop_nulls().len() > 0
    # Everything that reads the model's rows happens here, so they can go before the
    # instance and pin tables are built: the peak memory is where those meet.
    window = _window(rows, begin, end, window_unit, has_clock)
    if window is None:
        counts = event_counts(rows)
        at_begin = rows.clear()
    else:
        counts = event_counts(
            rows.filter(pl.col("seq").is_between(window.begin_seq, window.end_seq))
        )
        at_begin = rows.filter(pl.col("is_fv") & (pl.col("seq") >= window.begin_seq)).head(1)
    fv_rows = flatview_rows(rows)
    finalized_mrs = finalized_roots(rows, table)
    del rows
    fv = classify_events(fv_rows, table)
    fv_rows = fv_rows.drop("run", "code")
    inst = build_instances(fv, destroy_traced=traced)
    anomalies = find_anomalies(fv, fv_rows, inst, bounds, destroy_traced=traced)
    del fv
    # Runs follow seq, so new_pos order is (run, new_seq) order, the views' order.
    inst = inst.sort("new_pos")
    steps = concurrency(
        inst.with_columns(
            end_pos=first_pos(pin_end(destroy_traced=traced, root_release=root_release))
        ),
        fv_rows,
    )
    views = instance_views(inst, fv_rows, bounds, destroy_traced=traced, root_release=root_release)
    del inst, fv_rows
    finalized = (
        finalized_while_pinned(finalized_mrs, steps)
        .join(bounds.select("run", "drops_before_run"), on="run", how="left")
        .with_columns(uncertain=pl.col("drops_upto") > pl.col("drops_before_run"))
        .select([pl.col(c).cast(t) for c, t in ANOMALY_COLUMNS.items()])
    )
    anomalies = pl.concat([anomalies, finalized], how="vertical")
    views = views.select(
        "row", *[pl.col(c).cast(t) for c, t in VIEW_SCHEMA.items() if c not in ORIGIN_COLUMNS]
    )
    intervals = root_intervals(steps, bounds)
    found_overlaps = overlaps(steps, bounds)
    # The public concurrency table is built from these on first use.
    concurrency_source: pl.DataFrame | Steps = steps
    if window is None:
        levels = root_levels(steps)
    else:
        views = views.filter(_in_window("new_seq", "life_end_seq", window))
        anomalies = anomalies.filter(pl.col("seq").is_between(window.begin_seq, window.end_seq))
        intervals = intervals.filter(_in_window("start_seq", "end_seq", window))
        found_overlaps = found_overlaps.filter(_in_window("start_seq", "end_seq", window))
        clipped = _clip_steps(steps.table(), window, at_begin)
        levels, concurrency_source = table_root_levels(clipped), clipped
    roots = roots_table(views, levels, intervals)
    return Analysis(
        trace=trace,
        destroy_traced=traced,
        root_release=root_release,
        runs=bounds.height,
        has_clock=has_clock,
        # instance_views builds them in (run, new_seq) order.
        views=attach_origin(views, table).select(
            [pl.col(c).cast(t) for c, t in VIEW_SCHEMA.items()]
        ),
        roots=roots,
        root_intervals=intervals,
        overlaps=found_overlaps,
        anomalies=attach_origin(anomalies.sort(["run", "seq", "kind"]), table).select(
            [pl.col(c).cast(t) for c, t in ANOMALY_SCHEMA.items()]
        ),
        _concurrency=concurrency_source,
        event_counts=counts,
        dropped_events=trace.dropped_events if trace is not None else dropped_total(table),
        window=window,
    )


__all__ = ["ANOMALY_KINDS", "FLAGGED_STATUSES", "ROOT_RELEASES", "Analysis", "Window", "analyze"]
