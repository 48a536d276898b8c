"""Pair FlatView events into view instances, give each instance its status, find anomalies.

Events pair by view pointer and sequence, never by root: within a run, the events of one
pointer are cut into *segments* at every ``flatview_new``; segment ``g`` is the pointer's
generation ``g``. Every rule below is a cumulative count inside a segment, so the whole
pairing is one sort and a handful of running sums.
"""

from __future__ import annotations

import polars as pl

from qtrace.runs import DESTROY, NEW, RCU
from qtrace.sorted_windows import cum_sum_within, first_within, group_starts, next_within

POINTER = ["run", "view"]
INSTANCE = ["run", "view", "generation"]
STATUSES = ("freed", "rcu_pending", "immortal", "current", "leaked", "lost")


Stamp = tuple[pl.Expr, pl.Expr, pl.Expr]  # (seq, ts_ns, pos) of one event


def _stamp(prefix: str) -> Stamp:
    return pl.col(f"{prefix}_seq"), pl.col(f"{prefix}_ts_ns"), pl.col(f"{prefix}_pos")


def _pick(stamps: list[Stamp]) -> Stamp:
    """The first stamp whose seq is not null: its seq, timestamp and position together."""
    seq = pl.coalesce([s for s, _, _ in stamps])
    # Built from the last stamp outwards so each level is a plain when/then/otherwise.
    ts: pl.Expr = pl.lit(None, pl.Int64)
    pos: pl.Expr = pl.lit(None, pl.Int64)
    for s, t, p in reversed(stamps):
        ts = pl.when(s.is_not_null()).then(t).otherwise(ts)
        pos = pl.when(s.is_not_null()).then(p).otherwise(pos)
    return seq, ts, pos


# Roles of FlatView events, as small integers (see classify_events).
ROLE_NEW, ROLE_RCU, ROLE_DESTROY, ROLE_DOUBLE_RCU, ROLE_ORPHAN_RCU, ROLE_ORPHAN_DESTROY = range(6)


def flatview_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """The FlatView events in seq order: row ``pos`` of this frame is the event at ``pos``."""
    return rows.filter(pl.col("is_fv")).select("seq", "ts_ns", "drops_upto", "row")


STAMP_SOURCES = {"seq": "seq", "ts_ns": "ts_ns", "drops": "drops_upto", "row": "row"}


def with_stamps(
    frame: pl.DataFrame, fv_rows: pl.DataFrame, stamps: dict[str, tuple[str, ...]]
) -> pl.DataFrame:
    """Add ``{prefix}_{field}`` (seq, ts_ns, drops, row) of the event at ``{prefix}_pos``.

    One select, so polars runs the gathers (random reads at 10M events) in parallel.
    """
    picked = fv_rows.select(
        pl.col(STAMP_SOURCES[field]).gather(frame[f"{prefix}_pos"]).alias(f"{prefix}_{field}")
        for prefix, fields in stamps.items()
        for field in fields
    )
    return frame.hstack(picked)


def classify_events(rows: pl.DataFrame) -> pl.DataFrame:
    """FlatView events sorted by pointer, each with its ``generation`` and ``role``.

    Roles: ROLE_NEW; ROLE_RCU and ROLE_DESTROY (paired with the open instance);
    ROLE_DOUBLE_RCU (a second destroy_rcu on a pending instance); ROLE_ORPHAN_RCU and
    ROLE_ORPHAN_DESTROY (no open instance). ``inst_root`` is the root the instance was
    created with. The frame is kept narrow (``pos`` locates everything else) because
    sorting it is the model's main cost.
    """
    is_new = pl.col("code") == NEW
    is_rcu = pl.col("code") == RCU
    is_destroy = pl.col("code") == DESTROY
    segment_start = pl.col("pointer_start") | is_new
    # Counts of the segment's earlier events: the instance's state before this one.
    rcu, destroy = is_rcu.cast(pl.Int64), is_destroy.cast(pl.Int64)
    rcu_before = cum_sum_within(rcu, segment_start) - rcu
    destroy_before = cum_sum_within(destroy, segment_start) - destroy
    is_open = (pl.col("generation") >= 0) & (destroy_before == 0)
    role = (
        pl.when(is_new)
        .then(ROLE_NEW)
        .when(is_rcu & ~pl.col("is_open"))
        .then(ROLE_ORPHAN_RCU)
        .when(is_rcu & (pl.col("rcu_before") == 0))
        .then(ROLE_RCU)
        .when(is_rcu)
        .then(ROLE_DOUBLE_RCU)
        .when(is_destroy & ~pl.col("is_open"))
        .then(ROLE_ORPHAN_DESTROY)
        .otherwise(ROLE_DESTROY)
        .cast(pl.Int8)
    )
    return (
        rows.lazy()
        .filter(pl.col("is_fv"))
        .select("pos", "run", "view", "root", "code")
        # Rows are in seq order and runs follow seq, so a stable sort by pointer alone gives
        # (view, run, seq) order: each pointer of each run is a block of consecutive rows.
        .sort("view", maintain_order=True)
        .with_columns(pointer_start=group_starts("view", "run"))
        .with_columns(generation=cum_sum_within(is_new.cast(pl.Int64), pl.col("pointer_start")) - 1)
        .with_columns(
            rcu_before=rcu_before,
            is_open=is_open,
            inst_root=pl.when(pl.col("generation") >= 0).then(
                first_within(pl.col("root"), segment_start)
            ),
        )
        .select(
            "pos",
            "run",
            "view",
            "root",
            "code",
            "generation",
            "rcu_before",
            "inst_root",
            role=role,
            is_open="is_open",
        )
        .collect(engine="in-memory")
    )


def build_instances(
    fv: pl.DataFrame, fv_rows: pl.DataFrame, *, destroy_traced: bool
) -> pl.DataFrame:
    """One row per view instance with its paired events, status and phase ends.

    ``end_seq`` is where the instance stops pinning its root with release at destroy (null:
    pinned to the end of the trace); ``live_end_seq`` ends its live phase; ``life_end_seq``
    is where it stopped existing (the span checked against dropped-events records).
    """
    role, pos = pl.col("role"), pl.col("pos")
    # Without doubles and orphans, an instance is its new, then its destroy_rcu if paired,
    # then its destroy if paired: consecutive rows, since fv keeps each instance's events
    # together and in order.
    inst = (
        fv.lazy()
        .filter(role.is_in([ROLE_NEW, ROLE_RCU, ROLE_DESTROY]))
        .select(
            *INSTANCE,
            "root",
            role,
            new_pos=pos,
            rcu_pos=pl.when(role.shift(-1) == ROLE_RCU).then(pos.shift(-1)),
            destroy_pos=pl.when(role.shift(-1) == ROLE_DESTROY)
            .then(pos.shift(-1))
            .when((role.shift(-1) == ROLE_RCU) & (role.shift(-2) == ROLE_DESTROY))
            .then(pos.shift(-2)),
        )
        .filter(role == ROLE_NEW)
        .drop("role")
        .collect(engine="in-memory")
    )
    paired = ("seq", "ts_ns", "drops")
    inst = with_stamps(
        inst, fv_rows, {"new": (*paired, "row"), "rcu": paired, "destroy": paired}
    ).rename({"new_row": "row"})
    # A new on a live pointer always ends the old instance; on a pending one only when the
    # trace has destroy events (otherwise the old instance was freed at its destroy_rcu).
    ended_by_new = (
        pl.col("next_new_seq").is_not_null()
        & pl.col("destroy_seq").is_null()
        & (pl.col("rcu_seq").is_null() | destroy_traced)
    )
    # What ends an instance's life, first found first; without destroy events an instance is
    # freed at its destroy_rcu.
    life_ends = ["destroy", "lost"] if destroy_traced else ["destroy", "lost", "rcu"]
    life_end = _pick([_stamp(p) for p in life_ends])
    live_end = _pick([_stamp("rcu"), _stamp("destroy"), _stamp("lost")])
    live_at_end = pl.col("life_end_seq").is_null() & pl.col("rcu_seq").is_null()
    nil_root = pl.col("root") == 0
    first_nil = pl.col("new_seq") == pl.col("new_seq").filter(nil_root).min().over("run")
    newest = pl.col("new_seq") == pl.col("new_seq").max().over(["run", "root"])
    status = (
        pl.when(pl.col("lost_seq").is_not_null())
        .then(pl.lit("lost"))
        .when(pl.any_horizontal(pl.col(f"{p}_seq").is_not_null() for p in life_ends))
        .then(pl.lit("freed"))
        .when(pl.col("rcu_seq").is_not_null())
        .then(pl.lit("rcu_pending"))
        .when(live_at_end & nil_root & first_nil)
        .then(pl.lit("immortal"))
        .when(newest)
        .then(pl.lit("current"))
        .otherwise(pl.lit("leaked"))
    )
    return (
        inst.lazy()
        # Rows stay in (view, run, seq) order, so the next row of the same pointer is the
        # instance that follows this one.
        .with_columns(
            next_within(pl.col(c), *POINTER).alias(f"next_{c}")
            for c in ("new_seq", "new_ts_ns", "new_pos", "root", "row", "new_drops")
        )
        .with_columns(
            pl.when(ended_by_new).then(pl.col(f"next_new_{c}")).alias(f"lost_{c}")
            for c in ("seq", "ts_ns", "pos", "drops")
        )
        .with_columns(
            life_end_seq=life_end[0],
            life_end_ts_ns=life_end[1],
            life_end_pos=life_end[2],
            live_end_seq=live_end[0],
            live_end_ts_ns=live_end[1],
            live_end_pos=live_end[2],
            life_end_drops=pl.coalesce(pl.col(f"{p}_drops") for p in life_ends),
        )
        .with_columns(
            status=status,
            end_seq=pl.col("life_end_seq"),
            end_ts_ns=pl.col("life_end_ts_ns"),
            end_pos=pl.col("life_end_pos"),
            live_ns=pl.col("live_end_ts_ns") - pl.col("new_ts_ns"),
            grace_ns=pl.col("destroy_ts_ns") - pl.col("rcu_ts_ns"),
        )
        .collect(engine="in-memory")
    )


def mark_uncertain(inst: pl.DataFrame, bounds: pl.DataFrame) -> pl.DataFrame:
    """``uncertain``: a dropped-events record lies inside the instance's life."""
    # Runs are numbered 0, 1, ... and bounds has one row per run in that order.
    run_end = bounds["drops_at_run_end"].gather(inst["run"])
    return inst.with_columns(
        uncertain=(pl.coalesce(pl.col("life_end_drops"), run_end) - pl.col("new_drops")) > 0
    )


def release_at_destroy_rcu(inst: pl.DataFrame) -> pl.DataFrame:
    """Replay the pins as if the root were released at ``destroy_rcu`` (the early-unref fix)."""
    end_seq, end_ts, end_pos = _pick([_stamp("rcu"), _stamp("destroy"), _stamp("lost")])
    return inst.with_columns(end_seq=end_seq, end_ts_ns=end_ts, end_pos=end_pos)


ANOMALY_COLUMNS = {
    "run": pl.Int64(),
    "kind": pl.String(),
    "seq": pl.Int64(),
    "ts_ns": pl.Int64(),
    "view": pl.UInt64(),
    "root": pl.UInt64(),
    "generation": pl.Int64(),
    "uncertain": pl.Boolean(),
    "row": pl.Int64(),  # replaced by source, line and offset at the end
    "detail": pl.String(),
}


def _event_anomalies(fv: pl.DataFrame, fv_rows: pl.DataFrame) -> pl.DataFrame:
    """Anomalies that one FlatView event shows by itself (orphans, doubles, roots)."""
    role = pl.col("role")
    rcu_like = role.is_in([ROLE_RCU, ROLE_DOUBLE_RCU, ROLE_ORPHAN_RCU])
    paired = role.is_in([ROLE_RCU, ROLE_DESTROY])
    rules: list[tuple[str, pl.Expr, pl.Expr]] = [
        ("orphan_destroy_rcu", role == ROLE_ORPHAN_RCU, pl.lit("no open instance of this view")),
        (
            "double_destroy_rcu",
            role == ROLE_DOUBLE_RCU,
            pl.lit("instance already RCU-pending"),
        ),
        ("null_root", rcu_like & (pl.col("root") == 0), pl.lit("destroy_rcu with root (nil)")),
        (
            "root_mismatch",
            paired & (pl.col("root") != pl.col("inst_root")),
            pl.format(
                "{} root differs from the root at flatview_new",
                pl.when(pl.col("code") == RCU)
                .then(pl.lit("flatview_destroy_rcu"))
                .otherwise(pl.lit("flatview_destroy")),
            ),
        ),
        ("orphan_destroy", role == ROLE_ORPHAN_DESTROY, pl.lit("no open instance of this view")),
        (
            "destroy_without_rcu",
            (role == ROLE_DESTROY) & (pl.col("rcu_before") == 0),
            pl.lit("flatview_destroy of a live instance (no destroy_rcu)"),
        ),
    ]
    # Most events are fine: keep the candidates once, then apply each rule to those few.
    candidates = fv.filter(pl.any_horizontal([cond for _, cond, _ in rules]))
    frames = [
        candidates.filter(cond).select(
            "run",
            pl.lit(kind).alias("kind"),
            pl.col("pos").alias("at_pos"),
            "view",
            "root",
            pl.when(pl.col("is_open")).then(pl.col("generation")).alias("generation"),
            detail.alias("detail"),
        )
        for kind, cond, detail in rules
    ]
    found = with_stamps(
        pl.concat(frames, how="vertical"), fv_rows, {"at": ("seq", "ts_ns", "drops", "row")}
    )
    return found.select(
        "run",
        "kind",
        pl.col("at_seq").alias("seq"),
        pl.col("at_ts_ns").alias("ts_ns"),
        "view",
        "root",
        "generation",
        pl.col("at_row").alias("row"),
        "detail",
        pl.col("at_drops").alias("drops_upto"),
    )


def _lost_anomalies(inst: pl.DataFrame) -> pl.DataFrame:
    """``new_while_live`` and ``reused_before_destroy``: a new that ended an open instance."""
    lost = inst.filter(pl.col("lost_seq").is_not_null())
    return lost.select(
        "run",
        pl.when(pl.col("rcu_seq").is_null())
        .then(pl.lit("new_while_live"))
        .otherwise(pl.lit("reused_before_destroy"))
        .alias("kind"),
        pl.col("lost_seq").alias("seq"),
        pl.col("lost_ts_ns").alias("ts_ns"),
        "view",
        pl.col("next_root").alias("root"),
        "generation",
        pl.col("next_row").alias("row"),
        pl.format(
            "generation {} started while generation {} was {}",
            pl.col("generation") + 1,
            pl.col("generation"),
            pl.when(pl.col("rcu_seq").is_null())
            .then(pl.lit("live"))
            .otherwise(pl.lit("RCU-pending")),
        ).alias("detail"),
        pl.col("next_new_drops").alias("drops_upto"),
    )


def find_anomalies(
    fv: pl.DataFrame, fv_rows: pl.DataFrame, inst: pl.DataFrame, bounds: pl.DataFrame
) -> pl.DataFrame:
    """Every anomaly the FlatView events show, with ``uncertain`` marks.

    An anomaly of an instance is uncertain when the instance spans a dropped-events record;
    one with no instance (an orphan) when a dropped-events record precedes it in its run,
    since the events that would have paired it may be the ones lost.
    """
    found = pl.concat([_event_anomalies(fv, fv_rows), _lost_anomalies(inst)], how="vertical")
    # A clean trace has none: skip matching them against every instance.
    concerned = (
        inst.join(found.select(INSTANCE).unique(), on=INSTANCE, how="semi")
        if found.height
        else inst.clear()
    )
    return (
        found.join(
            concerned.select(*INSTANCE, pl.col("uncertain").alias("inst_uncertain")),
            on=INSTANCE,
            how="left",
        )
        .join(bounds.select("run", "drops_before_run"), on="run", how="left")
        .with_columns(
            uncertain=pl.coalesce(
                pl.col("inst_uncertain"), pl.col("drops_upto") > pl.col("drops_before_run")
            )
        )
        .select([pl.col(c).cast(t) for c, t in ANOMALY_COLUMNS.items()])
    )
