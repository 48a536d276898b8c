"""What the dashboards read from an analysis: the time axis, the root lanes, the markers."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from qtrace.events import DROPPED_EVENT, FLATVIEW_EVENTS, EventSelection
from qtrace.formatting import hex_pointer
from qtrace.model import Analysis
from qtrace.names.render import root_label_expr
from qtrace.runs import every_view_timed

NS_PER_S = 1_000_000_000


def as_int(value: object, default: int = 0) -> int:
    """A polars scalar (``Series.min()`` and friends) as an int, ``default`` when null."""
    return int(value) if isinstance(value, int | float) else default


def as_float(value: object, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) else default


@dataclass(frozen=True)
class TimeAxis:
    """The shared x axis: seconds since the trace start, or the event sequence without a clock.

    Browsers hold numbers as doubles, so epoch nanoseconds become seconds relative to
    ``origin``; exact nanoseconds only ever reach the page as text.
    """

    has_clock: bool
    origin: int  # first timestamp (ns) or first seq
    end: int  # last timestamp (ns) or last seq: where open-ended phases stop
    partial_clock: bool = False  # drawn in event order: some of its views have no time

    @property
    def no_clock(self) -> str:
        """Why the axis is the event sequence, in words."""
        if self.partial_clock:
            return "not every view of the trace has a timestamp"
        return "the trace has no clock"

    @property
    def title(self) -> str:
        if self.has_clock:
            return "time since trace start (s)"
        return f"event sequence number ({self.no_clock})"

    @property
    def per_unit(self) -> int:
        """Raw units (ns or seq) per axis unit."""
        return NS_PER_S if self.has_clock else 1

    def point(self, stem: str) -> pl.Expr:
        """The raw position of ``<stem>_ts_ns`` or ``<stem>_seq`` (Int64)."""
        return pl.col(f"{stem}_ts_ns" if self.has_clock else f"{stem}_seq")

    def to_x(self, raw: pl.Expr) -> pl.Expr:
        """Raw positions (ns or seq) to axis units (float)."""
        return (raw - self.origin).cast(pl.Float64) / self.per_unit

    def span_to_x(self, raw_span: pl.Expr) -> pl.Expr:
        return raw_span.cast(pl.Float64) / self.per_unit


def time_axis(analysis: Analysis) -> TimeAxis:
    """The axis of ``analysis``: its clock when it has one, bounded by its first and last event.

    A trace whose clock is partial (a bare run and a stamped one in one log, as a QEMU
    restarted with ``-msg timestamp=on`` leaves) has views with no time: it is drawn in event
    order, as a trace with no clock.
    """
    partial = bool(analysis.has_clock) and not every_view_timed(analysis.views)
    has_clock = bool(analysis.has_clock) and not partial
    col = "ts_ns" if has_clock else "seq"
    candidates: list[pl.Series] = []
    if analysis.trace is not None and analysis.trace.events.height:
        candidates.append(analysis.trace.events.get_column(col))
    views = analysis.views
    for stem in ("new", "rcu", "destroy", "end"):
        name = f"{stem}_{col}" if has_clock else f"{stem}_seq"
        if name in views.columns:
            candidates.append(views.get_column(name))
    values = pl.concat([c.cast(pl.Int64) for c in candidates]) if candidates else pl.Series([0])
    origin = as_int(values.min())
    end = as_int(values.max(), origin)
    return TimeAxis(has_clock, origin, max(end, origin + 1), partial_clock=partial)


NIL_LANE_LABEL = "(nil) empty view"
MAX_LABEL_NAME = 22  # characters of a root's name in its lane label


def lanes(analysis: Analysis) -> pl.DataFrame:
    """One lane per (run, root), in order of first appearance; the nil root first in its run.

    Columns: run, root, lane (0-based), label, first_seq, root_label (the root's name,
    ``pci_bridge_io [alias of pci_bridge_io]``; null when unnamed).
    """
    views = analysis.views
    multi_run = analysis.runs > 1
    table = (
        views.group_by("run", "root")
        .agg(pl.col("new_seq").min().alias("first_seq"))
        .with_columns(hex_pointer("root").alias("root_hex"))
        .sort("run", pl.col("root") != 0, "first_seq", "root")
        .with_row_index("lane")
        .with_columns(pl.col("lane").cast(pl.Int64))
        .join(
            analysis.roots.select("run", "root", "name", "alias_of"),
            on=["run", "root"],
            how="left",
            maintain_order="left",
        )
    )
    # A named root's lane: "pci_bridge_io (alias) 0x563e2d2198b0"; a long name is cut so the
    # label fits the figures' left margin; hovers give the full name.
    name = pl.col("name")
    short = pl.when(name.str.len_chars() > MAX_LABEL_NAME).then(
        name.str.slice(0, MAX_LABEL_NAME - 1) + "…"
    )
    named = pl.format(
        "{}{} {}",
        pl.coalesce(short, name),
        pl.when(pl.col("alias_of").is_not_null()).then(pl.lit(" (alias)")).otherwise(pl.lit("")),
        pl.col("root_hex"),
    )
    label = (
        pl.when(pl.col("root") == 0)
        .then(pl.lit(NIL_LANE_LABEL))
        .when(pl.col("name").is_not_null())
        .then(named)
        .otherwise(pl.col("root_hex"))
    )
    if multi_run:
        label = pl.format("run {} · {}", pl.col("run"), label)
    return table.select(
        "run", "root", "lane", label.alias("label"), "first_seq", root_label=root_label_expr()
    )


def marker_events(events: pl.DataFrame, pattern: str) -> pl.DataFrame:
    """The events of ``events`` whose name matches ``pattern`` (QEMU ``-trace`` globs,
    comma-separated, e.g. ``"pci_update_mappings_*,memory_region_finalize"``), except the
    FlatView events themselves: what ``--markers PATTERN`` draws on the timeline.

    Examples
    --------
    >>> trace = qtrace.read_trace("samples/pc-hotplug-ts.log", events="*")
    >>> marker_events(trace.events, "pci_update_mappings_*").height
    42
    """
    selection = EventSelection.parse(pattern, default=None)
    # The globs are matched against the few distinct names, not every row.
    names = [
        name
        for name in events.get_column("event").unique().to_list()
        if name not in FLATVIEW_EVENTS and name != DROPPED_EVENT and selection.matches(name)
    ]
    wanted = pl.col("event").is_in(names)
    # One chunk: polars 2.1 panics in pl.format/concat_str over multi-chunk string columns
    # (the log parser's tables come in many chunks), and the hover text uses pl.format.
    return events.filter(wanted).sort("seq").rechunk()
