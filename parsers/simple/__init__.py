"""Reader for QEMU's ``simple`` trace backend: binary files, format version 4, either byte order.

One module per layer:

- ``layout``: the format, and the header (its byte order; a damaged header is named);
- ``file``: the file's bytes, read a bounded window at a time (never mapped);
- ``scan`` and ``gather``: runs of sound event records and their fields, in bulk (the C
  kernel, or numpy);
- ``walk``: the record walk and mapping records; ``resync``: where sound records start again
  after damage;
- ``mappings``: the mapping table, and mappings taken as damaged;
- ``arguments``: simpletrace.py's text of the arguments;
- ``blocks``: block assembly, each window's records decoded into a part of the table;
- ``losses``: ``qtrace_unreadable`` rows where the reader could not read the file.

The walk hands each window's records on to be decoded while their bytes are in memory, so
the file is read once, in memory that does not grow with it. A file with mapping records
after event records (the format allows them; QEMU writes none) is decoded in a second pass.

What cannot be fully read (one warning per kind, with an offset; a ``qtrace_unreadable`` row
wherever events may have been lost, which the model reads as a hole):

- an event no declaration describes: kept if selected, ``args`` null;
- a record that does not fit its declaration: kept, ``args`` null; a FlatView one becomes a
  marker, never a FlatView event;
- records of an event id no trusted mapping names: marked, their bytes counted;
- damage: skipped up to the next chain of sound records, marked, its bytes counted;
- a last record cut short by the end of the file, or a file that shrank while it was read:
  marked, counted.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path

import polars as pl
from qtrace.parsers.simple import blocks
from qtrace.parsers.simple.blocks import Decoder
from qtrace.parsers.simple.file import TraceFile, Window
from qtrace.parsers.simple.layout import HEAD_BYTES, HEADER_BYTES, MAX_RECORD_BYTES, read_header
from qtrace.parsers.simple.losses import CHANGED, CUT, DAMAGE, SHRUNK, Loss, Losses, with_markers
from qtrace.parsers.simple.walk import Walk, Walker, replay
from qtrace.parsers.source import OpenedInput

from qtrace.errors import InputError
from qtrace.events import EventSelection, ParsedInput, conform, empty_events

WINDOW_BYTES = 32 << 20  # bytes read at a time: bounds the memory the file's bytes take
BLOCK_RECORDS = 1 << 19  # records decoded at a time: bounds the temporaries (and their litter)


def parse(opened: OpenedInput, selection: EventSelection, trace_events: Path | None) -> ParsedInput:
    """Read one QEMU simple-backend trace (version 4, little- or big-endian).

    Parameters
    ----------
    opened
        The plain local file (see ``qtrace.parsers.source.open_input``).
    selection
        Which events to keep; dropped-events records and loss markers are always kept.
    trace_events
        The build's ``trace-events-all`` for events other than the FlatView ones; when None,
        ``/usr/share/qemu/trace-events-all`` is used if present.

    Examples
    --------
    >>> from qtrace.parsers.source import open_input
    >>> with open_input("samples/pc-boot.simpletrace") as opened:
    ...     parsed = parse(opened, EventSelection(), None)
    >>> parsed.dialect, parsed.events.height
    ('simple-v4-le', 763)
    """
    name = opened.name
    if trace_events is not None and not trace_events.is_file():
        raise InputError(f"{trace_events}: no such trace-events file")
    with TraceFile(opened.path, name) as file, _gc_paused():
        if file.size == 0:
            raise InputError(f"{name}: empty file")
        head = bytearray(HEAD_BYTES)
        got = file.read_into(memoryview(head), 0)
        header = read_header(bytes(head[:got]), file.size, name)
        window = Window(file, max(WINDOW_BYTES, 4 * MAX_RECORD_BYTES))
        decoder = Decoder(name, header.order, selection, trace_events)
        walk = Walker(file, window, header.order, decoder, BLOCK_RECORDS).run(HEADER_BYTES)
        changed = []
        if walk.late_mappings:
            decoder = Decoder(name, header.order, selection, trace_events)
            changed = replay(file, window, walk, header.order, decoder, BLOCK_RECORDS)
        losses = _walk_losses(walk, file, decoder.losses)
        for stretch in changed:
            text = _changed(stretch.size)
            losses.add(Loss(CHANGED, stretch.offset, 1, stretch.size, reasons=[text]))
        shrunk = (file.opened_size, file.shrunk_to, file.size) if file.shrunk else None
    warnings = [*header.warnings, *_damage_warnings(walk, name), *decoder.warnings()]
    if walk.cut is not None:
        warnings.append(f"{name}: {_cut_text(walk)}; ignored")
    if changed:
        warnings.append(
            f"{name}: the file changed while it was read: {sum(c.size for c in changed)} bytes "
            f"of records (first at offset {changed[0].offset}) were not read"
        )
    if shrunk is not None:
        warnings.append(
            f"{name}: the file shrank from {shrunk[0]} to {shrunk[1]} bytes while it was read; "
            f"read up to offset {shrunk[2]}"
        )
    if not (walk.records or walk.mappings or walk.cut or walk.damage or shrunk):
        warnings.append(f"{name}: no trace records after the header")
    return ParsedInput(
        events=_finish(decoder.parts(), losses, name),
        format="simple",
        dialect=f"simple-v4-{'le' if header.order == '<' else 'be'}",
        clock="monotonic-ns",
        bytes_skipped=(
            sum(d.size for d in walk.damage)
            + (walk.cut.have if walk.cut is not None else 0)
            + sum(c.size for c in changed)
            + decoder.bytes_skipped
        ),
        dropped_events=decoder.dropped_events,
        warnings=warnings,
    )


def _walk_losses(walk: Walk, file: TraceFile, losses: Losses) -> Losses:
    """The decoder's losses and the walk's: damage, a cut last record, a shrunk file."""
    for damage in walk.damage:
        losses.add(Loss(DAMAGE, damage.offset, 1, damage.size, reasons=[damage.reason]))
    if walk.cut is not None:
        losses.add(Loss(CUT, walk.cut.offset, 1, walk.cut.have, reasons=[_cut_text(walk)]))
    if file.shrunk:
        text = (
            f"the file shrank from {file.opened_size} to {file.shrunk_to} bytes while it was "
            f"read: what came after offset {file.size} was not read"
        )
        losses.add(Loss(SHRUNK, file.size, 1, 0, reasons=[text]))
    return losses


def _cut_text(walk: Walk) -> str:
    cut = walk.cut
    assert cut is not None
    if cut.needed > cut.have:
        return f"last record at offset {cut.offset} is cut short ({cut.have} of {cut.needed} bytes)"
    return f"{cut.have} stray bytes at offset {cut.offset} at the end of the file"


def _changed(size: int) -> str:
    return f"the file changed while it was read: {size} bytes of records were not read"


def _damage_warnings(walk: Walk, name: str) -> list[str]:
    if not walk.damage:
        return []
    first = walk.damage[0]
    skipped = sum(d.size for d in walk.damage)
    return [
        f"{name}: damaged record at offset {first.offset} ({first.reason}); skipped {skipped} "
        f"bytes in {len(walk.damage)} place(s) to resynchronise"
    ]


def _finish(parts: list[pl.DataFrame], losses: Losses, name: str) -> pl.DataFrame:
    """The events table in file order, loss markers among the rows they sit between."""
    if not parts and not losses:
        return empty_events()
    frame = pl.concat(parts, rechunk=False) if parts else pl.DataFrame(schema=blocks.FRAME_SCHEMA)
    if losses:
        frame = with_markers(frame, losses.frame(frame.get_column("offset").to_numpy()))
    return conform(
        frame.with_columns(source=pl.lit(name, pl.Categorical), tid=pl.lit(None, pl.Int32))
    )


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


__all__ = ["BLOCK_RECORDS", "WINDOW_BYTES", "OpenedInput", "parse"]
