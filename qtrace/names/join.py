"""Names joined onto the model's tables: what each root, interval, leak and anomaly is called.

``name_analysis`` adds, to an ``Analysis``:

- ``root_intervals``: ``name``, ``alias_root``, ``alias_of``, ``name_source`` per interval (a
  ``pending_only`` window takes the name of the pinned interval it lies in);
- ``roots``: the same per (run, root); a pointer that held several named regions over the
  run has their names in order, joined by `` / ``;
- ``anomalies`` and the leaked and lost views (``flagged_views``): ``root_name`` and
  ``root_alias_of``, the names of the pinned interval the row's event lies in;
- ``anomalies``: ``pinned_by`` on ``root_finalized_while_pinned`` rows, ``live`` when a live
  view pinned the root when it was finalized (Akihiko Odaki's assert; the early unref would
  not help) or ``rcu_pending`` when only RCU-pending views did (the deferred unref at
  ``flatview_destroy`` hits re-initialised storage; the early unref removes it).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import polars as pl

from qtrace.names.claims import Names, trace_names
from qtrace.names.scope import NAME_COLUMNS, SPAN_KEY, name_spans, place_claims

if TYPE_CHECKING:  # the model calls name_analysis: no import of it at run time
    from qtrace.model import Analysis

ROW_NAME_COLUMNS: dict[str, pl.DataType] = {"root_name": pl.String(), "root_alias_of": pl.String()}
# A pinned interval's key and end: what names are placed on.
SPAN_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.Int64(),
    "root": pl.UInt64(),
    "start_seq": pl.Int64(),
    "end_seq": pl.Int64(),
}
NAME_SEPARATOR = " / "


def _at_seq(frame: pl.DataFrame, seq: str, named: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the names of the pinned interval that holds each row's ``seq``."""
    if frame.height == 0 or named.height == 0:
        return _no_names(frame, ROW_NAME_COLUMNS)
    spans = named.select(
        "run", "root", "start_seq", "end_seq", root_name="name", root_alias_of="alias_of"
    ).sort("start_seq")
    probe = frame.with_row_index("_row").sort(seq)
    found = probe.join_asof(
        spans,
        left_on=seq,
        right_on="start_seq",
        by=["run", "root"],
        strategy="backward",
        check_sortedness=False,  # sorted by the key above; by-groups cannot be checked
    )
    inside = pl.col("end_seq").is_null() | (pl.col(seq) <= pl.col("end_seq"))
    return (
        found.with_columns([pl.when(inside).then(pl.col(c)).alias(c) for c in ROW_NAME_COLUMNS])
        .sort("_row")
        .select(*frame.columns, *ROW_NAME_COLUMNS)
    )


def _joined(values: pl.Expr) -> pl.Expr:
    """Distinct non-null values in order, joined; null when there is none."""
    present = values.drop_nulls().unique(maintain_order=True)
    return pl.when(present.len() > 0).then(present.str.join(NAME_SEPARATOR))


def _no_names(frame: pl.DataFrame, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    return frame.with_columns([pl.lit(None, t).alias(c) for c, t in columns.items()])


def _named_roots(roots: pl.DataFrame, named: pl.DataFrame) -> pl.DataFrame:
    if named.height == 0:
        return _no_names(roots, NAME_COLUMNS)
    per_root = (
        named.sort("start_seq")
        .group_by("run", "root", maintain_order=True)
        .agg(
            name=_joined(pl.col("name")),
            alias_root=pl.col("alias_root").drop_nulls().first(),
            alias_of=_joined(pl.col("alias_of")),
            name_source=pl.col("name_source").drop_nulls().first(),
        )
    )
    return roots.join(per_root, on=["run", "root"], how="left", maintain_order="left").with_columns(
        [pl.col(c).cast(t) for c, t in NAME_COLUMNS.items()]
    )


def unnamed_intervals(intervals: pl.DataFrame) -> pl.DataFrame:
    """``root_intervals`` with its name columns, all null (an analysis without names)."""
    return _no_names(intervals, NAME_COLUMNS)


def _named_intervals(intervals: pl.DataFrame, named: pl.DataFrame) -> pl.DataFrame:
    """Every interval with the names of the pinned interval that starts at or before it."""
    columns = list(NAME_COLUMNS)
    if intervals.height == 0 or named.height == 0:
        return _no_names(intervals, NAME_COLUMNS)
    located = (
        intervals.with_row_index("_row")
        .sort("start_seq")
        .join_asof(
            named.select(*SPAN_KEY, *columns).sort("start_seq"),
            on="start_seq",
            by=["run", "root"],
            strategy="backward",
            check_sortedness=False,  # sorted by the key above; by-groups cannot be checked
        )
    )
    return located.sort("_row").select(*intervals.columns, *columns)


def name_analysis(analysis: Analysis, events: pl.DataFrame, names: Names | None = None) -> Analysis:
    """``analysis`` with the names of its roots (module docstring), from ``names`` and from
    the trace's own ``memory_region_finalize`` and ``memory_region_ops_*`` events.

    ``events``: the events table the analysis was made from. ``qtrace.analyze(trace,
    names=...)`` calls this; it is public for analyses made another way.

    Examples
    --------
    >>> trace = qtrace.read_trace("../shared/traces/qemu10-pc-bridges-ts.log")
    >>> analysis = qtrace.analyze(trace)
    >>> names = qtrace.read_names("../shared/traces/qemu10-pc-bridges-ts.roots.txt")
    >>> named = name_analysis(analysis, trace.events, names)
    >>> named.roots.filter(pl.col("alias_of").is_not_null())["name"].sort().to_list()
    ['pci_bridge_io', 'pci_bridge_pref_mem']
    """
    claims = trace_names(events) + (names or Names())
    spans: tuple[pl.DataFrame, pl.DataFrame] | None
    if claims.is_empty:
        # The usual trace: no name anywhere, nothing to place or join, and the root intervals
        # (built when read, unnamed) are not needed here.
        named = pl.DataFrame(schema={**SPAN_SCHEMA, **NAME_COLUMNS})
        spans = (
            None
            if analysis._spans is None
            else (
                unnamed_intervals(analysis.root_intervals.drop(NAME_COLUMNS, strict=False)),
                analysis.overlaps,
            )
        )
    else:
        pinned = analysis.root_intervals.filter(pl.col("kind") == "pinned")
        placed = place_claims(claims.claims, events, has_clock=analysis.has_clock)
        named = name_spans(pinned.select(*SPAN_SCHEMA), placed)
        intervals = analysis.root_intervals.drop(NAME_COLUMNS, strict=False)
        spans = (_named_intervals(intervals, named), analysis.overlaps)
    # Naming an analysis named already replaces its names: the columns are built anew.
    anomalies = _at_seq(analysis.anomalies.drop(ROW_NAME_COLUMNS, strict=False), "seq", named)
    result = dataclasses.replace(
        analysis,
        roots=_named_roots(analysis.roots.drop(NAME_COLUMNS, strict=False), named),
        anomalies=anomalies,
        _spans=spans,
    )
    # The cached summaries stay valid (names change no count); flagged_views, the model's
    # cached summary of the leaked and lost views, gets its roots' names here, on its few
    # rows instead of every row of the (large) views table.
    fields = {f.name for f in dataclasses.fields(analysis)}
    for key, value in analysis.__dict__.items():
        if key not in fields:
            result.__dict__.setdefault(key, value)
    flagged = analysis.flagged_views.drop(ROW_NAME_COLUMNS, strict=False)
    result.__dict__["flagged_views"] = _at_seq(flagged, "new_seq", named)
    return result


__all__ = ["NAME_SEPARATOR", "name_analysis", "unnamed_intervals"]
