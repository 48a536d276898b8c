"""Reader for QEMU's ``simple`` trace backend: binary files, format version 4, either byte order.

Record boundaries are walked in Python only where they are irregular; runs of equal-sized
records (a FlatView-only trace is one long run of 48-byte records) are checked and decoded in
bulk with numpy over a memory map, a block of records at a time, letting go of the mapped
pages behind, so memory stays near the size of the table however large the file. Arguments
of other events are rendered once per distinct value tuple and joined back, which reproduces
QEMU's ``scripts/simpletrace.py`` text exactly (a FlatView event's are its view and root).

What happens to records that cannot be fully decoded (one warning per kind, with an offset):

- an event no declaration describes (no ``trace-events-all``, or not in it): kept if selected,
  with ``args`` null; the walk skips it by its length field;
- a record that does not fit its declaration (wrong build's file): kept, ``args``/``view``/
  ``root`` null;
- an event id that no mapping record names: skipped, its bytes counted in ``bytes_skipped``;
- damage (bad record type, length out of range, a length running past the end while sound
  records follow): skipped up to the next offset where three sound records start, bytes
  counted; a last record cut short by the end of the file is dropped and reported.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from qtrace.parsers.source import OpenedInput
from qtrace.parsers.trace_events_decl import (
    BUILTIN_DECLS,
    DEFAULT_TRACE_EVENTS,
    EventDecl,
    load_trace_events,
)

from qtrace.errors import InputError
from qtrace.events import (
    DROPPED_EVENT,
    FLATVIEW_EVENTS,
    EventSelection,
    ParsedInput,
    conform,
    empty_events,
)

HEADER_EVENT_ID = 0xFFFF_FFFF_FFFF_FFFF
MAGIC = 0xF2B1_77CB_0AA4_29B4
SUPPORTED_VERSION = 4
OLD_VERSIONS = (0, 2, 3)
DROPPED_EVENT_ID = 0xFFFF_FFFF_FFFF_FFFE
RECORD_MAPPING = 0
RECORD_EVENT = 1

HEADER_BYTES = 24  # header id, magic, version
EVENT_HEADER_BYTES = 32  # type word, event id, timestamp, length, pid
MAPPING_HEADER_BYTES = 20  # type word, event id, name length
MIN_EVENT_LENGTH = 24  # the length field counts id, timestamp, length and pid (not the type word)
# QEMU allows 10 arguments and cuts strings at 512 bytes: a longer record is a damaged one.
MAX_EVENT_LENGTH = 24 + 10 * (4 + 512)
MAX_NAME_BYTES = 1024
RUN_TRIGGER = 8  # equal-sized records in a row before a bulk run check pays for itself
RUN_FIRST_CHUNK = 256
RESYNC_CHAIN = 3  # records that must follow a resync candidate for it to be believed
MAX_PADDED_STRING = 64  # strings up to this long are cut in bulk (longer ones one by one)
CHUNK_ROWS = 1 << 15  # records handled at a time by bulk reads: their data stays in cache
BLOCK_RECORDS = 1 << 19  # records decoded at a time: bounds the temporaries (and their litter)
RELEASE_BYTES = 64 << 20  # the walk lets go of the pages behind it every this many bytes
# ... except the file's first bytes: decoding starts there right after the walk, and faulting
# a small file's pages in twice cost a fifth of its read.
WALK_KEEPS_BYTES = 128 << 20

DROPPED_DECL = EventDecl(DROPPED_EVENT, (("uint64_t", "num_events_dropped"),))

Offsets = npt.NDArray[np.int64]
_BASE_COLUMNS = ("offset", "ts_ns", "pid", "event")
Layout = tuple[tuple[bool, str], ...]
# Argument texts remembered across blocks, per layout (a tuple repeats in many blocks); the
# memory this takes is capped by forgetting them all now and then.
Rendered = dict[Layout, dict[tuple[Any, ...], str]]
RENDERED_LIMIT = 1 << 20


def _read_header(mm: mmap.mmap, size: int, name: str) -> str:
    """Check the file header; return the struct byte-order character it was written in."""
    if size < HEADER_BYTES:
        raise InputError(
            f"{name}: too short for a QEMU simple trace ({size} bytes; the header alone is "
            f"{HEADER_BYTES})"
        )
    for order in ("<", ">"):
        header_id, magic, version = struct.unpack_from(order + "QQQ", mm, 0)
        if header_id == HEADER_EVENT_ID and magic == MAGIC:
            break
    else:
        raise InputError(f"{name}: not a QEMU simple trace (bad magic)")
    if version in OLD_VERSIONS:
        raise InputError(
            f"{name}: unsupported simple trace version {version} (qtrace reads version 4)"
        )
    if version != SUPPORTED_VERSION:
        raise InputError(f"{name}: unknown simple trace version {version} (qtrace reads version 4)")
    return order


# A run of equal-sized records back to back: (first offset, record bytes, count).
Run = tuple[int, int, int]


@dataclass
class _Walk:
    """Where the records are, and what was damaged on the way."""

    pieces: list[Offsets | Run] = field(default_factory=list)  # event records, in file order
    mappings: list[tuple[int, int, str]] = field(default_factory=list)  # offset, id, name
    damaged_first: int = -1
    damaged_places: int = 0
    damaged_bytes: int = 0
    damage_reason: str = ""
    truncated: str = ""
    truncated_bytes: int = 0


def _run_length(mm: mmap.mmap, size: int, order: str, start: int, stride: int) -> int:
    """How many well-formed event records of ``stride`` bytes follow back to back from ``start``.

    Checks grow 16-fold (galloping), so a short run costs one small check and a whole
    FlatView file a handful of large ones.
    """
    rows_left = (size - start) // stride
    total = 0
    chunk = RUN_FIRST_CHUNK
    while rows_left > 0:
        rows = min(chunk, rows_left)
        base = start + total * stride
        types = np.ndarray((rows,), order + "u8", buffer=mm, offset=base, strides=(stride,))
        lengths = np.ndarray((rows,), order + "u4", buffer=mm, offset=base + 24, strides=(stride,))
        good = (types == RECORD_EVENT) & (lengths == stride - 8)
        if not good.all():
            return total + int(good.argmin())
        # Checked: decoding maps them again.
        _release(mm, max(base, WALK_KEEPS_BYTES), base + rows * stride)
        total += rows
        rows_left -= rows
        chunk = min(chunk * 16, BLOCK_RECORDS)
    return total


class _Walker:
    """Walk record boundaries from the first record to the end of the file."""

    def __init__(self, mm: mmap.mmap, size: int, order: str) -> None:
        self.mm = mm
        self.size = size
        self.order = order
        self.event_header = struct.Struct(order + "QQQII").unpack_from
        self.mapping_header = struct.Struct(order + "QQI").unpack_from
        self.type_word = struct.Struct(order + "Q").unpack_from
        self.event_pattern = struct.pack(order + "Q", RECORD_EVENT)
        self.walk = _Walk()
        self.released = 0  # pages before this offset were let go
        self._known: set[int] = {DROPPED_EVENT_ID}
        self._known_count = 0

    def _known_ids(self) -> set[int]:
        if self._known_count != len(self.walk.mappings):  # mappings were added since
            self._known = {eid for _, eid, _ in self.walk.mappings} | {DROPPED_EVENT_ID}
            self._known_count = len(self.walk.mappings)
        return self._known

    def _plausible_from(self, pos: int, known: set[int]) -> bool:
        """Whether a record chain that looks sound starts at ``pos`` (used to resynchronise)."""
        for index in range(RESYNC_CHAIN):
            left = self.size - pos
            if left == 0:
                return index > 0
            if left < EVENT_HEADER_BYTES:
                return False
            rtype, eid, _ts, length, _pid = self.event_header(self.mm, pos)
            if rtype == RECORD_EVENT:
                if not MIN_EVENT_LENGTH <= length <= MAX_EVENT_LENGTH or eid not in known:
                    return False
                pos += 8 + length
            elif rtype == RECORD_MAPPING and index > 0:
                _t, _eid, name_len = self.mapping_header(self.mm, pos)
                if not 0 < name_len <= MAX_NAME_BYTES:
                    return False
                pos += MAPPING_HEADER_BYTES + name_len
            else:
                return False
            if pos > self.size:
                return False
        return True

    def _next_sound(self, off: int) -> int:
        """The first offset after ``off`` where sound records start again (or the file end)."""
        known = self._known_ids()
        candidate = off + 1
        while True:
            # mmap.find runs in C; every failed candidate moves on by one byte, so this ends.
            candidate = self.mm.find(self.event_pattern, candidate)
            if candidate < 0:
                return self.size
            if self._plausible_from(candidate, known):
                return candidate
            candidate += 1

    def _resync(self, off: int, reason: str, resume: int | None = None) -> int:
        """Skip a damaged record; return where reading resumes."""
        walk = self.walk
        if walk.damaged_first < 0:
            walk.damaged_first = off
            walk.damage_reason = reason
        walk.damaged_places += 1
        resume = self._next_sound(off) if resume is None else resume
        walk.damaged_bytes += resume - off
        return resume

    def _damaged(self, off: int, reason: str, singles: list[int], single_end: int) -> int:
        """Resynchronise after damage at ``off``; return where reading resumes.

        A wrong but plausible length in the record before lands the walk inside the data: when
        sound records start within that record's claimed extent, it is the damaged one.
        """
        if singles and single_end == off:
            previous = singles[-1]
            resume = self._next_sound(previous)
            if resume < off:
                singles.pop()
                return self._resync(previous, "its length runs into the records after it", resume)
        return self._resync(off, reason)

    def _past_end(self, off: int, needed: int) -> int | None:
        """A record claims more bytes than the file has: a cut last record, or a bad length.

        Returns where to resume after a bad length, or None when the file was cut here.
        """
        resume = self._next_sound(off)
        if resume < self.size:
            return self._resync(off, f"record of {needed} bytes runs past the end", resume)
        self._cut(off, needed)
        return None

    def _cut(self, off: int, needed: int) -> None:
        have = self.size - off
        self.walk.truncated = (
            f"last record at offset {off} is cut short ({have} of {needed} bytes); ignored"
            if needed > have
            else f"{have} stray bytes at offset {off} at the end of the file; ignored"
        )
        self.walk.truncated_bytes = have

    def run(self, start: int) -> _Walk:
        walk = self.walk
        singles: list[int] = []
        append = singles.append
        size = self.size
        off = start
        prev_bytes = -1
        same = 0
        single_end = -1  # where the last record kept one at a time ends
        while off < size:
            if off - self.released >= RELEASE_BYTES:
                self.released = _release(self.mm, max(self.released, WALK_KEEPS_BYTES), off)
            left = size - off
            if left >= EVENT_HEADER_BYTES:
                rtype, _eid, _ts, length, _pid = self.event_header(self.mm, off)
            elif left >= 8:
                rtype, length = self.type_word(self.mm, off)[0], -1
            else:
                self._cut(off, 8)
                break
            if rtype == RECORD_EVENT:
                if length < 0:
                    self._cut(off, EVENT_HEADER_BYTES)
                    break
                if not MIN_EVENT_LENGTH <= length <= MAX_EVENT_LENGTH:
                    reason = f"event length {length} out of range"
                    off = self._damaged(off, reason, singles, single_end)
                    continue
                record_bytes = 8 + length
                if off + record_bytes > size:
                    resume = self._past_end(off, record_bytes)
                    if resume is None:
                        break
                    off = resume
                    continue
                append(off)
                off += record_bytes
                single_end = off
                if record_bytes != prev_bytes:
                    prev_bytes, same = record_bytes, 0
                    continue
                same += 1
                if same >= RUN_TRIGGER:
                    same = 0
                    rows = _run_length(self.mm, size, self.order, off, record_bytes)
                    if rows:
                        walk.pieces.append(np.array(singles, np.int64))
                        singles.clear()
                        end = off + rows * record_bytes
                        walk.pieces.append((off, record_bytes, rows))
                        off = end
            elif rtype == RECORD_MAPPING:
                if left < MAPPING_HEADER_BYTES:
                    self._cut(off, MAPPING_HEADER_BYTES)
                    break
                _t, eid, name_len = self.mapping_header(self.mm, off)
                if not 0 < name_len <= MAX_NAME_BYTES:
                    reason = f"event name length {name_len} out of range"
                    off = self._damaged(off, reason, singles, single_end)
                    continue
                end = off + MAPPING_HEADER_BYTES + name_len
                if end > size:
                    resume = self._past_end(off, end - off)
                    if resume is None:
                        break
                    off = resume
                    continue
                event_name = self.mm[off + MAPPING_HEADER_BYTES : end].decode("utf-8", "replace")
                walk.mappings.append((off, eid, event_name))
                off = end
            else:
                reason = f"unknown record type {rtype:#x}"
                off = self._damaged(off, reason, singles, single_end)
        if singles:
            walk.pieces.append(np.array(singles, np.int64))
        return walk


class _Fields:
    """Read fixed-width integers at arbitrary byte offsets of the file, many at a time."""

    def __init__(self, mm: mmap.mmap, size: int, order: str) -> None:
        self.mm = mm
        self.size = size
        self.order = order
        self._words: npt.NDArray[np.uint64] | None = None

    def strided(self, start: int, stride: int, count: int, width: int) -> npt.NDArray[Any]:
        """``count`` integers every ``stride`` bytes from ``start``, in file byte order.

        A view of the file: assigning it into a native array converts the byte order.
        """
        dtype = f"{self.order}u{width}"
        return np.ndarray((count,), dtype, buffer=self.mm, offset=start, strides=(stride,))

    def _little_u64(self, offsets: Offsets) -> npt.NDArray[np.uint64]:
        """The 8 bytes at each offset read as a little-endian u64 (bytes past the end are 0).

        Records start at any byte, so each value is spliced from the two aligned words it
        straddles: two plain gathers instead of one pass per byte phase.
        """
        if self._words is None:
            self._words = np.frombuffer(self.mm, "<u8", count=self.size // 8).astype(
                np.uint64, copy=False
            )
        words = self._words
        safe_end = 8 * (words.size - 1)  # below this, both words lie inside the view
        clipped = np.minimum(offsets, safe_end - 1)
        index = clipped >> 3
        shift = (clipped & 7).astype(np.uint64)
        shift <<= np.uint64(3)
        values: npt.NDArray[np.uint64] = words[index]
        values >>= shift
        index += 1
        high = words[index]
        # high << (64 - shift), done as two shifts so that a zero shift gives 0, not high.
        high <<= np.uint64(1)
        high <<= np.uint64(63) - shift
        values |= high
        # The last bytes of the file lie past the last two whole words: read those directly.
        for row in np.flatnonzero(offsets >= safe_end).tolist():
            at = int(offsets[row])
            values[row] = int.from_bytes(self.mm[at : at + 8].ljust(8, b"\0"), "little")
        return values

    def read(self, offsets: Offsets, width: int) -> npt.NDArray[Any]:
        """The unsigned ``width``-byte integers at ``offsets``, in native byte order."""
        native = np.uint64 if width == 8 else np.uint32
        out = np.empty(offsets.size, native)
        # In slices, so that the temporaries of the splice stay in the CPU cache.
        for begin in range(0, offsets.size, CHUNK_ROWS):
            part = offsets[begin : begin + CHUNK_ROWS]
            # Reads past the end only happen for records too short for their declaration
            # (masked out by the caller); clamping keeps them inside the file.
            values = self._little_u64(np.minimum(part, self.size - width))
            # Into a uint32 array this keeps the low 4 bytes: the first 4 in the file.
            out[begin : begin + part.size] = values
        return out.byteswap() if self.order == ">" else out


class _Records:
    """A set of event records: runs keep their shape so fields are read as strided views."""

    def __init__(self, fields: _Fields, pieces: list[Offsets | Run]) -> None:
        self.fields = fields
        self.pieces = pieces
        self._offsets: Offsets | None = None  # computed once: every layout group takes rows

    @property
    def count(self) -> int:
        return sum(p[2] if isinstance(p, tuple) else p.size for p in self.pieces)

    def offsets(self) -> Offsets:
        if self._offsets is None:
            self._offsets = self._all_offsets()
        return self._offsets

    def _all_offsets(self) -> Offsets:
        parts = [
            np.arange(p[0], p[0] + p[1] * p[2], p[1], dtype=np.int64) if isinstance(p, tuple) else p
            for p in self.pieces
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def read_many(self, wanted: list[tuple[int, int]]) -> list[npt.NDArray[Any]]:
        """Several ``(delta, width)`` fields of every record, in one pass over the file."""
        natives = [np.uint64 if width == 8 else np.uint32 for _, width in wanted]
        if len(self.pieces) == 1 and not isinstance(self.pieces[0], tuple):
            return [self.fields.read(self.pieces[0] + delta, w) for delta, w in wanted]
        outs = [np.zeros(self.count, native) for native in natives]
        # Scattered records are gathered in one call (many small calls cost more than the
        # reads); runs are copied from strided views.
        scattered: list[Offsets] = []
        slots: list[slice] = []
        begin = 0
        for p in self.pieces:
            if not isinstance(p, tuple):
                scattered.append(p)
                slots.append(slice(begin, begin + p.size))
                begin += p.size
                continue
            start, stride, count = p
            # A slice of the run at a time, every field from it while it is in the CPU cache
            # (one field after the other over a whole large run reads the file many times).
            for first in range(0, count, CHUNK_ROWS):
                rows = min(CHUNK_ROWS, count - first)
                at = begin + first
                for out, (delta, width) in zip(outs, wanted, strict=True):
                    if delta + width <= stride:  # else too short for it: masked out anyway
                        out[at : at + rows] = self.fields.strided(
                            start + first * stride + delta, stride, rows, width
                        )
            begin += count
        if scattered:
            where = np.concatenate(scattered)
            for out, (delta, width) in zip(outs, wanted, strict=True):
                values = self.fields.read(where + delta, width)
                at = 0
                for slot in slots:
                    size = slot.stop - slot.start
                    out[slot] = values[at : at + size]
                    at += size
        return outs

    def take(self, rows: npt.NDArray[Any]) -> _Records:
        return _Records(self.fields, [self.offsets()[rows]])


@dataclass
class _Tally:
    """Records of one kind of trouble, over every block: how many, and the first."""

    count: int = 0
    first_offset: int = -1
    first_event: str = ""

    def add(self, count: int, offset: int, event: str = "") -> None:
        if count and self.count == 0:
            self.first_offset, self.first_event = offset, event
        self.count += count


@dataclass
class _Decoded:
    """What the blocks decoded: their frames, and what could not be decoded in them."""

    frames: list[pl.DataFrame] = field(default_factory=list)
    dropped_events: int = 0
    bytes_skipped: int = 0
    unmapped: _Tally = field(default_factory=_Tally)  # event ids no mapping names
    undeclared: dict[str, int] = field(default_factory=dict)  # records kept without args
    mismatched: _Tally = field(default_factory=_Tally)  # records that do not fit their decl
    rendered: Rendered = field(default_factory=dict)  # argument texts, for the next blocks
    trace_events_read: bool = False  # whether declarations came from a trace-events file

    def warnings(self, name: str) -> list[str]:
        """One line per kind of trouble."""
        out = []
        if self.unmapped.count:
            out.append(
                f"{name}: {self.unmapped.count} records (first at offset "
                f"{self.unmapped.first_offset}) have event ids no mapping record names; skipped"
            )
        if self.undeclared:
            why = (
                "not declared in the trace-events file"
                if self.trace_events_read
                else "their argument types need the build's trace-events-all (--trace-events)"
            )
            out.append(
                f"{name}: {sum(self.undeclared.values())} records of {len(self.undeclared)} "
                f"event types kept without arguments: {why} (e.g. {min(self.undeclared)})"
            )
        if self.mismatched.count:
            out.append(
                f"{name}: {self.mismatched.count} records (first {self.mismatched.first_event} "
                f"at offset {self.mismatched.first_offset}) do not match their declaration; "
                "kept without arguments (is the trace-events file from the build that wrote "
                "this trace?)"
            )
        return out


def _names_by_id(mappings: list[tuple[int, int, str]]) -> dict[int, list[tuple[int, str]]]:
    """Every (offset, name) each event id is mapped to, in file order."""
    by_id: dict[int, list[tuple[int, str]]] = {}
    for off, eid, name in mappings:
        by_id.setdefault(eid, []).append((off, name))
    by_id[DROPPED_EVENT_ID] = [(0, DROPPED_EVENT)]
    return by_id


# Up to this many distinct values, one numpy comparison per value beats a hash join.
# (Distinct values are found with unique(maintain_order=True): hashing, where plain unique()
# sorts the whole column.)
FEW_VALUES = 12


def _codes(values: npt.NDArray[np.uint64], distinct: list[int] | pl.Series) -> pl.Series:
    """Each value's position in ``distinct`` (which holds every value that occurs)."""
    if len(distinct) <= FEW_VALUES:
        codes = np.zeros(values.size, np.uint32)
        for number, value in enumerate(distinct):
            if number:
                codes[values == value] = number
        return pl.Series("code", codes)
    numbers = pl.DataFrame(
        {"value": distinct, "code": np.arange(len(distinct), dtype=np.uint32)},
        schema={"value": pl.UInt64, "code": pl.UInt32},
    )
    # A join probes faster than replace_strict when there are many distinct values.
    looked_up = (
        pl.LazyFrame({"value": values})
        .join(numbers.lazy(), on="value", how="left", maintain_order="left")
        .select("code")
        .collect(engine="in-memory")
    )
    return looked_up.get_column("code")


def _event_names(
    eids: npt.NDArray[np.uint64],
    offsets: Offsets,
    by_id: dict[int, list[tuple[int, str]]],
    present: list[int],
) -> pl.Series:
    """Each record's event name, through the mapping records (``present``: the ids used)."""
    names = pl.Series("event", [by_id[eid][-1][1] for eid in present], pl.Categorical).gather(
        _codes(eids, present)
    )
    for eid in present:
        entries = by_id[eid]
        if len({name for _, name in entries}) == 1:
            continue
        # An id mapped twice to different names: each record takes the mapping in force at
        # its offset (the last one before it, or the first one if none precedes it).
        rows = np.flatnonzero(eids == eid)
        map_offsets = np.array([off for off, _ in entries], np.int64)
        which = np.maximum(np.searchsorted(map_offsets, offsets[rows], side="right") - 1, 0)
        chosen = [entries[i][1] for i in which.tolist()]
        names = names.scatter(rows, pl.Series(chosen, dtype=pl.Categorical))
    return names


def _render_args(layout: Layout, values: pl.DataFrame, rendered: Rendered) -> list[str]:
    """simpletrace.py's text for each row of distinct argument values.

    A Python loop over *distinct* tuples only: ``repr`` of bytes is the exact text QEMU's
    reader prints for strings, and no polars expression reproduces it.
    """
    known = rendered.setdefault(layout, {})
    if len(known) > RENDERED_LIMIT:
        known.clear()
    texts = []
    for row in values.iter_rows():
        text = known.get(row)
        if text is None:
            text = known[row] = " ".join(
                f"{name}={value!r}" if is_string else f"{name}=0x{value:x}"
                for (is_string, name), value in zip(layout, row, strict=True)
            )
        texts.append(text)
    return texts


def _cut_strings(fields: _Fields, starts: Offsets, lengths: Offsets) -> pl.Series:
    """The ``lengths[i]`` bytes at ``starts[i]`` of the file, as a Binary column."""
    width = int(lengths.max()) if lengths.size else 0
    file_bytes = np.frombuffer(fields.mm, np.uint8)
    nonempty = lengths > 0
    last_bytes = file_bytes[np.minimum(starts + lengths - 1, fields.size - 1)[nonempty]]
    ends_in_nul = bool((last_bytes == 0).any())
    if 0 < width <= MAX_PADDED_STRING and not ends_in_nul:
        # Each string padded with NULs to one width, which numpy's fixed-width bytes type
        # (and polars reading it) strips again: one gather of rows, no Python object per
        # record. A string that really ends in NUL would lose it, hence the check above.
        windows = np.lib.stride_tricks.sliding_window_view(file_bytes, width)
        beyond = np.arange(width)
        # In slices through one reused buffer: polars copies each slice out anyway.
        buffer = np.empty((min(CHUNK_ROWS, starts.size), width), np.uint8)
        parts = []
        for begin in range(0, starts.size, CHUNK_ROWS):
            part_starts = starts[begin : begin + CHUNK_ROWS]
            part_lengths = lengths[begin : begin + CHUNK_ROWS]
            padded = buffer[: part_starts.size]
            near_end = part_starts > fields.size - width
            padded[:] = windows[np.where(near_end, 0, part_starts)]
            padded[beyond >= part_lengths[:, None]] = 0
            for row in np.flatnonzero(near_end).tolist():
                at, size = int(part_starts[row]), int(part_lengths[row])
                padded[row] = 0
                padded[row, :size] = file_bytes[at : at + size]
            parts.append(pl.Series(padded.view(f"S{width}").ravel()))
        return pl.concat(parts, rechunk=False)
    # Variable-length slices: numpy has no ragged gather, so strings are cut one by one
    # (map over slice objects keeps the loop in C).
    cuts = map(slice, starts.tolist(), (starts + lengths).tolist())
    return pl.Series(list(map(fields.mm.__getitem__, cuts)), dtype=pl.Binary)


def _decode_layout(
    records: _Records, lengths: npt.NDArray[np.uint32], layout: Layout
) -> tuple[pl.DataFrame, npt.NDArray[np.bool_]]:
    """Decode the arguments of records that share one layout.

    Returns one column per argument and the per-record ``ok`` mask (false where a record does
    not fit the declaration: its values are then placeholders).
    """
    record_bytes = lengths + 8
    ok = np.ones(lengths.size, bool)
    columns: dict[str, pl.Series] = {}
    # Up to the first string every argument sits at the same place in each record, so runs
    # are read as strided views; after a string, positions are per record.
    rel = EVENT_HEADER_BYTES
    offsets: Offsets | None = None
    pos: Offsets | None = None
    leading = next((i for i, (is_string, _) in enumerate(layout) if is_string), len(layout))
    if leading:
        deltas = [(rel + 8 * index, 8) for index in range(leading)]
        for index, values in enumerate(records.read_many(deltas)):
            columns[f"a{index}"] = pl.Series(f"a{index}", values)
        rel += 8 * leading
        ok &= rel <= record_bytes
    for index, (is_string, _name) in enumerate(layout):
        key = f"a{index}"
        if index < leading:
            continue
        if offsets is None or pos is None:
            offsets = records.offsets()
            pos = offsets + rel
        fields = records.fields
        if is_string:
            ok &= pos + 4 <= offsets + record_bytes
            str_len = np.where(ok, fields.read(np.where(ok, pos, offsets), 4), 0).astype(np.int64)
            ok &= pos + 4 + str_len <= offsets + record_bytes
            columns[key] = _cut_strings(fields, pos + 4, np.where(ok, str_len, 0)).alias(key)
            pos = np.where(ok, pos + 4 + str_len, pos)
        else:
            ok &= pos + 8 <= offsets + record_bytes
            columns[key] = pl.Series(key, fields.read(np.where(ok, pos, offsets), 8))
            pos = pos + 8
    ok &= (
        (rel == record_bytes) if pos is None or offsets is None else (pos == offsets + record_bytes)
    )
    return pl.DataFrame(columns), ok


def _args_text(
    layout: Layout, values: pl.DataFrame, rows: int, rendered: Rendered
) -> tuple[pl.Series, npt.NDArray[np.uint32]]:
    """The ``args`` text: each distinct argument tuple rendered once, and each row's number.

    Returns the rendered texts and, per row, the position of its text among them.

    Each row's tuple becomes one integer key (hash lookups on one u64 column beat a
    multi-column join): the integer column with the largest values enters the key as it is,
    the other columns are numbered by their distinct values and packed below it by mixed
    radix. Rows that failed their declaration hold placeholder values; the caller nulls them.
    """
    keys = list(values.columns)
    if not keys:
        return pl.Series("args", [""], pl.String), np.zeros(rows, np.uint32)
    int_keys = [k for k, (is_string, _) in zip(keys, layout, strict=True) if not is_string]
    maxes: dict[str, int] = {}
    if int_keys:
        maxes = dict(zip(int_keys, values.select(int_keys).max().row(0), strict=True))
    by_max = sorted(int_keys, key=maxes.__getitem__, reverse=True)
    raw = by_max[0] if by_max else None
    distinct_values = {
        k: values.get_column(k).unique(maintain_order=True) for k in keys if k != raw
    }
    span = prod(s.len() for s in distinct_values.values())
    if raw is not None and (maxes[raw] + 1) * span >= 2**64:
        # Too large to pack as it is (e.g. a -1 that became 0xffff...): number it too, and
        # take as raw the next column that fits instead.
        distinct_values[raw] = values.get_column(raw).unique(maintain_order=True)
        span *= distinct_values[raw].len()
        raw = None
        for k in by_max[1:]:
            rest = span // distinct_values[k].len()
            if (maxes[k] + 1) * rest < 2**64:
                raw, span = k, rest
                break
    coded = [k for k in keys if k != raw]
    if span >= 2**64:
        distinct = values.unique(subset=keys)
        texts = distinct.with_columns(
            pl.Series("args", _render_args(layout, distinct, rendered), pl.String)
        )
        joined = values.join(texts, on=keys, how="left", maintain_order="left")["args"]
        return joined, np.arange(rows, dtype=np.uint32)
    # Built in place in one array: every full-length temporary is fresh memory to fault in.
    key = np.zeros(rows, np.uint64)
    if raw is not None:
        np.multiply(values.get_column(raw).to_numpy(), np.uint64(span), out=key)
    scale = 1
    for k in coded:
        uniques = distinct_values[k]
        if uniques.dtype == pl.Binary:
            numbers = np.arange(uniques.len(), dtype=np.uint32)
            codes = values.get_column(k).replace_strict(uniques, numbers, return_dtype=pl.UInt32)
        else:
            codes = _codes(values.get_column(k).to_numpy(), uniques)
        code_values = codes.to_numpy()
        if scale != 1:
            code_values = code_values * np.uint64(scale)
        key += code_values
        scale *= uniques.len()
    tuple_key = pl.Series("key", key)
    tuple_keys = tuple_key.unique(maintain_order=True)
    remaining = tuple_keys.to_numpy()
    columns = {}
    for k in coded:
        uniques = distinct_values[k]
        columns[k] = uniques.gather(remaining % np.uint64(uniques.len()))
        remaining = remaining // np.uint64(uniques.len())
    if raw is not None:
        columns[raw] = pl.Series(raw, remaining)
    distinct = pl.DataFrame({k: columns[k] for k in keys})
    text = pl.Series("args", _render_args(layout, distinct, rendered), pl.String)
    return text, _codes(key, tuple_keys).to_numpy()


@dataclass
class _Columns:
    """The decoded columns of every selected record, filled in one layout group at a time."""

    rows: int
    rendered: Rendered  # shared by every block
    texts: list[pl.Series] = field(default_factory=list)  # distinct args texts, per group
    text_count: int = 0

    def __post_init__(self) -> None:
        # Each row's text among all the texts; pointers are 0 until a group fills them in.
        self.codes: npt.NDArray[np.uint32] = np.zeros(self.rows, np.uint32)
        self.has_args = np.zeros(self.rows, bool)
        self.ok = np.ones(self.rows, bool)
        self.pointers = {t: np.zeros(self.rows, np.uint64) for t in ("view", "root")}
        self.has_pointer = {t: np.zeros(self.rows, bool) for t in ("view", "root")}

    def add(
        self,
        rows: slice | npt.NDArray[np.int64],
        layout: Layout,
        values: pl.DataFrame,
        ok: npt.NDArray[np.bool_],
        flatview: npt.NDArray[np.bool_] | bool,
    ) -> None:
        """One group's decoded values (``flatview``: which of its records are FlatView ones)."""
        whole = isinstance(rows, slice)  # the only group: take its arrays as they are
        # A FlatView event's arguments are its view and root: text only for the others.
        is_flatview = np.broadcast_to(np.asarray(flatview, bool), ok.shape)
        if not is_flatview.all():
            text, codes = _args_text(layout, values, ok.size, self.rendered)
            self.texts.append(text)
            if whole:
                self.codes = codes
            else:
                self.codes[rows] = codes + np.uint32(self.text_count)
            self.text_count += text.len()
        self.has_args[rows] = ok & ~is_flatview
        self.ok[rows] = ok
        for target in ("view", "root"):
            source = next(
                (f"a{i}" for i, (is_str, n) in enumerate(layout) if n == target and not is_str),
                None,
            )
            if source is not None and np.any(flatview):
                pointers = values.get_column(source).to_numpy()
                if whole:
                    self.pointers[target] = pointers
                else:
                    self.pointers[target][rows] = pointers
                self.has_pointer[target][rows] = ok & flatview

    def frame(self) -> pl.DataFrame:
        """``view``, ``root``, ``args`` and ``ok``, in the rows' order."""
        if not self.has_args.any():
            args = pl.Series("args", [], pl.String).extend_constant(None, self.rows)
        elif self.text_count:
            # One gather from the few distinct texts shares their buffers instead of copying
            # each row's text.
            args = pl.concat(self.texts, rechunk=True).gather(self.codes)
        else:
            args = pl.repeat("", self.rows, dtype=pl.String, eager=True)
        columns = {t: pl.Series(t, self.pointers[t]) for t in ("view", "root")}
        columns["args"] = args.alias("args")
        masks = {"view": self.has_pointer["view"], "root": self.has_pointer["root"]}
        if self.has_args.any():  # else args is all null already
            masks["args"] = self.has_args
        return pl.DataFrame({**columns, "ok": self.ok}).with_columns(
            pl.when(pl.Series(mask)).then(pl.col(name)).alias(name)
            for name, mask in masks.items()
            if not mask.all()
        )


def _declarations(names: list[str], trace_events: Path | None) -> tuple[dict[str, EventDecl], bool]:
    """Declarations for ``names``; the build's file is read only when an event needs it."""
    needed = [n for n in names if n != DROPPED_EVENT and n not in BUILTIN_DECLS]
    decls: dict[str, EventDecl] = {}
    loaded = False
    source = trace_events
    if source is None and needed and DEFAULT_TRACE_EVENTS.is_file():
        source = DEFAULT_TRACE_EVENTS
    if source is not None and needed:
        decls = load_trace_events(source)
        loaded = True
    chosen = {}
    for name in names:
        decl = DROPPED_DECL if name == DROPPED_EVENT else decls.get(name, BUILTIN_DECLS.get(name))
        if decl is not None:
            chosen[name] = decl
    return chosen, loaded


def _decode_block(
    records: _Records,
    by_id: dict[int, list[tuple[int, str]]],
    selection: EventSelection,
    decls: dict[str, EventDecl],
    out: _Decoded,
) -> None:
    """Decode one block of records into a frame appended to ``out.frames``."""
    # The header fields of every record in one pass; the arguments only of wanted events.
    header = records.read_many([(8, 8), (16, 8), (24, 4), (28, 4)])
    eids = header[0]
    ids = pl.Series("eid", eids)
    present_ids = ids.unique(maintain_order=True).to_list()
    unmapped = [i for i in present_ids if i not in by_id]
    if unmapped:
        rows = np.flatnonzero(ids.is_in(unmapped).to_numpy())
        out.bytes_skipped += int(header[2][rows].sum()) + 8 * rows.size
        out.unmapped.add(rows.size, int(records.offsets()[rows[0]]))
    wanted = [
        i
        for i in present_ids
        if i in by_id and any(n == DROPPED_EVENT or selection.matches(n) for _, n in by_id[i])
    ]
    if len(wanted) != len(present_ids):
        rows = np.flatnonzero(ids.is_in(wanted).to_numpy())
        records, header = records.take(rows), [field[rows] for field in header]
    if records.count == 0:
        return
    eids, ts_ns, lengths, pids = header
    offsets = records.offsets()
    frame = pl.DataFrame(
        {
            "offset": offsets,
            "event": _event_names(eids, offsets, by_id, wanted),
            "ts_ns": ts_ns.view(np.int64),
            "length": lengths,  # only for decoding: not an events column
            "pid": pl.Series(pids).cast(pl.Int32, strict=False),  # a pid_t
        }
    )
    if any(len({n for _, n in by_id[i]}) > 1 for i in wanted):  # an id mapped to two names
        present = sorted(frame.get_column("event").unique().to_list())
    else:
        present = sorted({by_id[i][0][1] for i in wanted})
    kept = [n for n in present if n == DROPPED_EVENT or selection.matches(n)]
    if len(kept) != len(present):  # an id remapped to a name that is not wanted
        mask = frame.get_column("event").is_in(kept).to_numpy()
        records = records.take(np.flatnonzero(mask))
        frame = frame.filter(pl.Series(mask))
    if frame.height == 0:
        return
    undeclared = [n for n in kept if n not in decls]
    if undeclared:
        counts = frame.filter(pl.col("event").is_in(undeclared)).group_by("event").len()
        for event_name, count in counts.iter_rows():
            out.undeclared[event_name] = out.undeclared.get(event_name, 0) + count
    groups: dict[Layout | None, list[str]] = {}
    for event in kept:
        decl = decls.get(event)
        groups.setdefault(decl.layout if decl is not None else None, []).append(event)
    # Only the decoded columns are built per group; the record columns stay in file order.
    columns = _Columns(frame.height, out.rendered)
    event = frame.get_column("event")
    lengths = frame.get_column("length").to_numpy()
    for layout, events in groups.items():
        where: slice | npt.NDArray[np.int64]
        if len(groups) == 1:
            where, group_records, group_event, group_lengths = slice(None), records, event, lengths
        else:
            where = np.flatnonzero(event.is_in(events).to_numpy())
            group_records, group_event = records.take(where), event.gather(where)
            group_lengths = lengths[where]
        if layout is None:
            continue  # kept without arguments
        values, ok = _decode_layout(group_records, group_lengths, layout)
        flatview_events = [e for e in events if e in FLATVIEW_EVENTS]
        flatview: npt.NDArray[np.bool_] | bool = len(flatview_events) == len(events)
        if flatview_events and not flatview:
            flatview = group_event.is_in(flatview_events).to_numpy()
        columns.add(where, layout, values, ok, flatview)
        if DROPPED_EVENT in events:
            dropped = values.filter((group_event == DROPPED_EVENT) & pl.Series(ok))
            out.dropped_events += sum(dropped.get_column("a0").to_list())
    frame = pl.concat([frame.select(*_BASE_COLUMNS), columns.frame()], how="horizontal")
    bad = frame.filter(~pl.col("ok"))
    if bad.height:
        out.mismatched.add(bad.height, bad.item(0, "offset"), bad.item(0, "event"))
    # Numbered here, as Int64, so the table's columns keep the blocks' chunks (one column
    # of other chunks would make polars copy the whole table into one).
    first_seq = sum(f.height for f in out.frames)
    seq = pl.Series("seq", np.arange(first_seq, first_seq + frame.height, dtype=np.int64))
    out.frames.append(frame.drop("ok").with_columns(seq))


def _blocks(pieces: list[Offsets | Run], size: int) -> Iterator[list[Offsets | Run]]:
    """``pieces`` cut into consecutive blocks of at most ``size`` records, in file order."""
    block: list[Offsets | Run] = []
    room = size
    for piece in pieces:
        left = piece[2] if isinstance(piece, tuple) else piece.size
        while left:
            take = min(left, room)
            if isinstance(piece, tuple):
                start, stride, _ = piece
                block.append((start, stride, take))
                piece = (start + take * stride, stride, left - take)
            else:
                block.append(piece[:take])
                piece = piece[take:]
            left -= take
            room -= take
            if room == 0:
                yield block
                block, room = [], size
    if block:
        yield block


def _first_offset(pieces: list[Offsets | Run]) -> int:
    first = pieces[0]
    return first[0] if isinstance(first, tuple) else int(first[0])


def _finish(frames: list[pl.DataFrame], name: str) -> pl.DataFrame:
    """The events schema, in file order (blocks stay chunks: no copy into one)."""
    frame = pl.concat(frames, rechunk=False)
    if not frame.get_column("offset").is_sorted():  # blocks come in file order: a safeguard
        frame = frame.sort("offset").with_columns(seq=pl.int_range(pl.len(), dtype=pl.Int64))
    return conform(
        frame.with_columns(source=pl.lit(name, pl.Categorical), tid=pl.lit(None, pl.Int32))
    )


def parse(opened: OpenedInput, selection: EventSelection, trace_events: Path | None) -> ParsedInput:
    """Read one QEMU simple-backend trace (version 4, little- or big-endian).

    Parameters
    ----------
    opened
        The plain local file (see ``qtrace.parsers.source.open_input``).
    selection
        Which events to keep; dropped-events records are always kept.
    trace_events
        The build's ``trace-events-all`` for events other than the FlatView ones; when None,
        ``/usr/share/qemu/trace-events-all`` is used if present.

    Examples
    --------
    >>> from qtrace.parsers.source import open_input
    >>> with open_input("samples/pc-boot.simpletrace") as opened:
    ...     parse(opened, EventSelection(), None).dialect
    'simple-v4-le'
    """
    name = opened.name
    if trace_events is not None and not trace_events.is_file():
        raise InputError(f"{trace_events}: no such trace-events file")
    try:
        with opened.path.open("rb") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                raise InputError(f"{name}: empty file")
            mm = _map_file(fh.fileno())
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        with _gc_paused():
            order = _read_header(mm, size, name)
            walk = _Walker(mm, size, order).run(HEADER_BYTES)
            decoded = _run_decode(mm, size, order, walk, selection, trace_events)
    finally:
        _close(mm)
    warnings = decoded.warnings(name)
    if walk.damaged_places:
        warnings.insert(
            0,
            f"{name}: damaged record at offset {walk.damaged_first} ({walk.damage_reason}); "
            f"skipped {walk.damaged_bytes} bytes in {walk.damaged_places} place(s) to "
            "resynchronise",
        )
    if walk.truncated:
        warnings.append(f"{name}: {walk.truncated}")
    if not (walk.pieces or walk.mappings or walk.truncated or walk.damaged_places):
        warnings.append(f"{name}: no trace records after the header")
    events = _finish(decoded.frames, name) if decoded.frames else empty_events()
    return ParsedInput(
        events=events,
        format="simple",
        dialect=f"simple-v4-{'le' if order == '<' else 'be'}",
        clock="monotonic-ns",
        bytes_skipped=walk.damaged_bytes + walk.truncated_bytes + decoded.bytes_skipped,
        dropped_events=decoded.dropped_events,
        warnings=warnings,
    )


def _run_decode(
    mm: mmap.mmap,
    size: int,
    order: str,
    walk: _Walk,
    selection: EventSelection,
    trace_events: Path | None,
) -> _Decoded:
    """Decode the walked records a block at a time.

    Each block's temporaries and mapped pages are let go before the next, so memory stays
    near the size of the table being built, however large the file.
    """
    # Every numpy view of the map lives inside this call, so the map can be closed after it.
    out = _Decoded()
    by_id = _names_by_id(walk.mappings)
    names = sorted({n for _, _, n in walk.mappings if selection.matches(n)} | {DROPPED_EVENT})
    decls, out.trace_events_read = _declarations(names, trace_events)
    fields = _Fields(mm, size, order)
    released = 0
    for block in _blocks(walk.pieces, BLOCK_RECORDS):
        released = _release(mm, released, _first_offset(block))
        _decode_block(_Records(fields, block), by_id, selection, decls, out)
    _release(mm, released, size)
    return out


def _release(mm: mmap.mmap, start: int, end: int) -> int:
    """Drop the mapped pages wholly inside [start, end) from memory; return the new start.

    The file stays in the page cache: a later read of those bytes faults them back in.
    """
    start += -start % mmap.PAGESIZE
    end -= end % mmap.PAGESIZE
    if end > start:
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)
        return end
    return start


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off Python's cycle collector while reading: the walk allocates many small tuples,
    which would trigger full collections over every object the process holds (polars and
    numpy alone make them cost tens of ms), and it creates no cycles to collect."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _map_file(fd: int) -> mmap.mmap:
    """Map the whole file read-only. Its pages are faulted in as they are read and let go
    behind the walk and each decoded block (``_release``), so the file never counts whole
    towards the process's memory."""
    return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)


def _close(mm: mmap.mmap) -> None:
    # A view still exported (only if a caller kept one): the map is then freed with it.
    with contextlib.suppress(BufferError):
        mm.close()
