"""Block assembly: the records of each window decoded into one part of the events table.

Per block: event names through the mapping table, the selection, and the decoding of each
group of events that share an argument layout. A FlatView event's arguments are its view and
root (the first two argument words the scan already read); other events get simpletrace.py's
text. What cannot be read becomes a loss: records of an id no trusted mapping names (counted,
then marked between the rows around them), and FlatView records whose arguments do not
decode as view and root, which stay in place as ``qtrace_unreadable`` rows and never reach
the model as FlatView events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
from qtrace.parsers.simple.arguments import Layout, Rendered, args_text, decode_values
from qtrace.parsers.simple.file import Window
from qtrace.parsers.simple.gather import Fields
from qtrace.parsers.simple.layout import DROPPED_EVENT_ID, FLATVIEW_LENGTH, MIN_EVENT_LENGTH
from qtrace.parsers.simple.losses import Losses
from qtrace.parsers.simple.mappings import Mapping, MappingTable, build_table, event_names
from qtrace.parsers.simple.scan import Records
from qtrace.parsers.trace_events_decl import (
    BUILTIN_DECLS,
    DEFAULT_TRACE_EVENTS,
    EventDecl,
    TraceEvents,
)

from qtrace.events import DROPPED_EVENT, FLATVIEW_EVENTS, FLATVIEW_NEW, UNREADABLE, EventSelection

DROPPED_DECL = EventDecl(DROPPED_EVENT, (("uint64_t", "num_events_dropped"),))
FLATVIEW_LAYOUT = BUILTIN_DECLS[FLATVIEW_NEW].layout
DROPPED_LENGTH = MIN_EVENT_LENGTH + 8
DENSE_IDS = 1 << 20  # ids below this are looked up in a table
# Small frames (records between damaged places) are merged once this many are pending, so a
# file damaged in many places does not make a table of countless chunks.
SMALL_FRAME_ROWS = 4096
PENDING_FRAMES = 64


@dataclass
class Tally:
    """Records of one kind of trouble, over every block: how many, and the first."""

    count: int = 0
    first_offset: int = -1
    first_event: str = ""

    def add(self, count: int, offset: int, event: str = "") -> None:
        if count and self.count == 0:
            self.first_offset, self.first_event = offset, event
        self.count += count


def declarations(names: list[str], trace_events: Path | None) -> TraceEvents | None:
    """The build's declarations, when ``names`` need them: the FlatView events decode
    without (``BUILTIN_DECLS``), other events need ``trace_events``, or else
    ``/usr/share/qemu/trace-events-all`` when it exists."""
    needed = [n for n in names if n != DROPPED_EVENT and n not in BUILTIN_DECLS]
    source = trace_events
    if source is None and needed and DEFAULT_TRACE_EVENTS.is_file():
        source = DEFAULT_TRACE_EVENTS
    return TraceEvents.load(source) if source is not None and needed else None


@dataclass
class Decoder:
    """Decodes the records it is handed, a window at a time, into parts of the events table."""

    source: str
    order: str
    selection: EventSelection
    trace_events: Path | None
    frames: list[pl.DataFrame] = field(default_factory=list)
    rows: int = 0  # rows of the table so far
    dropped_events: int = 0
    bytes_skipped: int = 0
    unknown: Tally = field(default_factory=Tally)  # records of ids no trusted mapping names
    undeclared: dict[str, int] = field(default_factory=dict)  # records kept without args
    mismatched: Tally = field(default_factory=Tally)  # records that do not fit their decl
    flatview_unreadable: Tally = field(default_factory=Tally)  # FlatView records made markers
    losses: Losses = field(default_factory=Losses)
    trace_events_read: bool = False
    table: MappingTable | None = None
    rendered: Rendered = field(default_factory=dict)  # argument texts, for the next blocks
    _trace_events: TraceEvents | None = None
    _decls: dict[str, EventDecl | None] = field(default_factory=dict)
    _unwanted: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))
    _keep_by_id: npt.NDArray[np.bool_] | None = None
    _small_frames: list[pl.DataFrame] = field(default_factory=list)

    def keep(self, records: Records, mappings: list[Mapping]) -> Records:
        """The records of selected events or of unknown ids, in arrays of their own."""
        if self.table is None:
            self._start(mappings)
        unwanted = self._unwanted
        if not unwanted.size:
            return records.copy()
        if self._keep_by_id is not None:  # ids are small numbers: one lookup per record
            table = self._keep_by_id
            keep = table[np.minimum(records.eid, table.size - 1).astype(np.intp)]
            return records.copy() if keep.all() else records.take(np.flatnonzero(keep))
        at = np.minimum(np.searchsorted(unwanted, records.eid), unwanted.size - 1)
        return records.take(np.flatnonzero(unwanted[at] != records.eid))

    def decode(self, records: Records, window: Window, mappings: list[Mapping]) -> None:
        """Decode kept ``records``, whose bytes are in ``window``."""
        if self.table is None:
            self._start(mappings)
        frame = self._decode(records, window)
        if frame.height:
            seq = np.arange(self.rows, self.rows + frame.height, dtype=np.int64)
            # Numbered here, as Int64, so the table's columns keep the blocks' chunks (one
            # column of other chunks would make polars copy the whole table into one).
            self._add_frame(frame.with_columns(seq=pl.Series("seq", seq)))
            self.rows += frame.height

    def _start(self, mappings: list[Mapping]) -> None:
        self.table = build_table(mappings, self.source)
        selected = {n for entries in self.table.by_id.values() for _, n in entries}
        names = sorted({n for n in selected if self.selection.matches(n)} | {DROPPED_EVENT})
        self._trace_events = declarations(names, self.trace_events)
        self.trace_events_read = self._trace_events is not None
        # Ids whose every name is one nobody asked for: their records need no decoding.
        self._unwanted = unwanted = np.sort(
            np.array(
                [
                    eid
                    for eid, entries in self.table.by_id.items()
                    if not any(n == DROPPED_EVENT or self.selection.matches(n) for _, n in entries)
                ],
                np.uint64,
            )
        )
        # QEMU numbers its events 0, 1, 2, ...: then a table indexed by id says which to keep
        # (the last entry stands for every larger id, all of them unmapped).
        mapped = [eid for eid in self.table.by_id if eid != DROPPED_EVENT_ID]
        if unwanted.size and max(mapped, default=0) < DENSE_IDS:
            self._keep_by_id = np.ones(max(mapped, default=0) + 2, bool)
            self._keep_by_id[unwanted.astype(np.intp)] = False

    def _declaration(self, name: str) -> EventDecl | None:
        """How ``name``'s arguments are laid out: the build's file first (when read)."""
        if name not in self._decls:
            decl = self._trace_events.get(name) if self._trace_events is not None else None
            if name == DROPPED_EVENT:
                decl = DROPPED_DECL
            self._decls[name] = decl or BUILTIN_DECLS.get(name)
        return self._decls[name]

    def _add_frame(self, frame: pl.DataFrame) -> None:
        if frame.height >= SMALL_FRAME_ROWS:
            self._merge_small_frames()
            self.frames.append(frame)
            return
        self._small_frames.append(frame)
        if len(self._small_frames) >= PENDING_FRAMES:
            self._merge_small_frames()

    def _merge_small_frames(self) -> None:
        if self._small_frames:
            self.frames.append(pl.concat(self._small_frames, rechunk=True))
            self._small_frames = []

    def parts(self) -> list[pl.DataFrame]:
        """The decoded parts of the table, in file order."""
        self._merge_small_frames()
        return self.frames

    def _decode(self, records: Records, window: Window) -> pl.DataFrame:
        assert self.table is not None
        by_id = self.table.by_id
        ids = pl.Series("eid", records.eid)
        present = ids.unique(maintain_order=True).to_list()
        unknown = [i for i in present if i not in by_id]
        wanted = [
            i
            for i in present
            if i in by_id
            and any(n == DROPPED_EVENT or self.selection.matches(n) for _, n in by_id[i])
        ]
        kept = records
        if len(wanted) != len(present):
            kept = records.take(np.flatnonzero(ids.is_in(wanted).to_numpy()))
        frame = self._frame(kept, wanted, window)
        if unknown:
            rows = np.flatnonzero(ids.is_in(unknown).to_numpy())
            offsets = records.offset[rows]
            sizes = records.length[rows].astype(np.int64) + 8
            self.bytes_skipped += int(sizes.sum())
            self.unknown.add(rows.size, int(offsets[0]))
            read = frame.get_column("offset").to_numpy()
            gaps = self.rows + np.searchsorted(read, offsets)
            self.losses.add_unknown(gaps, offsets, records.eid[rows], sizes)
        return frame

    def _frame(self, kept: Records, wanted: list[int], window: Window) -> pl.DataFrame:
        """The rows of the wanted records: names, pointers, args; FlatView records whose
        arguments do not decode become markers in place."""
        assert self.table is not None
        if not len(kept):
            return pl.DataFrame(schema=FRAME_SCHEMA)
        event = event_names(kept.eid, kept.offset, self.table, wanted)
        if any(len({n for _, n in self.table.by_id[i]}) > 1 for i in wanted):  # remapped ids
            present = sorted(event.unique().to_list())
            selected = [n for n in present if n == DROPPED_EVENT or self.selection.matches(n)]
            if len(selected) != len(present):  # an id remapped to a name that is not wanted
                mask = event.is_in(selected).to_numpy()
                kept, event = kept.take(np.flatnonzero(mask)), event.filter(pl.Series(mask))
                if not len(kept):
                    return pl.DataFrame(schema=FRAME_SCHEMA)
        else:
            present = sorted({self.table.by_id[i][-1][1] for i in wanted})
        columns = _Columns(len(kept))
        groups: dict[Layout | None, list[str]] = {}
        for name in present:
            decl = self._declaration(name)
            groups.setdefault(decl.layout if decl is not None else None, []).append(name)
        for layout, names in groups.items():
            rows: npt.NDArray[np.int64] | slice = (
                slice(None) if len(groups) == 1 else np.flatnonzero(event.is_in(names).to_numpy())
            )
            if layout is None:
                counts = event.gather(rows) if isinstance(rows, np.ndarray) else event
                for name, count in counts.value_counts().iter_rows():
                    self.undeclared[name] = self.undeclared.get(name, 0) + count
                continue
            self._decode_group(kept, event, rows, layout, names, window, columns)
        if DROPPED_EVENT in present:
            dropped = (event == DROPPED_EVENT).to_numpy() & (kept.length == DROPPED_LENGTH)
            self.dropped_events += sum(kept.a0[dropped].tolist())
        return columns.frame(kept, event)

    def _decode_group(
        self,
        kept: Records,
        event: pl.Series,
        rows: npt.NDArray[np.int64] | slice,
        layout: Layout,
        names: list[str],
        window: Window,
        columns: _Columns,
    ) -> None:
        """Decode one group of records that share ``layout`` (``rows``: which of ``kept``;
        a slice for all of them, so their arrays are used as they are)."""
        flatview_names = [n for n in names if n in FLATVIEW_EVENTS]
        flatview_rows: npt.NDArray[np.int64] | slice | None = rows if flatview_names else None
        other_rows: npt.NDArray[np.int64] | slice | None = None if flatview_names else rows
        if flatview_names and len(flatview_names) != len(names):
            where = np.arange(len(kept)) if isinstance(rows, slice) else rows
            group_event = event if isinstance(rows, slice) else event.gather(rows)
            is_flatview = group_event.is_in(flatview_names).to_numpy()
            flatview_rows, other_rows = where[is_flatview], where[~is_flatview]
        if flatview_rows is not None:
            self._decode_flatview(kept, event, flatview_rows, layout, window, columns)
        if other_rows is None:
            return
        at = other_rows
        text, codes, ok = args_text(
            window, self.order, kept.offset[at], kept.length[at], layout, self.rendered
        )
        columns.texts(at, text, codes, ok)
        if not ok.all():
            bad = np.arange(len(kept))[at][~ok]
            self.mismatched.add(bad.size, int(kept.offset[bad[0]]), str(event[int(bad[0])]))

    def _decode_flatview(
        self,
        kept: Records,
        event: pl.Series,
        at: npt.NDArray[np.int64] | slice,
        layout: Layout,
        window: Window,
        columns: _Columns,
    ) -> None:
        """View and root of FlatView records; those that do not decode are marked."""
        if layout == FLATVIEW_LAYOUT:  # view and root are the first two argument words
            ok = kept.length[at] == FLATVIEW_LENGTH
            columns.pointers(at, kept.a0[at], kept.a1[at], ok)
        else:  # a build that declares them otherwise: decoded by name
            fields = Fields(window.data, self.order)
            values, ok = decode_values(
                fields, kept.offset[at] - window.base, kept.length[at], layout
            )
            pointer = {
                n: values.get_column(f"a{i}").to_numpy()
                for i, (is_string, n) in enumerate(layout)
                if not is_string and n in ("view", "root")
            }
            if len(pointer) != 2:
                ok = np.zeros(ok.size, bool)
            zero = np.zeros(ok.size, np.uint64)
            columns.pointers(at, pointer.get("view", zero), pointer.get("root", zero), ok)
        if not ok.all():
            bad = np.arange(len(kept))[at][~ok]
            self.flatview_unreadable.add(
                bad.size, int(kept.offset[bad[0]]), str(event[int(bad[0])])
            )

    def warnings(self) -> list[str]:
        """One line per kind of trouble met while decoding."""
        name = self.source
        out = list(self.table.warnings) if self.table is not None else []
        if self.unknown.count:
            out.append(
                f"{name}: {self.unknown.count} records (first at offset "
                f"{self.unknown.first_offset}) have event ids no mapping record names; marked "
                "unreadable"
            )
        if self.flatview_unreadable.count:
            tally = self.flatview_unreadable
            out.append(
                f"{name}: {tally.count} FlatView records (first {tally.first_event} at offset "
                f"{tally.first_offset}) do not decode as view and root; marked unreadable"
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


FRAME_SCHEMA = {
    "offset": pl.Int64,
    "event": pl.Categorical,
    "ts_ns": pl.Int64,
    "pid": pl.Int32,
    "view": pl.UInt64,
    "root": pl.UInt64,
    "args": pl.String,
    "seq": pl.Int64,
}


class _Columns:
    """The decoded columns of one block's rows, filled in one layout group at a time.

    A group of every row hands over its arrays as they are; arrays for a group of some rows
    are made when first needed.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.view: npt.NDArray[np.uint64] | None = None
        self.root: npt.NDArray[np.uint64] | None = None
        self.has_pointers: npt.NDArray[np.bool_] | None = None
        self.unreadable: npt.NDArray[np.bool_] | None = None  # FlatView records not decoded
        self.codes: npt.NDArray[np.uint32] | None = None  # each row's text among all the texts
        self.has_args: npt.NDArray[np.bool_] | None = None
        self._texts: list[pl.Series] = []
        self._text_count = 0

    def pointers(
        self,
        rows: npt.NDArray[np.int64] | slice,
        view: npt.NDArray[np.uint64],
        root: npt.NDArray[np.uint64],
        ok: npt.NDArray[np.bool_],
    ) -> None:
        if isinstance(rows, slice):
            self.view, self.root, self.has_pointers, self.unreadable = view, root, ok, ~ok
            return
        if self.view is None or self.root is None:
            self.view, self.root = np.zeros(self.rows, np.uint64), np.zeros(self.rows, np.uint64)
        if self.has_pointers is None or self.unreadable is None:
            self.has_pointers, self.unreadable = (
                np.zeros(self.rows, bool),
                np.zeros(self.rows, bool),
            )
        self.view[rows] = view
        self.root[rows] = root
        self.has_pointers[rows] = ok
        self.unreadable[rows] = ~ok

    def texts(
        self,
        rows: npt.NDArray[np.int64] | slice,
        text: pl.Series,
        codes: npt.NDArray[np.uint32],
        ok: npt.NDArray[np.bool_],
    ) -> None:
        if self.codes is None or self.has_args is None:
            self.codes, self.has_args = np.zeros(self.rows, np.uint32), np.zeros(self.rows, bool)
        self._texts.append(text)
        self.codes[rows] = codes + np.uint32(self._text_count)
        self._text_count += text.len()
        self.has_args[rows] = ok

    def frame(self, kept: Records, event: pl.Series) -> pl.DataFrame:
        """The block's rows in file order."""
        none = np.zeros(self.rows, bool)
        has_args = self.has_args if self.has_args is not None else none
        has_pointers = self.has_pointers if self.has_pointers is not None else none
        if has_args.any() and self.codes is not None:
            # One gather from the few distinct texts shares their buffers instead of copying
            # each row's text.
            texts = pl.concat(self._texts, rechunk=True)
            args = texts.gather(self.codes).alias("args")
        else:
            args = pl.Series("args", [], pl.String).extend_constant(None, self.rows)
        zeros = np.zeros(self.rows, np.uint64) if self.view is None else None
        frame = pl.DataFrame(
            [
                pl.Series("offset", kept.offset),
                event.alias("event"),
                pl.Series("ts_ns", kept.ts.view(np.int64)),
                pl.Series("pid", kept.pid).cast(pl.Int32, strict=False),  # a pid_t
                pl.Series("view", self.view if self.view is not None else zeros),
                pl.Series("root", self.root if self.root is not None else zeros),
                args,
            ]
        )
        masks = {"view": has_pointers, "root": has_pointers, "args": has_args}
        frame = frame.with_columns(
            pl.when(pl.Series(mask)).then(pl.col(name)).alias(name)
            for name, mask in masks.items()
            if not mask.all()
        )
        if self.unreadable is not None and self.unreadable.any():
            rows = np.flatnonzero(self.unreadable)
            names = event.gather(rows).to_list()
            sizes = (kept.length[rows].astype(np.int64) - MIN_EVENT_LENGTH).tolist()
            why = [
                f"{name} record whose arguments do not decode as view and root ({size} bytes "
                "of arguments)"
                for name, size in zip(names, sizes, strict=True)
            ]
            frame = frame.with_columns(
                frame.get_column("event").scatter(
                    rows, pl.Series([UNREADABLE] * rows.size, dtype=pl.Categorical)
                ),
                frame.get_column("args").scatter(rows, pl.Series(why, dtype=pl.String)),
            )
        return frame
