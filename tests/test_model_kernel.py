"""The model's kernel: the C pass and its plain-Python twin agree, and the rules of runs per
process, loss points, clocks that step back and what pinned a finalized root."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_traces import trace

from qtrace import kernel
from qtrace.ingest import read_trace
from qtrace.kernel import Walked
from qtrace.model import analyze
from qtrace.runs import model_rows

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "traces"
REAL = [
    *sorted(SHARED.glob("*.simpletrace")),
    *sorted(SHARED.glob("*.log")),
    *sorted((ROOT / "samples").glob("*.log")),
    *sorted((ROOT / "samples").glob("*.simpletrace")),
]


def both_ways(
    events: pl.DataFrame, *, release_at_rcu: bool, full: bool, tables_only: bool = False
) -> Walked:
    """Walk ``events`` with the C kernel and with the Python walker: every column equal."""
    rows = model_rows(events)
    options = {"release_at_rcu": release_at_rcu, "full": full, "tables_only": tables_only}
    with mock.patch.dict(os.environ, {kernel.NO_KERNEL: "0"}):
        c = kernel.walk(rows, **options)
    with mock.patch.dict(os.environ, {kernel.NO_KERNEL: "1"}):
        py = kernel.walk(rows, **options)
    for name in ("instances", "anomalies", "spans", "roots", "runs"):
        assert getattr(c, name).equals(getattr(py, name)), name
    assert (c.steps is None) == (py.steps is None) and (c.steps is None or c.steps.equals(py.steps))
    for name in ("live_ns", "grace_ns"):
        assert c.durations[name].equals(py.durations[name])
    for name in (
        "status_counts",
        "event_counts",
        "uncertain_views",
        "generation_0",
        "generation_1",
        "negative_durations",
    ):
        assert getattr(c, name) == getattr(py, name), name
    return c


def test_the_kernel_is_built_here() -> None:
    # CI compiles it (gcc and the Python headers are there): a missing module is a failure.
    assert kernel.available()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
@pytest.mark.parametrize("release_at_rcu", [False, True])
def test_c_and_python_walks_agree_on_real_traces(path: Path, release_at_rcu: bool) -> None:
    events = read_trace(str(path), events="*").events
    both_ways(events, release_at_rcu=release_at_rcu, full=False)
    full = both_ways(events, release_at_rcu=release_at_rcu, full=True)
    # The pass for the views and concurrency tables alone: the same instances and steps.
    tables = both_ways(events, release_at_rcu=release_at_rcu, full=True, tables_only=True)
    assert tables.instances.equals(full.instances) and tables.steps is not None
    assert full.steps is not None and tables.steps.equals(full.steps)
    assert tables.spans.height == 0 and tables.durations["live_ns"].len() == 0


EVENT = st.tuples(
    st.sampled_from(["new", "new", "new", "rcu", "rcu", "destroy", "drop", "unreadable", "fin"]),
    st.integers(1, 4),
    st.sampled_from(["nil", "10", "10", "20", "30"]),
    st.sampled_from(["", "", " @1", " @2"]),
)


def render(events: list[tuple[str, int, str, str]]) -> str:
    lines = []
    for kind, view, root, pid in events:
        if kind == "drop":
            lines.append("drop 1" + pid)
        elif kind == "unreadable":
            lines.append("unreadable" + pid)
        elif kind == "fin":
            lines.append(f"finalize {root if root != 'nil' else '10'}{pid}")
        else:
            lines.append(f"{kind} {view:x} {root}{pid}")
    return "\n".join(lines)


@settings(max_examples=80, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=40), st.booleans(), st.booleans())
def test_c_and_python_walks_agree_on_random_traces(
    events: list[tuple[str, int, str, str]], release_at_rcu: bool, full: bool
) -> None:
    both_ways(trace(render(events)), release_at_rcu=release_at_rcu, full=full)


def test_interleaved_processes_are_runs_of_their_own() -> None:
    # Two QEMU processes logging into one journal: their lines interleave.
    text = """
    new 1 nil @100
    new 1 nil @200
    new 2 10 @100
    new 2 10 @200     # the same pointer in the other process: no new_while_live
    rcu 2 10 @100
    destroy 2 10 @100
    new 3 10 @200     # leaks process 200's view 2, not process 100's
    """
    a = analyze(trace(text))
    assert a.runs == 2
    assert a.anomalies.height == 0
    statuses = a.views.select("run", "view", "status").rows()
    assert statuses == [
        (0, 1, "immortal"),
        (0, 2, "freed"),
        (1, 1, "immortal"),
        (1, 2, "leaked"),
        (1, 3, "current"),
    ]
    assert a.run_table.select("run", "pid", "first_seq", "last_seq", "flatview_events").rows() == [
        (0, 100, 0, 5, 4),
        (1, 200, 1, 6, 3),
    ]
    assert a.run_table["label"].to_list() == ["t.log", "t.log"]


def test_a_second_nil_root_view_of_one_process_starts_its_next_run_only() -> None:
    text = "new 1 nil @1\nnew 2 10 @1\nnew 1 nil @2\nnew 1 nil @1\nnew 2 10 @1"
    a = analyze(trace(text))
    assert a.run_table.select("run", "pid", "first_seq").rows() == [(0, 1, 0), (1, 2, 2), (2, 1, 3)]
    assert a.views.filter(pl.col("run") == 0)["status"].to_list() == ["immortal", "current"]


def test_unreadable_rows_are_loss_points_that_make_spanning_findings_uncertain() -> None:
    text = """
    new 1 nil
    new 2 10      # 1: spans the unreadable line, leaked
    new 3 10      # 2
    rcu 3 10
    destroy 3 10  # 4: freed before it
    unreadable    # 5
    new 4 10      # 6: after it, current
    rcu 9 10      # 7: an orphan after it: uncertain
    """
    a = analyze(trace(text))
    assert a.dropped_events == 0  # nothing QEMU said it dropped; qtrace could not read a line
    flags = dict(a.views.select("view", "uncertain").iter_rows())
    assert flags == {1: True, 2: True, 3: False, 4: False}
    assert a.anomalies.select("kind", "uncertain").rows() == [("orphan_destroy_rcu", True)]
    assert a.uncertain_views == 2
    assert a.flagged_views.select("view", "uncertain").rows() == [(2, True)]
    assert a.run_table["loss_points"].to_list() == [1]
    assert a.loss_points == 1


def test_a_flatview_row_without_pointers_is_a_loss_point() -> None:
    events = trace("new 1 nil\nnew 2 10\nnew 3 10\nrcu 7 10")
    events = events.with_columns(
        view=pl.when(pl.col("seq") == 2).then(None).otherwise(pl.col("view"))
    )
    a = analyze(events)
    assert a.views["view"].to_list() == [1, 2]  # the row made no view
    assert a.run_table["loss_points"].to_list() == [1]
    assert a.anomalies["uncertain"].to_list() == [True]


def test_a_loss_point_without_a_pid_counts_in_every_process() -> None:
    text = "new 1 nil @1\nnew 1 nil @2\nnew 2 10 @1\nnew 2 10 @2\nunreadable\nrcu 9 10 @1"
    a = analyze(trace(text))
    assert a.run_table["loss_points"].to_list() == [1, 1]
    assert a.views.filter(pl.col("view") == 2)["uncertain"].to_list() == [True, True]
    # A loss point of one process leaves the other's findings certain.
    b = analyze(trace("new 1 nil @1\nnew 1 nil @2\nnew 2 10 @2\ndrop 1 @1\nrcu 9 10 @2"))
    assert b.run_table["loss_points"].to_list() == [1, 0]
    assert b.anomalies["uncertain"].to_list() == [False]


def test_a_clock_that_steps_back_never_gives_a_negative_duration() -> None:
    events = trace("new 1 nil\nnew 2 10\nnew 3 10\nrcu 2 10\ndestroy 2 10\nrcu 3 10\ndestroy 3 10")
    # An NTP step of -1 h between seq 3 and 4.
    hour = 3_600_000_000_000
    events = events.with_columns(
        ts_ns=pl.when(pl.col("seq") >= 4).then(pl.col("ts_ns") - hour).otherwise(pl.col("ts_ns"))
    )
    a = analyze(events)
    assert a.run_table["clock_steps_back"].to_list() == [1]
    views = a.views.filter(pl.col("view") != 1)
    assert views["live_ns"].to_list() == [2000, None]  # view 3: rcu after the step
    assert views["grace_ns"].to_list() == [None, 1000]  # view 2: destroy after the step
    assert a.negative_durations >= 2
    stats = a.duration_stats
    assert stats["live_ns"]["count"] == 1 and stats["grace_ns"]["count"] == 1
    for table in (a.root_intervals, a.overlaps):
        assert (table["duration_ns"].drop_nulls() >= 0).all()
    # The summaries (the kernel's counts) and the views table agree.
    assert stats == {
        name: {
            "count": views[name].drop_nulls().len(),
            "p50": views[name].drop_nulls().min(),
            "p99": views[name].drop_nulls().min(),
            "max": views[name].drop_nulls().max(),
        }
        for name in ("live_ns", "grace_ns")
    }


def test_finalized_while_pinned_says_what_pinned_the_root() -> None:
    text = """
    new 1 nil
    new 2 10
    finalize 10   # 2: pinned by a live view: early unref would not help
    new 3 20
    rcu 3 20
    finalize 20   # 5: pinned by an RCU-pending view only: early unref removes it
    destroy 3 20
    """
    a = analyze(trace(text))
    rows = a.anomalies.select("seq", "root", "pinned_by", "detail").rows()
    assert rows == [
        (2, 0x10, "live", "MR finalized while pinned by 1 live and 0 RCU-pending view(s)"),
        (5, 0x20, "rcu_pending", "MR finalized while pinned by 0 live and 1 RCU-pending view(s)"),
    ]
    assert a.finalized_pinned_by == {"live": 1, "rcu_pending": 1}
    early = analyze(trace(text), root_release="destroy_rcu")
    assert early.anomalies.select("seq", "pinned_by").rows() == [(2, "live")]


def test_summaries_are_read_without_building_the_views_table() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 3 10\nrcu 3 10\ndestroy 3 10"))
    assert a.status_counts["leaked"] == 1 and a.pointer_reuse == (3, 0)
    assert a.flagged_views["view"].to_list() == [2]
    assert "views" not in a.__dict__ and "concurrency" not in a.__dict__
    assert a.views.height == 3  # built now, on first use


def test_the_json_report_of_a_trace_never_builds_the_views_table() -> None:
    from qtrace.report import render_json

    a = analyze(read_trace(str(SHARED / "qemu10-pc-bridges-ts.log")))
    assert render_json(a).startswith("{")
    assert "views" not in a.__dict__ and "concurrency" not in a.__dict__
