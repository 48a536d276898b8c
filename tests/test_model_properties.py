"""Invariants of the lifetime model on random traces, checked against a plain-Python oracle.

The oracle walks the events one at a time, the way the rules in docs/model.md read; the
model must agree with it on every status, anomaly count and pin level, whichever of its two
kernels runs (the C pass, or the plain-Python walker when it was not built).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from unittest import mock

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from model_traces import trace

from qtrace import kernel
from qtrace.instances import STATUSES
from qtrace.model import Analysis, analyze

Event = tuple[str, int, str]


@dataclass
class Instance:
    run: int
    view: int
    generation: int
    root: int
    new_seq: int
    rcu_seq: int | None = None
    destroy_seq: int | None = None
    lost_seq: int | None = None
    status: str = ""
    end_seq: int | None = None


def oracle(events: list[Event]) -> tuple[list[Instance], Counter[str]]:
    """Statuses, pin ends and anomaly counts, one event at a time (the rules, read literally)."""
    traced = any(kind == "destroy" for kind, _, _ in events)
    instances: list[Instance] = []
    anomalies: Counter[str] = Counter()
    run, seen_fv = -1, False
    open_: dict[int, Instance] = {}
    generations: Counter[int] = Counter()
    for seq, (kind, view, root_text) in enumerate(events):
        root = 0 if root_text == "nil" else int(root_text, 16)
        if kind == "drop":
            continue
        if (kind == "new" and root == 0) or not seen_fv:
            run, open_, generations = run + 1, {}, Counter()
        seen_fv = True
        inst = open_.get(view)
        if kind == "new":
            if inst is not None and (inst.rcu_seq is None or traced):
                live = inst.rcu_seq is None
                anomalies["new_while_live" if live else "reused_before_destroy"] += 1
                inst.lost_seq = seq
            new = Instance(run, view, generations[view], root, seq)
            generations[view] += 1
            open_[view] = new
            instances.append(new)
        elif kind == "rcu":
            if root == 0:
                anomalies["null_root"] += 1
            if inst is None:
                anomalies["orphan_destroy_rcu"] += 1
            elif inst.rcu_seq is not None:
                anomalies["double_destroy_rcu"] += 1
            else:
                inst.rcu_seq = seq
                if root != inst.root:
                    anomalies["root_mismatch"] += 1
        else:
            if inst is None:
                anomalies["orphan_destroy"] += 1
                continue
            if inst.rcu_seq is None:
                anomalies["destroy_without_rcu"] += 1
            if root != inst.root:
                anomalies["root_mismatch"] += 1
            inst.destroy_seq = seq
            del open_[view]
    newest: dict[tuple[int, int], int] = {}
    first_nil: dict[int, int] = {}
    for i in instances:
        newest[(i.run, i.root)] = max(newest.get((i.run, i.root), -1), i.new_seq)
        if i.root == 0:
            first_nil.setdefault(i.run, i.new_seq)
    for i in instances:
        if i.lost_seq is not None:
            i.status, i.end_seq = "lost", i.lost_seq
        elif i.destroy_seq is not None:
            i.status, i.end_seq = "freed", i.destroy_seq
        elif i.rcu_seq is not None and not traced:
            i.status, i.end_seq = "freed", i.rcu_seq
        elif i.rcu_seq is not None:
            i.status = "rcu_pending"
        elif i.root == 0 and first_nil.get(i.run) == i.new_seq:
            i.status = "immortal"
        elif newest[(i.run, i.root)] == i.new_seq:
            i.status = "current"
        else:
            i.status = "leaked"
    return instances, anomalies


def pins_at(instances: list[Instance], run: int, root: int, seq: int) -> int:
    """How many instances pin ``root`` just after event ``seq`` (half-open pins)."""
    return sum(
        1
        for i in instances
        if i.run == run
        and i.root == root
        and i.new_seq <= seq
        and (i.end_seq is None or seq < i.end_seq)
    )


EVENT = st.tuples(
    st.sampled_from(["new", "new", "new", "rcu", "rcu", "destroy", "destroy", "drop"]),
    st.integers(1, 4),
    st.sampled_from(["nil", "10", "10", "20", "20", "30"]),
)


def render(events: list[Event]) -> str:
    return "\n".join("drop 1" if k == "drop" else f"{k} {v:x} {r}" for k, v, r in events)


def summaries_agree_with_the_views(a: Analysis) -> None:
    """What reports read (the kernel's counts) is what the views table says."""
    views = a.views
    by_status = dict(views.group_by("status").len().iter_rows())
    assert a.status_counts == {s: by_status.get(s, 0) for s in STATUSES}
    assert a.uncertain_views == views["uncertain"].sum()
    gens = views["generation"]
    assert a.pointer_reuse == ((gens == 0).sum(), (gens == 1).sum())
    flagged = views.filter(pl.col("status").is_in(["leaked", "lost"]))
    assert a.flagged_views.select(flagged.columns).equals(flagged)
    for name in ("live_ns", "grace_ns"):
        present = views[name].drop_nulls()
        assert a.duration_stats[name]["count"] == present.len()
        assert a.duration_stats[name]["max"] == (present.max() if present.len() else None)


@settings(max_examples=120, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=40), st.booleans())
def test_model_agrees_with_the_oracle(events: list[Event], python_walker: bool) -> None:
    with mock.patch.dict(os.environ, {kernel.NO_KERNEL: "1" if python_walker else "0"}):
        a = analyze(trace(render(events)))
        summaries_agree_with_the_views(a)
    expected, expected_anomalies = oracle(events)

    # Statuses partition the instances: one per flatview_new, each in exactly one status.
    assert a.views.height == sum(1 for k, _, _ in events if k == "new")
    assert set(a.views["status"]) <= set(STATUSES)
    got = {
        (r["run"], r["view"], r["generation"]): (r["status"], r["end_seq"])
        for r in a.views.iter_rows(named=True)
    }
    assert got == {(i.run, i.view, i.generation): (i.status, i.end_seq) for i in expected}

    counts = Counter(a.anomalies["kind"].to_list())
    assert counts == expected_anomalies
    assert counts["new_while_live"] + counts["reused_before_destroy"] == (
        a.views.filter(pl.col("status") == "lost").height
    )

    # Pin levels: never negative, equal to the oracle's count after every change.
    steps = a.concurrency
    assert steps.filter((pl.col("live") < 0) | (pl.col("pending") < 0)).height == 0
    for r in steps.iter_rows(named=True):
        assert r["live"] + r["pending"] == pins_at(expected, r["run"], r["root"], r["seq"])

    # A freed instance never pins after its end.
    for i in expected:
        if i.status == "freed":
            assert i.end_seq is not None
            assert got[(i.run, i.view, i.generation)][1] == i.end_seq

    # The peak per root is the maximum of the step function.
    peaks = steps.group_by("run", "root").agg(peak=(pl.col("live") + pl.col("pending")).max())
    joined = a.roots.join(peaks, on=["run", "root"], how="left")
    assert (joined["max_concurrent"] == joined["peak"]).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=40))
def test_early_release_never_pins_longer(events: list[Event]) -> None:
    late = analyze(trace(render(events)))
    early = analyze(trace(render(events)), root_release="destroy_rcu")
    assert early.views["status"].to_list() == late.views["status"].to_list()
    ends = late.views.select("end_seq").with_columns(early=early.views["end_seq"])
    # Early release ends at or before the late one (null: pinned to the end of the trace).
    later = ends.filter(
        pl.col("early").is_null() & pl.col("end_seq").is_not_null()
        | (pl.col("early") > pl.col("end_seq"))
    )
    assert later.height == 0
    assert early.roots["max_concurrent"].sum() <= late.roots["max_concurrent"].sum()
