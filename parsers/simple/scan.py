"""Sound event records back to back in a window, with their fixed fields.

``scan`` walks event records from an offset for as long as each is sound (type word 1, a
length in range, wholly inside the window) and returns their header fields and their first
two argument words (a FlatView event's view and root). The C kernel does it in one pass; the
numpy path (the reference it must match) walks irregular stretches in Python, checks runs of
equal-sized records in bulk, then gathers the fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
from qtrace.parsers.simple import kernel
from qtrace.parsers.simple.file import Window
from qtrace.parsers.simple.gather import Fields, Offsets
from qtrace.parsers.simple.layout import (
    EVENT_HEADER_BYTES,
    MAX_EVENT_LENGTH,
    MIN_EVENT_LENGTH,
    RECORD_EVENT,
)

RUN_TRIGGER = 8  # equal-sized records in a row before a bulk run check pays for itself
RUN_FIRST_CHUNK = 256


@dataclass(frozen=True)
class Records:
    """Event records in file order: entry ``i`` of every array belongs to record ``i``.

    ``a0`` and ``a1`` are the first two u64 argument words (0 where the record is too short
    for them); ``offset`` is the record's file offset.
    """

    offset: npt.NDArray[np.int64]
    eid: npt.NDArray[np.uint64]
    ts: npt.NDArray[np.uint64]
    length: npt.NDArray[np.uint32]
    pid: npt.NDArray[np.uint32]
    a0: npt.NDArray[np.uint64]
    a1: npt.NDArray[np.uint64]

    def __len__(self) -> int:
        return int(self.offset.size)

    def take(self, rows: npt.NDArray[np.int64] | npt.NDArray[np.bool_] | slice) -> Records:
        """Some of the records (a slice shares the arrays; an index array copies them)."""
        return Records(*(getattr(self, name)[rows] for name in FIELDS))

    @staticmethod
    def concat(parts: list[Records]) -> Records:
        """Several sets of records, one after the other."""
        return Records(*(np.concatenate([getattr(p, name) for p in parts]) for name in FIELDS))

    def copy(self) -> Records:
        """The records in arrays of their own (a scan's may be reused by the next)."""
        return Records(*(getattr(self, name).copy() for name in FIELDS))

    @property
    def end(self) -> int:
        """The offset just past the last record."""
        return int(self.offset[-1]) + 8 + int(self.length[-1])


FIELDS = tuple(f.name for f in fields(Records))


class Scratch:
    """Arrays the kernel's scans write into, reused from one scan to the next: what a caller
    keeps of a scan's records must be copied out (``Records.copy``, ``Records.take``)."""

    def __init__(self) -> None:
        self.arrays = _empty(0)

    def get(self, count: int) -> tuple[npt.NDArray[Any], ...]:
        if self.arrays[0].size < count:
            self.arrays = _empty(count)
        return self.arrays


def scan(
    window: Window,
    start: int,
    stop: int,
    order: str,
    max_records: int,
    scratch: Scratch | None = None,
) -> Records:
    """The sound event records back to back from ``start``, ending at or before ``stop``.

    Parameters
    ----------
    window
        Holds the bytes ``[start, stop)``.
    start, stop
        File offsets.
    order
        The records' byte order ('<' or '>').
    max_records
        At most this many records.
    scratch
        Arrays to write the records into, instead of new ones (the kernel only).
    """
    base = window.base
    kernel_module = kernel.get()
    if kernel_module is not None:
        capacity = max(0, min(max_records, (stop - start) // EVENT_HEADER_BYTES))
        arrays = _empty(capacity) if scratch is None else scratch.get(capacity)
        count = kernel_module.scan(
            window.buffer(), base, start - base, stop - base, order == ">", capacity, *arrays
        )
        offset, eid, ts, length, pid, a0, a1 = (a[:count] for a in arrays)
        return Records(offset, eid, ts, length, pid, a0, a1)
    pieces = _walk(window.view, start - base, stop - base, order, max_records)
    fields_of = Fields(window.data, order)
    parts = [
        _gather_run(window.data, order, *piece, base)
        if isinstance(piece, tuple)
        else _gather(fields_of, piece, base)
        for piece in pieces
    ]
    return parts[0] if len(parts) == 1 else Records.concat(parts)


def _empty(count: int) -> tuple[npt.NDArray[Any], ...]:
    return (
        np.empty(count, np.int64),
        np.empty(count, np.uint64),
        np.empty(count, np.uint64),
        np.empty(count, np.uint32),
        np.empty(count, np.uint32),
        np.empty(count, np.uint64),
        np.empty(count, np.uint64),
    )


# Records one by one (their offsets), or a run of equal-sized ones: (start, stride, count).
Piece = Offsets | tuple[int, int, int]


def _walk(data: memoryview, start: int, stop: int, order: str, max_records: int) -> list[Piece]:
    """Where the sound event records back to back from ``start`` are (relative to ``data``)."""
    header = struct.Struct(order + "Q16xI").unpack_from
    singles: list[int] = []
    parts: list[Piece] = []
    pos = start
    count = 0
    prev_bytes = -1
    same = 0
    while count < max_records and stop - pos >= EVENT_HEADER_BYTES:
        rtype, length = header(data, pos)
        record_bytes = 8 + length
        if (
            rtype != RECORD_EVENT
            or not MIN_EVENT_LENGTH <= length <= MAX_EVENT_LENGTH
            or pos + record_bytes > stop
        ):
            break
        singles.append(pos)
        pos += record_bytes
        count += 1
        if record_bytes != prev_bytes:
            prev_bytes, same = record_bytes, 0
            continue
        same += 1
        if same >= RUN_TRIGGER:
            same = 0
            rows = _run_length(data, pos, stop, order, record_bytes, max_records - count)
            if rows:
                parts.append(np.array(singles, np.int64))
                singles.clear()
                parts.append((pos, record_bytes, rows))
                pos += rows * record_bytes
                count += rows
    parts.append(np.array(singles, np.int64))
    return parts


def _run_length(
    data: memoryview, start: int, stop: int, order: str, stride: int, limit: int
) -> int:
    """How many sound event records of ``stride`` bytes follow back to back from ``start``.

    Checks grow 16-fold (galloping), so a short run costs one small check and a long one a
    handful of large ones.
    """
    rows_left = min((stop - start) // stride, limit)
    total = 0
    chunk = RUN_FIRST_CHUNK
    while rows_left > 0:
        rows = min(chunk, rows_left)
        base = start + total * stride
        types = np.ndarray((rows,), order + "u8", buffer=data, offset=base, strides=(stride,))
        lengths = np.ndarray(
            (rows,), order + "u4", buffer=data, offset=base + 24, strides=(stride,)
        )
        good = (types == RECORD_EVENT) & (lengths == stride - 8)
        if not good.all():
            return total + int(good.argmin())
        total += rows
        rows_left -= rows
        chunk *= 16
    return total


def _gather(fields_of: Fields, offsets: Offsets, base: int) -> Records:
    """The fixed fields of the records at ``offsets`` (relative to the window)."""
    length = fields_of.u32(offsets + 24)
    a0 = fields_of.u64(offsets + 32)
    a1 = fields_of.u64(offsets + 40)
    a0[length < MIN_EVENT_LENGTH + 8] = 0
    a1[length < MIN_EVENT_LENGTH + 16] = 0
    return Records(
        offsets + base,
        fields_of.u64(offsets + 8),
        fields_of.u64(offsets + 16),
        length,
        fields_of.u32(offsets + 28),
        a0,
        a1,
    )


def _gather_run(
    data: npt.NDArray[np.uint8], order: str, start: int, stride: int, count: int, base: int
) -> Records:
    """The fixed fields of a run of ``count`` records of ``stride`` bytes from ``start``:
    strided views of the window, copied into native arrays."""

    def column(delta: int, width: int) -> npt.NDArray[Any]:
        if delta + width > stride:  # the records are too short for it
            return np.zeros(count, np.uint64 if width == 8 else np.uint32)
        view = np.ndarray(
            (count,), f"{order}u{width}", buffer=data, offset=start + delta, strides=(stride,)
        )
        return view.astype(np.uint64 if width == 8 else np.uint32)

    offset = np.arange(start + base, start + base + count * stride, stride, dtype=np.int64)
    return Records(
        offset, column(8, 8), column(16, 8), column(24, 4), column(28, 4), column(32, 8),
        column(40, 8),
    )  # fmt: skip
