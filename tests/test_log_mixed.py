"""The dialect is decided per line: files whose runs were printed differently read whole.

A libvirt domain log across a restart, or a QEMU 10.0 to 10.1 upgrade, holds runs in several
dialects; a bare run may hold one stray timestamped line. Every trace line is read whatever
its neighbours are; bare-looking ``-d`` output in a run of prefixed lines is not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import log_forms
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from qemu_harness import Boot, QemuHarnessError, run_qemu_trace
from qtrace.parsers import parse_file
from qtrace.parsers.log import classify

import qtrace
from qtrace.events import EventSelection, ParsedInput

ROOT = Path(__file__).resolve().parents[1]
BARE = ROOT / "samples" / "q35-boot-bare.log"  # 781 lines, one run
STAMPED = ROOT / "samples" / "pc-boot-ts.log"  # 768 lines, one run
HOTPLUG = ROOT / "samples" / "pc-hotplug-ts.log"  # FlatView and pci_update_mappings_* events
FLATVIEW = EventSelection()
SAME = ["event", "view", "root", "args", "ts_ns", "tid"]
LIBVIRT = (
    "2026-02-13 10:30:08.089+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.0\n"
    "LC_ALL=C PATH=/usr/bin HOME=/var/lib/libvirt/qemu/domain-1-ci "
    "/usr/bin/qemu-system-x86_64 -name guest=ci -trace flatview_*\n"
    "char device redirected to /dev/pts/3 (label charserial0)\n"
)


def read(path: Path, selection: EventSelection = FLATVIEW) -> ParsedInput:
    parsed: ParsedInput = parse_file(str(path), selection=selection)
    return parsed


def joined(tmp_path: Path, *parts: bytes, name: str = "joined.log") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(parts))
    return path


def shifted(events: pl.DataFrame, lines: int) -> pl.DataFrame:
    return events.with_columns(pl.col("line") + lines)


def runs(path: Path) -> int:
    return int(qtrace.analyze(qtrace.read_trace(path)).views["run"].n_unique())


@pytest.mark.parametrize("order", ["bare-first", "stamped-first"])
def test_a_bare_run_and_a_timestamped_run_read_whole(tmp_path: Path, order: str) -> None:
    first, second = (BARE, STAMPED) if order == "bare-first" else (STAMPED, BARE)
    alone = [read(first), read(second)]
    header = LIBVIRT.encode()
    path = joined(tmp_path, first.read_bytes(), header, second.read_bytes())
    parsed = read(path)
    first_lines = first.read_bytes().count(b"\n") + header.count(b"\n")
    expected = pl.concat([alone[0].events, shifted(alone[1].events, first_lines)])
    assert_frame_equal(parsed.events.select(*SAME, "line"), expected.select(*SAME, "line"))
    assert (parsed.dialect, parsed.clock) == ("mixed(bare,tid-timestamp)", "mixed(none,wall-us)")
    assert parsed.lines_skipped == 3  # libvirt's lines
    assert parsed.warnings == []
    assert runs(path) == 2


def test_a_log_with_a_bare_run_is_clocked_in_part_through_every_door(tmp_path: Path) -> None:
    """A bare run then a stamped one: clock ``mixed(none,wall-us)``. Read with other files,
    the summaries stay flat and the files keep their order (the bare run's lines have no
    place among stamps); the dashboard and the Perfetto document place it by event order
    (the dashboard used to fail on views with no time), with both runs in it."""
    path = joined(tmp_path, BARE.read_bytes(), LIBVIRT.encode(), STAMPED.read_bytes())
    trace = qtrace.read_trace([path, STAMPED, BARE])
    assert (trace.dialect, trace.clock) == ("mixed(bare,tid-timestamp)", "mixed(none,wall-us)")
    assert trace.warnings == [
        "some inputs have lines without a clock: files were concatenated in the order given"
    ]
    assert trace.events["source"].cast(pl.String).unique(maintain_order=True).to_list() == [
        str(path),
        str(STAMPED),
        str(BARE),
    ]
    analysis = qtrace.analyze(qtrace.read_trace(path))
    assert analysis.has_clock and analysis.duration_stats["live_ns"]["count"] > 0
    page = qtrace.write_dashboard(analysis, tmp_path / "page.html").read_text()
    assert "event sequence number (not every view of the trace has a timestamp)" in page
    qtrace.write_perfetto(analysis, tmp_path / "trace.json")
    document = json.loads((tmp_path / "trace.json").read_text())
    assert document["metadata"]["time_unit"].startswith("none: not every view has a timestamp")
    spans = [e for e in document["traceEvents"] if e.get("ph") == "b"]
    assert {e["pid"] for e in spans} == {1, 2} and all(e["ts"] is not None for e in spans)


def test_every_common_dialect_is_cut_in_the_stream(tmp_path: Path) -> None:
    # Sampled across the file, not only at its head: the later, larger run counts too.
    path = joined(tmp_path, BARE.read_bytes(), *[STAMPED.read_bytes()] * 3)
    chain = classify.dialects_to_cut(pl.scan_lines(path, name="text"), path, ("flatview_",))
    assert [d.name for d in chain] == ["tid-timestamp", "bare"]
    # A stray line is no reason to cut a second dialect on every line.
    lines = BARE.read_bytes().splitlines(keepends=True)
    stray = b"2026-02-13T10:30:08Z flatview_new 0x5591f8051950 (root 0x5591f7ec1000)\n"
    path = joined(tmp_path, *lines[:400], stray, *lines[400:], name="stray.log")
    chain = classify.dialects_to_cut(pl.scan_lines(path, name="text"), path, ("flatview_",))
    assert [d.name for d in chain] == ["bare"]


def test_a_qemu_upgrade_from_10_0_to_10_1_between_runs(tmp_path: Path) -> None:
    # The same real run printed as QEMU 10.1 prints it (ISO stamps), after the 10.0 one.
    lines = log_forms.read_lines(STAMPED.read_text())
    upgraded = log_forms.write(lines, lambda x: f"{log_forms.iso(x)} {x.body}")
    path = joined(tmp_path, STAMPED.read_bytes(), upgraded)
    parsed = read(path)
    alone = read(STAMPED).events
    n = STAMPED.read_bytes().count(b"\n")
    expected = pl.concat([alone, shifted(alone.with_columns(tid=pl.lit(None, pl.Int32)), n)])
    assert_frame_equal(parsed.events.select(*SAME, "line"), expected.select(*SAME, "line"))
    assert parsed.dialect == "mixed(iso8601,tid-timestamp)" and parsed.clock == "wall-us"
    assert runs(path) == 2


def test_a_bare_log_with_one_timestamped_line_loses_nothing(tmp_path: Path) -> None:
    lines = BARE.read_bytes().splitlines(keepends=True)
    stray = (
        b"2026-02-13T10:30:08.000001Z flatview_destroy_rcu 0x5591f8051950 (root 0x5591f7ec1000)\n"
    )
    path = joined(tmp_path, *lines[:400], stray, *lines[400:])
    parsed = read(path)
    alone = read(BARE).events
    assert parsed.events.height == alone.height + 1
    kept = parsed.events.filter(pl.col("line") != 401)
    expected = pl.concat([alone.slice(0, 400), shifted(alone.slice(400), 1)])
    assert_frame_equal(kept.select(*SAME, "line"), expected.select(*SAME, "line"))
    assert parsed.events.row(400, named=True)["ts_ns"] == 1770978608000001000
    assert parsed.dialect == "mixed(bare,iso8601)" and parsed.lines_skipped == 0


def as_bare(path: Path) -> bytes:
    """A real -msg timestamp=on log as QEMU prints it without (TID@SEC.USEC: dropped)."""
    return re.sub(rb"(?m)^[0-9]+@[0-9]+\.[0-9]+:", b"", path.read_bytes())


def test_d_output_is_skipped_only_in_runs_of_prefixed_lines(tmp_path: Path) -> None:
    # `-d int` prints "check_exception old: ... new ..." without any prefix. In a stamped run
    # it is -d output; a bare run has no way to tell it from an event, and reads it as one.
    d_output = b"check_exception old: 0xffffffff new 0xd\n"
    stamped = STAMPED.read_bytes().splitlines(keepends=True)
    bare = as_bare(HOTPLUG).splitlines(keepends=True)
    path = joined(
        tmp_path, *stamped[:100], d_output, *stamped[100:], *bare[:50], d_output, *bare[50:]
    )
    everything = read(path, EventSelection.parse("*"))
    checks = everything.events.filter(pl.col("event") == "check_exception")
    assert checks["line"].to_list() == [len(stamped) + 1 + 50 + 1]
    assert everything.lines_skipped == 1 and everything.warnings == []
    # Asked for by name, an event set aside by the rule is said to be.
    named = read(path, EventSelection.parse("check_*,flatview_*"))
    assert named.events.filter(pl.col("event") == "check_exception").height == 1
    assert named.warnings == [
        f"{path}: 1 bare lines of selected events stand in runs of prefixed lines and were "
        "taken for -d output, not events (first at line 101)"
    ]
    # The bare run's other events are events: it has no prefixed line.
    pci = read(path, EventSelection.parse("pci_*")).events
    in_bare_run = pci.filter(pl.col("line") > len(stamped) + 1)
    assert in_bare_run.height == HOTPLUG.read_bytes().count(b":pci_update_mappings_")
    assert in_bare_run["tid"].null_count() == in_bare_run.height
    assert pci.height - in_bare_run.height == STAMPED.read_bytes().count(b":pci_update_mappings_")
    # By default only the events the model reads are kept: the -d output is just counted.
    default = read(path, EventSelection.parse(None, default=qtrace.MODEL_EVENTS))
    assert default.warnings == [] and default.lines_skipped == 1


def test_bare_lines_of_model_events_are_read_anywhere(tmp_path: Path) -> None:
    # No -d output prints a FlatView event's name: a bare FlatView line inside a stamped run
    # (a second writer without timestamps) is read.
    stamped = STAMPED.read_bytes().splitlines(keepends=True)
    line = b"flatview_new 0x55e3214c4000 (root 0x55e321334000)\n"
    path = joined(tmp_path, *stamped[:10], line, *stamped[10:])
    parsed = read(path)
    assert parsed.events.filter(pl.col("line") == 11)["view"].to_list() == [0x55E3214C4000]
    assert parsed.events.height == read(STAMPED).events.height + 1
    assert parsed.dialect == "mixed(bare,tid-timestamp)"


@pytest.mark.slow
def test_fresh_qemu_runs_across_a_restart_with_d_output(tmp_path: Path) -> None:
    # Debian's QEMU, run twice as libvirt would across a restart: first without timestamps,
    # then with them, both with `-d cpu_reset` output (register dumps) in the same log.
    try:
        first = run_qemu_trace(
            tmp_path / "run1.log",
            machine="q35",
            timestamps=False,
            scenario=(Boot(),),
            extra_args=("-d", "cpu_reset"),
        )
        second = run_qemu_trace(
            tmp_path / "run2.log",
            machine="pc",
            timestamps=True,
            scenario=(Boot(),),
            extra_args=("-d", "cpu_reset"),
        )
    except QemuHarnessError as exc:  # pragma: no cover - a broken QEMU is a failure
        pytest.fail(str(exc))
    logs = [first.log_path.read_bytes(), second.log_path.read_bytes()]
    assert b"CPU Reset" in logs[0] and b"CPU Reset" in logs[1]
    path = joined(tmp_path, logs[0], LIBVIRT.encode(), logs[1])
    parsed = read(path)
    alone = [read(first.log_path), read(second.log_path)]
    offset = logs[0].count(b"\n") + LIBVIRT.count("\n")
    expected = pl.concat([alone[0].events, shifted(alone[1].events, offset)])
    assert_frame_equal(parsed.events.select(*SAME, "line"), expected.select(*SAME, "line"))
    assert parsed.lines_skipped == alone[0].lines_skipped + alone[1].lines_skipped + 3
    assert alone[0].lines_skipped > 0 and alone[1].lines_skipped > 0  # the register dumps
    assert parsed.dialect == "mixed(bare,tid-timestamp)"
    assert runs(path) == 2
