"""The analyze reports: JSON document, findings and --fail-on, text and Markdown renderings."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from model_traces import trace
from rich.console import Console

from qtrace.errors import UsageError
from qtrace.findings import POLICY_WORDS, FailPolicy, Findings
from qtrace.ingest import read_trace
from qtrace.model import ANOMALY_KINDS, analyze
from qtrace.report import SCHEMA, render_json, render_markdown, render_text, to_json

SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"
LEAKY = """
new 56181ceefd20 nil
new 56181cef0260 56181ce74c00
new 56181cef0261 56181ce74c00
rcu 77 10
drop 12
new 56181cef0262 56181ce74c00
"""
CLEAN = "new 1 nil\nnew 2 10\nnew 3 10\nrcu 2 10\ndestroy 2 10"


def text_of(analysis: object, width: int = 160) -> str:
    out = io.StringIO()
    render_text(analysis, Console(file=out, width=width, color_system=None))  # type: ignore[arg-type]
    return out.getvalue()


def test_json_document_has_every_documented_field() -> None:
    doc = to_json(analyze(trace(LEAKY)))
    assert doc["schema"] == SCHEMA == "qtrace.analyze/1"
    assert doc["runs"] == 1
    assert set(doc["source"]) >= {
        "paths",
        "format",
        "dialect",
        "clock",
        "lines_skipped",
        "dropped_events",
        "destroy_traced",
    }
    assert doc["source"]["dropped_events"] == 12
    assert doc["source"]["destroy_traced"] is False
    assert doc["events"] == {"flatview_new": 4, "flatview_destroy_rcu": 1, "flatview_destroy": 0}
    assert doc["views"] == {
        "instances": 4,
        "freed": 0,
        "rcu_pending": 0,
        "immortal": 1,
        "current": 1,
        "leaked": 2,
        "lost": 0,
        "distinct_pointers": 4,
        "reused_pointers": 0,
        "uncertain": 3,
    }
    assert list(doc["anomalies"]) == list(ANOMALY_KINDS)
    assert doc["anomalies"]["orphan_destroy_rcu"] == 1
    assert sum(doc["anomalies"].values()) == 1
    assert doc["roots"]["distinct"] == 1
    assert doc["roots"]["max_concurrent_views"] == 3
    assert doc["roots"]["items"][0]["root"] == "0x56181ce74c00"
    assert doc["roots"]["items"][0]["pinned_at_end"] is True
    leak = doc["leaks"][0]
    assert set(leak) >= {"run", "view", "generation", "root", "status", "new_seq", "new_ts_ns"}
    assert (leak["view"], leak["status"], leak["new_seq"], leak["line"]) == (
        "0x56181cef0260",
        "leaked",
        1,
        2,
    )
    assert leak["uncertain"] is True
    assert doc["durations"]["live_ns"]["count"] == 0
    verdict = doc["verdict"]
    assert {k: verdict[k] for k in ("leaked", "lost", "anomalies", "uncertain")} == {
        "leaked": 2,
        "lost": 0,
        "anomalies": 1,
        "uncertain": 2,
    }
    assert (verdict["dropped_events"], verdict["unreadable_places"]) == (12, 0)
    assert verdict["failing"] == ["leaked", "orphan_destroy_rcu"] and verdict["exit_code"] == 1
    assert verdict["text"] == "leaks: 2, anomalies: 1"
    assert verdict["hazards"] == {"live": 0, "rcu_pending": 0, "early_unref_removes": 0}


def test_lost_instances_are_listed_with_leaks() -> None:
    doc = to_json(analyze(trace("new 1 nil\nnew 2 10\nnew 2 10")))
    assert [(x["view"], x["generation"], x["status"]) for x in doc["leaks"]] == [("0x2", 0, "lost")]


def test_durations_only_with_a_clock() -> None:
    with_clock = to_json(analyze(trace(CLEAN)))
    assert with_clock["durations"]["live_ns"] == {"count": 1, "p50": 2000, "p99": 2000, "max": 2000}
    assert with_clock["durations"]["grace_ns"]["max"] == 1000
    assert with_clock["overlaps"]["live+live"] == {
        "count": 1,
        "duration_events": 1,
        "duration_ns": 1000,
    }
    without = to_json(analyze(trace(CLEAN, clock=False)))
    assert "durations" not in without
    assert without["source"]["clock"] == "none"
    assert without["overlaps"]["live+pending"]["duration_ns"] is None


def test_json_is_byte_identical_for_the_same_input() -> None:
    first = render_json(analyze(trace(LEAKY)))
    second = render_json(analyze(trace(LEAKY)))
    assert first == second
    assert json.loads(first)["schema"] == SCHEMA
    assert first.endswith("}\n")


def test_findings_and_default_fail_policy() -> None:
    leaky = analyze(trace(LEAKY))
    found = Findings.of(leaky)
    assert list(found.checks) == ["readable", "leaked", *ANOMALY_KINDS]
    assert found.checks["leaked"] == 2 and found.checks["orphan_destroy_rcu"] == 1
    assert found.exit_code == 1 and found.failing == ("leaked", "orphan_destroy_rcu")
    assert Findings.of(leaky, FailPolicy.parse("none")).exit_code == 0
    assert Findings.of(leaky, FailPolicy.parse("orphan_destroy_rcu")).exit_code == 1
    assert Findings.of(leaky, FailPolicy.parse("null_root,double_destroy_rcu")).exit_code == 0
    assert Findings.of(leaky, FailPolicy.parse("anomalies")).failing == ("orphan_destroy_rcu",)
    clean = analyze(trace(CLEAN))
    assert Findings.of(clean).exit_code == 0
    assert "none" in POLICY_WORDS


def test_fail_policy_rejects_unknown_kinds() -> None:
    with pytest.raises(UsageError, match="unknown leak"):
        FailPolicy.parse("leak")
    with pytest.raises(UsageError, match="none"):
        FailPolicy.parse("none,leaked")


def test_no_flatview_event_is_not_clean() -> None:
    empty = analyze(trace("drop 3"))
    found = Findings.of(empty)
    assert found.checks["readable"] == 1 and found.exit_code == 3
    assert "no FlatView events read" in found.line
    assert Findings.of(empty, FailPolicy.parse("leaked")).exit_code == 0


def test_text_starts_with_the_verdict_and_names_dropped_events() -> None:
    out = text_of(analyze(trace(LEAKY)))
    first = out.splitlines()[0]
    assert first == (
        "leaks: 2, anomalies: 1; dropped events: 12; "
        "2 finding(s) uncertain: dropped or unreadable events"
    )
    assert "Roots" in out and "Leaked and lost views" in out and "Anomalies" in out
    assert "0x56181cef0260" in out
    assert "orphan_destroy_rcu" in out


def test_text_of_a_clean_trace_has_no_leak_table() -> None:
    out = text_of(analyze(trace(CLEAN)))
    assert out.splitlines()[0] == "leaks: 0, anomalies: 0"
    assert "Leaked and lost views" not in out
    assert "1 freed, 1 immortal, 1 current" in out


def test_long_lists_are_truncated_with_a_count() -> None:
    many = "new 1 nil\n" + "".join(f"new {i:x} 10\n" for i in range(2, 40))
    out = text_of(analyze(trace(many)))
    assert "... and 17 more" in out  # 37 leaked views, 20 shown
    md = render_markdown(analyze(trace(many)))
    assert "... and 17 more" in md


def test_markdown_has_verdict_and_tables() -> None:
    md = render_markdown(analyze(trace(LEAKY)))
    lines = md.splitlines()
    assert lines[0] == "# qtrace analyze"
    assert (
        "**leaks: 2, anomalies: 1; dropped events: 12; "
        "2 finding(s) uncertain: dropped or unreadable events**"
    ) in lines
    assert "## Roots" in lines and "## Anomalies" in lines
    assert "| orphan\\_destroy\\_rcu | 1 |" in lines
    assert "| root\\_mismatch | 0 |" in lines


def test_window_is_recorded_in_json_and_text() -> None:
    windowed = analyze(trace(CLEAN), begin=1500, end=3000, window_unit="ns")
    assert to_json(windowed)["window"] == {
        "unit": "ns",
        "begin": 1500,
        "end": 3000,
        "begin_seq": 2,
        "end_seq": 3,
    }
    assert "window seq 2..3" in text_of(windowed)
    assert to_json(analyze(trace(CLEAN)))["window"] is None


def test_a_clock_that_steps_back_is_said_and_no_duration_is_negative(tmp_path: Path) -> None:
    """The real QEMU 10 log with an NTP step of -1 h in its middle: the verdict says so."""
    lines = (SHARED / "qemu10-pc-bridges-ts.log").read_text().splitlines(keepends=True)
    half = len(lines) // 2
    stepped = []
    for number, line in enumerate(lines):
        tid, rest = line.split("@", 1)
        stamp, body = rest.split(":", 1)
        seconds = float(stamp) - (3600 if number >= half else 0)
        stepped.append(f"{tid}@{seconds:.6f}:{body}")
    path = tmp_path / "stepped.log"
    path.write_text("".join(stepped))
    analysis = analyze(read_trace(str(path)))
    found = Findings.of(analysis)
    assert int(analysis.run_table["clock_steps_back"].sum()) == 1
    assert any("clock stepped back 1 time" in note for note in found.notes)
    document = to_json(analysis, found)
    durations = document["durations"]
    assert all(durations[k]["p50"] is None or durations[k]["p50"] >= 0 for k in durations)
    assert all(v is None or v >= 0 for k in durations for v in durations[k].values())
    assert all(
        item["pinned_ns"] is None or item["pinned_ns"] >= 0 for item in document["roots"]["items"]
    )


def test_a_log_without_a_clock_has_unknown_pinned_time_not_zero() -> None:
    # QEMU's default log has no timestamps: a root's spans are counted, their length unknown.
    bare = Path(__file__).parent.parent / "samples" / "q35-boot-bare.log"
    analysis = analyze(read_trace(str(bare)))
    items = to_json(analysis, Findings.of(analysis))["roots"]["items"]
    assert items and all(item["intervals"] >= 1 for item in items)
    assert all(item["pinned_ns"] is None for item in items)
