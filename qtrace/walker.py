"""The lifetime model's sequential core in plain Python: ``qtrace/_kernel.c``'s contract.

``walk`` takes the model's rows as columns and returns the same dictionary of columns
(as Python lists) and counts that the C kernel returns. It runs when the kernel was not
built (no compiler at install time; about 30 times slower), and the tests compare the two
on every trace. Keep it rule for rule alike with the C file: the comments there explain
the why; the names here are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

NEW, RCU, DESTROY, DROP, FINALIZE = range(5)
(
    NEW_WHILE_LIVE,
    REUSED_BEFORE_DESTROY,
    ORPHAN_DESTROY_RCU,
    DOUBLE_DESTROY_RCU,
    NULL_ROOT,
    ROOT_MISMATCH,
    ORPHAN_DESTROY,
    DESTROY_WITHOUT_RCU,
    ROOT_FINALIZED_WHILE_PINNED,
) = range(9)
FREED, RCU_PENDING, IMMORTAL, CURRENT, LEAKED, LOST = range(6)
PINNED, PENDING_ONLY, OVERLAP = range(3)
PHASE_NONE, PHASE_LIVE, PHASE_PENDING = range(3)
NONE = -1
BATCH_ROWS = 1 << 20  # rows turned into Python objects at a time

INSTANCE_COLUMNS = (
    "id",
    "run",
    "view",
    "generation",
    "root",
    "status",
    "new_row",
    "rcu_row",
    "destroy_row",
    "lost_row",
    "uncertain",
)
ANOMALY_COLUMNS = (
    "run",
    "kind",
    "row",
    "code",
    "view",
    "root",
    "generation",
    "uncertain",
    "live",
    "pending",
)
SPAN_COLUMNS = ("rid", "kind", "start_row", "end_row", "start_pos", "end_pos", "peak")
STEP_COLUMNS = ("rid", "row", "live", "pending")
ROOT_COLUMNS = (
    "run",
    "root",
    "instances",
    "leaked",
    "max_concurrent",
    "pinned_at_end",
    "first_row",
    "min_new_ts",
    "last_step_row",
)
RUN_COLUMNS = (
    "stream",
    "first_row",
    "last_fv_row",
    "flatview_events",
    "loss_points",
    "clock_steps_back",
)


@dataclass
class Inst:
    view: int
    root: int
    id: int
    new_row: int
    new_ts: int | None
    loss_at_new: int
    run: int
    generation: int
    rid: int
    rcu_row: int = NONE
    destroy_row: int = NONE
    lost_row: int = NONE
    rcu_ts: int | None = None
    destroy_ts: int | None = None
    live_end_ts: int | None = None
    loss_at_end: int = 0
    anomalies: list[int] = field(default_factory=list)
    phase: int = PHASE_LIVE
    life_ended: bool = False


@dataclass
class Root:
    root: int
    run: int
    live: int = 0
    pending: int = 0
    instances: int = 0
    leaked: int = 0
    max_concurrent: int = 0
    first_row: int = NONE
    min_new_ts: int | None = None
    last_step_row: int = NONE
    newest: int = NONE
    span_row: list[int] = field(default_factory=lambda: [NONE] * 3)
    span_pos: list[int] = field(default_factory=lambda: [NONE] * 3)
    overlap_peak: int = 0
    overlap_class: int = NONE


@dataclass
class Run:
    stream: int
    first_row: int
    loss_base: int
    last_fv_row: int = NONE
    fv_events: int = 0
    loss_points: int = 0
    steps_back: int = 0
    last_ts: int | None = None
    first_nil: int = NONE
    roots: list[int] = field(default_factory=list)


@dataclass
class Stream:
    run: int = NONE
    losses: int = 0
    # (view -> [generations so far, open instance or None]) and (root -> rid), current run
    views: dict[int, list[Any]] = field(default_factory=dict)
    roots: dict[int, int] = field(default_factory=dict)
    open: dict[int, Inst] = field(default_factory=dict)  # by id, creation order


def _overlap_class(live: int, pending: int) -> int:
    if live + pending < 2:
        return NONE
    if live > 0 and pending > 0:
        return 0
    return 1 if live >= 2 else 2


class Walker:
    """The state of one pass (the C file's ``K``)."""

    def __init__(
        self,
        n_streams: int,
        null_stream: int,
        destroy_traced: bool,
        release_at_rcu: bool,
        full: bool,
        tables_only: bool = False,
    ) -> None:
        self.destroy_traced, self.release_at_rcu, self.full = destroy_traced, release_at_rcu, full
        # With full: no spans nor durations (a pass for the views and concurrency tables).
        self.tables_only = full and tables_only
        self.null_stream = null_stream
        self.global_losses = 0
        self.streams = [Stream() for _ in range(max(n_streams, 1))]
        self.roots: list[Root] = []
        self.runs: list[Run] = []
        self.n_instances = 0
        self.instances: dict[str, list[Any]] = {c: [] for c in INSTANCE_COLUMNS}
        self.anomalies: dict[str, list[Any]] = {c: [] for c in ANOMALY_COLUMNS}
        self.spans: dict[str, list[int]] = {c: [] for c in SPAN_COLUMNS}
        self.steps: dict[str, list[int]] = {c: [] for c in STEP_COLUMNS}
        self.live_ns: list[int] = []
        self.grace_ns: list[int] = []
        self.status_counts = [0] * 6
        self.event_counts = [0] * 3
        self.uncertain = self.gen0 = self.gen1 = self.negative = 0

    def losses(self, s: Stream) -> int:
        return s.losses + self.global_losses

    # -------------------------------------------------------------- outputs

    def emit_anomaly(
        self,
        run: int,
        kind: int,
        row: int,
        code: int,
        view: int,
        root: int,
        inst: Inst | None,
        uncertain: bool = False,
        live: int = 0,
        pending: int = 0,
    ) -> None:
        a = self.anomalies
        if inst is not None:
            inst.anomalies.append(len(a["run"]))
        for name, value in zip(
            ANOMALY_COLUMNS,
            (
                run,
                kind,
                row,
                code,
                view,
                root,
                NONE if inst is None else inst.generation,
                int(uncertain),
                live,
                pending,
            ),
            strict=True,
        ):
            a[name].append(value)

    def emit_span(
        self, rid: int, kind: int, start: tuple[int, int], end: tuple[int, int], peak: int
    ) -> None:
        if self.tables_only:
            return
        (start_row, start_pos), (end_row, end_pos) = start, end
        values = (rid, kind, start_row, end_row, start_pos, end_pos, peak)
        for name, value in zip(SPAN_COLUMNS, values, strict=True):
            self.spans[name].append(value)

    def apply(self, rid: int, dl: int, dp: int, row: int, pos: int) -> None:
        r = self.roots[rid]
        ol, op = r.live, r.pending
        nl, np_ = ol + dl, op + dp
        r.live, r.pending, r.last_step_row = nl, np_, row
        r.max_concurrent = max(r.max_concurrent, nl + np_)
        if self.full:
            for name, value in zip(STEP_COLUMNS, (rid, row, nl, np_), strict=True):
                self.steps[name].append(value)
        was = (ol + op > 0, ol == 0 and op > 0)
        now = (nl + np_ > 0, nl == 0 and np_ > 0)
        for kind in (PINNED, PENDING_ONLY):
            if was[kind] and not now[kind]:
                self.emit_span(rid, kind, (r.span_row[kind], r.span_pos[kind]), (row, pos), NONE)
                r.span_row[kind] = r.span_pos[kind] = NONE
            elif not was[kind] and now[kind]:
                r.span_row[kind], r.span_pos[kind] = row, pos
        oc, nc = r.overlap_class, _overlap_class(nl, np_)
        if oc != nc:
            if oc != NONE:
                start = (r.span_row[OVERLAP], r.span_pos[OVERLAP])
                self.emit_span(rid, OVERLAP + oc, start, (row, pos), r.overlap_peak)
            if nc != NONE:
                r.span_row[OVERLAP], r.span_pos[OVERLAP] = row, pos
                r.overlap_peak = nl + np_
            r.overlap_class = nc
        elif nc != NONE:
            r.overlap_peak = max(r.overlap_peak, nl + np_)

    def change(self, changes: dict[int, list[int]], rid: int, dl: int, dp: int) -> None:
        if self.roots[rid].root == 0:
            return
        delta = changes.setdefault(rid, [0, 0])
        delta[0] += dl
        delta[1] += dp

    def commit(self, changes: dict[int, list[int]], row: int, pos: int) -> None:
        for rid, (dl, dp) in changes.items():
            if dl or dp:
                self.apply(rid, dl, dp, row, pos)

    def unpin(self, changes: dict[int, list[int]], inst: Inst) -> None:
        if inst.phase == PHASE_LIVE:
            self.change(changes, inst.rid, -1, 0)
        if inst.phase == PHASE_PENDING:
            self.change(changes, inst.rid, 0, -1)
        inst.phase = PHASE_NONE

    def duration(self, out: list[int], start: int | None, end: int | None) -> None:
        if self.tables_only or start is None or end is None:
            return
        if end < start:
            self.negative += 1
            return
        out.append(end - start)

    def close(self, s: Stream, inst: Inst, status: int) -> None:
        uncertain = inst.loss_at_end > inst.loss_at_new
        for a in inst.anomalies:
            self.anomalies["uncertain"][a] = int(uncertain)
        self.status_counts[status] += 1
        self.uncertain += uncertain
        if status == LEAKED:
            self.roots[inst.rid].leaked += 1
        self.duration(self.live_ns, inst.new_ts, inst.live_end_ts)
        if inst.rcu_row != NONE and inst.destroy_row != NONE:
            self.duration(self.grace_ns, inst.rcu_ts, inst.destroy_ts)
        if self.full or status in (LEAKED, LOST):
            record = (
                inst.id,
                inst.run,
                inst.view,
                inst.generation,
                inst.root,
                status,
                inst.new_row,
                inst.rcu_row,
                inst.destroy_row,
                inst.lost_row,
                int(uncertain),
            )
            for name, value in zip(INSTANCE_COLUMNS, record, strict=True):
                if self.full:
                    self.instances[name][inst.id] = value
                else:
                    self.instances[name].append(value)
        del s.open[inst.id]

    # -------------------------------------------------------------- runs

    def finish_run(self, s: Stream) -> None:
        run = self.runs[s.run]
        lost_at_end = self.losses(s)
        run.loss_points = lost_at_end - run.loss_base
        # Newest first, as the C file's list of open instances runs.
        for inst in reversed(list(s.open.values())):
            if inst.rcu_row != NONE:
                status = RCU_PENDING if self.destroy_traced else FREED
            elif inst.id == run.first_nil:
                status = IMMORTAL
            else:
                status = CURRENT if self.roots[inst.rid].newest == inst.id else LEAKED
            if not inst.life_ended:
                inst.loss_at_end = lost_at_end
            self.close(s, inst, status)
        for rid in reversed(run.roots):  # the C file chains them newest first
            r = self.roots[rid]
            for kind in (PINNED, PENDING_ONLY):
                if r.span_row[kind] != NONE:
                    start = (r.span_row[kind], r.span_pos[kind])
                    self.emit_span(rid, kind, start, (NONE, NONE), NONE)
            if r.overlap_class != NONE:
                start = (r.span_row[OVERLAP], r.span_pos[OVERLAP])
                self.emit_span(rid, OVERLAP + r.overlap_class, start, (NONE, NONE), r.overlap_peak)
        s.run = NONE

    def start_run(self, sid: int, row: int, pre_run: bool) -> None:
        s = self.streams[sid]
        if s.run != NONE:
            self.finish_run(s)
        self.runs.append(Run(sid, row, 0 if pre_run else self.losses(s)))
        s.run = len(self.runs) - 1
        s.views, s.roots, s.open = {}, {}, {}

    def root_of(self, sid: int, root: int) -> int:
        s = self.streams[sid]
        rid = s.roots.get(root)
        if rid is None:
            rid = len(self.roots)
            self.roots.append(Root(root, s.run))
            self.runs[s.run].roots.append(rid)
            s.roots[root] = rid
        return rid

    # -------------------------------------------------------------- rows

    def flatview_event(
        self, sid: int, row: int, code: int, view: int, root: int, ts: int | None
    ) -> None:
        s = self.streams[sid]
        starts_run = code == NEW and root == 0
        if starts_run or s.run == NONE:
            self.start_run(sid, row, not starts_run)
        run = self.runs[s.run]
        pos = run.fv_events
        run.fv_events += 1
        run.last_fv_row = row
        if ts is not None:
            if run.last_ts is not None and ts < run.last_ts:
                run.steps_back += 1
            run.last_ts = ts
        self.event_counts[code] += 1
        r = s.run
        changes: dict[int, list[int]] = {}
        entry = s.views.get(view)
        if code == NEW and entry is None:
            entry = s.views[view] = [0, None]
        open_: Inst | None = None if entry is None else entry[1]
        if code == NEW:
            assert entry is not None
            if open_ is not None:
                if open_.rcu_row == NONE or self.destroy_traced:
                    kind = NEW_WHILE_LIVE if open_.rcu_row == NONE else REUSED_BEFORE_DESTROY
                    if open_.rcu_row == NONE:
                        open_.live_end_ts = ts
                    open_.lost_row = row
                    open_.loss_at_end = self.losses(s)
                    open_.life_ended = True
                    self.unpin(changes, open_)
                    self.emit_anomaly(r, kind, row, code, view, root, open_)
                    self.close(s, open_, LOST)
                else:
                    self.close(s, open_, FREED)
                entry[1] = None
            rid = self.root_of(sid, root)
            inst = Inst(view, root, self.n_instances, row, ts, self.losses(s), r, entry[0], rid)
            self.n_instances += 1
            entry[0] += 1
            entry[1] = inst
            s.open[inst.id] = inst
            self.gen0 += inst.generation == 0
            self.gen1 += inst.generation == 1
            if self.full:
                for column in self.instances.values():
                    column.append(None)
            rr = self.roots[rid]
            rr.instances += 1
            rr.newest = inst.id
            if rr.first_row == NONE:
                rr.first_row = row
            if ts is not None and (rr.min_new_ts is None or ts < rr.min_new_ts):
                rr.min_new_ts = ts
            if starts_run:
                run.first_nil = inst.id
            self.change(changes, rid, 1, 0)
            self.commit(changes, row, pos)
            return
        if code == RCU:
            orphan_uncertain = self.losses(s) > run.loss_base
            if root == 0:
                self.emit_anomaly(
                    r, NULL_ROOT, row, code, view, root, open_, open_ is None and orphan_uncertain
                )
            if open_ is None:
                self.emit_anomaly(
                    r, ORPHAN_DESTROY_RCU, row, code, view, root, None, orphan_uncertain
                )
                return
            if open_.rcu_row != NONE:
                self.emit_anomaly(r, DOUBLE_DESTROY_RCU, row, code, view, root, open_)
                return
            open_.rcu_row, open_.rcu_ts, open_.live_end_ts = row, ts, ts
            if root != open_.root:
                self.emit_anomaly(r, ROOT_MISMATCH, row, code, view, root, open_)
            if open_.phase == PHASE_LIVE:
                if self.release_at_rcu or not self.destroy_traced:
                    self.unpin(changes, open_)
                else:
                    self.change(changes, open_.rid, -1, 1)
                    open_.phase = PHASE_PENDING
            if not self.destroy_traced:
                open_.loss_at_end = self.losses(s)
                open_.life_ended = True
            self.commit(changes, row, pos)
            return
        if open_ is None:
            uncertain = self.losses(s) > run.loss_base
            self.emit_anomaly(r, ORPHAN_DESTROY, row, code, view, root, None, uncertain)
            return
        assert entry is not None
        if open_.rcu_row == NONE:
            open_.live_end_ts = ts
            self.emit_anomaly(r, DESTROY_WITHOUT_RCU, row, code, view, root, open_)
        if root != open_.root:
            self.emit_anomaly(r, ROOT_MISMATCH, row, code, view, root, open_)
        open_.destroy_row, open_.destroy_ts = row, ts
        open_.loss_at_end = self.losses(s)
        open_.life_ended = True
        self.unpin(changes, open_)
        entry[1] = None
        self.close(s, open_, FREED)
        self.commit(changes, row, pos)

    def finalize_event(self, sid: int, row: int, mr: int) -> None:
        s = self.streams[sid]
        if s.run == NONE or mr == 0:
            return
        rid = s.roots.get(mr)
        if rid is None:
            return
        r = self.roots[rid]
        if r.live + r.pending == 0:
            return
        uncertain = self.losses(s) > self.runs[s.run].loss_base
        self.emit_anomaly(
            s.run,
            ROOT_FINALIZED_WHILE_PINNED,
            row,
            FINALIZE,
            0,
            mr,
            None,
            uncertain,
            r.live,
            r.pending,
        )

    def results(self) -> dict[str, Any]:
        roots = {
            "run": [r.run for r in self.roots],
            "root": [r.root for r in self.roots],
            "instances": [r.instances for r in self.roots],
            "leaked": [r.leaked for r in self.roots],
            "max_concurrent": [r.max_concurrent for r in self.roots],
            "pinned_at_end": [int(r.live + r.pending > 0) for r in self.roots],
            "first_row": [r.first_row for r in self.roots],
            "min_new_ts": [r.min_new_ts for r in self.roots],
            "last_step_row": [r.last_step_row for r in self.roots],
        }
        runs = {
            "stream": [u.stream for u in self.runs],
            "first_row": [u.first_row for u in self.runs],
            "last_fv_row": [u.last_fv_row for u in self.runs],
            "flatview_events": [u.fv_events for u in self.runs],
            "loss_points": [u.loss_points for u in self.runs],
            "clock_steps_back": [u.steps_back for u in self.runs],
        }
        return {
            "instances": self.instances,
            "anomalies": self.anomalies,
            "spans": self.spans,
            "steps": self.steps if self.full else None,
            "durations": {"live_ns": self.live_ns, "grace_ns": self.grace_ns},
            "roots": roots,
            "runs": runs,
            "status_counts": tuple(self.status_counts),
            "event_counts": tuple(self.event_counts),
            "uncertain_views": self.uncertain,
            "generation_0": self.gen0,
            "generation_1": self.gen1,
            "negative_durations": self.negative,
        }


def walk(
    code: pl.Series,
    view: pl.Series,
    root: pl.Series,
    ts: pl.Series,
    stream: pl.Series | None,
    finalize_rows: list[int],
    finalize_mr: list[int],
    *,
    n_streams: int,
    null_stream: int,
    destroy_traced: bool,
    release_at_rcu: bool,
    full: bool,
    tables_only: bool = False,
) -> dict[str, Any]:
    """The C kernel's ``walk`` in Python (same arguments as columns, same results)."""
    w = Walker(n_streams, null_stream, destroy_traced, release_at_rcu, full, tables_only)
    finalized = dict(zip(finalize_rows, finalize_mr, strict=True))
    for start in range(0, code.len(), BATCH_ROWS):
        columns = [c.slice(start, BATCH_ROWS).to_list() for c in (code, view, root, ts)]
        streams = (
            stream.slice(start, BATCH_ROWS).to_list()
            if stream is not None
            else [0] * len(columns[0])
        )
        for i, (c, v, r, t, sid) in enumerate(zip(*columns, streams, strict=True)):
            row = start + i
            if c is None:
                continue
            if c <= DESTROY:
                w.flatview_event(sid, row, c, v, r, t)
            elif c == DROP:
                if sid == null_stream:
                    w.global_losses += 1
                else:
                    w.streams[sid].losses += 1
            elif c == FINALIZE and row in finalized:
                w.finalize_event(sid, row, finalized[row])
    for s in w.streams:
        if s.run != NONE:
            w.finish_run(s)
    return w.results()
