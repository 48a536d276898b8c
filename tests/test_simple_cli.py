"""The simple reader through the commands a user runs: damaged input read with warnings and
loss markers in the table, a damaged header named for what it is, and a file truncated under
a running command salvaged, never a signal."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from qtrace.cli import app

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "traces"
BOOT = SHARED / "pc-boot.simpletrace"
MIXED = SHARED / "pc-bridges-mixed.simpletrace"
runner = CliRunner()


def flipped(tmp_path: Path, byte: int, bit: int) -> Path:
    data = bytearray(BOOT.read_bytes())
    data[byte] ^= 1 << bit
    path = tmp_path / "flipped.simpletrace"
    path.write_bytes(bytes(data))
    return path


def test_events_of_a_damaged_trace_hold_the_markers(tmp_path: Path) -> None:
    """The flatview_destroy mapping damaged (issue 10): `qtrace events` warns and writes the
    places where records could not be read as qtrace_unreadable rows."""
    result = runner.invoke(app, ["events", str(flipped(tmp_path, 138673, 0))])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    marked = [row for row in rows if row["event"] == "qtrace_unreadable"]
    assert marked[0]["offset"] == "138673" and marked[0]["args"].startswith("damaged records")
    assert sum(int(r["args"].split()[0]) for r in marked[1:]) == 253
    assert all(r["view"] == "" and r["root"] == "" for r in marked)
    assert {r["event"] for r in rows} == {
        "flatview_new",
        "flatview_destroy_rcu",
        "qtrace_unreadable",
    }
    assert "253 records (first at offset 190022) have event ids no mapping record names" in (
        result.stderr
    )


def test_analyze_of_a_trace_with_a_damaged_magic(tmp_path: Path) -> None:
    """It was read as a log and refused with "no QEMU trace lines found" (issue 13)."""
    result = runner.invoke(app, ["analyze", str(flipped(tmp_path, 9, 0)), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert "a QEMU simple trace with a damaged header (magic 0xf2b177cb0aa428b4" in result.stderr
    assert '"format": "simple"' in result.stdout


def test_a_header_damaged_beyond_reading_is_exit_3(tmp_path: Path) -> None:
    data = bytearray(BOOT.read_bytes())
    data[9] ^= 1
    data[16] ^= 8
    path = tmp_path / "t.simpletrace"
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["analyze", str(path)])
    assert result.exit_code == 3
    assert result.stderr.strip().endswith(
        "a QEMU simple trace with a damaged header (magic 0xf2b177cb0aa428b4, expected "
        "0xf2b177cb0aa429b4)"
    )
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("kernel", ["0", "1"], ids=["kernel", "numpy"])
def test_the_command_salvages_a_file_truncated_under_it(tmp_path: Path, kernel: str) -> None:
    """The whole command in its own process, the file (the real mixed trace, its records
    repeated to about 40 MB) truncated for real once the reader has started: exit 0, the
    records that were there, a warning; never a signal (the reader used to map the file,
    and died of SIGBUS, exit 135)."""
    data = MIXED.read_bytes()
    large = tmp_path / "large.simpletrace"
    with large.open("wb") as out:
        out.write(data)
        for _ in range(9):
            out.write(data[169574:])
    out_file = tmp_path / "out.parquet"
    script = textwrap.dedent(
        f"""
        import os, sys
        from qtrace.parsers.simple import file
        read_into = file.TraceFile.read_into
        reads = []
        def shrinking(self, buffer, start):
            if len(reads) == 1:
                os.truncate({str(large)!r}, 20_000_000)
            reads.append(start)
            return read_into(self, buffer, start)
        file.TraceFile.read_into = shrinking
        from qtrace.cli import main
        sys.argv = ["qtrace", "events", {str(large)!r}, "-f", "parquet", "-o", {str(out_file)!r}]
        main()
        """
    )
    env = dict(os.environ, QTRACE_NO_SIMPLE_KERNEL=kernel, COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "the file shrank from" in result.stderr and " to 20000000 bytes" in result.stderr
    events = pl.read_parquet(out_file)
    read = events.filter(pl.col("event") != "qtrace_unreadable")
    assert read.height > 5000 and read["offset"].max() < 20_000_000 - 48
    marked = events.filter(pl.col("event") == "qtrace_unreadable")["args"].to_list()
    assert any(text.startswith("the file shrank from") for text in marked)
