"""The lifetime model on real QEMU traces (../shared/traces), and golden JSON reports.

Golden files in tests/golden/ are the exact ``render_json`` output; a change of output is
a reviewed diff. Regenerate them with ``QTRACE_UPDATE_GOLDEN=1 pytest tests/test_model_real.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from qtrace.ingest import read_trace
from qtrace.model import analyze
from qtrace.pins import _per_root_spans, overlap_summary
from qtrace.report import render_json, to_json

GOLDEN = Path(__file__).resolve().parent / "golden"

# (golden name, input files, read options, analyze options)
GOLDEN_CASES = [
    ("pc-boot", ["pc-boot.simpletrace"], {}, {}),
    (
        "pc-bridges-mixed",
        ["pc-bridges-mixed.simpletrace"],
        {"events": "*", "trace_events": "trace-events-all"},
        {},
    ),
    ("qemu10-pc-bridges-ts", ["qemu10-pc-bridges-ts.log"], {}, {}),
    (
        "qemu10-pc-bridges-ts.destroy_rcu",
        ["qemu10-pc-bridges-ts.log"],
        {},
        {"root_release": "destroy_rcu"},
    ),
]


@pytest.fixture()
def in_traces(shared_traces: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the traces folder so reports name files, not machine-specific paths."""
    monkeypatch.chdir(shared_traces)
    return shared_traces


def test_plain_boot_has_no_leak_and_exactly_one_immortal_view(in_traces: Path) -> None:
    a = analyze(read_trace("pc-boot.simpletrace"))
    statuses = dict(a.views.group_by("status").len().iter_rows())
    assert statuses == {"freed": 253, "current": 3, "immortal": 1}
    assert a.anomalies.height == 0
    assert a.runs == 1 and a.destroy_traced and a.has_clock
    assert a.roots.height == 3
    assert a.roots["pinned_at_end"].all()
    immortal = a.views.filter(pl.col("status") == "immortal").row(0, named=True)
    assert (immortal["new_seq"], immortal["root"], immortal["generation"]) == (0, 0, 0)
    # Every freed view has a measured grace period; RCU batches keep them pending a while.
    freed = a.views.filter(pl.col("status") == "freed")
    assert freed["grace_ns"].null_count() == 0 and freed["grace_ns"].min() > 0  # type: ignore[operator]


def test_qemu10_bridge_roots_are_the_ones_the_debugger_named(in_traces: Path) -> None:
    a = analyze(read_trace("qemu10-pc-bridges-ts.log"))
    named = {
        int(line.split()[1], 16): line.split()[2]
        for line in (in_traces / "qemu10-pc-bridges-ts.roots.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert set(a.roots["root"].to_list()) == set(named)
    assert a.views.filter(pl.col("status") == "leaked").height == 0
    assert a.anomalies.height == 0
    # The bridge's io window alias is kept alive only by RCU-pending views for a while:
    # the situation the seed thread is about.
    alias_io = 0x563E2D2198B0
    pending = a.root_intervals.filter(
        (pl.col("root") == alias_io) & (pl.col("kind") == "pending_only")
    )
    assert pending.height == 1 and pending["duration_ns"].item() > 0
    assert not a.roots.filter(pl.col("root") == alias_io)["pinned_at_end"].item()
    # Early unref (release at destroy_rcu) removes every pending-only window.
    early = analyze(read_trace("qemu10-pc-bridges-ts.log"), root_release="destroy_rcu")
    assert early.root_intervals.filter(pl.col("kind") == "pending_only").height == 0


def test_hotplug_trace_reuses_pointers_as_generations(in_traces: Path) -> None:
    a = analyze(read_trace("pc-bridges-mixed.simpletrace"))
    doc = to_json(a)
    assert doc["views"]["reused_pointers"] > 0
    assert a.views["generation"].max() >= 1  # type: ignore[operator]
    assert doc["views"]["leaked"] == 0 and doc["views"]["lost"] == 0
    assert sum(doc["anomalies"].values()) == 0


def test_several_real_traces_one_after_another_split_into_runs(in_traces: Path) -> None:
    files = ["pc-boot.simpletrace", "pc-bridges-mixed.simpletrace", "qemu10-pc-bridges-ts.log"]
    a = analyze(read_trace(files))
    assert a.runs == 3
    per_run = a.views.group_by("run", "status").len().sort("run", "status")
    assert per_run.filter(pl.col("status") == "immortal")["len"].to_list() == [1, 1, 1]
    assert a.views.filter(pl.col("status") == "leaked").height == 0
    assert a.anomalies.height == 0
    # Each run alone gives the same instances as the file alone.
    alone = analyze(read_trace("pc-boot.simpletrace"))
    assert a.views.filter(pl.col("run") == 0).height == alone.views.height


@pytest.mark.parametrize(("name", "files", "read", "options"), GOLDEN_CASES)
def test_golden_json_report(
    in_traces: Path,
    name: str,
    files: list[str],
    read: dict[str, str],
    options: dict[str, str],
) -> None:
    text = render_json(analyze(read_trace(files, **read), **options))  # type: ignore[arg-type]
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("QTRACE_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run with QTRACE_UPDATE_GOLDEN=1"
    assert text == golden.read_text()


@pytest.mark.parametrize("root_release", ["destroy", "destroy_rcu"])
def test_span_tables_built_when_read_agree_with_the_sums_reports_read(root_release: str) -> None:
    # A report reads only the spans' sums; the tables are built again when a caller reads them
    # (a storm of short views has about one span per event), and must say the same.
    path = GOLDEN.parent.parent.parent / "shared" / "traces" / "qemu10-pc-bridges-ts.log"
    analysis = analyze(read_trace(str(path)), root_release=root_release)  # type: ignore[arg-type]
    to_json(analysis)
    assert analysis._spans is None, "the report built the span tables"

    assert analysis.overlap_summary == overlap_summary(analysis.overlaps, analysis.has_clock)
    assert sum(s["count"] for s in analysis.overlap_summary.values()) > 0
    from_tables = _per_root_spans(analysis.root_intervals).sort("run", "root")
    in_roots = analysis.roots.select(from_tables.columns).sort("run", "root")
    assert in_roots.equals(from_tables)
    assert analysis.root_intervals.filter(pl.col("kind") == "pinned").height > 0
    assert analysis.root_intervals["name"].null_count() == analysis.root_intervals.height
