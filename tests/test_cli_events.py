"""`qtrace events` and the CLI's contract: exit codes, one-line errors, hex pointers."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import qtrace
from qtrace import export
from qtrace.cli import app

runner = CliRunner()


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"qtrace {qtrace.__version__}",
        "C extensions: all built",  # this test environment builds them
    ]
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("events", "analyze", "dashboard", "batch", "diff"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


def test_events_csv_prints_pointers_as_qemu_does(shared_traces: Path) -> None:
    result = runner.invoke(app, ["events", str(shared_traces / "qemu10-pc-bridges-ts.log")])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "seq,ts_ns,tid,pid,thread,event,view,root,args,source,line,offset"
    first = lines[1].split(",")
    assert first[5:8] == ["flatview_new", "0x563e2c466c50", "0x0"]
    assert len(lines) == 1 + 659 + 650 + 650


def test_events_jsonl_and_parquet_agree(shared_traces: Path, tmp_path: Path) -> None:
    trace = str(shared_traces / "pc-boot.simpletrace")
    jsonl = runner.invoke(app, ["events", trace, "--format", "jsonl"])
    assert jsonl.exit_code == 0, jsonl.stderr
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    out = tmp_path / "events.parquet"
    parquet = runner.invoke(app, ["events", trace, "--format", "parquet", "-o", str(out)])
    assert parquet.exit_code == 0, parquet.stderr
    table = pl.read_parquet(out)
    assert table.height == len(rows) == 257 + 253 + 253
    assert table.schema == pl.Schema(qtrace.EVENTS_SCHEMA)
    assert rows[5]["view"] == hex(table["view"][5])
    assert rows[5]["root"] == hex(table["root"][5])


def test_events_all_keeps_other_events(shared_traces: Path) -> None:
    trace = str(shared_traces / "pc-bridges-mixed.simpletrace")
    te = str(shared_traces / "trace-events-all")
    default = runner.invoke(app, ["events", trace, "--trace-events", te, "-f", "jsonl"])
    everything = runner.invoke(app, ["events", trace, "--trace-events", te, "-f", "jsonl", "--all"])
    assert default.exit_code == everything.exit_code == 0
    names = {json.loads(line)["event"] for line in everything.stdout.splitlines()}
    assert {"pci_update_mappings_add", "memory_region_ops_write", "flatview_new"} <= names
    assert len(everything.stdout.splitlines()) > len(default.stdout.splitlines())
    chosen = runner.invoke(
        app, ["events", trace, "--trace-events", te, "-f", "jsonl", "--events", "pci_update_*"]
    )
    chosen_names = {json.loads(line)["event"] for line in chosen.stdout.splitlines()}
    assert chosen_names <= {"pci_update_mappings_add", "pci_update_mappings_del", "Dropped_Event"}


def test_compressed_input_reads_like_plain(shared_traces: Path, tmp_path: Path) -> None:
    plain = shared_traces / "qemu10-pc-bridges-ts.log"
    packed = tmp_path / "renamed.txt"  # no .gz suffix: detected by magic bytes
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a = qtrace.read_events(plain).drop("source")
    b = qtrace.read_events(packed).drop("source")
    assert a.equals(b)


def test_missing_file_is_one_line_exit_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["events", str(tmp_path / "nope.log")])
    assert result.exit_code == 3
    assert result.stderr.strip().count("\n") == 0
    assert "nope.log" in result.stderr and "Traceback" not in result.stderr


def test_directory_and_empty_file_are_exit_3(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    for target in (tmp_path, empty):
        result = runner.invoke(app, ["events", str(target)])
        assert result.exit_code == 3, result.output
        assert str(target) in result.stderr


def test_parquet_to_stdout_is_usage_error(shared_traces: Path) -> None:
    trace = str(shared_traces / "pc-boot.simpletrace")
    result = runner.invoke(app, ["events", trace, "--format", "parquet"])
    assert result.exit_code == 2
    assert "--output" in result.stderr


def test_unknown_option_is_usage_error() -> None:
    result = runner.invoke(app, ["events", "--no-such-option", "x"])
    assert result.exit_code == 2


def test_multiple_files_merge_by_timestamp(shared_traces: Path, tmp_path: Path) -> None:
    """Split a real log by thread as `-d tid -D log.%d` would, then merge it back."""
    log = (shared_traces / "qemu10-pc-bridges-ts.log").read_text().splitlines(keepends=True)
    parts: dict[str, list[str]] = {}
    for line in log:
        parts.setdefault(line.split("@", 1)[0], []).append(line)
    files = []
    for tid, lines in sorted(parts.items()):
        path = tmp_path / f"log.{tid}"
        path.write_text("".join(lines))
        files.append(str(path))
    merged = qtrace.read_events(files)
    whole = qtrace.read_events(shared_traces / "qemu10-pc-bridges-ts.log")
    assert merged["ts_ns"].is_sorted()
    assert merged["seq"].to_list() == list(range(merged.height))
    assert sorted(merged["ts_ns"].to_list()) == sorted(whole["ts_ns"].to_list())


def test_standard_input_reads_like_a_file(shared_traces: Path) -> None:
    data = (shared_traces / "pc-boot.simpletrace").read_bytes()
    result = runner.invoke(app, ["events", "-", "-f", "jsonl"], input=gzip.compress(data))
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 257 + 253 + 253
    assert {row["source"] for row in rows} == {"<stdin>"}


def test_an_internal_error_is_one_line_and_exit_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import qtrace.cli

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(qtrace.cli, "app", broken)
    monkeypatch.delenv("QTRACE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        qtrace.cli.main()
    assert stop.value.code == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: boom" in err and "Traceback" not in err


class _ShortWrites(io.RawIOBase):
    """Standard output as PYTHONUNBUFFERED=1 makes it: a raw file, whose write(2) may take
    fewer bytes than it was given (Linux takes at most 2,147,479,552 a call) and says so."""

    def __init__(self, most: int) -> None:
        self.data = bytearray()
        self.most = most

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]  # (RawIOBase says Buffer)
        taken = bytes(memoryview(b)[: self.most])
        self.data += taken
        return len(taken)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_events_write_every_byte_in_batches(
    fmt: str, shared_traces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = qtrace.read_events(
        shared_traces / "pc-bridges-mixed.simpletrace",
        events="*",
        trace_events=shared_traces / "trace-events-all",
    )
    whole = tmp_path / "whole"
    text = export.events_for_text(events)
    text.write_csv(whole) if fmt == "csv" else text.write_ndjson(whole)
    monkeypatch.setattr(export, "BATCH_ROWS", 1000)  # many batches, the header once
    raw = _ShortWrites(4096)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw))
    export.write_events(events, fmt, None)
    assert len(raw.data) == whole.stat().st_size > 20 * 4096
    assert bytes(raw.data) == whole.read_bytes()
    export.write_events(events.clear(), fmt, tmp_path / "empty")
    empty = (tmp_path / "empty").read_text()
    assert empty == ("" if fmt == "jsonl" else ",".join(events.columns) + "\n")


def test_an_output_that_takes_nothing_is_an_error() -> None:
    with pytest.raises(OSError, match="took no bytes"):
        export.write_all(_ShortWrites(0), b"seq\n")
