"""Pair FlatView events into view instances, give each instance its status, find anomalies.

Events pair by view pointer and sequence, never by root: within a run, the events of one
pointer are cut into *segments* at every ``flatview_new``; segment ``g`` is the pointer's
generation ``g``. Every rule below is a cumulative count inside a segment, so the whole
pairing is one sort and a handful of running sums.
"""

from __future__ import annotations

import polars as pl

from qtrace.runs import DESTROY, IDX, NEW, RCU
from qtrace.sorted_windows import cum_sum_within, first_within, group_starts, next_within

POINTER = ["run", "view"]
INSTANCE = ["run", "view", "generation"]
STATUSES = ("freed", "rcu_pending", "immortal", "current", "leaked", "lost")


# Roles of FlatView events, as small integers (see classify_events).
ROLE_NEW, ROLE_RCU, ROLE_DESTROY, ROLE_DOUBLE_RCU, ROLE_ORPHAN_RCU, ROLE_ORPHAN_DESTROY = range(6)


def flatview_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """The FlatView events in seq order: row ``pos`` of this frame is the event at ``pos``.

    ``row`` (the event's index in the events table, for its pointers and origin), ``seq``,
    ``ts_ns`` and ``drops_upto``, read by position all through the model; and ``run`` and
    ``code`` for classify_events, which the model then drops.
    """
    return rows.filter(pl.col("is_fv")).select("row", "seq", "ts_ns", "drops_upto", "run", "code")


# What with_stamps can read of an event, by field name: its column in fv_rows.
STAMP_COLUMNS = {"seq": "seq", "ts_ns": "ts_ns", "drops": "drops_upto", "row": "row"}


def with_stamps(
    frame: pl.DataFrame, fv_rows: pl.DataFrame, stamps: dict[str, tuple[str, ...]]
) -> pl.DataFrame:
    """Add ``{prefix}_{field}`` (seq, ts_ns, drops, row) of the event at ``{prefix}_pos``.

    One select, so polars runs the gathers (random reads at 10M events) in parallel.
    """
    picked = fv_rows.select(
        pl.col(STAMP_COLUMNS[f]).gather(frame[f"{p}_pos"]).alias(f"{p}_{f}")
        for p, fields in stamps.items()
        for f in fields
    )
    return frame.hstack(picked.get_columns())


def classify_events(fv_rows: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """FlatView events sorted by pointer, each with its ``generation`` and ``role``.

    Roles: ROLE_NEW; ROLE_RCU and ROLE_DESTROY (paired with the open instance);
    ROLE_DOUBLE_RCU (a second destroy_rcu on a pending instance); ROLE_ORPHAN_RCU and
    ROLE_ORPHAN_DESTROY (no open instance). ``root_changed``: the root differs from the one
    the instance was created with; ``after_rcu``: the instance was already RCU-pending.
    The frame is kept narrow (``pos`` locates everything else) because sorting it is the
    model's main cost.
    """
    is_new = pl.col("code") == NEW
    is_rcu = pl.col("code") == RCU
    is_destroy = pl.col("code") == DESTROY
    segment_start = pl.col("pointer_start") | is_new
    # Counts of the segment's earlier events: the instance's state before this one.
    # Counts fit the index type, half as wide as Int64 (10M-row temporaries).
    rcu, destroy = is_rcu.cast(IDX), is_destroy.cast(IDX)
    rcu_before = cum_sum_within(rcu, segment_start) - rcu
    destroy_before = cum_sum_within(destroy, segment_start) - destroy
    is_open = (pl.col("generation") >= 0) & (destroy_before == 0)
    role = (
        pl.when(is_new)
        .then(ROLE_NEW)
        .when(is_rcu & ~pl.col("is_open"))
        .then(ROLE_ORPHAN_RCU)
        .when(is_rcu & ~pl.col("after_rcu"))
        .then(ROLE_RCU)
        .when(is_rcu)
        .then(ROLE_DOUBLE_RCU)
        .when(is_destroy & ~pl.col("is_open"))
        .then(ROLE_ORPHAN_DESTROY)
        .otherwise(ROLE_DESTROY)
        .cast(pl.Int8)
    )
    # Rows are in seq order and runs follow seq, so a stable sort by pointer alone gives
    # (view, run, seq) order: each pointer of each run is a block of consecutive rows.
    # Pointers come from the events table, rather than being carried in every row.
    by_pointer = (
        fv_rows.select("run", "code")
        .hstack(events.select(pl.col("view", "root").gather(fv_rows["row"])))
        .with_row_index("pos")
        .sort("view", maintain_order=True)
    )
    return (
        by_pointer.lazy()
        .with_columns(pointer_start=group_starts("view", "run"))
        .with_columns(
            generation=cum_sum_within(is_new.cast(IDX), pl.col("pointer_start")).cast(pl.Int64) - 1
        )
        .with_columns(
            after_rcu=rcu_before > 0,
            is_open=is_open,
            root_changed=pl.col("root")
            != pl.when(pl.col("generation") >= 0).then(first_within(pl.col("root"), segment_start)),
        )
        .select(
            "pos",
            "run",
            "view",
            "root",
            "generation",
            "after_rcu",
            "root_changed",
            role=role,
            is_open="is_open",
        )
        .collect(engine="in-memory")
    )


def build_instances(fv: pl.DataFrame, *, destroy_traced: bool) -> pl.DataFrame:
    """One row per view instance, in (view, run, generation) order.

    Columns: run, view, generation, root, and the positions of the instance's events:
    ``new_pos``, ``rcu_pos`` and ``destroy_pos`` when paired, ``lost_pos`` (the new that
    ended it). Everything else is read off these positions where it is needed, so this
    frame stays narrow.
    """
    role, pos = pl.col("role"), pl.col("pos")
    # A new on a live pointer always ends the old instance; on a pending one only when the
    # trace has destroy events (otherwise the old instance was freed at its destroy_rcu).
    ended_by_new = pl.col("destroy_pos").is_null() & (pl.col("rcu_pos").is_null() | destroy_traced)
    # Without doubles and orphans, an instance is its new, then its destroy_rcu if paired,
    # then its destroy if paired: consecutive rows, since fv keeps each instance's events
    # together and in order.
    return (
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
        # Rows stay in (view, run, seq) order, so the next row of the same pointer is the
        # instance that follows this one.
        .with_columns(lost_pos=pl.when(ended_by_new).then(next_within(pl.col("new_pos"), *POINTER)))
        .collect(engine="in-memory")
    )


# The events that can end each phase of an instance, first found first (by their column
# prefixes: ``{event}_pos``, ``_seq``, ``_ts_ns``).
LIVE_END = ("rcu", "destroy", "lost")


def life_end(*, destroy_traced: bool) -> tuple[str, ...]:
    """What ends an instance's life; without destroy events, its destroy_rcu frees it."""
    return ("destroy", "lost") if destroy_traced else ("destroy", "lost", "rcu")


def pin_end(*, destroy_traced: bool, root_release: str) -> tuple[str, ...]:
    """What ends an instance's pin on its root under ``root_release``."""
    return LIVE_END if root_release == "destroy_rcu" else life_end(destroy_traced=destroy_traced)


def first_pos(ends: tuple[str, ...]) -> pl.Expr:
    """The position of the first of ``ends`` that happened (null: none did)."""
    return pl.coalesce(f"{end}_pos" for end in ends)


def instance_uncertain(
    inst: pl.DataFrame, fv_rows: pl.DataFrame, bounds: pl.DataFrame, *, destroy_traced: bool
) -> pl.Series:
    """Per instance: a dropped-events record lies inside its life."""
    if not (bounds["drops_at_run_end"] > 0).any():  # the usual trace: nothing was dropped
        return pl.repeat(False, inst.height, eager=True).alias("uncertain")
    drops = fv_rows["drops_upto"]
    ends = inst.select(first_pos(life_end(destroy_traced=destroy_traced)))
    # Runs are numbered 0, 1, ... and bounds has one row per run in that order.
    run_end = bounds["drops_at_run_end"].gather(inst["run"])
    return (
        (drops.gather(ends.to_series()).fill_null(run_end) - drops.gather(inst["new_pos"])) > 0
    ).alias("uncertain")


def instance_views(
    inst: pl.DataFrame,
    fv_rows: pl.DataFrame,
    bounds: pl.DataFrame,
    *,
    destroy_traced: bool,
    root_release: str,
) -> pl.DataFrame:
    """The views table (VIEW_SCHEMA's columns but the origin, and ``row``), in ``inst`` order.

    ``inst`` must be in ``new_pos`` order.

    ``end_seq`` is where the instance stops pinning its root under ``root_release``;
    ``live_end_seq`` ends its live phase; ``life_end_seq`` is where it stopped existing.
    """
    inst = inst.with_columns(
        instance_uncertain(inst, fv_rows, bounds, destroy_traced=destroy_traced)
    )
    both = ("seq", "ts_ns")
    inst = with_stamps(
        inst,
        fv_rows,
        {"new": (*both, "row"), "rcu": both, "destroy": both, "lost": both},
    )
    life_end_seq, life_end_ts = _pick(life_end(destroy_traced=destroy_traced))
    live_end_seq, live_end_ts = _pick(LIVE_END)
    end_seq, end_ts = _pick(pin_end(destroy_traced=destroy_traced, root_release=root_release))
    nil_root = pl.col("root") == 0
    first_nil = pl.col("new_pos") == pl.col("new_pos").filter(nil_root).min().over("run")
    # Rows are in new_pos order: the newest instance of a root is its last row in the run
    # (one hashed key and few groups, far cheaper than a max over (run, root)).
    newest = pl.col("root").is_last_distinct().over("run")
    live_at_end = life_end_seq.is_null() & pl.col("rcu_seq").is_null()
    status = (
        pl.when(pl.col("lost_seq").is_not_null())
        .then(pl.lit("lost"))
        .when(life_end_seq.is_not_null())
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
        .select(
            "new_row",
            *INSTANCE,
            "root",
            status.alias("status"),
            "new_seq",
            "new_ts_ns",
            "rcu_seq",
            "rcu_ts_ns",
            "destroy_seq",
            "destroy_ts_ns",
            end_seq.alias("end_seq"),
            end_ts.alias("end_ts_ns"),
            (live_end_ts - pl.col("new_ts_ns")).alias("live_ns"),
            (pl.col("destroy_ts_ns") - pl.col("rcu_ts_ns")).alias("grace_ns"),
            "uncertain",
            "lost_seq",
            live_end_seq.alias("live_end_seq"),
            life_end_seq.alias("life_end_seq"),
            life_end_ts.alias("life_end_ts_ns"),
        )
        .rename({"new_row": "row"})
        .collect(engine="in-memory")
    )


def _pick(prefixes: tuple[str, ...]) -> tuple[pl.Expr, pl.Expr]:
    """The first of these events that happened: its seq and its timestamp together."""
    seq = pl.coalesce([pl.col(f"{p}_seq") for p in prefixes])
    # Built from the last event outwards so each level is a plain when/then/otherwise.
    ts: pl.Expr = pl.lit(None, pl.Int64)
    for p in reversed(prefixes):
        ts = pl.when(pl.col(f"{p}_seq").is_not_null()).then(pl.col(f"{p}_ts_ns")).otherwise(ts)
    return seq, ts


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


def _event_anomalies(fv: pl.DataFrame) -> pl.DataFrame:
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
            paired & pl.col("root_changed"),
            pl.format(
                "{} root differs from the root at flatview_new",
                pl.when(role == ROLE_RCU)
                .then(pl.lit("flatview_destroy_rcu"))
                .otherwise(pl.lit("flatview_destroy")),
            ),
        ),
        ("orphan_destroy", role == ROLE_ORPHAN_DESTROY, pl.lit("no open instance of this view")),
        (
            "destroy_without_rcu",
            (role == ROLE_DESTROY) & ~pl.col("after_rcu"),
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
    return pl.concat(frames, how="vertical")


def _lost_anomalies(inst: pl.DataFrame) -> pl.DataFrame:
    """``new_while_live`` and ``reused_before_destroy``: a new that ended an open instance."""
    return (
        inst.lazy()
        # The instance that follows in (view, run) order is the one whose new ended it.
        .with_columns(next_root=pl.col("root").shift(-1))
        .filter(pl.col("lost_pos").is_not_null())
        .select(
            "run",
            pl.when(pl.col("rcu_pos").is_null())
            .then(pl.lit("new_while_live"))
            .otherwise(pl.lit("reused_before_destroy"))
            .alias("kind"),
            pl.col("lost_pos").alias("at_pos"),
            "view",
            pl.col("next_root").alias("root"),
            "generation",
            pl.format(
                "generation {} started while generation {} was {}",
                pl.col("generation") + 1,
                pl.col("generation"),
                pl.when(pl.col("rcu_pos").is_null())
                .then(pl.lit("live"))
                .otherwise(pl.lit("RCU-pending")),
            ).alias("detail"),
        )
        .collect(engine="in-memory")
    )


def find_anomalies(
    fv: pl.DataFrame,
    fv_rows: pl.DataFrame,
    inst: pl.DataFrame,
    bounds: pl.DataFrame,
    *,
    destroy_traced: bool,
) -> pl.DataFrame:
    """Every anomaly the FlatView events show, with ``uncertain`` marks.

    An anomaly of an instance is uncertain when the instance spans a dropped-events record;
    one with no instance (an orphan) when a dropped-events record precedes it in its run,
    since the events that would have paired it may be the ones lost.
    """
    found = pl.concat([_event_anomalies(fv), _lost_anomalies(inst)], how="vertical")
    found = with_stamps(found, fv_rows, {"at": ("seq", "ts_ns", "drops", "row")})
    # A clean trace has none: skip matching them against every instance.
    concerned = (
        inst.join(found.select(INSTANCE).unique(), on=INSTANCE, how="semi")
        if found.height
        else inst.clear()
    )
    concerned = concerned.select(
        *INSTANCE,
        instance_uncertain(concerned, fv_rows, bounds, destroy_traced=destroy_traced).alias(
            "inst_uncertain"
        ),
    )
    return (
        found.join(concerned, on=INSTANCE, how="left")
        .join(bounds.select("run", "drops_before_run"), on="run", how="left")
        .with_columns(
            uncertain=pl.coalesce(
                pl.col("inst_uncertain"), pl.col("at_drops") > pl.col("drops_before_run")
            )
        )
        .rename({"at_seq": "seq", "at_ts_ns": "ts_ns", "at_row": "row"})
        .select([pl.col(c).cast(t) for c, t in ANOMALY_COLUMNS.items()])
    )
