"""The Perfetto (Chrome trace-event JSON) writer: real traces, validated against the format's rules.

No viewer can load the file offline here: Perfetto's trace processor (PyPI ``perfetto``)
downloads its binary at run time, and Debian's Chromium 156 refuses ``chrome://tracing`` in
headless mode (``net::ERR_FAILED``, even with internal debugging pages enabled). So every
document is checked against the rules those importers apply: strict JSON, every ``b`` closed
by its ``e`` in nesting order on its (pid, cat, id) track, one instance per id, finite
non-negative timestamps, named processes and threads.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from qtrace.dashboards import marker_events
from typer.testing import CliRunner

import qtrace
from qtrace import perfetto
from qtrace.cli import app
from qtrace.events import UNREADABLE, Trace, conform

PHASES = {"b", "e", "C", "i", "M"}


def _strict(text: str) -> Any:
    def reject(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def validate(path: Path) -> dict[str, Any]:
    """The document, after checking the Trace Event Format rules the viewers rely on."""
    document = _strict(path.read_text(encoding="utf-8"))
    events = document["traceEvents"]
    open_slices: dict[tuple[int, str, int], list[tuple[str, float]]] = defaultdict(list)
    outer_ids: Counter[int] = Counter()
    for event in events:
        assert event["ph"] in PHASES, event
        assert isinstance(event["pid"], int)
        if event["ph"] == "M":
            continue
        ts = event["ts"]
        assert isinstance(ts, int | float) and math.isfinite(ts) and ts >= 0, event
        if event["ph"] in "be":
            key = (event["pid"], event["cat"], event["id"])
            stack = open_slices[key]
            if event["ph"] == "b":
                if not stack:
                    outer_ids[event["id"]] += 1
                stack.append((event["name"], ts))
            else:
                assert stack, f"e without b: {event}"
                name, began = stack.pop()
                assert name == event["name"], (name, event)
                assert ts >= began, event
        if event["ph"] == "C":
            assert all(isinstance(v, int) and v >= 0 for v in event["args"].values()), event
    assert not any(open_slices.values()), "a b without its e"
    assert all(n == 1 for n in outer_ids.values()), "an id used by two instances"
    return dict(document)


def _of(document: dict[str, Any], ph: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in document["traceEvents"]
        if e["ph"] == ph and (name is None or e.get("name") == name)
    ]


def _outer(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in _of(document, "b") if "args" in e]


@pytest.fixture(scope="module")
def hotplug(samples: Path) -> Trace:
    return qtrace.read_trace(
        samples / "pc-hotplug-ts.log", events="flatview_*,pci_update_mappings_*"
    )


def test_real_hotplug_trace(hotplug: Trace, tmp_path: Path) -> None:
    analysis = qtrace.analyze(hotplug)
    out = tmp_path / "hotplug.json"
    markers = marker_events(hotplug.events, "pci_update_mappings_*")
    written = qtrace.write_perfetto(analysis, out, markers=markers)
    document = validate(out)
    views = analysis.views
    assert written == {
        "instances": views.height,
        "counters": analysis.concurrency.height,
        "anomalies": 0,
        "markers": 42,
    }
    outer = _outer(document)
    assert len(outer) == views.height == 512
    # One track per root: the instance slices are named by their root.
    roots = {f"root {r:#x}" if r else "root (nil)" for r in views["root"].to_list()}
    assert {e["name"] for e in outer} == roots
    # Each instance: the live phase, and the RCU-pending phase when destroy_rcu was traced.
    assert len(_of(document, "b", "live")) == views.height
    assert len(_of(document, "b", "rcu-pending")) == views["rcu_seq"].is_not_null().sum()
    # Pointers are reused in this trace; ids are not.
    assert views.select(pl.col("generation").max()).item() >= 1
    assert len({e["id"] for e in outer}) == views.height
    first = views.row(0, named=True)
    assert outer[0]["args"]["view"] == f"{first['view']:#x}"
    assert outer[0]["args"]["line"] == first["line"]
    # Microseconds from the trace's first stamp: the first event is at 0.
    start = hotplug.events["ts_ns"].min()
    assert isinstance(start, int)
    assert outer[0]["ts"] == (first["new_ts_ns"] - start) / 1000
    assert document["metadata"]["trace_start_ns"] == start
    assert document["metadata"]["time_unit"] == "microseconds from the trace start"
    counters = _of(document, "C")
    assert {e["name"] for e in counters} <= roots
    assert max(e["args"]["live"] + e["args"]["pending"] for e in counters) == int(
        analysis.roots["max_concurrent"].max()  # type: ignore[arg-type]
    )
    marks = [e for e in _of(document, "i") if e["cat"] == "marker"]
    assert {e["name"] for e in marks} == {"pci_update_mappings_add", "pci_update_mappings_del"}
    assert all(e["tid"] == perfetto.MARKERS_TID for e in marks)
    names = {e["name"]: e["args"] for e in _of(document, "M") if e["pid"] == 1}
    # A log's number is a thread id: the QEMU pid is named only when the trace has it.
    assert names["process_name"]["name"] == f"run 0: {hotplug.paths[0]}"
    threads = {e["tid"]: e["args"]["name"] for e in _of(document, "M", "thread_name")}
    assert threads == perfetto.THREAD_NAMES


def test_runs_are_processes_and_a_trace_without_clock_uses_seq(
    samples: Path, tmp_path: Path
) -> None:
    analysis = qtrace.analyze(qtrace.read_trace(samples / "multi-run.log"))
    out = tmp_path / "multi.json"
    qtrace.write_perfetto(analysis, out)
    document = validate(out)
    assert analysis.runs == 3
    processes = {e["pid"]: e["args"]["name"] for e in _of(document, "M", "process_name")}
    assert sorted(processes) == [1, 2, 3]
    assert all(name.startswith(f"run {pid - 1}: ") for pid, name in processes.items())
    outer = _outer(document)
    assert [e["pid"] for e in outer] == [r + 1 for r in analysis.views["run"].to_list()]
    assert [e["ts"] for e in outer] == [float(s) for s in analysis.views["new_seq"]]
    assert "seq" in document["metadata"]["time_unit"]
    assert document["metadata"]["trace_start_ns"] is None


def test_leaks_anomalies_and_lost_events(tmp_path: Path) -> None:
    lines = [
        "flatview_new 0x100 (root (nil))",
        "flatview_new 0x200 (root 0xa)",
        "flatview_new 0x300 (root 0xa)",
        "flatview_destroy_rcu 0x300 (root 0xa)",
        "flatview_destroy 0x300 (root 0xa)",
        "flatview_destroy 0x999 (root 0xb)",  # orphan: an anomaly
        "flatview_new 0x400 (root 0xa)",
    ]
    events = conform(
        pl.DataFrame(
            {
                "seq": list(range(len(lines) + 1)),
                "event": [line.split()[0] for line in lines[:5]]
                + [UNREADABLE]
                + [line.split()[0] for line in lines[5:]],
                "view": [0x100, 0x200, 0x300, 0x300, 0x300, None, 0x999, 0x400],
                "root": [0, 0xA, 0xA, 0xA, 0xA, None, 0xB, 0xA],
                "args": [None] * 5 + ['garbled line: flatview_new 0xZZ "x"\n'] + [None] * 2,
                "source": ["t.log"] * 8,
                "line": list(range(1, 9)),
            }
        )
    )
    trace = Trace(events=events, paths=["t.log"], format="log", dialect="bare", clock="none")
    analysis = qtrace.analyze(trace)
    out = tmp_path / "leaky.json"
    written = qtrace.write_perfetto(analysis, out)
    document = validate(out)
    anomalies = [e for e in _of(document, "i") if e["cat"] == "anomaly"]
    assert written["anomalies"] == len(anomalies) == analysis.anomalies.height + 1
    kinds = {e["name"] for e in anomalies}
    assert "orphan_destroy" in kinds and UNREADABLE in kinds
    lost = next(e for e in anomalies if e["name"] == UNREADABLE)
    assert lost["args"]["detail"].startswith("garbled line")
    assert (lost["ts"], lost["args"]["line"]) == (5.0, 6)
    leaked = [e for e in _outer(document) if e["args"]["status"] == "leaked"]
    assert [e["args"]["view"] for e in leaked] == ["0x200"]
    assert leaked[0]["args"]["open_at_end"] is True
    # An open instance is closed at its run's end, the last instance stamp of the run.
    closing = [e for e in _of(document, "e") if e["id"] == leaked[0]["id"]]
    assert {e["ts"] for e in closing} == {7.0}


def test_root_names_name_the_tracks(hotplug: Trace, tmp_path: Path) -> None:
    analysis = qtrace.analyze(hotplug)
    named = analysis.roots["root"][0]
    analysis.roots = analysis.roots.with_columns(
        name=pl.when(pl.col("root") == named).then(pl.lit('sys"tem')).otherwise(None)
    )
    out = tmp_path / "named.json"
    qtrace.write_perfetto(analysis, out)
    names = {e["name"] for e in _outer(validate(out))}
    assert f'sys"tem ({named:#x})' in names
    assert f"root {named:#x}" not in names


def test_stamps_out_of_thread_order_still_nest(tmp_path: Path) -> None:
    # The RCU thread's flatview_destroy stamped a microsecond before the destroy_rcu.
    events = conform(
        pl.DataFrame(
            {
                "seq": [0, 1, 2, 3, 4],
                "ts_ns": [1_000, 2_000, 3_000, 5_000, 4_000],
                "event": [
                    "flatview_new",
                    "flatview_new",
                    "flatview_new",
                    "flatview_destroy_rcu",
                    "flatview_destroy",
                ],
                "view": [1, 2, 3, 2, 2],
                "root": [0, 9, 9, 9, 9],
            }
        )
    )
    out = tmp_path / "order.json"
    qtrace.write_perfetto(qtrace.analyze(events), out)
    document = validate(out)
    pending = _of(document, "e", "rcu-pending")
    assert [e["ts"] for e in pending] == [4.0]  # clamped to its begin, never before it


def test_batches_do_not_change_the_document(
    hotplug: Trace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    analysis = qtrace.analyze(hotplug)
    markers = marker_events(hotplug.events, "pci_update_mappings_*")
    whole, pieces = tmp_path / "whole.json", tmp_path / "pieces.json"
    qtrace.write_perfetto(analysis, whole, markers=markers)
    monkeypatch.setattr(perfetto, "BATCH_ROWS", 7)
    qtrace.write_perfetto(analysis, pieces, markers=markers)
    assert whole.read_bytes() == pieces.read_bytes()


def test_hostile_text_stays_json(tmp_path: Path) -> None:
    hostile = 'pci "dev"\\ \x1b[31m\n\t\u2028 <x>'
    events = conform(
        pl.DataFrame(
            {
                "seq": [0, 1, 2],
                "ts_ns": [10, 20, 30],
                "event": ["flatview_new", "pci_update_mappings_add", "flatview_new"],
                "view": [1, None, 2],
                "root": [0, None, 7],
                "args": [None, hostile, None],
                "source": [hostile] * 3,
            }
        )
    )
    out = tmp_path / "hostile.json"
    qtrace.write_perfetto(qtrace.analyze(events), out, markers=events.slice(1, 1))
    document = validate(out)
    (marker,) = _of(document, "i")
    assert marker["args"]["args"] == hostile
    assert _outer(document)[0]["args"]["source"] == hostile


def test_cli_analyze_and_dashboard_write_it(samples: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    trace = str(samples / "pc-bridges-ts.log")
    out = tmp_path / "deep" / "bridges.json"
    result = runner.invoke(app, ["analyze", trace, "--perfetto", str(out), "-f", "json"])
    assert result.exit_code == 0, result.output
    document = validate(out)
    report = json.loads(result.stdout)
    assert len(_outer(document)) == report["views"]["instances"]
    assert any(e["cat"] == "marker" for e in _of(document, "i"))  # pci_update_mappings_*
    assert "Perfetto trace written to" in result.stderr
    page, out2 = tmp_path / "page.html", tmp_path / "dash.json"
    result = runner.invoke(
        app, ["dashboard", trace, "-o", str(page), "--perfetto", str(out2), "--markers", ""]
    )
    assert result.exit_code == 0, result.output
    assert page.exists()
    assert not [e for e in _of(validate(out2), "i") if e["cat"] == "marker"]


def test_cli_window_and_unwritable_target(samples: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    trace = str(samples / "pc-boot-ts.log")
    out = tmp_path / "window.json"
    result = runner.invoke(
        app, ["analyze", trace, "--begin", "100", "--end", "200", "--perfetto", str(out)]
    )
    assert result.exit_code == 0, result.output
    whole = qtrace.analyze(qtrace.read_trace(trace))
    windowed = qtrace.analyze(qtrace.read_trace(trace), begin=100, end=200)
    assert 0 < len(_outer(validate(out))) == windowed.views.height < whole.views.height
    result = runner.invoke(app, ["analyze", trace, "--perfetto", str(tmp_path)])
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == (
        f"qtrace: error: {tmp_path}: is a directory, not a JSON file to write"
    )
    assert not list(tmp_path.glob(".*.tmp"))


def test_interleaved_processes_are_their_own_processes(tmp_path: Path) -> None:
    # Two QEMU processes in one journal: their lines interleave; markers follow their pid.
    rows = [
        (100, "flatview_new", 1, 0, None),
        (200, "flatview_new", 9, 0, None),
        (100, "flatview_new", 2, 5, None),
        (200, "pci_update_mappings_add", None, None, "d=0x9 00:02.0 0,0xfd000000+0x1000000"),
        (200, "flatview_new", 10, 6, None),
        (100, "flatview_new", 3, 5, None),
    ]
    events = conform(
        pl.DataFrame(
            {
                "seq": list(range(len(rows))),
                "ts_ns": [1000 * (i + 1) for i in range(len(rows))],
                "pid": [r[0] for r in rows],
                "event": [r[1] for r in rows],
                "view": [r[2] for r in rows],
                "root": [r[3] for r in rows],
                "args": [r[4] for r in rows],
                "source": ["journal.json"] * len(rows),
            },
            schema_overrides={"view": pl.UInt64, "root": pl.UInt64},
        )
    )
    trace = Trace(events, ["journal.json"], "journald", "bare", "wall-us")
    analysis = qtrace.analyze(trace)
    assert analysis.runs == 2
    out = tmp_path / "two.json"
    qtrace.write_perfetto(analysis, out, markers=marker_events(events, "pci_*"))
    document = validate(out)
    names = {e["pid"]: e["args"]["name"] for e in _of(document, "M", "process_name")}
    assert names == {
        1: "run 0 (QEMU pid 100): journal.json",
        2: "run 1 (QEMU pid 200): journal.json",
    }
    by_process = {(e["pid"], e["args"]["view"]) for e in _outer(document)}
    assert by_process == {(1, "0x1"), (1, "0x2"), (1, "0x3"), (2, "0x9"), (2, "0xa")}
    (marker,) = _of(document, "i")
    assert (marker["pid"], marker["ts"]) == (2, 3.0)
    # The leaked view of process 100 is closed at its own run's last event, not the trace's.
    leaked = next(e for e in _outer(document) if e["args"]["status"] == "leaked")
    assert {e["ts"] for e in _of(document, "e") if e["id"] == leaked["id"]} == {5.0}
