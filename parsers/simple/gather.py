"""Gathering: fixed-width integers and strings at many byte offsets of a window, with numpy.

Records start at any byte, so fields are unaligned; each read is a gather over the window's
bytes, never a Python loop over records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

Offsets = npt.NDArray[np.int64]
CHUNK_ROWS = 1 << 15  # rows handled at a time by a gather: their data stays in the CPU cache
MAX_PADDED_STRING = 64  # strings up to this long are cut in bulk (longer ones one by one)


class Fields:
    """Fields of the bytes ``data`` (a window of the file), at offsets relative to its start.

    Examples
    --------
    >>> data = np.frombuffer(bytes(range(16)), np.uint8)
    >>> hex(int(Fields(data, "<").u32(np.array([1]))[0]))
    '0x4030201'
    """

    def __init__(self, data: npt.NDArray[np.uint8], order: str) -> None:
        self.data = data
        self.size = data.size
        self.order = order
        # Whole little-endian words: an unaligned u64 is spliced from the two it straddles.
        self._words = data[: self.size - self.size % 8].view("<u8")

    def _little_u64(self, offsets: Offsets) -> npt.NDArray[np.uint64]:
        """The 8 bytes at each offset read as a little-endian u64 (bytes past the end are 0)."""
        words = self._words
        safe_end = 8 * (words.size - 1)  # below this, both words lie inside the data
        values: npt.NDArray[np.uint64]
        if safe_end > 0:
            clipped = np.clip(offsets, 0, safe_end - 1)
            index = clipped >> 3
            shift = (clipped & 7).astype(np.uint64)
            shift <<= np.uint64(3)
            values = words[index].astype(np.uint64, copy=False)
            values >>= shift
            index += 1
            high = words[index].astype(np.uint64, copy=False)
            # high << (64 - shift), as two shifts so that a zero shift gives 0, not high.
            high <<= np.uint64(1)
            high <<= np.uint64(63) - shift
            values |= high
        else:
            values = np.zeros(offsets.size, np.uint64)
        # The last bytes lie past the last two whole words: read those directly.
        for row in np.flatnonzero(offsets >= safe_end).tolist():
            at = int(offsets[row])
            values[row] = int.from_bytes(self.data[at : at + 8].tobytes().ljust(8, b"\0"), "little")
        return values

    def read(self, offsets: Offsets, width: int) -> npt.NDArray[Any]:
        """The unsigned ``width``-byte (8 or 4) integers at ``offsets``, in native byte order.

        Offsets past the end read as if the data went on with zeros (callers mask such rows).
        """
        native = np.uint64 if width == 8 else np.uint32
        out = np.empty(offsets.size, native)
        for begin in range(0, offsets.size, CHUNK_ROWS):
            part = offsets[begin : begin + CHUNK_ROWS]
            values = self._little_u64(np.minimum(part, max(self.size - width, 0)))
            # Into a uint32 array this keeps the low 4 bytes: the first 4 in the data.
            out[begin : begin + part.size] = values
        return out.byteswap() if self.order == ">" else out

    def u64(self, offsets: Offsets) -> npt.NDArray[np.uint64]:
        return self.read(offsets, 8)

    def u32(self, offsets: Offsets) -> npt.NDArray[np.uint32]:
        return self.read(offsets, 4)

    def strings(self, starts: Offsets, lengths: Offsets) -> pl.Series:
        """The ``lengths[i]`` bytes at ``starts[i]``, as a Binary column."""
        width = int(lengths.max()) if lengths.size else 0
        data = self.data
        nonempty = lengths > 0
        last_bytes = data[np.clip(starts + lengths - 1, 0, self.size - 1)[nonempty]]
        ends_in_nul = bool((last_bytes == 0).any())
        if 0 < width <= MAX_PADDED_STRING and not ends_in_nul and self.size >= width:
            # Each string padded with NULs to one width, which numpy's fixed-width bytes type
            # (and polars reading it) strips again: one gather of rows, no Python object per
            # record. A string that really ends in NUL would lose it, hence the check above.
            windows = np.lib.stride_tricks.sliding_window_view(data, width)
            beyond = np.arange(width)
            buffer = np.empty((min(CHUNK_ROWS, starts.size), width), np.uint8)
            parts = []
            for begin in range(0, starts.size, CHUNK_ROWS):
                part_starts = starts[begin : begin + CHUNK_ROWS]
                part_lengths = lengths[begin : begin + CHUNK_ROWS]
                padded = buffer[: part_starts.size]
                near_end = part_starts > self.size - width
                padded[:] = windows[np.where(near_end, 0, part_starts)]
                padded[beyond >= part_lengths[:, None]] = 0
                for row in np.flatnonzero(near_end).tolist():
                    at, size = int(part_starts[row]), int(part_lengths[row])
                    padded[row] = 0
                    padded[row, :size] = data[at : at + size]
                parts.append(pl.Series(padded.view(f"S{width}").ravel()))
            return pl.concat(parts, rechunk=False)
        # Variable-length slices: numpy has no ragged gather, so strings are cut one by one.
        ends = (starts + lengths).tolist()
        cut = [data[a:b].tobytes() for a, b in zip(starts.tolist(), ends, strict=True)]
        return pl.Series(cut, dtype=pl.Binary)
