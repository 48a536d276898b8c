"""Read one run from one or more trace files into a single, ordered events table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from qtrace.events import COLUMNS, MODEL_EVENTS, EventSelection, ParsedInput, Trace
from qtrace.parsers import parse_file

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
        if all(p.clock != "none" for p in parts):
            # Stable: equal timestamps keep file order, and each file keeps its own order.
            merged = merged.sort(["ts_ns", "_file"], maintain_order=True, nulls_last=True)
        else:
            notes.append("some inputs have no clock: files were concatenated in the order given")
    merged = (
        merged.drop("_file", "seq").with_row_index("seq").with_columns(pl.col("seq").cast(pl.Int64))
    )
    return merged.select(COLUMNS), notes


def _summarise(values: list[str]) -> str:
    unique = sorted(set(values))
    return unique[0] if len(unique) == 1 else "mixed(" + ",".join(unique) + ")"


def read_trace(
    paths: StrPath | Sequence[StrPath],
    *,
    events: str | EventSelection | None = None,
    input_format: str | None = None,
    trace_events: StrPath | None = None,
) -> Trace:
    """Read one run from one or more files (``-`` is standard input) into a ``Trace``.

    Parameters
    ----------
    paths
        A file or several files of one run (e.g. the per-thread files of ``-d tid -D log.%d``);
        they are merged by timestamp.
    events
        QEMU-style globs of the events to keep (``"flatview_*,pci_*"``); ``"*"`` keeps all.
        Default: the events the lifetime model reads (``qtrace.MODEL_EVENTS``: the three
        FlatView events and ``memory_region_finalize``). Loss markers (dropped-events records,
        ``qtrace_unreadable`` rows) are always kept.
    input_format
        ``"log"`` or ``"simple"``; detected from content when omitted.
    trace_events
        The build's ``trace-events-all``, to decode non-FlatView simple-backend records.

    Examples
    --------
    >>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")
    >>> trace.events.filter(pl.col("event") == "flatview_new").height
    257
    """
    names = (
        [os.fspath(paths)]
        if isinstance(paths, str | os.PathLike)
        else [os.fspath(p) for p in paths]
    )
    selection = (
        events
        if isinstance(events, EventSelection)
        else EventSelection.parse(events, default=MODEL_EVENTS)
    )
    te_path = Path(trace_events) if trace_events is not None else None
    parts = [
        parse_file(name, selection=selection, input_format=input_format, trace_events=te_path)
        for name in names
    ]
    table, notes = _merge(parts)
    return Trace(
        events=table,
        paths=["<stdin>" if n == "-" else n for n in names],
        format=_summarise([p.format for p in parts]),
        dialect=_summarise([p.dialect for p in parts]),
        clock=_summarise([p.clock for p in parts]),
        lines_skipped=sum(p.lines_skipped for p in parts),
        bytes_skipped=sum(p.bytes_skipped for p in parts),
        dropped_events=sum(p.dropped_events for p in parts),
        input_bytes=sum(p.input_bytes for p in parts),
        warnings=[w for p in parts for w in p.warnings] + notes,
    )


def read_events(
    paths: StrPath | Sequence[StrPath],
    *,
    events: str | EventSelection | None = None,
    input_format: str | None = None,
    trace_events: StrPath | None = None,
) -> pl.DataFrame:
    """The events table of ``paths`` (see ``read_trace``), without the reading notes.

    Examples
    --------
    >>> qtrace.read_events("samples/pc-boot.simpletrace").columns
    ['seq', 'ts_ns', 'tid', 'pid', 'thread', 'event', 'view', 'root', 'args', 'source', 'line',
     'offset']
    """
    return read_trace(
        paths, events=events, input_format=input_format, trace_events=trace_events
    ).events
