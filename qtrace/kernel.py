"""Run the lifetime model's sequential core over the model's rows: C when built, else Python.

``walk(rows, ...)`` hands the rows' columns to ``qtrace._kernel.walk`` (qtrace/_kernel.c) or,
when that extension was not built, to its plain-Python twin ``qtrace.walker.walk``, and
returns what either found as polars frames of the same schema. ``QTRACE_NO_KERNEL=1`` forces
the Python walker (the tests compare the two on every trace).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from qtrace import walker

if TYPE_CHECKING:
    from qtrace.runs import ModelRows

try:
    from qtrace import _kernel
except ImportError:  # built without a compiler
    _kernel = None  # type: ignore[assignment]

NO_KERNEL = "QTRACE_NO_KERNEL"
NULL_TS = -(2**63)  # the C kernel's null time

# The columns of each table either walk returns, with their types.
I32, I64, U64, I8 = pl.Int32(), pl.Int64(), pl.UInt64(), pl.Int8()
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "instances": dict(
        zip(
            walker.INSTANCE_COLUMNS,
            (I64, I32, U64, I32, U64, I8, I64, I64, I64, I64, I8),
            strict=True,
        )
    ),
    "anomalies": dict(
        zip(walker.ANOMALY_COLUMNS, (I32, I8, I64, I8, U64, U64, I32, I8, I64, I64), strict=True)
    ),
    "spans": dict(zip(walker.SPAN_COLUMNS, (I32, I8, I64, I64, I64, I64, I64), strict=True)),
    "steps": dict(zip(walker.STEP_COLUMNS, (I32, I64, I64, I64), strict=True)),
    "roots": dict(
        zip(walker.ROOT_COLUMNS, (I32, U64, I64, I64, I64, I8, I64, I64, I64), strict=True)
    ),
    "runs": dict(zip(walker.RUN_COLUMNS, (I32, I64, I64, I64, I64, I64), strict=True)),
}


@dataclass(frozen=True)
class Walked:
    """What one pass found (qtrace/_kernel.c names every column).

    Row numbers index the events table the rows came from (-1: none). ``instances`` holds
    every instance in creation order after a ``full`` walk, else only the leaked and lost
    ones; ``steps`` (the per-root pin levels after every change) only after a ``full`` walk.
    ``roots`` has one row per (run, root) record (the nil root too), indexed by ``rid``.
    """

    instances: pl.DataFrame
    anomalies: pl.DataFrame
    spans: pl.DataFrame
    steps: pl.DataFrame | None
    durations: dict[str, pl.Series]
    roots: pl.DataFrame
    runs: pl.DataFrame
    status_counts: tuple[int, ...]
    event_counts: tuple[int, ...]
    uncertain_views: int
    generation_0: int
    generation_1: int
    negative_durations: int


class _Arrow:
    """One column from the kernel (Arrow C Data Interface capsules), for ``pl.Series``."""

    def __init__(self, capsules: tuple[object, object]) -> None:
        self._capsules = capsules

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        return self._capsules


def available() -> bool:
    """True when the C kernel is built and not switched off by ``QTRACE_NO_KERNEL=1``."""
    return _kernel is not None and os.environ.get(NO_KERNEL, "") != "1"


def _frame(name: str, columns: dict[str, Any], from_c: bool) -> pl.DataFrame:
    schema = SCHEMAS[name]
    if from_c:
        frame = pl.DataFrame([pl.Series(_Arrow(columns[c])).alias(c) for c in schema])
    else:
        frame = pl.DataFrame({c: pl.Series(c, columns[c], dtype=t) for c, t in schema.items()})
    if name == "roots" and from_c:  # the C kernel's null time is a sentinel
        frame = frame.with_columns(
            pl.when(pl.col("min_new_ts") != NULL_TS).then(pl.col("min_new_ts")).alias("min_new_ts")
        )
    return frame


def walk(rows: ModelRows, *, release_at_rcu: bool, full: bool, tables_only: bool = False) -> Walked:
    """One pass of the model over ``rows`` (see ``Walked``).

    ``tables_only`` (with ``full``): a pass for the instances and steps only, without spans
    and durations (as large again for a storm of short views).
    """
    code, view, root, ts, stream = rows.code, rows.view, rows.root, rows.ts, rows.stream
    from_c = available()
    if from_c:
        found = _kernel.walk(
            code.__arrow_c_stream__(),
            view.__arrow_c_stream__(),
            root.__arrow_c_stream__(),
            ts.__arrow_c_stream__(),
            None if stream is None else stream.__arrow_c_stream__(),
            rows.finalize_rows.cast(pl.Int64).__arrow_c_stream__(),
            rows.finalize_mr.cast(pl.UInt64).__arrow_c_stream__(),
            n_streams=rows.n_streams,
            null_stream=rows.null_stream,
            destroy_traced=rows.destroy_traced,
            release_at_rcu=release_at_rcu,
            full=full,
            tables_only=tables_only,
        )
    else:
        found = walker.walk(
            code,
            view,
            root,
            ts,
            stream,
            rows.finalize_rows.to_list(),
            rows.finalize_mr.to_list(),
            n_streams=rows.n_streams,
            null_stream=rows.null_stream,
            destroy_traced=rows.destroy_traced,
            release_at_rcu=release_at_rcu,
            full=full,
            tables_only=tables_only,
        )
    durations = {
        name: pl.Series(_Arrow(values)).alias(name)
        if from_c
        else pl.Series(name, values, dtype=I64)
        for name, values in found["durations"].items()
    }
    return Walked(
        instances=_frame("instances", found["instances"], from_c),
        anomalies=_frame("anomalies", found["anomalies"], from_c),
        spans=_frame("spans", found["spans"], from_c),
        steps=_frame("steps", found["steps"], from_c) if found["steps"] is not None else None,
        durations=durations,
        roots=_frame("roots", found["roots"], from_c),
        runs=_frame("runs", found["runs"], from_c),
        status_counts=tuple(found["status_counts"]),
        event_counts=tuple(found["event_counts"]),
        uncertain_views=found["uncertain_views"],
        generation_0=found["generation_0"],
        generation_1=found["generation_1"],
        negative_durations=found["negative_durations"],
    )
