"""Every rule of the lifetime model (docs/model.md), each on a hand-written trace."""

from __future__ import annotations

import polars as pl
import pytest
from model_traces import trace

from qtrace.errors import UsageError
from qtrace.model import ANOMALY_KINDS, Analysis, analyze


def statuses(analysis: Analysis) -> list[tuple[int, int, str]]:
    """(view, generation, status) per instance, in creation order."""
    rows = analysis.views.sort(["run", "new_seq"]).select("view", "generation", "status")
    return [tuple(r) for r in rows.iter_rows()]


def kinds(analysis: Analysis) -> list[str]:
    return analysis.anomalies.sort("seq", "kind")["kind"].to_list()


def test_full_lifecycle_is_freed_with_live_and_grace_times() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 3 10\nrcu 2 10\ndestroy 2 10"))
    assert statuses(a) == [(1, 0, "immortal"), (2, 0, "freed"), (3, 0, "current")]
    freed = a.views.filter(pl.col("view") == 2).row(0, named=True)
    assert (freed["rcu_seq"], freed["destroy_seq"], freed["end_seq"]) == (3, 4, 4)
    assert (freed["live_ns"], freed["grace_ns"]) == (2000, 1000)
    assert a.anomalies.height == 0
    assert a.destroy_traced and a.runs == 1 and a.has_clock


def test_live_view_with_newer_view_of_same_root_is_leaked() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 3 10\nnew 4 20"))
    assert statuses(a) == [
        (1, 0, "immortal"),
        (2, 0, "leaked"),
        (3, 0, "current"),
        (4, 0, "current"),
    ]


def test_leak_check_counts_a_newer_instance_even_when_it_was_freed() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 3 10\nrcu 3 10\ndestroy 3 10"))
    assert statuses(a)[1] == (2, 0, "leaked")


def test_rcu_pending_when_destroy_is_traced_elsewhere() -> None:
    a = analyze(
        trace("new 1 nil\nnew 2 10\nnew 3 10\nrcu 2 10\nrcu 3 10\nnew 4 10\nrcu 4 10\ndestroy 4 10")
    )
    assert statuses(a)[1:] == [(2, 0, "rcu_pending"), (3, 0, "rcu_pending"), (4, 0, "freed")]
    pending = a.views.filter(pl.col("view") == 2).row(0, named=True)
    assert pending["end_seq"] is None  # still pins its root at the end of the trace


def test_without_destroy_events_destroy_rcu_frees_and_releases_the_root() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 3 10\nrcu 2 10"))
    assert not a.destroy_traced
    assert statuses(a)[1] == (2, 0, "freed")
    assert a.views.filter(pl.col("view") == 2)["end_seq"].item() == 3
    assert a.roots["max_concurrent"].item() == 2
    assert a.roots["pinned_at_end"].item() is True


def test_destroy_traced_is_decided_once_for_the_whole_input() -> None:
    # Run 1 has no destroy, but run 0 has one: run 1's pending view is rcu_pending, not freed.
    a = analyze(trace("new 1 nil\nnew 2 10\nrcu 2 10\ndestroy 2 10\nnew 5 nil\nnew 6 10\nrcu 6 10"))
    assert a.runs == 2
    assert a.views.filter(pl.col("view") == 6)["status"].item() == "rcu_pending"


def test_new_while_live_loses_the_old_instance() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 2 10\nrcu 2 10\ndestroy 2 10"))
    assert statuses(a) == [(1, 0, "immortal"), (2, 0, "lost"), (2, 1, "freed")]
    assert kinds(a) == ["new_while_live"]
    anomaly = a.anomalies.row(0, named=True)
    assert (anomaly["seq"], anomaly["view"], anomaly["generation"]) == (2, 2, 0)
    assert anomaly["line"] == 3
    # The lost instance pins up to, not including, the new that ended it: no overlap.
    assert a.overlaps.height == 0
    assert a.roots["max_concurrent"].item() == 1


def test_reused_before_destroy_when_destroy_is_traced() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nrcu 2 10\nnew 2 10\nnew 3 20\nrcu 3 20\ndestroy 3 20"))
    assert statuses(a)[1:3] == [(2, 0, "lost"), (2, 1, "current")]
    assert kinds(a) == ["reused_before_destroy"]


def test_reuse_of_a_pending_pointer_without_destroy_events_is_normal() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nrcu 2 10\nnew 2 10"))
    assert statuses(a) == [(1, 0, "immortal"), (2, 0, "freed"), (2, 1, "current")]
    assert a.anomalies.height == 0
    assert a.views["generation"].max() == 1


def test_orphan_destroy_rcu_and_orphan_destroy() -> None:
    a = analyze(
        trace(
            "new 1 nil\nrcu 7 10\ndestroy 8 10\nnew 2 10\nrcu 2 10\ndestroy 2 10\n"
            "destroy 2 10\nrcu 2 10"
        )
    )
    assert kinds(a) == [
        "orphan_destroy_rcu",
        "orphan_destroy",
        "orphan_destroy",
        "orphan_destroy_rcu",
    ]
    assert a.anomalies["generation"].null_count() == 4
    assert statuses(a)[1] == (2, 0, "freed")


def test_double_destroy_rcu() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nrcu 2 10\nrcu 2 10\ndestroy 2 10"))
    assert kinds(a) == ["double_destroy_rcu"]
    assert a.anomalies["generation"].item() == 0
    assert statuses(a)[1] == (2, 0, "freed")
    assert a.views.filter(pl.col("view") == 2)["rcu_seq"].item() == 2


def test_null_root_on_paired_and_orphan_destroy_rcu() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nrcu 2 nil\nrcu 9 nil\ndestroy 2 10"))
    assert kinds(a) == ["null_root", "root_mismatch", "null_root", "orphan_destroy_rcu"]


def test_root_mismatch_on_destroy_rcu_and_destroy_pairs_by_pointer_not_root() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nrcu 2 20\ndestroy 2 30"))
    assert kinds(a) == ["root_mismatch", "root_mismatch"]
    assert statuses(a)[1] == (2, 0, "freed")
    assert a.roots["root"].to_list() == [0x10]


def test_destroy_without_rcu_is_freed_all_the_same() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\ndestroy 2 10"))
    assert kinds(a) == ["destroy_without_rcu"]
    assert statuses(a)[1] == (2, 0, "freed")
    assert a.views.filter(pl.col("view") == 2)["end_seq"].item() == 2


def test_immortal_is_only_the_runs_nil_root_view_live_at_the_end() -> None:
    # A trace that starts mid-run (no nil-root new) has no immortal view.
    a = analyze(trace("new 2 10\nnew 3 10"))
    assert [s for _, _, s in statuses(a)] == ["leaked", "current"]
    assert a.runs == 1
    # A destroyed empty view is simply freed.
    b = analyze(trace("new 1 nil\nrcu 1 nil\ndestroy 1 nil"))
    assert statuses(b) == [(1, 0, "freed")]


def test_nil_root_instances_pin_nothing() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10"))
    assert a.roots["root"].to_list() == [0x10]
    assert a.concurrency.filter(pl.col("root") == 0).height == 0


def test_runs_split_at_every_nil_root_new() -> None:
    text = """
    new 5 10      # before any nil-root new: a run of its own
    new 1 nil
    new 2 10
    new 1 nil     # a second QEMU process: the same pointers mean new objects
    new 2 10
    rcu 2 10
    destroy 2 10
    """
    a = analyze(trace(text))
    assert a.runs == 3
    assert a.views.select("run", "view", "generation", "status").rows() == [
        (0, 5, 0, "current"),
        (1, 1, 0, "immortal"),
        (1, 2, 0, "current"),
        (2, 1, 0, "immortal"),
        (2, 2, 0, "freed"),
    ]
    assert a.anomalies.height == 0  # pointer 2 reappearing in run 2 is no new_while_live
    assert a.roots.select("run", "instances").rows() == [(0, 1), (1, 1), (2, 1)]
    assert a.event_counts == {"flatview_new": 5, "flatview_destroy_rcu": 1, "flatview_destroy": 1}


def test_pointer_reuse_makes_generations() -> None:
    text = "new 1 nil\n" + "new 2 10\nrcu 2 10\ndestroy 2 10\n" * 3 + "new 2 10"
    a = analyze(trace(text))
    gens = a.views.filter(pl.col("view") == 2).select("generation", "status").rows()
    assert gens == [(0, "freed"), (1, "freed"), (2, "freed"), (3, "current")]
    assert a.anomalies.height == 0


def test_half_open_pins_and_root_intervals() -> None:
    text = """
    new 1 nil
    new 2 10      # 1: root 0x10 pinned
    rcu 2 10      # 2: pending only
    destroy 2 10  # 3: root 0x10 released
    new 3 10      # 4: same address pinned again: a new interval
    new 4 10      # 5
    rcu 3 10      # 6
    """
    a = analyze(trace(text))
    pinned = a.root_intervals.filter(pl.col("kind") == "pinned")
    assert pinned.select("start_seq", "end_seq").rows() == [(1, 3), (4, None)]
    pending = a.root_intervals.filter(pl.col("kind") == "pending_only")
    assert pending.select("start_seq", "end_seq", "duration_ns").rows() == [(2, 3, 1000)]
    root = a.roots.row(0, named=True)
    assert (root["instances"], root["intervals"], root["pending_only_windows"]) == (3, 2, 1)
    assert root["pinned_at_end"] is True
    # Open intervals are measured up to the run's last FlatView event.
    assert pinned["duration_ns"].to_list() == [2000, 2000]


def test_concurrency_is_a_step_function_of_live_and_pending_levels() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 3 10\nrcu 2 10\ndestroy 2 10\nrcu 3 10"))
    assert a.concurrency.select("seq", "ts_ns", "live", "pending").rows() == [
        (1, 1000, 1, 0),
        (2, 2000, 2, 0),
        (3, 3000, 1, 1),
        (4, 4000, 1, 0),
        (5, 5000, 0, 1),
    ]
    assert a.roots["max_concurrent"].item() == 2


def test_overlaps_by_phase_with_time_and_event_counts() -> None:
    text = """
    new 1 nil
    new 2 10      # 1
    new 3 10      # 2: live+live
    rcu 2 10      # 3: live+pending
    rcu 3 10      # 4: pending+pending
    destroy 2 10  # 5: one left
    destroy 3 10  # 6
    """
    a = analyze(trace(text))
    assert a.overlaps.select("phases", "start_seq", "end_seq", "instances").rows() == [
        ("live+live", 2, 3, 2),
        ("live+pending", 3, 4, 2),
        ("pending+pending", 4, 5, 2),
    ]
    assert a.overlaps["duration_ns"].to_list() == [1000, 1000, 1000]
    no_clock = analyze(trace(text, clock=False))
    assert not no_clock.has_clock
    assert no_clock.overlaps["duration_events"].to_list() == [1, 1, 1]
    assert no_clock.overlaps["duration_ns"].null_count() == 3


def test_event_counts_skip_events_that_are_not_flatview_events() -> None:
    text = "new 1 nil\nnew 2 10\nnew 3 10\nother\nother\nrcu 2 10\ndestroy 2 10"
    a = analyze(trace(text, clock=False))
    # live+live spans seq 2..5: one FlatView event, whatever else lies between.
    assert a.overlaps.select("phases", "start_seq", "end_seq", "duration_events").rows() == [
        ("live+live", 2, 5, 1),
        ("live+pending", 5, 6, 1),
    ]


def test_root_release_destroy_rcu_replays_early_unref() -> None:
    text = "new 1 nil\nnew 2 10\nnew 3 10\nrcu 2 10\nnew 4 10\nrcu 3 10\ndestroy 2 10\ndestroy 3 10"
    late = analyze(trace(text))
    early = analyze(trace(text), root_release="destroy_rcu")
    assert early.root_release == "destroy_rcu"
    assert late.roots["max_concurrent"].item() == 3
    assert early.roots["max_concurrent"].item() == 2
    assert set(late.overlaps["phases"]) == {"live+live", "live+pending"}
    assert set(early.overlaps["phases"]) == {"live+live"}
    assert early.root_intervals.filter(pl.col("kind") == "pending_only").height == 0
    assert early.views.filter(pl.col("view") == 2)["end_seq"].item() == 3
    # Statuses and anomalies do not depend on when the root is released.
    assert statuses(early) == statuses(late)


def test_root_finalized_while_pinned() -> None:
    text = """
    new 1 nil
    new 2 10
    rcu 2 10
    finalize 10   # 3: the pending view still pins 0x10
    destroy 2 10
    finalize 10   # 5: nothing pins it any more
    finalize 99   # never a root
    """
    a = analyze(trace(text))
    assert kinds(a) == ["root_finalized_while_pinned"]
    hit = a.anomalies.row(0, named=True)
    assert (hit["seq"], hit["root"], hit["view"]) == (3, 0x10, None)
    assert "1 RCU-pending" in hit["detail"]
    # With early unref the root is no longer pinned when it is finalized.
    assert analyze(trace(text), root_release="destroy_rcu").anomalies.height == 0


def test_finalize_reads_the_level_of_its_own_root_and_run() -> None:
    text = """
    new 1 nil
    new 2 10
    finalize 20   # 2: 0x20 is not pinned yet (the step before is 0x10's)
    new 3 20
    finalize 20   # 4: pinned by view 3
    new 4 nil     # 5: a new run
    finalize 10   # 6: 0x10 was pinned in the previous run only
    """
    a = analyze(trace(text))
    assert a.anomalies.select("kind", "seq", "root").rows() == [
        ("root_finalized_while_pinned", 4, 0x20)
    ]


def test_dropped_events_mark_spanning_leaks_and_anomalies_uncertain() -> None:
    text = """
    new 1 nil
    new 2 10      # 1: spans the drop, leaked
    new 3 10      # 2: freed before the drop
    rcu 3 10
    destroy 3 10
    drop 5        # 5
    new 4 10      # 6: after the drop, current
    rcu 9 10      # 7: orphan after a drop: uncertain
    """
    a = analyze(trace(text))
    assert a.dropped_events == 5
    flags = dict(a.views.select("view", "uncertain").iter_rows())
    assert flags == {1: True, 2: True, 3: False, 4: False}
    assert a.anomalies.select("kind", "uncertain").rows() == [("orphan_destroy_rcu", True)]
    clean = analyze(trace("new 1 nil\nrcu 9 10\ndrop 1"))
    assert clean.anomalies["uncertain"].to_list() == [False]


def test_window_by_seq_keeps_instances_whose_life_meets_it() -> None:
    text = """
    new 1 nil      # 0
    new 2 10       # 1
    rcu 2 10       # 2
    destroy 2 10   # 3
    new 3 10       # 4
    rcu 8 10       # 5: orphan
    new 4 20       # 6
    rcu 9 10       # 7: orphan
    """
    a = analyze(trace(text), begin=4, end=6)
    assert sorted(a.views["view"].to_list()) == [1, 3, 4]  # 2 ended at seq 3
    assert a.anomalies["seq"].to_list() == [5]
    assert a.event_counts["flatview_new"] == 2
    assert a.window is not None and (a.window.begin_seq, a.window.end_seq) == (4, 6)
    assert a.roots.select("root", "instances").rows() == [(0x10, 1), (0x20, 1)]


def test_window_ending_at_seq_zero_keeps_only_the_first_event() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 3 10"), end=0)
    assert a.views["view"].to_list() == [1]
    assert a.event_counts["flatview_new"] == 1


def test_window_keeps_the_level_entering_it() -> None:
    a = analyze(trace("new 1 nil\nnew 2 10\nnew 3 10\nnew 4 10\nrcu 2 10"), begin=3)
    assert a.concurrency.select("seq", "live", "pending").rows()[0] == (3, 2, 0)
    assert a.roots["max_concurrent"].item() == 3


def test_window_by_time() -> None:
    text = "new 1 nil\nnew 2 10\nrcu 2 10\ndestroy 2 10\nnew 3 10\nnew 4 10"
    a = analyze(trace(text), begin=3500, end=4000, window_unit="ns")
    assert a.window is not None and (a.window.begin_seq, a.window.end_seq) == (4, 4)
    assert sorted(a.views["view"].to_list()) == [1, 3]
    with pytest.raises(UsageError, match="clock"):
        analyze(trace(text, clock=False), begin=1, window_unit="ns")
    with pytest.raises(UsageError, match="before"):
        analyze(trace(text), begin=5, end=2)


def test_bad_root_release_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="root release"):
        analyze(trace("new 1 nil"), root_release="never")  # type: ignore[arg-type]


def test_input_without_flatview_events_gives_empty_tables() -> None:
    a = analyze(trace("other\ndrop 3"))
    assert a.runs == 0 and a.views.height == 0 and a.roots.height == 0
    assert a.anomalies.columns[:2] == ["run", "kind"]
    assert a.dropped_events == 3
    assert a.event_counts == {"flatview_new": 0, "flatview_destroy_rcu": 0, "flatview_destroy": 0}


def test_anomaly_kinds_are_fixed_and_complete() -> None:
    assert len(ANOMALY_KINDS) == len(set(ANOMALY_KINDS)) == 9
    assert ANOMALY_KINDS[0] == "new_while_live"
    assert ANOMALY_KINDS[-1] == "root_finalized_while_pinned"
