"""Loss markers: the ``qtrace_unreadable`` rows that say where the reader could not read the file.

Bytes skipped over damage, records of an event id no (trusted) mapping names, a record cut
short at the end of the file, a file that shrank or changed while it was read: each is a
place where events may have been lost, and the model reads a marker as a hole there. One
row per kind of loss between two rows that were read, with counts (a run of 412 records of
unknown ids, or damage in three places, between the same two events is one hole).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

from qtrace.events import UNREADABLE

DAMAGE = "damage"
UNKNOWN_ID = "unknown id"
CUT = "cut"
SHRUNK = "shrunk"
CHANGED = "changed"
SHOWN_IDS = 4
# Up to this many markers are spliced in between slices of the table (no copy of it); more,
# and the whole table is sorted by offset instead.
SPLICED_MARKERS = 64


@dataclass
class Loss:
    """One place where records were lost: its kind, where it starts and how much it holds."""

    kind: str
    offset: int  # the first byte (or record) lost
    count: int = 1  # records (unknown ids) or places (damage)
    size: int = 0  # bytes
    gap: int | None = None  # rows read before it; None until placed
    reasons: list[str] = field(default_factory=list)  # damage: what was wrong, first first
    ids: set[int] = field(default_factory=set)  # unknown ids

    def merge(self, other: Loss) -> None:
        self.count += other.count
        self.size += other.size
        self.reasons.extend(r for r in other.reasons if r not in self.reasons)
        self.ids |= other.ids

    def text(self) -> str:
        """What was lost, in words (the marker's ``args``)."""
        if self.kind == DAMAGE:
            places = f" in {self.count} places" if self.count > 1 else ""
            return f"damaged records: {self.size} bytes skipped{places} ({self.reasons[0]})"
        if self.kind == UNKNOWN_ID:
            ids = sorted(self.ids)
            shown = ", ".join(f"{eid:#x}" for eid in ids[:SHOWN_IDS])
            more = ", ..." if len(ids) > SHOWN_IDS else ""
            plural = "s" if len(ids) > 1 else ""
            records = "record" if self.count == 1 else "records"
            return f"{self.count} {records} of unknown event id{plural} {shown}{more}"
        return self.reasons[0]


@dataclass
class Losses:
    """Every loss of one file, placed among the rows that were read when the table is built."""

    items: list[Loss] = field(default_factory=list)

    def add(self, loss: Loss) -> None:
        self.items.append(loss)

    def add_unknown(
        self,
        gaps: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.int64],
        eids: npt.NDArray[np.uint64],
        sizes: npt.NDArray[np.int64],
    ) -> None:
        """Records of unknown ids, in file order, with the rows read before each: a run that
        no row read interrupts becomes one loss."""
        if not gaps.size:
            return
        starts = np.flatnonzero(np.diff(gaps, prepend=gaps[0] - 1))
        counts = np.diff(starts, append=gaps.size)
        total = np.add.reduceat(sizes, starts)
        lowest = np.minimum.reduceat(eids, starts)
        highest = np.maximum.reduceat(eids, starts)
        rows = zip(starts.tolist(), counts.tolist(), total.tolist(), strict=True)
        for (start, count, size), low, high in zip(rows, lowest, highest, strict=True):
            ids = (
                {int(low)} if low == high else set(np.unique(eids[start : start + count]).tolist())
            )
            self.items.append(
                Loss(UNKNOWN_ID, int(offsets[start]), count, size, int(gaps[start]), ids=ids)
            )

    def __bool__(self) -> bool:
        return bool(self.items)

    def frame(self, read_offsets: npt.NDArray[np.int64]) -> pl.DataFrame:
        """The marker rows (``offset``, ``event``, ``args``), one per kind of loss in each gap
        between the rows read (whose offsets, ascending, are ``read_offsets``)."""
        merged: dict[tuple[int, str], Loss] = {}
        for loss in sorted(self.items, key=lambda item: item.offset):
            gap = loss.gap
            if gap is None:
                gap = int(np.searchsorted(read_offsets, loss.offset))
            key = (gap, loss.kind)
            if key in merged:
                merged[key].merge(loss)
            else:
                merged[key] = Loss(
                    loss.kind, loss.offset, loss.count, loss.size, gap, [*loss.reasons], {*loss.ids}
                )
        markers = sorted(merged.values(), key=lambda item: item.offset)
        return pl.DataFrame(
            {
                "offset": [loss.offset for loss in markers],
                "event": [UNREADABLE] * len(markers),
                "args": [loss.text() for loss in markers],
            },
            schema={"offset": pl.Int64, "event": pl.Categorical, "args": pl.String},
        )


def with_markers(frame: pl.DataFrame, markers: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (rows in file order, numbered by ``seq``) with ``markers`` among its rows by
    offset, all numbered again.

    A marker has no clock of its own: it takes the time of the row before it (or after it,
    at the start), so that a merge of files by time keeps it in place.
    """
    places = np.searchsorted(
        frame.get_column("offset").to_numpy(), markers.get_column("offset").to_numpy()
    )
    if frame.height:
        neighbour = pl.Series(np.maximum(places - 1, 0), dtype=pl.get_index_type())
        markers = markers.with_columns(ts_ns=frame.get_column("ts_ns").gather(neighbour))
    markers = markers.select(
        (pl.col(name) if name in markers.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in frame.schema.items()
    )
    if markers.height > SPLICED_MARKERS:
        return (
            pl.concat([frame, markers])
            .sort("offset", maintain_order=True)
            .with_columns(seq=pl.int_range(pl.len(), dtype=pl.Int64))
        )
    pieces = []
    start = 0
    for index, place in enumerate(places.tolist()):
        if place > start:
            # Shifted by the markers before it, not numbered anew: the piece keeps the
            # table's chunks in every column (its seq is its row number).
            pieces.append(frame.slice(start, place - start).with_columns(pl.col("seq") + index))
            start = place
        pieces.append(markers.slice(index, 1).with_columns(seq=pl.lit(place + index, pl.Int64)))
    if start < frame.height:
        pieces.append(frame.slice(start).with_columns(pl.col("seq") + len(places)))
    return pl.concat(pieces, rechunk=False)
