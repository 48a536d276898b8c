"""The canonical events table: the one contract between the parsers and everything after them.

Every parser returns rows in this schema; the lifetime model, the reports, the dashboards
and the batch outputs read nothing else.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass, field

import polars as pl

FLATVIEW_NEW = "flatview_new"
FLATVIEW_DESTROY_RCU = "flatview_destroy_rcu"
FLATVIEW_DESTROY = "flatview_destroy"
FLATVIEW_EVENTS = (FLATVIEW_NEW, FLATVIEW_DESTROY_RCU, FLATVIEW_DESTROY)
# Name QEMU's own simpletrace.py gives the simple backend's dropped-events records. They are
# kept as rows (args "num_events_dropped=0x..") so the model knows *where* events were lost.
DROPPED_EVENT = "Dropped_Event"
# A row qtrace itself adds where a reader could not read the input: a garbled or cut FlatView
# line, bytes skipped over damage, records of an event id no mapping names, the end of a
# truncated compressed stream. Like a dropped-events record it marks *where* events may have
# been lost (``args`` says what, in words; ``line``/``offset`` where); it is never a FlatView
# event. The name is no QEMU event name (those are lower-case C identifiers with a
# subsystem prefix), so it cannot collide with a real event.
UNREADABLE = "qtrace_unreadable"
# Rows that mark lost events. Every selection keeps them: the model needs to know where the
# trace has holes, whatever events a user asked for.
LOSS_EVENTS = (DROPPED_EVENT, UNREADABLE)
MR_FINALIZE = "memory_region_finalize"
# The events the lifetime model reads: the one place that says so. Every door (analyze,
# dashboard, batch, diff, ``qtrace.read_trace``) reads at least these, so that a verdict never
# depends on which door a trace went through. (The loss markers come with every selection.)
MODEL_EVENTS: tuple[str, ...] = (*FLATVIEW_EVENTS, MR_FINALIZE)

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),  # 0-based position among the events read, in trace order
    "ts_ns": pl.Int64(),  # null when the dialect has no clock
    # Linux pid_t values (32-bit): a log's number before '@' is a thread id, not a process id
    "tid": pl.Int32(),
    "pid": pl.Int32(),
    # The thread's name when the dialect prints it (``main``, ``CPU 0/TCG``, ``call_rcu``)
    "thread": pl.Categorical(),
    # A handful of distinct names and files per table: categorical codes (4 bytes a row)
    # instead of a string per row, which was a sixth of a large log's table.
    "event": pl.Categorical(),
    "view": pl.UInt64(),  # FlatView pointer; 0 for (nil); null for other events
    "root": pl.UInt64(),  # root MemoryRegion pointer; 0 for (nil); null for other events
    # Other events' raw argument text (log) or decoded "name=value" pairs (simple); null for
    # a FlatView event, whose arguments are its view and root (text kept only if odd).
    "args": pl.String(),
    "source": pl.Categorical(),  # the file the event came from
    "line": pl.Int64(),  # 1-based line number in a text source
    "offset": pl.Int64(),  # byte offset of the record in a binary source
}
COLUMNS = tuple(EVENTS_SCHEMA)


def empty_events() -> pl.DataFrame:
    """An events table with no rows."""
    return pl.DataFrame(schema=EVENTS_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give ``frame`` exactly the events schema: missing columns become nulls, order fixed."""
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in EVENTS_SCHEMA.items()
        ]
    )


@dataclass(frozen=True)
class EventSelection:
    """Which trace events to keep, as QEMU's ``-trace`` globs (``flatview_*,pci_*``).

    ``None`` patterns keep every event. Loss markers (dropped-events records and qtrace's
    own ``qtrace_unreadable`` rows) are always kept.
    """

    patterns: tuple[str, ...] | None = (FLATVIEW_NEW, FLATVIEW_DESTROY_RCU, FLATVIEW_DESTROY)

    @classmethod
    def parse(
        cls, text: str | None, *, default: tuple[str, ...] | None = FLATVIEW_EVENTS
    ) -> EventSelection:
        if text is None:
            return cls(default)
        parts = tuple(p.strip() for p in text.split(",") if p.strip())
        return cls(parts or None)

    @property
    def keeps_all(self) -> bool:
        return self.patterns is None or "*" in self.patterns

    def _body(self) -> str | None:
        """The alternatives of the name regex, loss markers included; None for every event."""
        if self.keeps_all or self.patterns is None:
            return None
        alternatives = [
            fnmatch.translate(p).removeprefix("(?s:").removesuffix(")\\Z") for p in self.patterns
        ]
        return "|".join([*alternatives, *(re.escape(name) for name in LOSS_EVENTS)])

    def regex(self) -> str | None:
        """An anchored regex over event names for polars (Rust's ``$`` is the end of the text),
        or None for every event."""
        body = self._body()
        return None if body is None else "^(?:" + body + ")$"

    def literal_hints(self) -> tuple[str, ...] | None:
        """Substrings every wanted line must contain (for cheap pre-filtering), or None."""
        if self.keeps_all or self.patterns is None:
            return None
        hints = []
        for pattern in self.patterns:
            head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            if not head:
                return None
            hints.append(head)
        return tuple(sorted(set(hints)))

    def matches(self, name: str) -> bool:
        return self._compiled is None or self._compiled.match(name) is not None

    @functools.cached_property
    def _compiled(self) -> re.Pattern[str] | None:
        # Built once: a simple trace maps every QEMU event (thousands of names to test).
        # \Z, not $: Python's '$' also matches before a trailing newline ("flatview_new\n").
        body = self._body()
        return None if body is None else re.compile("^(?:" + body + ")\\Z")


ALL_EVENTS = EventSelection(None)


NO_CLOCK = "none"  # the clock of a dialect or file with no timestamps


def mixed_parts(value: str) -> list[str]:
    """The names a dialect or clock summary holds: ``mixed(a,b)`` gives ``a`` and ``b``.

    Examples
    --------
    >>> mixed_parts("mixed(none,wall-us)"), mixed_parts("wall-us")
    (['none', 'wall-us'], ['wall-us'])
    """
    if value.startswith("mixed(") and value.endswith(")"):
        return value[len("mixed(") : -1].split(",")
    return [value]


def summarise(values: list[str]) -> str:
    """One name, or ``mixed(a,b)`` for several, sorted and flat: the dialect or clock of a
    file whose lines differ, or of files read together (themselves perhaps mixed).

    Examples
    --------
    >>> summarise(["mixed(bare,tid-timestamp)", "bare", "iso8601"])
    'mixed(bare,iso8601,tid-timestamp)'
    >>> summarise(["wall-us", "wall-us"]), summarise([])
    ('wall-us', 'none')
    """
    unique = sorted({part for value in values for part in mixed_parts(value)})
    if not unique:
        return NO_CLOCK
    return unique[0] if len(unique) == 1 else "mixed(" + ",".join(unique) + ")"


@dataclass
class ParsedInput:
    """What one parser returns for one input file."""

    events: pl.DataFrame  # events schema; seq numbers this file's events (ingest renumbers merges)
    format: str  # "log" or "simple"
    dialect: str  # e.g. "tid-timestamp", "iso8601", "bare", "simple-v4-le"
    clock: str  # "none", "wall-us" (microsecond wall clock), "wall-ns", "monotonic-ns"
    lines_skipped: int = 0  # text lines that were not trace lines
    bytes_skipped: int = 0  # bytes that could not be decoded (binary) or were cut
    dropped_events: int = 0  # events QEMU itself says it lost (simple backend)
    warnings: list[str] = field(default_factory=list)  # one line per kind of damage, with where
    input_bytes: int = 0  # bytes of the (decompressed) input


@dataclass
class Trace:
    """One run's events, read from one or more files, with what was learned while reading."""

    events: pl.DataFrame
    paths: list[str]
    format: str
    dialect: str
    clock: str
    lines_skipped: int = 0
    bytes_skipped: int = 0
    dropped_events: int = 0
    warnings: list[str] = field(default_factory=list)
    input_bytes: int = 0  # bytes of the (decompressed) inputs

    @property
    def has_clock(self) -> bool:
        """Whether any of its events has a timestamp (``mixed(none,wall-us)`` has)."""
        return self.clock != NO_CLOCK
