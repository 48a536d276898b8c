"""What the timeline draws one by one and what it aggregates, and the aggregates themselves.

A browser cannot draw a million SVG bars, so past ``DETAIL_INSTANCES`` the timeline shows,
per root and time bucket, what happened in it: how many views were born, and the peak
number of live, RCU-pending and pinning views (peaks, never means: a view that lives 3 µs
in a 9 ms bucket still counts as one). Leaked, lost and anomalous instances stay drawn one
by one on top. The page also carries every instance in packed form (``packing.py``), from
which its script recomputes the buckets of a zoomed window, or draws the instances one by
one once few enough are in view.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from qtrace.dashboards.inputs import TimeAxis

DETAIL_INSTANCES = 5_000  # instances drawn as bars one by one (also per zoomed window)
DETAIL_STEPS = 50_000  # concurrency change points drawn one by one
MAX_DETAIL_INSTANCES = 5_000  # bars kept in detail on top of an aggregated timeline
BUCKETS = 1_200  # about one per pixel column of a wide screen
MAX_CELLS = 120_000  # lanes x buckets: each cell carries its counts into the page
MIN_BUCKETS = 100
FLAGGED_STATUSES = ("leaked", "lost")


@dataclass(frozen=True)
class Grid:
    """``count`` equal time buckets over the axis, from its origin to its end (inclusive).

    The page's script buckets a zoomed window with the same arithmetic, so the whole-trace
    buckets it would compute are exactly these.
    """

    origin: int  # raw units (ns or seq)
    span: int  # raw units covered: end - origin + 1
    count: int
    per_unit: int  # raw units per axis unit

    def of(self, raw: pl.Expr) -> pl.Expr:
        """The bucket (0 .. count-1) of raw positions."""
        return (
            ((raw - self.origin).cast(pl.Float64) * self.count / self.span)
            .floor()
            .cast(pl.Int64)
            .clip(0, self.count - 1)
        )

    def edges(self) -> list[float]:
        """Axis positions of the ``count + 1`` bucket edges."""
        return [self.span * i / self.count / self.per_unit for i in range(self.count + 1)]

    @property
    def width(self) -> float:
        """One bucket, in raw units."""
        return self.span / self.count


def bucket_count(lanes: int) -> int:
    """Buckets per lane: one per pixel column, fewer when there are very many lanes."""
    return max(MIN_BUCKETS, min(BUCKETS, MAX_CELLS // max(lanes, 1)))


def grid(axis: TimeAxis, lanes: int) -> Grid:
    """The whole-trace buckets of a page with ``lanes`` lanes."""
    return Grid(axis.origin, axis.end - axis.origin + 1, bucket_count(lanes), axis.per_unit)


def detail_views(placed: pl.DataFrame, anomalies: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """The instances drawn as bars (``placed``: views with their ``lane``); and whether the
    rest is aggregated.

    Past ``DETAIL_INSTANCES``, the bars are the instances an engineer looks for: leaked and
    lost first, then anomalous ones, then each run's immortal empty view (one bar that spans
    the trace), at most ``MAX_DETAIL_INSTANCES``.
    """
    if placed.height <= DETAIL_INSTANCES:
        return placed, False
    anomalous = (
        anomalies.filter(pl.col("view").is_not_null())
        .select("run", "view", "generation")
        .unique()
        .with_columns(pl.lit(True).alias("_anomalous"))
    )
    flagged = pl.col("status").is_in(FLAGGED_STATUSES)
    immortal = pl.col("status") == "immortal"
    # Narrow first (a million rows), then join the few candidates with the anomalies.
    candidates = placed.filter(
        flagged | immortal | pl.col("view").is_in(anomalous.get_column("view").implode())
    )
    priority = (
        pl.when(flagged)
        .then(0)
        .when(pl.col("_anomalous").fill_null(False))
        .then(1)
        .when(immortal)
        .then(2)
        .otherwise(3)
    )
    kept = (
        candidates.join(anomalous, on=["run", "view", "generation"], how="left", nulls_equal=True)
        .with_columns(priority.alias("_priority"))
        .filter(pl.col("_priority") < 3)
        .sort("_priority", "new_seq", "run", "view")
        .head(MAX_DETAIL_INSTANCES)
        .drop("_anomalous", "_priority")
    )
    return kept, True


def lane_steps(concurrency: pl.DataFrame, lanes: pl.DataFrame, axis: TimeAxis) -> pl.DataFrame:
    """Concurrency change points with their lane and raw position, in trace order."""
    raw = pl.col("ts_ns") if axis.has_clock else pl.col("seq")
    return (
        concurrency.join(lanes.select("run", "root", "lane"), on=["run", "root"], how="inner")
        .with_columns(raw.alias("raw"))
        .filter(pl.col("raw").is_not_null())
        .sort("lane", "seq")
        .select("lane", "seq", "raw", "live", "pending")
    )


def bucket_levels(
    concurrency: pl.DataFrame, lanes: pl.DataFrame, axis: TimeAxis, buckets: Grid
) -> pl.DataFrame:
    """Per lane with steps and per bucket, the peak live, RCU-pending and pinning levels.

    ``concurrency`` is the model's table. A step function keeps its value between change
    points, so a bucket without a change carries the level the previous change left: the
    peak is over both. The table is reduced per (run, root, bucket) before anything is
    joined: millions of steps become a row per bucket. Columns: lane, bucket, live,
    pending, pinning (Int64, every bucket of every lane that has steps).
    """
    raw = pl.col("ts_ns") if axis.has_clock else pl.col("seq")
    last = pl.col("seq").arg_max()
    bucket = pl.col("bucket")
    # The table comes in (run, root, seq) order: runs of rows of one (run, root, bucket) are
    # found by comparing each row with the one before, and reduced as slices (a sorted key,
    # no hashing of millions of rows). Runs split by out-of-order timestamps merge after.
    # (One id per run of equal (run, root, bucket): no shifted copy of a column per key.)
    segment = pl.struct("run", "root", "bucket").rle_id()
    # Eager, one new column at a time: the table's own columns are shared, never copied.
    steps = concurrency.select("run", "root", "seq", "live", "pending").with_columns(
        concurrency.select(buckets.of(raw).alias("bucket")).to_series()
    )
    steps = steps.with_columns(steps.select(segment.alias("segment")).to_series())
    per_run = (
        steps.group_by(pl.col("segment").set_sorted())
        .agg(
            pl.col("run", "root", "bucket").first(),
            pl.col("live").max().alias("live_max"),
            pl.col("pending").max().alias("pending_max"),
            (pl.col("live") + pl.col("pending")).max().alias("pinning_max"),
            pl.col("seq").max().alias("seq_last"),
            pl.col("live").get(last).alias("live_last"),
            pl.col("pending").get(last).alias("pending_last"),
        )
        .lazy()
    )
    del steps
    at_last = pl.col("seq_last").arg_max()
    per_bucket = (
        per_run.filter(bucket.is_not_null())  # steps without a time cannot be placed
        .group_by("run", "root", "bucket")
        .agg(
            pl.col("live_max", "pending_max", "pinning_max").max(),
            pl.col("live_last").get(at_last),
            pl.col("pending_last").get(at_last),
        )
        .join(lanes.lazy().select("run", "root", "lane"), on=["run", "root"], how="inner")
        .drop("run", "root")
        .collect()
    )
    grid_rows = (
        per_bucket.select(pl.col("lane").unique())
        .join(pl.DataFrame({"bucket": pl.int_range(0, buckets.count, eager=True)}), how="cross")
        .sort("lane", "bucket")
    )
    carried = {
        name: pl.col(f"{name}_last").forward_fill().shift(1).over("lane")
        for name in ("live", "pending")
    }
    filled = grid_rows.join(per_bucket, on=["lane", "bucket"], how="left").with_columns(
        carried["live"].alias("live_before"), carried["pending"].alias("pending_before")
    )

    def peak(*columns: str | pl.Expr) -> pl.Expr:
        return pl.max_horizontal(*columns).fill_null(0).cast(pl.Int64)

    return filled.select(
        "lane",
        "bucket",
        peak("live_max", "live_before").alias("live"),
        peak("pending_max", "pending_before").alias("pending"),
        peak("pinning_max", pl.col("live_before") + pl.col("pending_before")).alias("pinning"),
    ).sort("lane", "bucket")


def bucket_activity(
    placed: pl.DataFrame,
    levels: pl.DataFrame,
    lanes: pl.DataFrame,
    axis: TimeAxis,
    buckets: Grid,
) -> pl.DataFrame:
    """Per lane and bucket: views born (``births``) and the peak ``levels`` (``bucket_levels``).

    ``placed``: views with their ``lane``. Columns: lane, bucket, births, live, pending,
    pinning (every bucket of every lane; zeros where nothing happened).
    """
    births = (
        placed.select("lane", buckets.of(axis.point("new")).alias("bucket"))
        .filter(pl.col("bucket").is_not_null() & pl.col("lane").is_not_null())
        .group_by("lane", "bucket")
        .agg(pl.len().cast(pl.Int64).alias("births"))
    )
    grid_rows = lanes.select("lane").join(
        pl.DataFrame({"bucket": pl.int_range(0, buckets.count, eager=True)}), how="cross"
    )
    counts = ("births", "live", "pending", "pinning")
    return (
        grid_rows.join(levels, on=["lane", "bucket"], how="left")
        .join(births, on=["lane", "bucket"], how="left")
        .select("lane", "bucket", *[pl.col(c).fill_null(0).cast(pl.Int64) for c in counts])
        .sort("lane", "bucket")
    )


@dataclass(frozen=True)
class Plan:
    """How the page draws this analysis."""

    instances: int
    aggregated: bool
    detail_instances: int  # drawn as bars
    steps_aggregated: bool
    buckets: int  # time buckets of the aggregates


def plan(
    views: pl.DataFrame, detail: pl.DataFrame, aggregated: bool, steps: int, lanes: int
) -> Plan:
    """Decide: with an aggregated timeline, the concurrency lines follow the same buckets."""
    steps_aggregated = aggregated or steps > DETAIL_STEPS
    return Plan(views.height, aggregated, detail.height, steps_aggregated, bucket_count(lanes))
