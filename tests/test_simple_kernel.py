"""The simple reader's C kernel gives exactly what its numpy paths give.

Every reader test already runs both ways (``simple_traces.reader_variant``); these compare the
two kernel functions directly, on real windows and on bytes hypothesis makes up.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qtrace.parsers.simple import arguments, kernel, scan
from qtrace.parsers.simple.file import TraceFile, Window
from qtrace.parsers.simple.gather import Fields
from qtrace.parsers.trace_events_decl import load_trace_events

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "traces"
MIXED = SHARED / "pc-bridges-mixed.simpletrace"
FIRST_EVENT = 169574  # after the mapping records of both real traces


@pytest.fixture
def use_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kernel.available(), "the C kernel is not built"
    monkeypatch.setenv(kernel.NO_KERNEL, "0")


def both_scans(
    monkeypatch: pytest.MonkeyPatch, window: Window, start: int, stop: int, order: str, limit: int
) -> tuple[scan.Records, scan.Records]:
    monkeypatch.setenv(kernel.NO_KERNEL, "0")
    compiled = scan.scan(window, start, stop, order, limit)
    monkeypatch.setenv(kernel.NO_KERNEL, "1")
    reference = scan.scan(window, start, stop, order, limit)
    return compiled, reference


def assert_same(a: scan.Records, b: scan.Records) -> None:
    for name in ("offset", "eid", "ts", "length", "pid", "a0", "a1"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def window_of(path: Path, data: bytes, start: int = 0) -> tuple[TraceFile, Window]:
    path.write_bytes(data)
    file = TraceFile(path, path.name)
    window = Window(file, len(data) + 1)
    window.load(start)
    return file, window


@pytest.mark.parametrize("limit", [1 << 20, 1000, 2])
def test_scan_of_the_real_mixed_trace(
    monkeypatch: pytest.MonkeyPatch, use_kernel: None, limit: int
) -> None:
    file = TraceFile(MIXED, "mixed")
    with file:
        window = Window(file, 1 << 20)
        window.load(FIRST_EVENT)
        compiled, reference = both_scans(monkeypatch, window, FIRST_EVENT, window.end, "<", limit)
    assert_same(compiled, reference)
    # The whole window's records, or as many as asked for.
    assert len(compiled) == (limit if limit <= 1000 else 12_857)
    assert int(compiled.offset[0]) == FIRST_EVENT


RECORD = st.tuples(
    st.sampled_from([0, 1, 1, 1, 2, 1 << 56]),  # the type word
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 23, 24, 31, 32, 40, 41, 64, 5184, 5185, 2**32 - 1]),  # length
    st.integers(0, 2**32 - 1),
    st.binary(max_size=48),
)


@settings(max_examples=150, deadline=None)
@given(records=st.lists(RECORD, max_size=12), order=st.sampled_from("<>"), cut=st.integers(0, 64))
def test_scan_of_made_up_records(
    tmp_path_factory: pytest.TempPathFactory,
    records: list[tuple[int, int, int, int, int, bytes]],
    order: str,
    cut: int,
) -> None:
    data = b"".join(
        struct.pack(order + "QQQII", rtype, eid, ts, length, pid)
        + (body + bytes(max(0, length - 24 - len(body))))[: max(0, length - 24)]
        if length <= 5185
        else struct.pack(order + "QQQII", rtype, eid, ts, length, pid) + body
        for rtype, eid, ts, length, pid, body in records
    )
    data = data[: max(0, len(data) - cut)] or b"\0"
    with pytest.MonkeyPatch.context() as patch:
        file, window = window_of(tmp_path_factory.mktemp("scan") / "t", data)
        with file:
            compiled, reference = both_scans(patch, window, 0, window.end, order, 1 << 20)
    assert_same(compiled, reference)


def reference_texts(
    window: Window, order: str, offsets: np.ndarray, lengths: np.ndarray, layout: arguments.Layout
) -> tuple[list[str | None], np.ndarray]:
    values, ok = arguments.decode_values(
        Fields(window.data, order), offsets - window.base, lengths, layout
    )
    text, codes = arguments._numbered_texts(layout, values, offsets.size, {})
    return [t if good else None for t, good in zip(text.gather(codes), ok, strict=True)], ok


def kernel_texts(
    window: Window, order: str, offsets: np.ndarray, lengths: np.ndarray, layout: arguments.Layout
) -> tuple[list[str | None], np.ndarray]:
    text, codes, ok = arguments.args_text(window, order, offsets, lengths, layout, {})
    rows = text.gather(codes) if text.len() else pl.Series([None] * offsets.size, dtype=pl.String)
    return [t if good else None for t, good in zip(rows, ok, strict=True)], ok


def test_render_of_every_layout_of_the_real_mixed_trace(
    monkeypatch: pytest.MonkeyPatch, use_kernel: None
) -> None:
    decls = load_trace_events(SHARED / "trace-events-all")
    data = MIXED.read_bytes()
    names = {}
    offset = 24
    while struct.unpack_from("<Q", data, offset)[0] == 0:
        _, eid, size = struct.unpack_from("<QQI", data, offset)
        names[eid] = data[offset + 20 : offset + 20 + size].decode()
        offset += 20 + size
    with TraceFile(MIXED, "mixed") as file:
        window = Window(file, len(data))
        window.load(FIRST_EVENT)
        records = scan.scan(window, FIRST_EVENT, window.end, "<", 1 << 20)
        checked = 0
        for eid in np.unique(records.eid).tolist():
            layout = decls[names[eid]].layout
            rows = records.eid == eid
            offsets, lengths = records.offset[rows], records.length[rows]
            # Also under a layout the records do not fit: every row must come out not ok.
            for candidate in (layout, ((True, "s"),), ((False, "x"),)):
                compiled = kernel_texts(window, "<", offsets, lengths, candidate)
                monkeypatch.setenv(kernel.NO_KERNEL, "1")
                reference = reference_texts(window, "<", offsets, lengths, candidate)
                monkeypatch.setenv(kernel.NO_KERNEL, "0")
                assert compiled[0] == reference[0]
                assert np.array_equal(compiled[1], reference[1])
                checked += int(compiled[1].sum())
    assert checked >= 49_500


ARGUMENT = st.one_of(st.binary(max_size=70), st.integers(0, 2**64 - 1))


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(ARGUMENT, min_size=0, max_size=4), min_size=1, max_size=8),
    order=st.sampled_from("<>"),
)
def test_render_of_made_up_arguments(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[bytes | int]], order: str
) -> None:
    """Strings with quotes, backslashes, NULs and bytes past ASCII print as Python's repr."""
    layout = tuple((isinstance(a, bytes), f"arg{i}") for i, a in enumerate(rows[0]))
    data = b""
    offsets, lengths = [], []
    for values in rows:
        body = b"".join(
            struct.pack(order + "I", len(v)) + v
            if isinstance(v, bytes)
            else struct.pack(order + "Q", v)
            for v in values
        )
        offsets.append(len(data))
        lengths.append(24 + len(body))
        data += struct.pack(order + "QQQII", 1, 7, 0, 24 + len(body), 0) + body
    with pytest.MonkeyPatch.context() as patch:
        file, window = window_of(tmp_path_factory.mktemp("render") / "t", data)
        with file:
            at, size = np.array(offsets, np.int64), np.array(lengths, np.uint32)
            patch.setenv(kernel.NO_KERNEL, "0")
            compiled = kernel_texts(window, order, at, size, layout)
            patch.setenv(kernel.NO_KERNEL, "1")
            reference = reference_texts(window, order, at, size, layout)
    assert compiled[0] == reference[0]
    assert np.array_equal(compiled[1], reference[1])
    first = rows[0]
    expected = " ".join(
        f"arg{i}={v!r}" if isinstance(v, bytes) else f"arg{i}={v:#x}" for i, v in enumerate(first)
    )
    assert compiled[0][0] == expected
