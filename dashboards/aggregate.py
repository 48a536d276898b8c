"""What to draw in detail and what to aggregate, and the per-bucket aggregates themselves.

A browser cannot draw a million SVG bars, so above ``DETAIL_INSTANCES`` the timeline becomes
per-bucket counts (one bucket per pixel column or so) with full detail kept for the
instances an engineer looks for: leaked, lost, anomalous, and the first and last of each lane.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from qtrace.dashboards.inputs import TimeAxis

DETAIL_INSTANCES = 5_000  # instances drawn as bars one by one
DETAIL_STEPS = 50_000  # concurrency change points drawn one by one
MAX_DETAIL_INSTANCES = 5_000  # bars kept in detail on top of an aggregated timeline
BUCKETS = 1_200  # about one per pixel column of a wide screen
MAX_CELLS = 600_000  # lanes x buckets: a log of many QEMU runs has many lanes
MIN_BUCKETS = 100
FLAGGED_STATUSES = ("leaked", "lost")


@dataclass(frozen=True)
class Plan:
    """How the page draws this analysis, and the sentences that say so."""

    instances: int
    aggregated: bool
    detail_instances: int  # drawn as bars
    steps_aggregated: bool
    buckets: int  # time buckets of the aggregates
    notes: tuple[str, ...]


def _lane_bucket_grid(lanes: pl.DataFrame, buckets: int) -> pl.DataFrame:
    """Every (lane, bucket) pair, so empty buckets carry the level in from the left."""
    return lanes.select("lane").join(
        pl.DataFrame({"bucket": pl.int_range(0, buckets, eager=True)}), how="cross"
    )


def bucket_count(lanes: int) -> int:
    """Buckets per lane: one per pixel column, fewer when there are very many lanes."""
    return max(MIN_BUCKETS, min(BUCKETS, MAX_CELLS // max(lanes, 1)))


def bucket_of(raw: pl.Expr, axis: TimeAxis, buckets: int = BUCKETS) -> pl.Expr:
    """The bucket (0 .. buckets-1) of raw positions (ns or seq)."""
    span = axis.end - axis.origin + 1
    return (
        ((raw - axis.origin).cast(pl.Float64) * buckets / span)
        .floor()
        .cast(pl.Int64)
        .clip(0, buckets - 1)
    )


def bucket_edges(axis: TimeAxis, buckets: int = BUCKETS) -> list[float]:
    """Axis positions (axis units) of the ``buckets + 1`` bucket edges."""
    span = axis.end - axis.origin + 1
    return [span * i / buckets / axis.per_unit for i in range(buckets + 1)]


def detail_views(
    views: pl.DataFrame, anomalies: pl.DataFrame, lanes: pl.DataFrame
) -> tuple[pl.DataFrame, bool]:
    """The instances drawn as bars, with ``lane`` joined; and whether the rest is aggregated."""
    with_lane = views.join(
        lanes.select("run", "root", "lane", "root_label"), on=["run", "root"], how="left"
    )
    if views.height <= DETAIL_INSTANCES:
        return with_lane, False
    flagged = pl.col("status").is_in(FLAGGED_STATUSES)
    anomalous = (
        anomalies.filter(pl.col("view").is_not_null())
        .select("run", "view", "generation")
        .unique()
        .with_columns(pl.lit(True).alias("_anomalous"))
    )
    ranked = (
        with_lane.join(anomalous, on=["run", "view", "generation"], how="left", nulls_equal=True)
        .with_columns(
            pl.col("new_seq").rank("ordinal").over("lane").alias("_first"),
            pl.col("new_seq").rank("ordinal", descending=True).over("lane").alias("_last"),
        )
        .with_columns(
            # 0: flagged, 1: anomalous, 2: first/last of a lane, 3: the rest
            pl.when(flagged)
            .then(0)
            .when(pl.col("_anomalous").fill_null(False))
            .then(1)
            .when((pl.col("_first") == 1) | (pl.col("_last") == 1))
            .then(2)
            .otherwise(3)
            .alias("_priority")
        )
    )
    kept = (
        ranked.filter(pl.col("_priority") < 3)
        .sort("_priority", "new_seq", "run", "view")
        .head(MAX_DETAIL_INSTANCES)
        .drop("_anomalous", "_first", "_last", "_priority")
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


def bucket_maxima(
    steps: pl.DataFrame, lanes: pl.DataFrame, axis: TimeAxis, buckets: int = BUCKETS
) -> pl.DataFrame:
    """Per lane and bucket, the highest live and pending counts reached inside the bucket.

    A step function keeps its value between change points, so a bucket without a change
    carries the value the previous change left: the maximum is over both.
    Columns: lane, bucket, live, pending (Int64, every bucket of every lane present).
    """
    per_bucket = (
        steps.with_columns(bucket_of(pl.col("raw"), axis, buckets).alias("bucket"))
        .group_by("lane", "bucket")
        .agg(
            pl.col("live").max().alias("live_max"),
            pl.col("pending").max().alias("pending_max"),
            pl.col("live").sort_by("seq").last().alias("live_last"),
            pl.col("pending").sort_by("seq").last().alias("pending_last"),
        )
    )
    grid = _lane_bucket_grid(lanes, buckets)
    filled = (
        grid.join(per_bucket, on=["lane", "bucket"], how="left")
        .sort("lane", "bucket")
        .with_columns(
            pl.col("live_last").forward_fill().shift(1).over("lane").alias("live_before"),
            pl.col("pending_last").forward_fill().shift(1).over("lane").alias("pending_before"),
        )
    )
    return filled.select(
        "lane",
        "bucket",
        pl.max_horizontal("live_max", "live_before").fill_null(0).cast(pl.Int64).alias("live"),
        pl.max_horizontal("pending_max", "pending_before")
        .fill_null(0)
        .cast(pl.Int64)
        .alias("pending"),
    )


def bucket_live_means(
    steps: pl.DataFrame, lanes: pl.DataFrame, axis: TimeAxis, buckets: int = BUCKETS
) -> pl.DataFrame:
    """Per lane and bucket, the time-weighted mean number of live views.

    A root normally has one live view, briefly two while a new one replaces it; a mean that
    stays at 2 or more over a bucket is a view kept live, which a maximum would not show.
    Each change point contributes its value up to the next change or the bucket's end; a
    bucket's head before its first change holds the value carried from before.
    Columns: lane, bucket, live_mean (Float64, every bucket of every lane present).
    """
    span = axis.end - axis.origin + 1
    width = span / buckets
    bucket_start = pl.col("bucket").cast(pl.Float64) * width + axis.origin
    rows = (
        steps.sort("lane", "seq")
        .with_columns(
            bucket_of(pl.col("raw"), axis, buckets).alias("bucket"),
            pl.col("raw").shift(-1).over("lane").fill_null(axis.end + 1).alias("next_raw"),
        )
        .with_columns(
            (
                pl.min_horizontal(pl.col("next_raw").cast(pl.Float64), bucket_start + width)
                - pl.col("raw")
            )
            .clip(0)
            .mul(pl.col("live"))
            .alias("weighted")
        )
    )
    per_bucket = rows.group_by("lane", "bucket").agg(
        pl.col("weighted").sum(),
        pl.col("raw").min().alias("first_raw"),
        pl.col("live").sort_by("seq").last().alias("live_last"),
    )
    grid = _lane_bucket_grid(lanes, buckets)
    filled = (
        grid.join(per_bucket, on=["lane", "bucket"], how="left")
        .sort("lane", "bucket")
        .with_columns(
            pl.col("live_last").forward_fill().shift(1).over("lane").fill_null(0).alias("carried")
        )
    )
    head = pl.coalesce(pl.col("first_raw").cast(pl.Float64), bucket_start + width) - bucket_start
    return filled.select(
        "lane",
        "bucket",
        ((pl.col("weighted").fill_null(0) + pl.col("carried") * head) / width).alias("live_mean"),
    )


def plan(
    views: pl.DataFrame, detail: pl.DataFrame, aggregated: bool, steps: int, lanes: int
) -> Plan:
    """Decide and explain: the page states what was aggregated."""
    buckets = bucket_count(lanes)
    notes: list[str] = []
    if aggregated:
        notes.append(
            f"The trace has {views.height:,} view instances: the timeline shows, per root and "
            f"per time bucket ({buckets:,} buckets), the time-weighted mean number of live "
            "views (1 is normal, 2 or more over a whole bucket means a view kept live); "
            f"{detail.height:,} instances (leaked, lost, anomalous, first and last of each root) "
            "are drawn one by one on top. Zooming does not add detail."
        )
    # With an aggregated timeline, the concurrency lines follow the same buckets.
    steps_aggregated = aggregated or steps > DETAIL_STEPS
    if steps_aggregated:
        notes.append(
            f"Concurrency has {steps:,} change points: each line shows the maximum per time "
            f"bucket ({buckets:,} buckets) instead."
        )
    return Plan(views.height, aggregated, detail.height, steps_aggregated, buckets, tuple(notes))
