"""Write the events table as CSV, JSON lines or Parquet.

Text formats print ``view`` and ``root`` as ``0x``-prefixed lower-case hex, as QEMU prints
pointers; Parquet keeps them as UInt64 so they stay numbers for later queries.
"""

from __future__ import annotations

import contextlib
import errno
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import polars as pl

from qtrace.errors import UsageError
from qtrace.formatting import hex_pointer

EVENT_FORMATS = ("csv", "jsonl", "parquet")
BATCH_ROWS = 1 << 16  # rows rendered to text at a time: some 10 MB of csv


def events_for_text(events: pl.DataFrame) -> pl.DataFrame:
    """The table with pointer columns rendered as hex strings."""
    return events.with_columns(hex_pointer("view"), hex_pointer("root"))


def write_all(target: BinaryIO, data: bytes) -> None:
    """Write every byte of ``data`` to ``target``, or raise.

    An unbuffered stream (``sys.stdout.buffer`` under ``PYTHONUNBUFFERED=1`` is a raw file)
    writes what one ``write(2)`` takes, at most 2,147,479,552 bytes on Linux, and says how
    many: the rest must be written again, never dropped.

    Examples
    --------
    >>> import io
    >>> out = io.BytesIO()
    >>> write_all(out, b"seq,ts_ns\\n")
    >>> out.getvalue()
    b'seq,ts_ns\\n'
    """
    view = memoryview(data)
    while view:
        written = target.write(view)
        if written is None:  # a non-blocking stream that would block
            raise OSError(errno.EAGAIN, "the output would block; write to a file instead")
        if written <= 0:
            raise OSError(errno.EIO, f"the output took no bytes ({len(view)} left to write)")
        view = view[written:]


def _text_batches(events: pl.DataFrame, fmt: str) -> Iterator[bytes]:
    """The table as csv or JSON lines, ``BATCH_ROWS`` rows at a time (the header first)."""
    for start in range(0, max(events.height, 1), BATCH_ROWS):
        # Rechunked: polars panics formatting multi-chunk string columns (hex_pointer).
        batch = events_for_text(events.slice(start, BATCH_ROWS).rechunk())
        buffer = io.BytesIO()
        if fmt == "csv":
            batch.write_csv(buffer, include_header=start == 0)
        else:
            batch.write_ndjson(buffer)
        yield buffer.getvalue()


def write_events(events: pl.DataFrame, fmt: str, output: Path | None) -> None:
    """Write ``events`` in ``fmt`` to ``output``, or to standard output when it is None.

    Text formats are rendered and written a batch of rows at a time, so the text of a large
    table never sits whole in memory, and every write is checked (see ``write_all``).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "events.csv"
    >>> write_events(qtrace.read_events("samples/pc-boot-ts.log"), "csv", out)
    >>> out.read_text().splitlines()[:2]  # doctest: +NORMALIZE_WHITESPACE
    ['seq,ts_ns,tid,pid,thread,event,view,root,args,source,line,offset',
     '0,1795635803041288000,2963,,,flatview_new,0x5620645b1ac0,0x0,,samples/pc-boot-ts.log,1,']
    """
    if fmt not in EVENT_FORMATS:
        raise UsageError(f"unknown output format {fmt!r} (choose {', '.join(EVENT_FORMATS)})")
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs --output FILE (Parquet is binary)")
        events.write_parquet(output)
        return
    with contextlib.ExitStack() as stack:
        target: BinaryIO = (
            stack.enter_context(output.open("wb")) if output is not None else sys.stdout.buffer
        )
        for data in _text_batches(events, fmt):
            write_all(target, data)
        target.flush()
