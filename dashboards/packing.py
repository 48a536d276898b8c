"""Every view instance in a compact binary form the page's script unpacks to zoom.

A million instances with their hover text would be hundreds of megabytes of JSON. Packed,
each instance is a row of small integers (deltas of sorted positions, phase ends relative
to the instance's start), written column by column as byte planes and deflated (zlib).
Browsers inflate it natively (``DecompressionStream``), offline. From these columns the
script recomputes any window's buckets and draws instances with their exact hovers.
Nothing here is random or time-dependent: the same views give the same bytes.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from qtrace.dashboards.inputs import TimeAxis

# The model's instance statuses (docs/model.md); flags carry the index.
STATUSES = ("freed", "rcu_pending", "immortal", "current", "leaked", "lost")

# Page budget for the packed instances (base64 characters): with plotly.js (4.8 MB) and
# the rest of the page, a page stays under 20 MB.
MAX_PACKED_CHARS = 13_000_000
# Packed sizes run 7-10 bytes per instance, 10-13 characters in base64; past this count
# the pack cannot fit and is not attempted.
MAX_PACKED_INSTANCES = 1_300_000
ZLIB_LEVEL = 1  # level 6 saves 4% and takes 2.5 times as long

# Which event ends a phase (life, pin), as the model's rules pick it: 0 none (open at the end).
END_KINDS = ("open", "rcu", "destroy", "lost")

# Column order in the blob; the script reads them by name.
COLUMNS = (
    "lane",  # lane index
    "start",  # raw start (ns or seq since the origin), delta from the previous instance
    "seq",  # new_seq, zigzag delta from the previous instance
    "rcu",  # rcu raw - start, zigzag, +1 (0: none)
    "rcuSeq",  # rcu_seq - new_seq, +1 (0: none)
    "destroy",  # destroy raw - start, zigzag, +1
    "destroySeq",
    "lost",  # raw of the flatview_new that reused the pointer - start, zigzag, +1
    "lostSeq",
    "flags",  # status index | uncertain << 3 | life end kind << 4 | pin end kind << 6
    "viewHi",  # high 32 bits of the view pointer, zigzag delta
    "viewLo",  # low 32 bits, zigzag delta
    "generation",
    "source",  # index into sources
    "line",  # line + 1 (0: none, e.g. binary inputs), zigzag delta of that
)


def byte_planes(values: npt.NDArray[np.uint64]) -> tuple[bytes, int]:
    """``values`` as byte planes: all their low bytes, then all their next bytes, and so on,
    as many planes as the largest value needs. Planes of high bytes are mostly zeros, which
    deflate to almost nothing; this is what makes the pack small and quick to build.
    """
    largest = int(values.max()) if values.size else 0
    width = max(1, (largest.bit_length() + 7) // 8)
    as_bytes = values.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :width]
    return np.ascontiguousarray(as_bytes.T).tobytes(), width


@dataclass(frozen=True)
class Packed:
    """The packed instances and what the script needs to read them."""

    count: int
    columns: dict[str, tuple[int, int]]  # name -> (byte offset, bytes per value) in the blob
    data: str  # base64 of the deflated blob
    sources: list[str]

    def to_json(self) -> dict[str, Any]:
        """All but ``data``, which the page carries in an element of its own."""
        return {
            "count": self.count,
            "columns": {name: list(span) for name, span in self.columns.items()},
            "sources": self.sources,
            "statuses": list(STATUSES),
            "endKinds": list(END_KINDS),
        }


Column = Callable[[str], pl.Expr]


def _end_kind(col: Column, end_seq: str) -> pl.Expr:
    """Which event a phase end (a seq column) is: the model's coalesce order decides ties."""
    end = col(end_seq)
    return (
        pl.when(end.is_null())
        .then(0)
        .when(end == col("destroy_seq"))
        .then(2)
        .when(end == col("lost_seq"))
        .then(3)
        .when(end == col("rcu_seq"))
        .then(1)
        .otherwise(0)
    )


VIEW_HALVES = ("viewHi", "viewLo")


def _view_half(view: npt.NDArray[np.uint64], name: str) -> npt.NDArray[np.uint64]:
    """The view pointers' high (``viewHi``) or low (``viewLo``) 32 bits as zigzagged deltas
    (numpy: polars has no bit shift, and its integer division is ten times slower). One half
    at a time, in place: a million pointers never cost more than three arrays of them."""
    half = view >> np.uint64(32) if name == "viewHi" else view & np.uint64(0xFFFFFFFF)
    signed = half.view(np.int64)  # values below 2**32: the same numbers
    delta = np.empty_like(signed)
    delta[:1] = signed[:1]
    np.subtract(signed[1:], signed[:-1], out=delta[1:])
    del half, signed
    sign = delta >> 63
    delta <<= 1
    delta ^= sign
    return delta.view(np.uint64)


def _delta(expr: pl.Expr) -> pl.Expr:
    return expr - expr.shift(1, fill_value=0)


def _zigzag_expr(expr: pl.Expr) -> pl.Expr:
    """Zigzag as an expression: 0, -1, 1, -2 -> 0, 1, 2, 3 (UInt64)."""
    value = expr.cast(pl.Int64)
    return pl.when(value >= 0).then(value * 2).otherwise(-value * 2 - 1).cast(pl.UInt64)


def _optional(expr: pl.Expr, *, signed: bool) -> pl.Expr:
    """``expr`` + 1 (zigzagged first when signed), 0 for null, as UInt64."""
    value = _zigzag_expr(expr) if signed else expr.cast(pl.UInt64)
    return (value + 1).fill_null(0)


def _columns(col: Column, axis: TimeAxis, sources: list[str]) -> dict[str, pl.Expr]:
    """The expression of every packed column, over the instances in start order (``col``)."""

    def raw(stem: str) -> pl.Expr:
        point = f"{stem}_ts_ns" if axis.has_clock else f"{stem}_seq"
        return col(point) - axis.origin

    start = raw("new")
    status = col("status").replace_strict(
        list(STATUSES), list(range(len(STATUSES))), default=0, return_dtype=pl.Int64
    )
    flags = (
        status
        + col("uncertain").fill_null(False).cast(pl.Int64) * 8
        + _end_kind(col, "life_end_seq") * 16
        + _end_kind(col, "end_seq") * 64
    )
    return {
        "lane": col("lane").cast(pl.UInt64),
        "start": _delta(start).cast(pl.UInt64),
        "seq": _zigzag_expr(_delta(col("new_seq"))),
        "rcu": _optional(raw("rcu") - start, signed=True),
        "rcuSeq": _optional(col("rcu_seq") - col("new_seq"), signed=False),
        "destroy": _optional(raw("destroy") - start, signed=True),
        "destroySeq": _optional(col("destroy_seq") - col("new_seq"), signed=False),
        # A lost instance's life ends at the flatview_new that reused its pointer.
        "lost": _optional(
            pl.when(col("lost_seq").is_not_null()).then(raw("life_end") - start), signed=True
        ),
        "lostSeq": _optional(col("lost_seq") - col("new_seq"), signed=False),
        "flags": flags.cast(pl.UInt64),
        "generation": col("generation").cast(pl.UInt64),
        "source": col("source").replace_strict(
            sources, list(range(len(sources))), default=0, return_dtype=pl.UInt64
        ),
        "line": _zigzag_expr(_delta(col("line").fill_null(-1) + 1)),
    }


def pack_instances(placed: pl.DataFrame, axis: TimeAxis) -> Packed | None:
    """Every instance with a lane and a start on the axis, packed; None when it would not fit.

    ``placed`` is the views table with each instance's ``lane``. Instances are ordered by
    start (then new_seq), as the script expects. Positions are relative to the axis origin,
    so they stay exact in a browser's doubles.

    Examples
    --------
    >>> from qtrace.dashboards.inputs import lanes, time_axis
    >>> analysis = qtrace.analyze(qtrace.read_trace("samples/pc-boot-ts.log"))
    >>> lane = lanes(analysis).select("run", "root", "lane")
    >>> packed = pack_instances(analysis.views.join(lane, on=["run", "root"]), time_axis(analysis))
    >>> packed.count == analysis.views.height, packed.columns["start"]
    (True, (257, 4))
    """
    if placed.height > MAX_PACKED_INSTANCES:
        return None
    start = axis.point("new")
    # Instances without a lane or a start sort last and are left out.
    key = pl.when(pl.col("lane").is_not_null()).then(start)
    keys = placed.select(key.alias("key"), "new_seq")
    count = keys.height - keys.get_column("key").null_count()
    if count == keys.height and all(keys.get_column(c).is_sorted() for c in keys.columns):
        # The views come in new_seq order, and with a clock that never stepped back they are
        # in start order already: no sort, and no copy of the columns packed.
        in_order: pl.Expr | None = None
    else:
        order = keys.select(pl.arg_sort_by(["key", "new_seq"], nulls_last=True)).to_series()
        in_order = pl.lit(order.head(count))
    del keys

    def ordered(column: str) -> pl.Expr:
        return pl.col(column) if in_order is None else pl.col(column).gather(in_order)

    sources = sorted(set(placed.get_column("source").drop_nulls().unique().to_list()))
    packer = zlib.compressobj(ZLIB_LEVEL)
    chunks: list[bytes] = []
    spans: dict[str, tuple[int, int]] = {}
    offset = 0
    exprs = _columns(pl.col, axis, sources)
    views = placed.select(ordered("view").cast(pl.UInt64)).to_series().to_numpy()
    for name in COLUMNS:
        if name in VIEW_HALVES:
            values = _view_half(views, name)
        else:
            # Only the views' columns this one is made of, in start order: a million
            # instances never cost more than a few columns at once.
            read = sorted(set(exprs[name].meta.root_names()))
            rows = placed.select([ordered(c) for c in read])
            values = rows.select(exprs[name].alias(name)).to_series().to_numpy()
        planes, width = byte_planes(values)
        spans[name] = (offset, width)
        offset += len(planes)
        chunks.append(packer.compress(planes))
    chunks.append(packer.flush())
    text = base64.b64encode(b"".join(chunks)).decode("ascii")
    if len(text) > MAX_PACKED_CHARS:
        return None
    return Packed(count, spans, text, sources)


def read_planes(blob: bytes, offset: int, width: int, count: int) -> npt.NDArray[np.int64]:
    """The ``count`` values of one column written by ``byte_planes``."""
    planes = np.frombuffer(blob, dtype=np.uint8, count=width * count, offset=offset)
    values = np.zeros(count, dtype=np.int64)
    for place, plane in enumerate(planes.reshape(width, count)):
        values |= plane.astype(np.int64) << (8 * place)
    return values


def unpack(packed: dict[str, Any], data: str) -> pl.DataFrame:
    """The instances of a page's packed form (``to_json()``) and ``data``, decoded as its
    script decodes them.

    For tests and for reading a page back. Positions come back absolute (``start``,
    ``seq``, ``rcu``, ...; null where the instance has no such event).
    """
    blob = zlib.decompress(base64.b64decode(data))
    count = int(packed["count"])
    frame = pl.DataFrame(
        {
            name: read_planes(blob, offset, width, count)
            for name, (offset, width) in packed["columns"].items()
        }
    )

    def unzig(expr: pl.Expr) -> pl.Expr:
        return pl.when(expr % 2 == 0).then(expr // 2).otherwise(-(expr + 1) // 2)

    def optional(name: str, *, signed: bool, base: str) -> pl.Expr:
        value = pl.col(name) - 1
        value = unzig(value) if signed else value
        return pl.when(pl.col(name) == 0).then(None).otherwise(value + pl.col(base)).alias(name)

    absolute = frame.with_columns(
        pl.col("start").cum_sum(),
        unzig(pl.col("seq")).cum_sum(),
        (unzig(pl.col("viewHi")).cum_sum() * (1 << 32) + unzig(pl.col("viewLo")).cum_sum())
        .cast(pl.UInt64)
        .alias("view"),
        (unzig(pl.col("line")).cum_sum() - 1).alias("line"),
    )
    return absolute.select(
        "lane",
        "start",
        "seq",
        optional("rcu", signed=True, base="start"),
        optional("rcuSeq", signed=False, base="seq"),
        optional("destroy", signed=True, base="start"),
        optional("destroySeq", signed=False, base="seq"),
        optional("lost", signed=True, base="start"),
        optional("lostSeq", signed=False, base="seq"),
        "flags",
        "view",
        "generation",
        "source",
        pl.when(pl.col("line") >= 0).then(pl.col("line")).alias("line"),
    )
