"""Finer whole-trace buckets, for a page too large to carry its instances.

A page carries every instance when it can (packing.py): its script then buckets any window
from them, and draws single views once few enough are in it. A larger trace (a 1 GB
config-write storm has 4 million instances) gets levels of the page's own buckets instead,
each ``FACTOR`` times finer than the one before, as many as ``BUDGET_BYTES`` holds. Zoomed
in, the script draws the window from the coarsest level that still gives one bucket per
pixel column (zoom_script.py), and says down to which bucket width the page is exact.

A level holds, per lane and bucket, the same four counts as the whole-trace heatmap
(aggregate.bucket_activity): views born, peak live, peak RCU-pending, peak pinning, as
little-endian Int32 columns one after another, lane by lane, deflated and in base64.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import Any

import polars as pl
from qtrace.dashboards import aggregate
from qtrace.dashboards.inputs import TimeAxis

FACTOR = 8  # each level's buckets are this many times narrower than the previous level's
BUDGET_BYTES = 8_000_000  # of base64 text, over all levels (the rest of such a page: < 10 MB)
# How much larger a level deflates than the one before: 2.6-4.9x on real and storm traces.
GROWTH = FACTOR // 2
MAX_LEVEL_CELLS = 4_000_000  # lanes x buckets of one level: what is computed at most
ZLIB_LEVEL = 6
COUNTS = ("births", "live", "pending", "pinning")


@dataclass(frozen=True)
class Pyramid:
    """The levels (finest last) and what the script needs to read them."""

    levels: list[dict[str, Any]]  # {"count": buckets, "columns": {name: [byte offset, values]}}
    data: str  # base64 of the deflated blob of every level

    def to_json(self) -> dict[str, Any]:
        """All but ``data``, which the page carries in an element of its own."""
        return {"factor": FACTOR, "levels": self.levels}


def build_pyramid(
    placed: pl.DataFrame,
    concurrency: pl.DataFrame,
    lane_table: pl.DataFrame,
    axis: TimeAxis,
    home: aggregate.Grid,
    *,
    budget: int = BUDGET_BYTES,
) -> Pyramid | None:
    """The levels finer than ``home`` that fit ``budget`` bytes of base64; None when not even
    one does.

    ``placed``: the views with their ``lane``; ``concurrency``: the model's table. Levels
    are made coarsest first, each bucketed as the page's own buckets are; a level expected
    not to fit (``GROWTH`` times the last, deflated) is not made.

    Examples
    --------
    >>> from qtrace.dashboards.inputs import lanes, time_axis
    >>> analysis = qtrace.analyze(qtrace.read_trace("samples/pc-boot-ts.log"))
    >>> table, axis = lanes(analysis), time_axis(analysis)
    >>> placed = analysis.views.join(table.select("run", "root", "lane"), on=["run", "root"])
    >>> found = build_pyramid(placed, analysis.concurrency, table, axis, aggregate.grid(axis, 4))
    >>> [level["count"] for level in found.levels]
    [9600, 76800, 614400]
    """
    if budget <= 0:
        return None
    lanes = lane_table.height
    blob, levels, offset, last_cost = bytearray(), [], 0, 0
    packer = zlib.compressobj(ZLIB_LEVEL)
    count = home.count * FACTOR
    while lanes * count <= MAX_LEVEL_CELLS and home.span >= count:
        if (len(blob) + last_cost * GROWTH) * 4 / 3 > budget:
            break  # not worth bucketing: it would most likely not fit
        grid = aggregate.Grid(home.origin, home.span, count, home.per_unit)
        cells = aggregate.bucket_activity(
            placed,
            aggregate.bucket_levels(concurrency, lane_table, axis, grid),
            lane_table,
            axis,
            grid,
        )
        # Tried on a copy of the stream, which is kept only if the level fits.
        trial, columns, parts, at = packer.copy(), {}, [], offset
        for name in COUNTS:
            values = cells.get_column(name).cast(pl.Int32).to_numpy().astype("<i4", copy=False)
            columns[name] = [at, len(values)]
            at += values.nbytes
            parts.append(trial.compress(values.tobytes()))
        del cells
        last_cost = sum(len(p) for p in parts) + len(trial.copy().flush())
        if (len(blob) + last_cost) * 4 / 3 > budget:
            break
        packer, offset = trial, at
        blob += b"".join(parts)
        levels.append({"count": count, "columns": columns})
        count *= FACTOR
    if not levels:
        return None
    blob += packer.flush()
    return Pyramid(levels, base64.b64encode(bytes(blob)).decode("ascii"))


__all__ = ["BUDGET_BYTES", "FACTOR", "Pyramid", "build_pyramid"]
