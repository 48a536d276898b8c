"""Write the events table as CSV, JSON lines or Parquet.

Text formats print ``view`` and ``root`` as ``0x``-prefixed lower-case hex, as QEMU prints
pointers; Parquet keeps them as UInt64 so they stay numbers for later queries.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import BinaryIO

import polars as pl

from qtrace.errors import UsageError
from qtrace.formatting import hex_pointer

EVENT_FORMATS = ("csv", "jsonl", "parquet")


def events_for_text(events: pl.DataFrame) -> pl.DataFrame:
    """The table with pointer columns rendered as hex strings."""
    return events.with_columns(hex_pointer("view"), hex_pointer("root"))


def write_events(events: pl.DataFrame, fmt: str, output: Path | None) -> None:
    """Write ``events`` in ``fmt`` to ``output``, or to standard output when it is None."""
    if fmt not in EVENT_FORMATS:
        raise UsageError(f"unknown output format {fmt!r} (choose {', '.join(EVENT_FORMATS)})")
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs --output FILE (Parquet is binary)")
        events.write_parquet(output)
        return
    text = events_for_text(events)
    target: BinaryIO = output.open("wb") if output is not None else sys.stdout.buffer
    try:
        buffer = io.BytesIO()
        if fmt == "csv":
            text.write_csv(buffer)
        else:
            text.write_ndjson(buffer)
        target.write(buffer.getvalue())
        target.flush()
    finally:
        if output is not None:
            target.close()
