"""The FlatView and root MemoryRegion lifetime model: ``analyze(events) -> Analysis``.

The rules are documented in docs/model.md; runs.py splits runs, instances.py pairs events
into instances and anomalies, pins.py turns instances into per-root pin levels and spans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import polars as pl

from qtrace import kernel
from qtrace.anomalies import ANOMALY_KINDS, ANOMALY_SCHEMA, anomalies_table, pinned_by_counts
from qtrace.errors import UsageError
from qtrace.events import FLATVIEW_EVENTS, Trace, conform
from qtrace.instances import FLAGGED_STATUSES, STATUSES, VIEW_SCHEMA, views_table
from qtrace.kernel import Walked
from qtrace.names import Names, name_analysis, unnamed_intervals
from qtrace.pins import (
    CONCURRENCY_SCHEMA,
    SpanSummary,
    clip_steps,
    concurrency,
    overlap_summary,
    roots_table,
    span_summary,
    span_tables,
    window_roots,
)
from qtrace.runs import (
    DESTROY,
    ModelRows,
    dropped_total,
    model_rows,
    run_table,
    unreadable_places,
)

ROOT_RELEASES = ("destroy", "destroy_rcu")
WINDOW_UNITS = ("seq", "ns")


def _quantiles(values: pl.Series) -> dict[str, int | None]:
    """Count, p50, p99 (nearest rank, as polars' ``quantile(interpolation="nearest")``), max."""
    present = values.drop_nulls().sort()  # sorted once for every quantile
    n = present.len()
    if n == 0:
        return {"count": 0, "p50": None, "p99": None, "max": None}

    def q(x: float) -> int:
        # polars rounds the rank (n - 1) * x half away from zero; it is never negative here.
        return int(present[math.floor((n - 1) * x + 0.5)])

    return {"count": n, "p50": q(0.5), "p99": q(0.99), "max": int(present[n - 1])}


@dataclass(frozen=True)
class Window:
    """The report's scope: ``begin``/``end`` as given, and the seq range they cover."""

    unit: str
    begin: int | None
    end: int | None
    begin_seq: int
    end_seq: int


@dataclass(frozen=True)
class _Summary:
    """The counts the kernel kept while walking, so reports need not build the views table."""

    status_counts: dict[str, int]
    uncertain_views: int
    pointer_reuse: tuple[int, int]
    durations: dict[str, pl.Series]
    flagged: pl.DataFrame  # the kernel's rows of the leaked and lost instances


@dataclass
class Analysis:
    """Everything the model learned from one input, as polars tables.

    ``views``: one row per view instance; ``roots``: one row per (run, root);
    ``root_intervals``: spans a root is pinned (``pinned``) or pinned only by RCU-pending
    views (``pending_only``); ``overlaps``: spans two or more instances pin one root;
    ``anomalies``: one row per anomaly; ``concurrency``: per-root live and pending levels
    after every event that changes them; ``run_table``: one row per run.

    ``views``, ``concurrency``, ``root_intervals`` and ``overlaps`` (about one row per
    FlatView event each in a storm of short views) are built the first time they are read;
    the summaries below are what reports read instead.
    """

    trace: Trace | None
    destroy_traced: bool
    root_release: str
    runs: int
    has_clock: bool
    roots: pl.DataFrame
    anomalies: pl.DataFrame
    run_table: pl.DataFrame
    _rows: ModelRows = field(repr=False)
    # The kernel's counts (no window), or None: then summaries are read off the views table.
    _summary: _Summary | None = field(repr=False)
    # Built eagerly with a window (the tables are clipped to it), else on first use.
    _tables: tuple[pl.DataFrame, pl.DataFrame] | None = field(default=None, repr=False)
    # (root_intervals, overlaps): the same, and named when the analysis has names.
    _spans: tuple[pl.DataFrame, pl.DataFrame] | None = field(default=None, repr=False)
    # What reports read of the spans (no window), or None: then read off the span tables.
    _span_summary: SpanSummary | None = field(default=None, repr=False)
    event_counts: dict[str, int] = field(default_factory=dict)
    dropped_events: int = 0
    window: Window | None = None
    # Durations the clock made negative (it stepped back): reported as null, counted here.
    negative_durations: int = 0
    # FlatView events in the whole input (event_counts covers the window only).
    flatview_events_read: int = 0
    # Places where a reader could not read the input (qtrace_unreadable rows, FlatView rows
    # whose pointers did not parse): holes like dropped-events records.
    unreadable_places: int = 0
    # The first timestamp of the trace (None without a clock): times in reports count from it.
    start_ts_ns: int | None = None

    def _views_and_steps(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        if self._tables is None:
            self._tables = _walk_tables(self._rows, self.root_release)
        return self._tables

    def _span_tables(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        if self._spans is None:
            self._spans = _walk_spans(self._rows, self.root_release)
        return self._spans

    @property
    def root_intervals(self) -> pl.DataFrame:
        """Spans each root is pinned (``pinned``) or pinned only by RCU-pending views."""
        return self._span_tables()[0]

    @property
    def overlaps(self) -> pl.DataFrame:
        """Spans two or more instances pin one root, by the phases of those instances."""
        return self._span_tables()[1]

    @cached_property
    def overlap_summary(self) -> dict[str, dict[str, int | None]]:
        """Per overlap class (``live+pending``, ...): count, duration_events, duration_ns."""
        if self._span_summary is not None:
            return self._span_summary.overlaps
        return overlap_summary(self.overlaps, self.has_clock)

    @cached_property
    def views(self) -> pl.DataFrame:
        """One row per view instance (VIEW_SCHEMA), in (run, new_seq) order."""
        return self._views_and_steps()[0]

    @cached_property
    def concurrency(self) -> pl.DataFrame:
        """Per-root live and pending levels after each event that changes them.

        In (run, root, seq) order.
        """
        return self._views_and_steps()[1]

    @cached_property
    def status_counts(self) -> dict[str, int]:
        """How many instances end in each status (every status of ``STATUSES``, zeros too)."""
        if self._summary is not None:
            return dict(self._summary.status_counts)
        counts = self.views.group_by("status").len()
        found = dict(zip(counts["status"].to_list(), counts["len"].to_list(), strict=True))
        return {status: int(found.get(status, 0)) for status in STATUSES}

    @cached_property
    def flagged_views(self) -> pl.DataFrame:
        """The leaked and lost instances (``VIEW_SCHEMA``), in (run, new_seq) order."""
        if self._summary is not None:
            return views_table(
                self._summary.flagged,
                self._rows.table,
                destroy_traced=self.destroy_traced,
                root_release=self.root_release,
            )
        return self.views.filter(pl.col("status").is_in(FLAGGED_STATUSES)).sort(["run", "new_seq"])

    @cached_property
    def uncertain_views(self) -> int:
        """How many instances have a loss point (dropped or unreadable events) in their life."""
        if self._summary is not None:
            return self._summary.uncertain_views
        return int(self.views["uncertain"].sum())

    @cached_property
    def pointer_reuse(self) -> tuple[int, int]:
        """(distinct pointers, reused pointers): generation-0 and generation-1 instances."""
        if self._summary is not None:
            return self._summary.pointer_reuse
        row = self.views.select(
            distinct=(pl.col("generation") == 0).sum(), reused=(pl.col("generation") == 1).sum()
        ).row(0)
        return int(row[0]), int(row[1])

    @cached_property
    def duration_stats(self) -> dict[str, dict[str, int | None]]:
        """``live_ns`` and ``grace_ns`` over the instances: count, p50, p99 and max."""
        names = ("live_ns", "grace_ns")
        if self._summary is not None:
            return {name: _quantiles(self._summary.durations[name]) for name in names}
        return {name: _quantiles(self.views[name]) for name in names}

    @cached_property
    def anomaly_counts(self) -> dict[str, int]:
        """How many anomalies of each kind (every kind of ``ANOMALY_KINDS``, zeros too)."""
        counts = self.anomalies.group_by("kind").len()
        found = dict(zip(counts["kind"].to_list(), counts["len"].to_list(), strict=True))
        return {kind: int(found.get(kind, 0)) for kind in ANOMALY_KINDS}

    @cached_property
    def finalized_pinned_by(self) -> dict[str, int]:
        """``root_finalized_while_pinned`` findings by what pinned the root: live, rcu_pending."""
        return pinned_by_counts(self.anomalies)

    @cached_property
    def loss_points(self) -> int:
        """Loss points (dropped-events records, unreadable places) inside the runs."""
        return int(self.run_table["loss_points"].sum())


def _full_tables(
    walked: Walked, rows: ModelRows, root_release: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The views and concurrency tables of a ``full`` walk."""
    assert walked.steps is not None
    views = views_table(
        walked.instances, rows.table, destroy_traced=rows.destroy_traced, root_release=root_release
    )
    return views, concurrency(walked.steps, walked.roots, rows.table)


def _walk_spans(rows: ModelRows, root_release: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The root intervals and overlaps tables (not named), from a walk of their own."""
    walked = kernel.walk(rows, release_at_rcu=root_release == "destroy_rcu", full=False)
    intervals, found_overlaps, _ = span_tables(walked.spans, walked.roots, walked.runs, rows.table)
    return unnamed_intervals(intervals), found_overlaps


def _walk_tables(rows: ModelRows, root_release: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The views and concurrency tables, from a ``full`` walk of their own.

    The pass records no spans nor durations (as large again for a storm of short views), and
    each table's kernel rows are let go as soon as they are read, so a million-instance trace
    never holds them all at once.
    """
    walked = kernel.walk(
        rows, release_at_rcu=root_release == "destroy_rcu", full=True, tables_only=True
    )
    instances, steps, roots = walked.instances, walked.steps, walked.roots
    del walked
    assert steps is not None
    levels = concurrency(steps, roots, rows.table)
    del steps
    views = views_table(
        instances, rows.table, destroy_traced=rows.destroy_traced, root_release=root_release
    )
    return views, levels


def _window(
    fv: pl.DataFrame, begin: int | None, end: int | None, unit: str, has_clock: bool
) -> Window | None:
    """Translate ``begin``/``end`` into an inclusive seq range (a time window needs a clock).

    ``fv``: ``seq`` and ``ts_ns`` of the FlatView events.
    """
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


def analyze(
    events: pl.DataFrame | Trace,
    *,
    root_release: Literal["destroy", "destroy_rcu"] = "destroy",
    begin: int | None = None,
    end: int | None = None,
    window_unit: Literal["seq", "ns"] = "seq",
    window_from_start: bool = False,
    names: Names | None = None,
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
    window_from_start
        ``begin``/``end`` in ns count from the trace's first timestamp (``start_ts_ns``)
        instead of being absolute timestamps.
    names
        Names of root pointers (``qtrace.read_names``), merged with those the trace itself
        carries; the roots, intervals, leaks and anomalies get ``name`` columns
        (``qtrace.names.name_analysis``).

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
    rows = model_rows(conform(events.events if isinstance(events, Trace) else events))
    table = rows.table
    has_clock = trace.has_clock if trace is not None else table["ts_ns"].null_count() < table.height
    fv = table.filter(rows.code <= DESTROY).select("seq", "ts_ns")
    first_ts = rows.ts.min()
    start_ts = first_ts if isinstance(first_ts, int) else None
    if window_from_start and window_unit == "ns" and start_ts is not None:
        begin = None if begin is None else start_ts + begin
        end = None if end is None else start_ts + end
    window = _window(fv, begin, end, window_unit, has_clock)
    # With a window every table is clipped to it, so the whole views and concurrency tables
    # are built now; without, only the summaries (the kernel's counts) are.
    walked = kernel.walk(
        rows, release_at_rcu=root_release == "destroy_rcu", full=window is not None
    )
    anomalies = anomalies_table(walked.anomalies, table)
    counts = dict(zip(FLATVIEW_EVENTS, walked.event_counts, strict=True))
    summary: _Summary | None = None
    tables: tuple[pl.DataFrame, pl.DataFrame] | None = None
    spans: tuple[pl.DataFrame, pl.DataFrame] | None = None
    sums: SpanSummary | None = None
    if window is None:
        # Only the spans' sums are kept: the span tables are built again when read.
        sums = span_summary(walked.spans, walked.roots, walked.runs, table, has_clock=has_clock)
        negative_spans = sums.negative
        roots = roots_table(walked.roots, sums.per_root, table)
        summary = _Summary(
            status_counts=dict(zip(STATUSES, walked.status_counts, strict=True)),
            uncertain_views=walked.uncertain_views,
            pointer_reuse=(walked.generation_0, walked.generation_1),
            durations=walked.durations,
            flagged=walked.instances,
        )
    else:
        intervals, found_overlaps, negative_spans = span_tables(
            walked.spans, walked.roots, walked.runs, table
        )
        views, steps = _full_tables(walked, rows, root_release)
        inside = fv.filter(pl.col("seq").is_between(window.begin_seq, window.end_seq))
        counts = event_counts_of(table.filter(rows.code <= DESTROY), window)
        views = views.filter(_in_window("new_seq", "life_end_seq", window))
        anomalies = anomalies.filter(pl.col("seq").is_between(window.begin_seq, window.end_seq))
        intervals = intervals.filter(_in_window("start_seq", "end_seq", window))
        found_overlaps = found_overlaps.filter(_in_window("start_seq", "end_seq", window))
        begin_ts = inside["ts_ns"].first() if inside.height else None
        clipped = clip_steps(steps, window.begin_seq, window.end_seq, begin_ts)  # type: ignore[arg-type]
        roots = window_roots(views, clipped, intervals)
        tables = (views, clipped)
        spans = (unnamed_intervals(intervals), found_overlaps)
    analysis = Analysis(
        trace=trace,
        destroy_traced=rows.destroy_traced,
        root_release=root_release,
        runs=walked.runs.height,
        has_clock=has_clock,
        roots=roots,
        anomalies=anomalies,
        run_table=run_table(walked.runs, rows),
        _rows=rows,
        _summary=summary,
        _tables=tables,
        _spans=spans,
        _span_summary=sums,
        event_counts=counts,
        dropped_events=trace.dropped_events if trace is not None else dropped_total(table),
        window=window,
        negative_durations=walked.negative_durations + negative_spans,
        flatview_events_read=sum(walked.event_counts),
        unreadable_places=unreadable_places(table),
        start_ts_ns=start_ts,
    )
    return name_analysis(analysis, table, names)


def event_counts_of(fv_events: pl.DataFrame, window: Window) -> dict[str, int]:
    """How many of each FlatView event lie inside the window."""
    inside = fv_events.filter(pl.col("seq").is_between(window.begin_seq, window.end_seq))
    counts = inside.group_by(pl.col("event").cast(pl.String)).len()
    found = dict(zip(counts["event"].to_list(), counts["len"].to_list(), strict=True))
    return {name: int(found.get(name, 0)) for name in FLATVIEW_EVENTS}


__all__ = [
    "ANOMALY_KINDS",
    "ANOMALY_SCHEMA",
    "CONCURRENCY_SCHEMA",
    "FLAGGED_STATUSES",
    "ROOT_RELEASES",
    "VIEW_SCHEMA",
    "Analysis",
    "Window",
    "analyze",
]
