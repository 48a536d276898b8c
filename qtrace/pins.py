"""Root pins as a step function per root, and the spans read off it.

Every instance with a non-nil root adds +1 to its root's *live* level at ``new`` and moves
to the *pending* level at ``destroy_rcu``; it leaves at its pin end. Levels are summed per
event (half-open pins: an instance that ends at the event that starts another never
overlaps it), so one cumulative sum per root gives the whole concurrency history.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from qtrace.instances import with_stamps
from qtrace.runs import IDX
from qtrace.sorted_windows import cum_sum_within, group_starts, next_within, previous_within

ROOT = ["run", "root"]

CONCURRENCY_SCHEMA = {
    "run": pl.Int64(),
    "root": pl.UInt64(),
    "seq": pl.Int64(),
    "ts_ns": pl.Int64(),
    "live": pl.Int64(),
    "pending": pl.Int64(),
}


@dataclass(frozen=True)
class Steps:
    """The pin levels of every root after each FlatView event that changes them.

    ``levels``: ``rid``, ``pos``, ``live``, ``pending``, in (rid, pos) order, where ``rid``
    is a dense id of (run, root) in that order and ``pos`` an index among the FlatView
    events; ``roots``: ``rid``, ``run``, ``root``. Seq and time are read off ``pos`` only
    where a report needs them (a span's ends, a root's last step): at 10M steps, reading
    them for every step would cost more than computing the levels.
    """

    levels: pl.DataFrame
    roots: pl.DataFrame
    fv_rows: pl.DataFrame

    def stamped(self, frame: pl.DataFrame, prefixes: tuple[str, ...]) -> pl.DataFrame:
        """``frame`` (with ``rid``) with ``run``, ``root`` and each ``{p}_seq``/``{p}_ts_ns``."""
        located = with_stamps(frame, self.fv_rows, {p: ("seq", "ts_ns") for p in prefixes})
        return located.hstack(self.roots.select(pl.col(ROOT).gather(frame["rid"])))

    def table(self) -> pl.DataFrame:
        """The public concurrency table (CONCURRENCY_SCHEMA, and ``pos``)."""
        located = self.stamped(self.levels.with_columns(at_pos=pl.col("pos")), ("at",))
        return located.select(
            *ROOT, seq="at_seq", ts_ns="at_ts_ns", live="live", pending="pending", pos="pos"
        )


def _delta(frame: pl.LazyFrame, at: pl.Expr, d_live: int, d_pending: int) -> pl.LazyFrame:
    """One level change per instance at FlatView event ``at`` (a pos; rows with one).

    The change is coded in four bits, ``(d_live + 1) * 4 + (d_pending + 1)`` (each -1, 0 or
    +1), so it can ride in the low bits of the sort key (_sorted_changes).
    """
    return frame.filter(at.is_not_null()).select(
        "rid", at.alias("pos"), code=pl.lit((d_live + 1) * 4 + d_pending + 1, pl.Int64)
    )


# Both levels of a root in one Int64, the pending level in the high half, so one running
# sum per root gives both (levels are never negative, so the halves decode exactly).
PENDING_UNIT = 1 << 32


def _change(code: pl.Expr) -> pl.Expr:
    """A _delta code as a change of the packed live and pending levels."""
    return (code // 4 % 4 - 1) + (code % 4 - 1) * PENDING_UNIT


def _sorted_changes(deltas: pl.LazyFrame, n_roots: int, n_events: int) -> pl.DataFrame:
    """``rid``, ``pos`` and ``change`` (packed levels) of every delta, in (rid, pos) order.

    When they fit, rid, pos and the four-bit code are packed into one Int64 key, as sorting
    a single column is fastest; the order of the changes within one (rid, pos) does not
    matter, since levels are read after the last of them.
    """
    pos_bits = max(n_events, 1).bit_length()
    if pos_bits + 4 + max(n_roots, 1).bit_length() > 62:
        return (
            deltas.sort(["rid", "pos"])
            .select("rid", "pos", change=_change(pl.col("code")))
            .collect(engine="in-memory")
        )
    key = (
        pl.col("rid").cast(pl.Int64) * (1 << (pos_bits + 4))
        + pl.col("pos").cast(pl.Int64) * 16
        + pl.col("code")
    )
    return (
        deltas.select(key.alias("key"))
        .sort("key")
        .select(
            (pl.col("key") // (1 << (pos_bits + 4))).cast(IDX).alias("rid"),
            (pl.col("key") // 16 % (1 << pos_bits)).cast(IDX).alias("pos"),
            _change(pl.col("key") % 16).alias("change"),
        )
        .collect(engine="in-memory")
    )


def concurrency(instances: pl.DataFrame, fv_rows: pl.DataFrame) -> Steps:
    """The live and pending levels of every root after each event that changes them.

    ``instances`` carries each phase boundary as a position among the FlatView events
    (``new_pos``, ``rcu_pos``, ``end_pos``: the pin end); ``fv_rows`` (instances.flatview_rows)
    gives a position's seq and time.
    """
    pinned = instances.select(*ROOT, "new_pos", "rcu_pos", "end_pos").filter(pl.col("root") != 0)
    root_ids = pinned.select(ROOT).unique().sort(ROOT).with_row_index("rid")
    # Deltas are sorted below, so the join need not keep the instances' order.
    joined = pinned.lazy().join(root_ids.lazy(), on=ROOT, how="left").drop(ROOT)
    has_pending = pl.col("rcu_pos").is_not_null() & (
        pl.col("end_pos").is_null() | (pl.col("end_pos") > pl.col("rcu_pos"))
    )
    # At most three changes per instance: it starts live; at destroy_rcu it moves from live
    # to pending (one row) or, without a pending phase, leaves at its end; then leaves pending.
    deltas = pl.concat(
        [
            _delta(joined, pl.col("new_pos"), 1, 0),
            _delta(joined, pl.when(has_pending).then(pl.col("rcu_pos")), -1, 1),
            _delta(joined, pl.when(~has_pending).then(pl.col("end_pos")), -1, 0),
            _delta(joined, pl.when(has_pending).then(pl.col("end_pos")), 0, -1),
        ],
        how="vertical",
    )
    last_of_event = pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(c).shift(-1)) for c in ("rid", "pos")]
    )
    changes = _sorted_changes(deltas, root_ids.height, fv_rows.height)
    level = pl.col("level")
    steps = (
        changes.lazy()
        .with_columns(level=cum_sum_within(pl.col("change"), group_starts("rid")))
        # Levels after all the changes of one event; one row per event.
        .filter(last_of_event)
        # Changes that cancel out within one event leave the levels as they were.
        .filter(level != previous_within(level, "rid").fill_null(0))
        .select("rid", "pos", live=level % PENDING_UNIT, pending=level // PENDING_UNIT)
        .collect(engine="in-memory")
    )
    return Steps(steps, root_ids, fv_rows.select("seq", "ts_ns"))


def spans(steps: Steps, key: pl.Expr, bounds: pl.DataFrame, *, peaks: bool = False) -> pl.DataFrame:
    """Maximal spans over which ``key`` (null outside any span) keeps one value, per root.

    Each span ends at the first step where the key changes; a span still open at the end of
    the trace has a null end and is measured up to the run's last FlatView event. With
    ``peaks``, ``instances`` is the highest level inside each span (else null).
    """
    # Steps are sorted by root and seq: a segment starts at a new root or a new key. Only
    # the segments' first steps and the steps of kept segments are materialized.
    marked = (
        steps.levels.lazy()
        .select("rid", key=key, level=pl.col("live") + pl.col("pending"))
        .with_columns(start=group_starts("rid", "key"))
        .with_columns(segment=pl.col("start").cast(IDX).cum_sum())
    )
    starts_plan = (
        marked.with_row_index("at")
        .filter(pl.col("start"))
        .select("segment", "rid", "key", "at", end_at=next_within(pl.col("at"), "rid"))
        .filter(pl.col("key").is_not_null())
    )
    # The peak inside each span; segments are numbered in row order, so the flag lets
    # group_by slice instead of hashing.
    peaks_plan = (
        marked.filter(pl.col("key").is_not_null())
        .select(pl.col("segment").set_sorted(), "level")
        .group_by("segment")
        .agg(instances=pl.col("level").max())
    )
    if peaks:
        # Collected together, so the marks are computed once for both.
        starts, peak = pl.collect_all([starts_plan, peaks_plan], engine="in-memory")
    else:
        starts = starts_plan.collect(engine="in-memory")
        peak = pl.DataFrame(schema={"segment": IDX, "instances": pl.Int64})
    located = steps.stamped(
        steps.levels.select(
            pl.col("rid").gather(starts["at"]),
            pl.col("pos").gather(starts["at"]).alias("start_pos"),
            pl.col("pos").gather(starts["end_at"]).alias("end_pos"),
        ),
        ("start", "end"),
    )
    return (
        starts.select("segment", "key")
        .hstack(located)
        .join(peak, on="segment", how="left")
        .join(bounds.select("run", "run_last_ts_ns", "run_end_pos"), on="run", how="left")
        .sort("segment")
        .select(
            pl.col("run").cast(pl.Int64),  # the model numbers runs in the index type
            "root",
            "key",
            "start_seq",
            "start_ts_ns",
            "end_seq",
            "end_ts_ns",
            "instances",
            duration_ns=pl.coalesce(pl.col("end_ts_ns"), pl.col("run_last_ts_ns"))
            - pl.col("start_ts_ns"),
            duration_events=pl.coalesce(pl.col("end_pos").cast(pl.Int64), pl.col("run_end_pos"))
            - pl.col("start_pos").cast(pl.Int64),
        )
    )


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


def root_intervals(steps: Steps, bounds: pl.DataFrame) -> pl.DataFrame:
    """Lifetime intervals (``pinned``) and windows pinned only by pending views."""
    total = pl.col("live") + pl.col("pending")
    # Boolean keys over every step; the kind name is attached to the few spans only.
    pinned = spans(steps, pl.when(total > 0).then(pl.lit(True)), bounds).with_columns(
        key=pl.lit("pinned")
    )
    pending_only = spans(
        steps, pl.when((pl.col("live") == 0) & (pl.col("pending") > 0)).then(pl.lit(True)), bounds
    ).with_columns(key=pl.lit("pending_only"))
    return (
        pl.concat([pinned, pending_only], how="vertical")
        .rename({"key": "kind"})
        .select(INTERVAL_COLUMNS)
        .sort(["run", "root", "start_seq", "kind"])
    )


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


def overlaps(steps: Steps, bounds: pl.DataFrame) -> pl.DataFrame:
    """Spans where two or more instances pin one root, by the phases of those instances.

    ``live+pending`` whenever both phases are present, else ``live+live`` or
    ``pending+pending``; a change of class starts a new span.
    """
    live, pending = pl.col("live"), pl.col("pending")
    # Small integer codes over every step; the names are attached to the few spans only
    # (building a string per step dominated this function).
    phase_names = {0: "live+pending", 1: "live+live", 2: "pending+pending"}
    phases = (
        pl.when(live + pending < 2)
        .then(None)
        .when((live > 0) & (pending > 0))
        .then(pl.lit(0, pl.UInt8))
        .when(live >= 2)
        .then(pl.lit(1, pl.UInt8))
        .otherwise(pl.lit(2, pl.UInt8))
    )
    return (
        spans(steps, phases, bounds, peaks=True)
        .with_columns(pl.col("key").replace_strict(phase_names, return_dtype=pl.String))
        .rename({"key": "phases"})
        .select(OVERLAP_COLUMNS)
        .sort(["run", "root", "start_seq"])
    )


def root_levels(steps: Steps) -> pl.DataFrame:
    """Per (run, root) with steps: peak, last step (seq, ts) and whether pinned at the end."""
    level = pl.col("live") + pl.col("pending")
    # Levels are in (rid, pos) order: group_by slices the flagged-sorted rid.
    last = (
        steps.levels.lazy()
        .group_by(pl.col("rid").set_sorted())
        .agg(
            max_concurrent=level.max().cast(pl.Int64),
            last_pos=pl.col("pos").last(),
            pinned_at_end=level.last() > 0,
        )
        .collect(engine="in-memory")
    )
    return steps.stamped(last, ("last",)).select(
        *ROOT, "max_concurrent", "last_seq", "last_ts_ns", "pinned_at_end"
    )


def table_root_levels(table: pl.DataFrame) -> pl.DataFrame:
    """``root_levels`` of a concurrency table (a window's, clipped in model.py)."""
    level = pl.col("live") + pl.col("pending")
    # The table is in (run, root, seq) order, and group_by keeps that order in a group.
    return table.group_by(ROOT).agg(
        max_concurrent=level.max().cast(pl.Int64),
        last_seq=pl.col("seq").last(),
        last_ts_ns=pl.col("ts_ns").last(),
        pinned_at_end=level.last() > 0,
    )


def roots_table(views: pl.DataFrame, levels: pl.DataFrame, intervals: pl.DataFrame) -> pl.DataFrame:
    """One row per (run, root): instances, peak concurrency, intervals, pinned at end.

    ``levels``: root_levels or table_root_levels.
    """
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
    )
    spans_per_root = intervals.group_by(ROOT).agg(
        intervals=(pl.col("kind") == "pinned").sum().cast(pl.Int64),
        pinned_ns=pl.col("duration_ns").filter(pl.col("kind") == "pinned").sum(),
        pending_only_ns=pl.col("duration_ns").filter(pl.col("kind") == "pending_only").sum(),
        pending_only_windows=(pl.col("kind") == "pending_only").sum().cast(pl.Int64),
    )
    return (
        per_root.join(levels, on=ROOT, how="left")
        .join(spans_per_root, on=ROOT, how="left")
        .with_columns(
            pl.col("max_concurrent").fill_null(0),
            pl.col("pinned_at_end").fill_null(False),
            pl.col("intervals").fill_null(0),
            pl.col("pending_only_windows").fill_null(0),
        )
        .select(
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
        )
        .sort(ROOT)
    )


def finalized_while_pinned(finalized: pl.DataFrame, steps: Steps) -> pl.DataFrame:
    """``memory_region_finalize`` of an MR that a view still pins as its root.

    ``finalized``: the finalize events naming an MR (runs.finalized_roots), each with ``pos``,
    the position of the last FlatView event before it.
    """
    # A root no view ever pinned has no rid, and cannot be pinned.
    hits = finalized.join(steps.roots, on=ROOT, how="inner", maintain_order="left")
    if hits.height == 0:  # the usual case: spare the keys of every step
        return _finalize_anomalies(
            hits.with_columns(live=pl.lit(None, pl.Int64), pending=pl.lit(None, pl.Int64))
        )
    # Levels are in (rid, pos) order, so as one key rid * 2**32 + pos they are sorted, and
    # the level in force at a finalize is the last step at or before its key.
    key = pl.col("rid").cast(pl.Int64) * (1 << 32) + pl.col("pos").cast(pl.Int64)
    keys = steps.levels.select(key).to_series()
    at = keys.search_sorted(hits.select(key).to_series(), side="right").cast(pl.Int64) - 1
    levels = steps.levels.select(pl.col("rid", "live", "pending").gather(at.clip(0)))
    pinned = (pl.col("at") >= 0) & (pl.col("level_rid") == pl.col("rid"))
    hits = hits.hstack([at.alias("at"), *levels.rename({"rid": "level_rid"})]).filter(
        pinned & (pl.col("live") + pl.col("pending") > 0)
    )
    return _finalize_anomalies(hits)


def _finalize_anomalies(hits: pl.DataFrame) -> pl.DataFrame:
    return hits.select(
        "run",
        pl.lit("root_finalized_while_pinned").alias("kind"),
        "seq",
        "ts_ns",
        pl.lit(None, pl.UInt64).alias("view"),
        "root",
        pl.lit(None, pl.Int64).alias("generation"),
        "row",
        pl.format(
            "MR finalized while pinned by {} live and {} RCU-pending view(s)",
            pl.col("live"),
            pl.col("pending"),
        ).alias("detail"),
        "drops_upto",
    )
