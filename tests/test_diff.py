"""`qtrace diff A B`: two real traces, or two batch summaries, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtrace.batch import run_batch
from qtrace.diff import diff, render_html, render_json, render_text
from qtrace.errors import InputError, UsageError

LOG = "qemu10-pc-bridges-ts.log"
ROOT = Path(__file__).resolve().parents[1]


def test_a_trace_against_itself_has_no_differences(shared_traces: Path) -> None:
    result = diff(str(shared_traces / LOG), str(shared_traces / LOG))
    assert not result.differs
    assert result.kind == "trace"
    assert ("events.flatview_new", 659, 659) in result.counts
    assert result.roots and all(not r["changed"] for r in result.roots)
    assert render_text(result).endswith("no differences\n")


def test_unfinished_run_shows_changed_statuses_and_roots(
    shared_traces: Path, tmp_path: Path
) -> None:
    lines = (shared_traces / LOG).read_text().splitlines(keepends=True)
    # The same run cut in half: fewer views, and the last ones never destroyed.
    cut = tmp_path / "cut.log"
    cut.write_text("".join(lines[: len(lines) // 2]))
    result = diff(str(shared_traces / LOG), str(cut))
    assert result.differs
    counts = {name: (a, b) for name, a, b in result.counts}
    assert counts["events.flatview_destroy"][0] > counts["events.flatview_destroy"][1]
    statuses = {name: (a, b) for name, a, b in result.statuses}
    assert statuses["freed"][0] > statuses["freed"][1]
    # Roots are matched by first use, so the same run's roots line up pointer for pointer.
    both = [r for r in result.roots if r["root_b"] is not None]
    assert both and all(r["root_a"] == r["root_b"] for r in both)
    assert any(r["changed"] for r in result.roots)
    text = render_text(result)
    assert "* events.flatview_destroy" in text and text.endswith("differences found\n")
    document = json.loads(json.dumps(render_json(result)))
    assert document["schema"] == "qtrace.diff/1" and document["differs"] is True
    page = render_html(result)
    assert page.count('data-changed="yes"') >= 2
    assert "both runs from their first view" in page and "A: " in page


def test_two_different_real_runs_line_up_roots_by_first_use(shared_traces: Path) -> None:
    other = ROOT / "samples" / "pc-bridges-ts.log"
    result = diff(str(shared_traces / LOG), str(other))
    first = result.roots[0]
    assert first["rank"] == 0 and first["root_a"] != first["root_b"]  # different heaps
    assert set(result.timelines) == {"A", "B"} and result.time_unit == "ms"


def test_two_batch_summaries(shared_traces: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean.log"
    clean.write_bytes((shared_traces / LOG).read_bytes())
    before = run_batch([str(clean)], tmp_path / "before", jobs=1, dashboards=False)
    clean.write_text(
        "flatview_new 0x100 (root (nil))\n"
        "flatview_new 0x200 (root 0xa)\n"
        "flatview_new 0x300 (root 0xa)\n"
    )
    after = run_batch([str(clean)], tmp_path / "after", jobs=1, dashboards=False)
    result = diff(str(before.out_dir / "summary.json"), str(after.out_dir / "summary.json"))
    assert result.kind == "summary"
    (row,) = result.artifacts
    assert row["changed"] and row["leaks_a"] == 0 and row["leaks_b"] == 1
    assert row["status_a"] == "clean" and row["status_b"] == "findings"
    assert "Plotly" not in render_html(result)  # no timeline for summaries: no plotly.js


def test_mixed_or_missing_inputs_are_clear_errors(shared_traces: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"schema": "qtrace.batch/1", "artifacts": [], "totals": {}}))
    with pytest.raises(UsageError, match="cannot compare a trace"):
        diff(str(shared_traces / LOG), str(summary))
    with pytest.raises(InputError, match="no such file"):
        diff(str(tmp_path / "missing.log"), str(summary))


def test_html_escapes_names(shared_traces: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "<img src=x onerror=alert(1)>.log"
    hostile.write_bytes((shared_traces / LOG).read_bytes())
    page = render_html(diff(str(hostile), str(shared_traces / LOG)))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
