"""Read one run from one or more trace files into a single, ordered events table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from qtrace.errors import UsageError
from qtrace.events import (
    COLUMNS,
    MODEL_EVENTS,
    NO_CLOCK,
    EventSelection,
    ParsedInput,
    Trace,
    mixed_parts,
    summarise,
)
from qtrace.parsers import parse_file
from qtrace.parsers.source import STDIN, shown_name

StrPath = str | os.PathLike[str]


def _merge(parts: list[ParsedInput]) -> tuple[pl.DataFrame, list[str]]:
    """One table in trace order: files with clocks merge by timestamp, others concatenate."""
    notes: list[str] = []
    if len(parts) == 1:
        # Already numbered by its parser: no copy of a table that may be gigabytes.
        return parts[0].events.select(COLUMNS), notes
    frames = [
        p.events.with_columns(pl.lit(i, pl.Int32).alias("_file")) for i, p in enumerate(parts)
    ]
    merged = pl.concat(frames, how="vertical")
    if len(parts) > 1:
        if all(NO_CLOCK not in mixed_parts(p.clock) for p in parts):
            # Stable: equal timestamps keep file order, and each file keeps its own order.
            merged = merged.sort(["ts_ns", "_file"], maintain_order=True, nulls_last=True)
        else:
            # A file with lines of no clock (mixed(none,...)) too: its unstamped lines have
            # no place among the others' stamps.
            notes.append(
                "some inputs have lines without a clock: files were concatenated in the order given"
            )
    merged = (
        merged.drop("_file", "seq").with_row_index("seq").with_columns(pl.col("seq").cast(pl.Int64))
    )
    return merged.select(COLUMNS), notes


def _same_file_key(name: str) -> tuple[int, int] | str:
    """What identifies the file ``name`` opens: its device and inode when it has them."""
    if name == STDIN:
        return STDIN
    try:
        st = os.stat(name)
    except OSError:
        return name  # the parser says what is wrong with it
    return (st.st_dev, st.st_ino)


def _read_once(names: list[str], shown: list[str]) -> tuple[list[int], list[str]]:
    """The positions of the inputs to read (each file once), and a note per repeat."""
    first: dict[tuple[int, int] | str, int] = {}
    keep: list[int] = []
    notes: list[str] = []
    for i, name in enumerate(names):
        key = _same_file_key(name)
        if key in first:
            earlier = shown[first[key]]
            again = "named twice" if earlier == shown[i] else f"the same file as {earlier}"
            notes.append(f"{shown[i]} is {again}: read once")
            continue
        first[key] = i
        keep.append(i)
    return keep, notes


def read_trace(
    paths: StrPath | Sequence[StrPath],
    *,
    events: str | EventSelection | None = None,
    input_format: str | None = None,
    trace_events: StrPath | None = None,
    max_input_bytes: int | None = None,
    names: Sequence[str] | None = None,
    scratch_dir: StrPath | None = None,
) -> Trace:
    """Read one run from one or more files (``-`` is standard input) into a ``Trace``.

    Parameters
    ----------
    paths
        A file or several files of one run (e.g. the per-thread files of ``-d tid -D log.%d``);
        they are merged by timestamp. Compressed files (gzip, zstd, xz, bzip2) and named pipes
        are read too. A file named twice is read once, with a warning.
    events
        QEMU-style globs of the events to keep (``"flatview_*,pci_*"``); ``"*"`` keeps all.
        Default: the events the lifetime model reads (``qtrace.MODEL_EVENTS``: the three
        FlatView events and ``memory_region_finalize``). Loss markers (dropped-events records,
        ``qtrace_unreadable`` rows) are always kept.
    input_format
        ``"log"`` or ``"simple"``; detected from content when omitted.
    trace_events
        The build's ``trace-events-all``, to decode non-FlatView simple-backend records.
    max_input_bytes
        Refuse (``InputError``) an input that holds or decodes to more bytes; default: no limit.
    names
        How to name each input in the events' ``source``, the warnings and the errors
        (default: its path as ``qtrace.paths.display`` shows it; ``<stdin>`` for ``-``).
    scratch_dir
        Where decoded copies of compressed inputs and streams go while they are read
        (default: the system's temporary directory).

    Examples
    --------
    >>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")
    >>> trace.events.filter(pl.col("event") == "flatview_new").height
    257
    """
    given = (
        [os.fspath(paths)]
        if isinstance(paths, str | os.PathLike)
        else [os.fspath(p) for p in paths]
    )
    shown = [shown_name(n) for n in given] if names is None else list(names)
    if len(shown) != len(given):
        raise UsageError(f"{len(given)} inputs but {len(shown)} names for them")
    selection = (
        events
        if isinstance(events, EventSelection)
        else EventSelection.parse(events, default=MODEL_EVENTS)
    )
    te_path = Path(trace_events) if trace_events is not None else None
    keep, repeats = _read_once(given, shown)
    parts = [
        parse_file(
            given[i],
            selection=selection,
            input_format=input_format,
            trace_events=te_path,
            shown=shown[i],
            limit_bytes=max_input_bytes,
            scratch_dir=None if scratch_dir is None else os.fspath(scratch_dir),
        )
        for i in keep
    ]
    table, notes = _merge(parts)
    return Trace(
        events=table,
        paths=[shown[i] for i in keep],
        format=summarise([p.format for p in parts]),
        dialect=summarise([p.dialect for p in parts]),
        clock=summarise([p.clock for p in parts]),
        lines_skipped=sum(p.lines_skipped for p in parts),
        bytes_skipped=sum(p.bytes_skipped for p in parts),
        dropped_events=sum(p.dropped_events for p in parts),
        input_bytes=sum(p.input_bytes for p in parts),
        warnings=repeats + [w for p in parts for w in p.warnings] + notes,
    )


def read_events(
    paths: StrPath | Sequence[StrPath],
    *,
    events: str | EventSelection | None = None,
    input_format: str | None = None,
    trace_events: StrPath | None = None,
    max_input_bytes: int | None = None,
) -> pl.DataFrame:
    """The events table of ``paths`` (see ``read_trace``), without the reading notes.

    Examples
    --------
    >>> qtrace.read_events("samples/pc-boot.simpletrace").columns
    ['seq', 'ts_ns', 'tid', 'pid', 'thread', 'event', 'view', 'root', 'args', 'source', 'line',
     'offset']
    """
    return read_trace(
        paths,
        events=events,
        input_format=input_format,
        trace_events=trace_events,
        max_input_bytes=max_input_bytes,
    ).events
