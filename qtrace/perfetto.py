"""Write an analysis as Chrome trace-event JSON, which ui.perfetto.dev and chrome://tracing open.

The layout, in the Trace Event Format's terms:

- one process per run (``pid`` = run + 1, named ``run N`` with its QEMU pid and source);
- one async track per root: every view instance is a nestable async slice (``b``/``e``)
  named by its root (``name (0x..)`` when the roots table has a ``name``, else ``root
  0x..``), so viewers that group a process's async slices by name (Perfetto does) draw one
  track per root. The slice's ``id`` is unique per instance, never the view pointer, which
  QEMU reuses. Inside it, nested slices ``live`` (``flatview_new`` to
  ``flatview_destroy_rcu``) and ``rcu-pending`` (to ``flatview_destroy``). An instance still
  alive at its run's end is closed there, with ``open_at_end`` in its arguments;
- counter tracks ``<root> live`` and ``<root> pending``: the per-root levels after each
  change (``C`` events with two series);
- instant events on two named threads: ``anomalies`` (one per anomaly, and one per place
  where events were lost: dropped-events records, ``qtrace_unreadable`` rows) and
  ``markers`` (other trace events, such as ``pci_update_mappings_*``).

Timestamps are microseconds from the trace's first stamp. A trace without a clock uses each
event's ``seq`` as its microsecond, and says so in the document's ``metadata``.

The document is written in batches of rows straight from the polars tables (each event one
JSON object encoded by polars), so a trace of millions of instances never has the whole
document in memory: only the analysis tables and one batch of text.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import polars as pl

from qtrace.errors import InputError
from qtrace.events import LOSS_EVENTS, conform
from qtrace.formatting import hex_pointer
from qtrace.model import Analysis
from qtrace.runs import every_view_timed

SCHEMA = "qtrace.perfetto/1"
BATCH_ROWS = 10_000  # rows turned into text at a time: bounds the text held in memory
INSTANCES_TID = 1
ANOMALIES_TID = 2
MARKERS_TID = 3
THREAD_NAMES = {
    INSTANCES_TID: "FlatView instances",
    ANOMALIES_TID: "anomalies",
    MARKERS_TID: "markers",
}
INSTANCE_CAT = "flatview"  # one category for an instance and its phases: one async tree
LIVE, PENDING = "live", "rcu-pending"
SEPARATOR = ",\n"


def _hex(column: str) -> pl.Expr:
    """A pointer column as QEMU prints it (``0x0`` for nil), whatever its integer type."""
    return hex_pointer(pl.col(column).cast(pl.UInt64))


class _Clock:
    """How the document turns a trace's stamps (or seqs) into microseconds from its start."""

    def __init__(self, analysis: Analysis) -> None:
        # Views without a stamp (a bare run beside a stamped one) are placed by seq, as all.
        self.partial = analysis.has_clock and not every_view_timed(analysis.views)
        self.has_clock = analysis.has_clock and not self.partial
        self.start_ns = 0
        if self.has_clock:
            # The model's first stamp, or an earlier marker's: no event before the start.
            starts: list[Any] = [analysis.start_ts_ns, analysis.views["new_ts_ns"].min()]
            if analysis.trace is not None:
                starts.append(analysis.trace.events["ts_ns"].min())
            known = [s for s in starts if isinstance(s, int)]
            self.start_ns = min(known) if known else 0

    @property
    def why_none(self) -> str:
        return "not every view has a timestamp" if self.partial else "the trace has no clock"

    def column(self) -> str:
        """The stamp column this trace is placed by: ``ts_ns``, or ``seq`` without a clock."""
        return "ts_ns" if self.has_clock else "seq"

    def micros(self, stamp: pl.Expr) -> pl.Expr:
        if not self.has_clock:
            return stamp.cast(pl.Float64)
        return ((stamp - self.start_ns).cast(pl.Float64) / 1000.0).round(3)


def _root_labels(analysis: Analysis) -> pl.DataFrame:
    """``run``, ``root`` and ``label``: the root's name and pointer, or its pointer alone."""
    roots = analysis.views.select("run", "root").unique()
    hexed = _hex("root")
    label = pl.when(pl.col("root") == 0).then(pl.lit("root (nil)")).otherwise("root " + hexed)
    if "name" in analysis.roots.columns:
        names = analysis.roots.select("run", "root", "name")
        roots = roots.join(names, on=["run", "root"], how="left")
        label = (
            pl.when(pl.col("name").is_not_null())
            .then(pl.format("{} ({})", pl.col("name"), hexed))
            .otherwise(label)
        )
    return roots.select("run", "root", label=label).rechunk()


def _run_ends(analysis: Analysis, clock: _Clock) -> pl.DataFrame:
    """Per run: its last FlatView event's stamp (where instances still open are closed)."""
    last = "last_ts_ns" if clock.has_clock else "last_seq"
    return analysis.run_table.select("run", run_end=pl.col(last).cast(pl.Int64))


class _Instances:
    """The instances' rows, a batch at a time: a slice of the views table (no copy), joined
    only with small tables (run ends, root labels, the few stamps read from the trace), so
    the text columns exist for one batch at a time.
    """

    def __init__(self, analysis: Analysis, clock: _Clock) -> None:
        self.views = analysis.views
        self.clock = clock
        self.run_ends = _run_ends(analysis, clock)
        self.labels = _root_labels(analysis)
        # An instance whose live phase ended without destroy_rcu (lost: a new view at its
        # address) stops living at that event; with a clock its stamp is read from the trace.
        ended = self.views.filter(
            pl.col("rcu_seq").is_null() & pl.col("live_end_seq").is_not_null()
        )["live_end_seq"]
        if clock.has_clock and analysis.trace is not None:
            self.live_ends = analysis.trace.events.select(
                pl.col("seq").alias("live_end_seq"), pl.col("ts_ns").alias("_live_end")
            ).filter(pl.col("live_end_seq").is_in(ended.implode()))
        else:
            self.live_ends = pl.DataFrame(
                {"live_end_seq": ended, "_live_end": ended},
                schema_overrides={"_live_end": pl.Int64},
            )
            if clock.has_clock:  # no trace to read the stamps from: they end with the instance
                self.live_ends = self.live_ends.clear()

    def batches(self) -> Iterator[pl.DataFrame]:
        for offset in range(0, self.views.height, BATCH_ROWS):
            yield self._batch(self.views.slice(offset, BATCH_ROWS), offset)

    def _batch(self, views: pl.DataFrame, offset: int) -> pl.DataFrame:
        """One row per instance: pid, id, label, the phase bounds (µs), and its arguments.

        The bounds never go backwards (threads' stamps can be a little out of order), so the
        live and pending slices nest inside the instance's slice.
        """
        if self.clock.has_clock:
            start, rcu, life_end = "new_ts_ns", "rcu_ts_ns", "life_end_ts_ns"
        else:
            start, rcu, life_end = "new_seq", "rcu_seq", "life_end_seq"
        run_end = pl.col("run_end")
        t_start = pl.col(start)
        t_live = pl.max_horizontal(
            t_start, pl.coalesce(pl.col(rcu), "_live_end", pl.col(life_end), run_end)
        )
        t_life = pl.max_horizontal(t_live, pl.coalesce(pl.col(life_end), run_end))
        micros = self.clock.micros
        return (
            views.with_row_index("id", offset=offset)
            .join(self.live_ends, on="live_end_seq", how="left", maintain_order="left")
            .join(self.run_ends, on="run", how="left", maintain_order="left")
            .join(self.labels, on=["run", "root"], how="left", maintain_order="left")
            .filter(t_start.is_not_null())
            .select(
                "label",
                pl.col("id").cast(pl.Int64),
                pid=(pl.col("run") + 1).cast(pl.Int64),
                t_start=micros(t_start),
                t_live=micros(t_live),
                t_life=micros(t_life),
                pending=pl.col(rcu).is_not_null(),
                view=_hex("view"),
                generation="generation",
                status="status",
                uncertain="uncertain",
                open_at_end=pl.col(life_end).is_null(),
                source=pl.col("source").cast(pl.String),
                line="line",
            )
            .rechunk()
        )


def _event(ph: str, name: pl.Expr, cat: str, tid: int, ts: str, **extra: pl.Expr) -> pl.Expr:
    """One trace event as a JSON object string (polars escapes every string)."""
    fields = {
        "ph": pl.lit(ph),
        "cat": pl.lit(cat),
        "name": name,
        "pid": pl.col("pid"),
        "tid": pl.lit(tid, pl.Int64),
        "ts": pl.col(ts),
        **extra,
    }
    return pl.struct([expr.alias(key) for key, expr in fields.items()]).struct.json_encode()


def _instance_lines(frame: pl.DataFrame) -> pl.Series:
    """Every instance's four or six events, in nesting order, one string per instance."""
    ident = {"id": pl.col("id")}
    outer, live, pending = pl.col("label"), pl.lit(LIVE), pl.lit(PENDING)
    args = pl.struct(
        "view", "generation", "status", "uncertain", "open_at_end", "source", "line"
    ).alias("args")
    in_pending = pl.col("pending")
    parts = [
        _event("b", outer, INSTANCE_CAT, INSTANCES_TID, "t_start", **ident, args=args),
        _event("b", live, INSTANCE_CAT, INSTANCES_TID, "t_start", **ident),
        _event("e", live, INSTANCE_CAT, INSTANCES_TID, "t_live", **ident),
        pl.when(in_pending).then(
            _event("b", pending, INSTANCE_CAT, INSTANCES_TID, "t_live", **ident)
        ),
        pl.when(in_pending).then(
            _event("e", pending, INSTANCE_CAT, INSTANCES_TID, "t_life", **ident)
        ),
        _event("e", outer, INSTANCE_CAT, INSTANCES_TID, "t_life", **ident),
    ]
    return frame.select(pl.concat_str(parts, separator=SEPARATOR, ignore_nulls=True)).to_series()


def _counter_lines(frame: pl.DataFrame) -> pl.Series:
    args = pl.struct("live", "pending").alias("args")
    line = pl.struct(
        ph=pl.lit("C"), name="label", pid="pid", tid=pl.lit(INSTANCES_TID), ts="ts", args=args
    ).struct.json_encode()
    return frame.select(line).to_series()


def _instant_lines(frame: pl.DataFrame, cat: str, tid: int) -> pl.Series:
    """Thread-scoped instants; ``frame`` has pid, ts, name and an ``args`` struct."""
    line = pl.struct(
        ph=pl.lit("i"),
        s=pl.lit("t"),
        cat=pl.lit(cat),
        name="name",
        pid="pid",
        tid=pl.lit(tid, pl.Int64),
        ts="ts",
        args="args",
    ).struct.json_encode()
    return frame.select(line).to_series()


def _counters(analysis: Analysis, clock: _Clock) -> Iterator[pl.DataFrame]:
    """The per-root levels, a batch at a time (slices of the concurrency table)."""
    labels = _root_labels(analysis)
    stamp = pl.col(clock.column())
    table = analysis.concurrency
    for offset in range(0, table.height, BATCH_ROWS):
        yield (
            table.slice(offset, BATCH_ROWS)
            .join(labels, on=["run", "root"], how="left", maintain_order="left")
            .filter(stamp.is_not_null())
            .select(
                "label",
                pid=(pl.col("run") + 1).cast(pl.Int64),
                ts=clock.micros(stamp),
                live="live",
                pending="pending",
            )
            .rechunk()
        )


def _runs_of(stamped: pl.DataFrame, analysis: Analysis) -> pl.DataFrame:
    """``stamped`` (events with ``seq``, ``pid``) with the document ``pid`` of their run.

    A row belongs to the last run of its own process started before it (processes in one
    journal interleave); a row whose process no run has, to the last run started before it.
    """
    runs = analysis.run_table.select("run", "pid", "first_seq").rename({"first_seq": "seq"})
    ordered = stamped.sort("seq").with_columns(_pid=pl.col("pid").fill_null(-1))
    same_process = ordered.join_asof(
        runs.select("seq", _pid=pl.col("pid").fill_null(-1), _own="run").sort("seq"),
        on="seq",
        by="_pid",
        strategy="backward",
        check_sortedness=False,  # both sides sorted by seq above; polars warns it cannot tell
    )
    located = same_process.join_asof(
        runs.select("seq", _any="run").sort("seq"), on="seq", strategy="backward"
    )
    run = pl.coalesce("_own", "_any", pl.lit(0, pl.Int64))
    return located.with_columns(pid=(run + 1).cast(pl.Int64)).drop("_pid", "_own", "_any")


def _anomalies(analysis: Analysis, clock: _Clock) -> pl.DataFrame:
    found = analysis.anomalies.filter(pl.col(clock.column()).is_not_null()).select(
        pid=(pl.col("run") + 1).cast(pl.Int64),
        ts=clock.micros(pl.col(clock.column())),
        name="kind",
        args=pl.struct(
            view=_hex("view"),
            root=_hex("root"),
            generation="generation",
            uncertain="uncertain",
            detail="detail",
            source=pl.col("source").cast(pl.String),
            line="line",
        ),
    )
    if analysis.trace is None:
        return found
    losses = conform(analysis.trace.events).filter(
        pl.col("event").cast(pl.String).is_in(LOSS_EVENTS) & pl.col(clock.column()).is_not_null()
    )
    lost = _runs_of(losses, analysis).select(
        "pid",
        ts=clock.micros(pl.col(clock.column())),
        name=pl.col("event").cast(pl.String),
        args=pl.struct(
            view=pl.lit(None, pl.String),
            root=pl.lit(None, pl.String),
            generation=pl.lit(None, pl.Int64),
            uncertain=pl.lit(True),
            detail="args",
            source=pl.col("source").cast(pl.String),
            line="line",
        ),
    )
    return pl.concat([found, lost]).sort("pid", "ts", maintain_order=True)


def _markers(markers: pl.DataFrame, analysis: Analysis, clock: _Clock) -> pl.DataFrame:
    stamped = conform(markers).filter(pl.col(clock.column()).is_not_null())
    return _runs_of(stamped, analysis).select(
        "pid",
        ts=clock.micros(pl.col(clock.column())),
        name=pl.col("event").cast(pl.String),
        args=pl.struct(
            args="args",
            tid="tid",
            source=pl.col("source").cast(pl.String),
            line="line",
        ),
    )


def _metadata_events(analysis: Analysis) -> list[dict[str, Any]]:
    """Process and thread names (``M`` events): one process per run, from the run table."""
    events: list[dict[str, Any]] = []
    for row in analysis.run_table.iter_rows(named=True):
        pid = int(row["run"]) + 1
        name = f"run {row['run']}"
        if row["pid"] is not None:
            name += f" (QEMU pid {row['pid']})"
        if row["label"]:
            name += f": {row['label']}"
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}})
        events.append(
            {"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}}
        )
        for tid, thread in THREAD_NAMES.items():
            events.append(
                {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": thread}}
            )
    return events


def _batches(table: pl.DataFrame) -> Iterator[pl.DataFrame]:
    for start in range(0, table.height, BATCH_ROWS):
        # One chunk: polars 2.1 panics in concat_str/format over multi-chunk strings.
        yield table.slice(start, BATCH_ROWS).rechunk()


def _write_lines(out: IO[bytes], lines: pl.Series) -> int:
    """Each string followed by the array's separator; returns how many were written."""
    if lines.len():
        lines.to_frame("line").write_csv(
            out, include_header=False, quote_style="never", line_terminator=SEPARATOR
        )
    return lines.len()


def _document_metadata(analysis: Analysis, clock: _Clock) -> dict[str, Any]:
    from qtrace import __version__

    trace = analysis.trace
    return {
        "schema": SCHEMA,
        "qtrace": __version__,
        "sources": list(trace.paths) if trace is not None else [],
        "clock": trace.clock if trace is not None else ("ns" if clock.has_clock else "none"),
        "time_unit": "microseconds from the trace start"
        if clock.has_clock
        else f"none: {clock.why_none}, so ts is each event's seq (one event = 1 us)",
        "trace_start_ns": clock.start_ns if clock.has_clock else None,
        "root_release": analysis.root_release,
        "runs": analysis.runs,
    }


def _write_document(
    out: IO[bytes], analysis: Analysis, clock: _Clock, markers: pl.DataFrame | None
) -> dict[str, int]:
    written = {"instances": 0, "counters": 0, "anomalies": 0, "markers": 0}
    out.write(b'{"traceEvents":[\n')
    for event in _metadata_events(analysis):
        out.write(json.dumps(event).encode() + SEPARATOR.encode())
    for batch in _Instances(analysis, clock).batches():
        written["instances"] += _write_lines(out, _instance_lines(batch))
    for batch in _counters(analysis, clock):
        written["counters"] += _write_lines(out, _counter_lines(batch))
    for batch in _batches(_anomalies(analysis, clock)):
        written["anomalies"] += _write_lines(out, _instant_lines(batch, "anomaly", ANOMALIES_TID))
    if markers is not None and markers.height:
        for batch in _batches(_markers(markers, analysis, clock)):
            written["markers"] += _write_lines(out, _instant_lines(batch, "marker", MARKERS_TID))
    # The array's last element carries no separator: a closing metadata event.
    closing = {"ph": "M", "name": "qtrace_written", "pid": 0, "args": dict(written)}
    out.write(json.dumps(closing).encode() + b"\n],\n")
    tail = {"displayTimeUnit": "ms", "metadata": _document_metadata(analysis, clock)}
    out.write(json.dumps(tail)[1:].encode() + b"\n")
    return written


def write_perfetto(
    analysis: Analysis, path: str | os.PathLike[str], *, markers: pl.DataFrame | None = None
) -> dict[str, int]:
    """Write ``analysis`` as Chrome trace-event JSON for ui.perfetto.dev or chrome://tracing.

    Parameters
    ----------
    analysis
        What ``qtrace.analyze`` returned (windowed or not).
    path
        The JSON file to write.
    markers
        Other trace events to show as instants on each run's ``markers`` thread (an events
        table, e.g. ``qtrace.dashboards.marker_events(trace.events, "pci_*")``).

    Returns
    -------
    dict
        How many ``instances``, ``counters``, ``anomalies`` and ``markers`` were written.

    Raises
    ------
    InputError
        When ``path`` is a directory or cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> analysis = qtrace.analyze(qtrace.read_trace("samples/pc-hotplug-ts.log"))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     qtrace.write_perfetto(analysis, Path(tmp) / "hotplug.json")["instances"]
    512
    """
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target}: is a directory, not a JSON file to write")
    clock = _Clock(analysis)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed at the end: never half a document there.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as out:
            written = _write_document(out, analysis, clock, markers)
        os.replace(tmp, target)
    except OSError as exc:
        raise InputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return written


__all__ = ["SCHEMA", "write_perfetto"]
