"""Lines longer than 1 MiB never reach polars whole: the log reader reads a copy cut there.

polars holds a line whole, so a gzip of 1 GiB of zeros (1 MB on disk, one line) took 3.2 GB
(issue 13). The reader now hands polars a copy with each long line cut at
``LONG_LINE_BYTES``, counts the cut lines in its warning, and still marks a cut line that
names a FlatView event as a ``qtrace_unreadable`` row. Each test checks what polars was
given (no line over the limit), never time or memory.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from qtrace.parsers import parse_file
from qtrace.parsers.log import reader
from qtrace.parsers.log.lines import (
    FLATVIEW_NAME,
    LONG_LINE_BYTES,
    TextFile,
    _LineCutter,
)
from typer.testing import CliRunner

from qtrace.cli import app
from qtrace.events import UNREADABLE, EventSelection

LONG = 32 << 20  # a 32 MiB line: long enough to matter, small enough for a test


@dataclass
class Given:
    """A text file the log reader handed polars' line scanner, and its longest line."""

    text: TextFile
    longest: int


@pytest.fixture
def given_to_polars(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Given]]:
    """What the log reader hands polars' line scanner (measured then: copies are removed)."""
    seen: list[Given] = []
    scan = reader.scan

    def recording(text: TextFile, lossy: bool) -> pl.LazyFrame:
        longest = max(len(line) for line in text.path.read_bytes().split(b"\n"))
        seen.append(Given(text, longest))
        return scan(text, lossy)

    monkeypatch.setattr(reader, "scan", recording)
    yield seen


def assert_bounded(seen: list[Given]) -> None:
    assert seen, "the polars reader ran"
    assert all(given.longest <= LONG_LINE_BYTES for given in seen)


def real_log_with(qemu10: Path, path: Path, line: bytes, at: int = 1000) -> Path:
    """The real QEMU 10 log with ``line`` inserted as line ``at + 1``, gzipped."""
    lines = qemu10.read_bytes().splitlines(keepends=True)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.writelines(lines[:at])
        out.write(line + b"\n")
        out.writelines(lines[at:])
    return path


def test_a_32_mib_line_of_zeros_in_a_real_log_is_cut_counted_and_the_rest_read(
    tmp_path: Path, shared_traces: Path, given_to_polars: list[Given]
) -> None:
    qemu10 = shared_traces / "qemu10-pc-bridges-ts.log"
    clean = parse_file(str(qemu10), selection=EventSelection())
    path = real_log_with(qemu10, tmp_path / "zeros.log.gz", b"\x00" * LONG)
    parsed = parse_file(str(path), selection=EventSelection())
    assert_bounded(given_to_polars)
    assert given_to_polars[-1].text.long_lines == (1, 1001)
    shifted = pl.when(pl.col("line") > 1000).then(pl.col("line") + 1).otherwise(pl.col("line"))
    expected = clean.events.with_columns(shifted.alias("line")).drop("source")
    assert parsed.events.drop("source").equals(expected)
    assert parsed.lines_skipped == clean.lines_skipped + 1
    assert f"{path}: 1 lines longer than 1 MiB (first at line 1001) were read cut to that " in (
        "\n".join(parsed.warnings) + " "
    )


def test_a_cut_line_naming_a_flatview_event_past_the_cut_is_an_unreadable_row(
    tmp_path: Path, shared_traces: Path, given_to_polars: list[Given]
) -> None:
    qemu10 = shared_traces / "qemu10-pc-bridges-ts.log"
    junk = b"\x01junk" * (LONG // 5) + b" flatview_destroy 0x7f0000001000 (root 0x1)"
    parsed = parse_file(
        str(real_log_with(qemu10, tmp_path / "named.log.gz", junk)), selection=EventSelection()
    )
    assert_bounded(given_to_polars)
    marker = parsed.events.filter(pl.col("event") == UNREADABLE)
    assert marker["line"].to_list() == [1001]
    assert marker["args"][0].startswith("garbled flatview_destroy line: \x01junk")
    assert any("1 FlatView lines are garbled or cut" in w for w in parsed.warnings)


def test_analyze_of_a_gzip_of_only_zeros_says_no_trace_lines_and_reads_a_cut_copy(
    tmp_path: Path, given_to_polars: list[Given]
) -> None:
    path = tmp_path / "zeros.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b"\x00" * LONG)  # no newline at all: one line, the last
    result = CliRunner().invoke(app, ["analyze", str(path)])
    assert result.exit_code == 3
    assert result.stderr == f"qtrace: error: {path}: no QEMU trace lines found\n"
    assert_bounded(given_to_polars)


def cut_by_hand(data: bytes, limit: int) -> bytes:
    """The cutter's rule, line by line: a long line keeps ``limit`` bytes, cut before a
    character, ending with the first FlatView name that runs past the cut, if any."""
    out = []
    for line in data.split(b"\n"):
        if len(line) <= limit:
            out.append(line)
            continue
        room = limit
        while line[room] & 0xC0 == 0x80:
            room -= 1
        kept = line[:room]
        names = [m.group() for m in FLATVIEW_NAME.finditer(line) if m.end() > room]
        if names:
            end = len(names[0]) + 1
            while kept[-end] & 0xC0 == 0x80:
                end += 1
            kept = kept[:-end] + b" " * (end - len(names[0])) + names[0]
        out.append(kept)
    return b"\n".join(out)


PIECES = st.sampled_from(
    ["a", "é", "€", "𝄞", " ", "flatview_new", "flatview_destroy", "flatview_destroy_rcu"]
)
LINES = st.lists(st.lists(PIECES, max_size=40).map("".join), max_size=6)


@settings(max_examples=400, deadline=None)
@given(lines=LINES, limit=st.sampled_from([32, 40, 64]), newline_at_end=st.booleans())
# The cut falls inside a character that began in the chunk before, and the name written over
# the end must then go back across another four-byte character (found by hypothesis).
@example(lines=["aaaaaaaaa" + "𝄞" * 8 + "flatview_destroy_rcu"], limit=40, newline_at_end=False)
def test_the_cutter_cuts_every_long_line_as_the_rule_says(
    lines: list[str], limit: int, newline_at_end: bool
) -> None:
    data = "\n".join(lines).encode() + (b"\n" if newline_at_end and lines else b"")
    out = io.BytesIO()
    cutter = _LineCutter(out, limit)
    for start in range(0, len(data), limit):  # as _cut_copy reads: chunks of the limit
        cutter.feed(data[start : start + limit])
    cutter.close()
    assert out.getvalue() == cut_by_hand(data, limit)
    out.getvalue().decode()  # still UTF-8
    long = [n for n, line in enumerate(data.split(b"\n"), 1) if len(line) > limit]
    assert (cutter.cuts, cutter.first_cut) == (len(long), long[0] if long else None)
