"""Shared by the simple-reader tests: real traces, synthetic files built with struct, and the
fixture that runs each test over every variant of the reader (C kernel or numpy, usual or
tiny windows)."""

from __future__ import annotations

import struct
from pathlib import Path

import polars as pl
import pytest
from qtrace.parsers import simple
from qtrace.parsers.simple import kernel
from qtrace.parsers.source import open_input

from qtrace.events import ALL_EVENTS, UNREADABLE, EventSelection, ParsedInput

SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"
TRACE_EVENTS = SHARED / "trace-events-all"
REAL_TRACES = sorted(SHARED.glob("*.simpletrace"))
MAGIC = 0xF2B177CB0AA429B4
FLATVIEW_IDS = {"flatview_new": 10, "flatview_destroy_rcu": 11, "flatview_destroy": 12}


# How the reader runs: with its C kernel or its numpy paths, and with its usual windows or
# with tiny ones (64 bytes read at a time, 3 records decoded at a time), which put window and
# block boundaries everywhere. The result and the warnings must not change.
VARIANTS = {
    "kernel": (True, None),
    "kernel-small-windows": (True, (64, 3)),
    "numpy": (False, None),
    "numpy-small-windows": (False, (64, 3)),
}


@pytest.fixture(autouse=True, params=list(VARIANTS))
def reader_variant(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test of a module that imports this runs once per variant of the reader. Tests of
    the 49,500-record real trace ask for larger blocks (``block_records(n)``)."""
    use_kernel, small = VARIANTS[request.param]
    if use_kernel:
        assert kernel.available(), "the C kernel is not built"
    monkeypatch.setenv(kernel.NO_KERNEL, "0" if use_kernel else "1")
    if small is not None:
        asked = request.node.get_closest_marker("block_records")
        window_bytes, block_records = small if asked is None else (16 << 10, asked.args[0])
        monkeypatch.setattr(simple, "WINDOW_BYTES", window_bytes)
        monkeypatch.setattr(simple, "BLOCK_RECORDS", block_records)
    return str(request.param)


# --- building synthetic files ---------------------------------------------------------------


def header(order: str = "<", version: int = 4, magic: int = MAGIC) -> bytes:
    return struct.pack(order + "QQQ", 0xFFFFFFFFFFFFFFFF, magic, version)


def mapping(eid: int, name: str, order: str = "<") -> bytes:
    raw = name.encode()
    return struct.pack(order + "QQI", 0, eid, len(raw)) + raw


def event(
    eid: int,
    ts_ns: int,
    args: list[int | bytes],
    *,
    pid: int = 4242,
    order: str = "<",
    length: int | None = None,
) -> bytes:
    body = b"".join(
        struct.pack(order + "I", len(a)) + a
        if isinstance(a, bytes)
        else struct.pack(order + "Q", a)
        for a in args
    )
    size = 24 + len(body) if length is None else length
    return struct.pack(order + "QQQII", 1, eid, ts_ns, size, pid) + body


def flatview_mappings(order: str = "<") -> bytes:
    return b"".join(mapping(eid, name, order) for name, eid in FLATVIEW_IDS.items())


def parse_bytes(
    tmp_path: Path,
    data: bytes,
    selection: EventSelection = ALL_EVENTS,
    trace_events: Path | None = TRACE_EVENTS,
    name: str = "t.simpletrace",
) -> ParsedInput:
    path = tmp_path / name
    path.write_bytes(data)
    with open_input(str(path)) as opened:
        return simple.parse(opened, selection, trace_events)


def read_rows(events: pl.DataFrame) -> pl.DataFrame:
    """The rows read from records (no loss markers)."""
    return events.filter(pl.col("event") != UNREADABLE)


def markers(events: pl.DataFrame) -> list[tuple[int, str]]:
    """Each loss marker's offset and text."""
    rows = events.filter(pl.col("event") == UNREADABLE).select("offset", "args")
    return list(rows.iter_rows())


def arguments(events: pl.DataFrame) -> list[str | None]:
    """Each row's arguments as simpletrace.py prints them (a FlatView event's: view, root)."""
    return [
        f"view={row['view']:#x} root={row['root']:#x}" if row["view"] is not None else row["args"]
        for row in events.iter_rows(named=True)
    ]


def simpletrace_lines(events: pl.DataFrame) -> list[str]:
    """Rows printed the way QEMU's simpletrace.py Formatter prints records.

    The delta is against the previous record, and the first record's delta is 0 (the
    Formatter starts its last timestamp at the first record's own).
    """
    lines = []
    previous: int | None = None
    for row, args in zip(events.iter_rows(named=True), arguments(events), strict=True):
        ts = row["ts_ns"]
        previous = ts if previous is None else previous
        fields = [row["event"], f"{(ts - previous) / 1000.0:0.3f}", f"pid={row['pid']}"]
        previous = ts
        if args:
            fields.append(args)
        lines.append(" ".join(fields))
    return lines


def parse_bytes_path(
    path: Path, selection: EventSelection = ALL_EVENTS, trace_events: Path | None = TRACE_EVENTS
) -> ParsedInput:
    with open_input(str(path)) as opened:
        return simple.parse(opened, selection, trace_events)
