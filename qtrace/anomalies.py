"""Anomalies: their kinds, the rules that find them, their table, and when they are uncertain.

The rules (docs/model.md, "View instances"), applied per run in trace order by the model's
kernel (qtrace/_kernel.c, and qtrace/walker.py alike), each to the open instance of the
event's view pointer:

- ``new_while_live``: a ``flatview_new`` on a pointer whose instance is live; that instance
  is ``lost``.
- ``reused_before_destroy``: a ``flatview_new`` on a pointer whose instance is RCU-pending,
  when the input traces ``flatview_destroy`` (otherwise the old instance was freed at its
  ``flatview_destroy_rcu``); that instance is ``lost``.
- ``orphan_destroy_rcu`` / ``orphan_destroy``: no open instance of the pointer.
- ``double_destroy_rcu``: a second ``flatview_destroy_rcu`` on a pending instance.
- ``null_root``: any ``flatview_destroy_rcu`` with root ``(nil)`` (QEMU's
  ``assert(view->root)``), paired or not.
- ``root_mismatch``: a paired ``flatview_destroy_rcu`` or ``flatview_destroy`` whose root
  differs from the one printed at ``flatview_new``.
- ``destroy_without_rcu``: ``flatview_destroy`` of a live instance.
- ``root_finalized_while_pinned``: ``memory_region_finalize`` of an MR that views of the
  run pin as their root; ``pinned_by`` says ``live`` when a live view pins it (the assert
  Akihiko Odaki hit: releasing roots early would not help), ``rcu_pending`` when only
  RCU-pending views do (the hazard the early unref at ``flatview_destroy_rcu`` removes).

Uncertainty: an anomaly of an instance is uncertain when the instance's life (from its
``flatview_new`` to its end, or to the end of its run) holds a loss point; one without an
instance (an orphan, a finalize) when a loss point precedes it in its run, since the event
that would have paired it may be among the lost.
"""

from __future__ import annotations

import re

import polars as pl

from qtrace.runs import attach_origin

# The kernel's anomaly codes index this tuple: keep the order.
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
FINALIZED = ANOMALY_KINDS.index("root_finalized_while_pinned")
PINNED_BY = ("live", "rcu_pending")

ANOMALY_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.Int64(),
    "kind": pl.String(),
    "seq": pl.Int64(),
    "ts_ns": pl.Int64(),
    "view": pl.UInt64(),  # null for finalizes
    "root": pl.UInt64(),
    "generation": pl.Int64(),  # the instance concerned; null for orphans and finalizes
    "uncertain": pl.Boolean(),
    "source": pl.String(),
    "line": pl.Int64(),
    "offset": pl.Int64(),
    "detail": pl.String(),
    "pinned_by": pl.String(),  # root_finalized_while_pinned only: live or rcu_pending
}

# One-line details by kind; {event}, {generation}, {next}, {state}, {live}, {pending} are
# filled from the row.
DETAILS = {
    "new_while_live": "generation {next} started while generation {generation} was live",
    "reused_before_destroy": (
        "generation {next} started while generation {generation} was RCU-pending"
    ),
    "orphan_destroy_rcu": "no open instance of this view",
    "double_destroy_rcu": "instance already RCU-pending",
    "null_root": "destroy_rcu with root (nil)",
    "root_mismatch": "{event} root differs from the root at flatview_new",
    "orphan_destroy": "no open instance of this view",
    "destroy_without_rcu": "flatview_destroy of a live instance (no destroy_rcu)",
    "root_finalized_while_pinned": (
        "MR finalized while pinned by {live} live and {pending} RCU-pending view(s)"
    ),
}
EVENT_NAMES = ("flatview_new", "flatview_destroy_rcu", "flatview_destroy")


def _detail(kind: pl.Expr) -> pl.Expr:
    """The detail text of each row, from its kind and numbers."""
    fields = {
        "next": (pl.col("generation") + 1).cast(pl.String),
        "generation": pl.col("generation").cast(pl.String),
        "live": pl.col("live").cast(pl.String),
        "pending": pl.col("pending").cast(pl.String),
        "event": pl.col("code").replace_strict(
            list(range(len(EVENT_NAMES))), EVENT_NAMES, default=None, return_dtype=pl.String
        ),
    }
    detail: pl.Expr = pl.lit(None, pl.String)
    for name, template in DETAILS.items():
        # "a {x} b" -> ["a ", "x", " b"]: text and field names alternate.
        pieces = re.split(r"\{(\w+)\}", template)
        parts = [fields[p] if i % 2 else pl.lit(p) for i, p in enumerate(pieces) if p]
        detail = pl.when(kind == name).then(pl.concat_str(parts)).otherwise(detail)
    return detail


def anomalies_table(found: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """The public anomalies table (ANOMALY_SCHEMA) from the kernel's anomaly rows.

    ``events``: the events table the rows index. In (run, seq, kind) order.
    """
    kinds = pl.Series(ANOMALY_KINDS, dtype=pl.String)
    finalized = pl.col("kind_code") == FINALIZED
    frame = found.rename({"kind": "kind_code"}).with_columns(
        kind=kinds.gather(found["kind"].cast(pl.UInt32)),
        seq=events["seq"].gather(found["row"]),
        ts_ns=events["ts_ns"].gather(found["row"]),
    )
    return (
        attach_origin(
            frame.select(
                pl.col("run").cast(pl.Int64),
                "kind",
                "seq",
                "ts_ns",
                view=pl.when(~finalized).then(pl.col("view")),
                root="root",
                generation=pl.when(pl.col("generation") >= 0).then(pl.col("generation")),
                uncertain=pl.col("uncertain") > 0,
                row="row",
                detail=_detail(pl.col("kind")),
                pinned_by=pl.when(finalized).then(
                    pl.when(pl.col("live") > 0)
                    .then(pl.lit(PINNED_BY[0]))
                    .otherwise(pl.lit(PINNED_BY[1]))
                ),
            ),
            events,
        )
        .select([pl.col(c).cast(t) for c, t in ANOMALY_SCHEMA.items()])
        .sort(["run", "seq", "kind"], maintain_order=True)
    )


def pinned_by_counts(anomalies: pl.DataFrame) -> dict[str, int]:
    """How many ``root_finalized_while_pinned`` findings each kind of pin explains."""
    counts = anomalies.filter(pl.col("pinned_by").is_not_null()).group_by("pinned_by").len()
    found = dict(zip(counts["pinned_by"].to_list(), counts["len"].to_list(), strict=True))
    return {name: int(found.get(name, 0)) for name in PINNED_BY}


__all__ = ["ANOMALY_KINDS", "ANOMALY_SCHEMA", "PINNED_BY", "anomalies_table", "pinned_by_counts"]
