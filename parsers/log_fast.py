"""The C fast path of ``log_text``: plain tid-timestamp, iso8601 and bare logs, model events.

``_fastlog.scan`` (``parsers/_fastlog.c``) reads the file in one pass (the FlatView events,
and ``memory_region_finalize`` with the model's selection) and answers only when it
understood every line; otherwise (another dialect, a garbled ``flatview_``
line, bytes that are not ASCII, a line over 1 MiB, ...) it returns None and ``log_text``
runs its polars path, the reference this must match exactly. The extension is optional:
without a compiler the package installs without it and every log takes the polars path.
``QTRACE_NO_FASTLOG=1`` forces the polars path (the tests compare the two).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from qtrace.errors import InputError
from qtrace.events import FLATVIEW_EVENTS, MODEL_EVENTS, EventSelection

try:
    from qtrace.parsers import _fastlog
except ImportError:  # built without a compiler
    _fastlog = None  # type: ignore[assignment]

NO_FASTLOG = "QTRACE_NO_FASTLOG"
SPLIT_BYTES = 64 << 20  # files this large are scanned in two halves by two threads


@dataclass(frozen=True)
class FastScan:
    """What the fast path read: the events (``log_text.OUTPUT`` columns) and the counts."""

    dialect: str
    events: pl.DataFrame
    lines_skipped: int
    damaged: int  # lines holding "flatview_" that no dialect reads
    first_damaged: int  # line number of the first of them (0 when none)


class _Arrow:
    """One column from the scanner (Arrow C Data Interface capsules), for ``pl.Series``.

    polars imports it without copying, and without numpy.
    """

    def __init__(self, capsules: tuple[object, object]) -> None:
        self._capsules = capsules

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        return self._capsules


def _column(found: dict[str, Any], name: str) -> pl.Series:
    return pl.Series(_Arrow(found[name])).alias(name)


# The scanner's event codes (0, 1, 2, and 3 with the model's selection) index this.
EVENT_NAMES = pl.Series("event", MODEL_EVENTS, pl.Categorical)


def _frame(part: dict[str, Any], dialect: str, first_seq: int) -> pl.DataFrame:
    event = EVENT_NAMES.gather(_column(part, "event").cast(pl.UInt32))
    n = event.len()
    # Numbered per part, so every column has the parts' chunks (one column of other chunks
    # would make polars copy the whole table into one).
    seq = pl.int_range(first_seq, first_seq + n, dtype=pl.Int64, eager=True).alias("seq")
    no_time = pl.Series("ts_ns", [], pl.Int64).extend_constant(None, n)
    no_thread = pl.Series("tid", [], pl.Int32).extend_constant(None, n)
    # view and root hold a FlatView event's arguments: no text is kept for them; a finalize
    # event (the model's selection) keeps its text.
    args = pl.Series("args", [], pl.String).extend_constant(None, n)
    if part["finalize_index"]:
        args = args.scatter(part["finalize_index"], part["finalize_args"])
    return pl.DataFrame(
        [
            seq,
            _column(part, "ts_ns") if dialect != "bare" else no_time,
            _column(part, "tid") if dialect == "tid-timestamp" else no_thread,
            no_thread.alias("pid"),
            event,
            _column(part, "view"),
            _column(part, "root"),
            args,
            _column(part, "line"),
        ]
    )


def available() -> bool:
    """True when the extension is built and not switched off by ``QTRACE_NO_FASTLOG=1``."""
    return _fastlog is not None and os.environ.get(NO_FASTLOG, "") != "1"


def read(path: Path, selection: EventSelection) -> FastScan | None:
    """The FlatView events of the log at ``path``, or None when the polars path must read it.

    Parameters
    ----------
    path
        A plain (decompressed) log file.
    selection
        Only the FlatView events, or the model's events (``MODEL_EVENTS``), are read here.

    Returns
    -------
    FastScan or None
        None when the extension is missing or switched off, the selection is another, or
        the file holds anything but well-formed lines of one common dialect.

    Raises
    ------
    InputError
        When the file shrank while it was read.
    """
    if not available() or selection.keeps_all:
        return None
    wanted = set(selection.patterns or ())
    if wanted not in (set(FLATVIEW_EVENTS), set(MODEL_EVENTS)):
        return None
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return None  # the polars path reports an empty file
        found = _fastlog.scan(fh.fileno(), size, SPLIT_BYTES, wanted == set(MODEL_EVENTS))
    if found is not None and found.get("shrunk"):
        raise InputError(f"{path}: the file shrank while it was read (truncated by logrotate?)")
    if found is None:
        return None
    # The scanner reads a large file in two halves (two threads): one frame each.
    frames: list[pl.DataFrame] = []
    for part in found["parts"]:
        frames.append(_frame(part, found["dialect"], sum(f.height for f in frames)))
    events = frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)
    return FastScan(
        found["dialect"],
        events,
        found["lines_skipped"],
        found["damaged"],
        found["first_damaged"],
    )
