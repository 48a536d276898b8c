"""What a log reader could not read: ``qtrace_unreadable`` rows and one warning per kind.

A FlatView line that does not read is never a FlatView event: it would create, end or pair
views that never were (garbled lines once invented 88 leaked views in a real log). It becomes
a ``qtrace_unreadable`` row at its line, which the model reads as a hole in the trace:

- a FlatView trace line whose arguments are not ``%p (root %p)`` (``0xZZZ``, 17 hex digits, a
  ``+`` in a pointer, words) or whose view is NULL (QEMU never prints one), kept with the
  thread and time its prefix gave;
- a line that is no trace line of any dialect but names a FlatView event (two writers
  interleaved, a writer killed mid-line);
- the last line of a file that does not end in a newline (QEMU killed mid-write), when it
  holds ``flatview_`` and is no whole FlatView event.

``args`` says what, then the line's text cut to ``QUOTE_CHARS`` characters. Other lines that
are no trace line are skipped and only counted.
"""

from __future__ import annotations

import re

import polars as pl
from qtrace.parsers.log.dialects import DIALECTS
from qtrace.parsers.log.fields import LINE

from qtrace.events import FLATVIEW_EVENTS, UNREADABLE

QUOTE_CHARS = 200
FLATVIEW_NAME = r"flatview_(?:new|destroy_rcu|destroy)"
FLATVIEW_MENTION = "flatview_"


def garbled(frame: pl.DataFrame) -> pl.Series:
    """True for the FlatView events of ``frame`` whose pointers did not read (or view NULL)."""
    return frame.select(
        (
            pl.col("event").is_in(FLATVIEW_EVENTS)
            & (pl.col("view").is_null() | pl.col("root").is_null() | (pl.col("view") == 0))
        ).fill_null(False)
    ).to_series()


def quote(text: pl.Expr) -> pl.Expr:
    """A line's text for an ``args``, cut to ``QUOTE_CHARS`` characters."""
    return (
        pl.when(text.str.len_chars() > QUOTE_CHARS)
        .then(text.str.slice(0, QUOTE_CHARS) + "...")
        .otherwise(text)
    )


def as_unreadable(frame: pl.DataFrame, what: pl.Expr) -> pl.DataFrame:
    """``frame``'s rows as ``qtrace_unreadable`` rows: ``args`` is ``what: text``.

    ``args`` must hold the line's whole text; time, thread and process ids are kept.
    """
    return frame.with_columns(
        args=pl.concat_str([what, pl.lit(": "), quote(pl.col("args"))]),
        event=pl.lit(UNREADABLE).cast(pl.Categorical),
        view=pl.lit(None, pl.UInt64),
        root=pl.lit(None, pl.UInt64),
    )


def names_flatview(text: pl.Expr) -> pl.Expr:
    """The first FlatView event name a line's text holds (null when none)."""
    return text.str.extract(f"({FLATVIEW_NAME})", 1)


def _blank(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``frame`` (``line``, ``args`` and perhaps ``name``) with nothing else read."""
    return frame.select(
        dialect=pl.lit(None, pl.Int8),
        ts_ns=pl.lit(None, pl.Int64),
        tid=pl.lit(None, pl.Int32),
        pid=pl.lit(None, pl.Int32),
        thread=pl.lit(None, pl.Categorical),
        event=pl.lit(None, pl.Categorical),
        view=pl.lit(None, pl.UInt64),
        root=pl.lit(None, pl.UInt64),
        args=pl.col("args"),
        line=pl.col(LINE),
        _keep=pl.lit(True),
        name=pl.col("name") if "name" in frame.columns else pl.lit(None, pl.String),
    )


def _is_trace_line(text: str) -> bool:
    return any(re.match(d.match, text) for d in DIALECTS)


def unmarked(trace: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The kept events of ``trace`` (OUTPUT and ``_keep``), no marker made: see ``mark``."""
    kept = trace if trace["_keep"].all() else trace.filter("_keep")
    return kept.drop("_keep"), kept.clear().drop("_keep"), 0


def mark(
    trace: pl.DataFrame, other: pl.DataFrame, cut: tuple[int, str] | None
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The events kept, with the FlatView damage turned into ``qtrace_unreadable`` rows.

    ``trace``: the trace lines read (OUTPUT and ``_keep``, in line order); ``other``: the
    lines no dialect reads (``line`` and their text as ``args``); ``cut``: the number and
    text of the file's last line when no newline ends it. Returns the events (in line
    order), the marker rows among them, and how many of those are lines no dialect reads
    (markers, not skipped lines).
    """
    bad = garbled(trace)
    other = other.with_columns(name=names_flatview(pl.col("args"))).filter(
        pl.col("name").is_not_null()
    )
    markers: list[pl.DataFrame] = []
    cut_other = 0
    if cut is not None:
        line, text = cut
        at_cut = trace[LINE] == line
        row = trace.filter(at_cut)
        whole = row.height > 0 and not bad.filter(at_cut).any()
        if FLATVIEW_MENTION in text and not (whole and row["event"].is_in(FLATVIEW_EVENTS).all()):
            # The cut line's row, if it is a trace line, gives its time and thread.
            if row.height:
                marker = row.with_columns(name=pl.lit(None, pl.String))
            else:
                marker = _blank(pl.DataFrame({LINE: [line], "args": [text]}))
                cut_other = int(not _is_trace_line(text))
            marker = marker.with_columns(args=pl.lit(text), name=names_flatview(pl.lit(text)))
            what = pl.col("name").fill_null("flatview_") + " line cut at the end of the file"
            markers.append(as_unreadable(marker, what))
            trace, bad = trace.filter(~at_cut), bad.filter(~at_cut)
            cut_other += other.filter(pl.col(LINE) == line).height
            other = other.filter(pl.col(LINE) != line)
    if bad.any():
        rows = trace.filter(bad).with_columns(name=pl.col("event").cast(pl.String))
        markers.append(as_unreadable(rows, "garbled " + pl.col("name") + " line"))
        trace = trace.filter(~bad)
    if other.height:
        markers.append(as_unreadable(_blank(other), "garbled " + pl.col("name") + " line"))
    kept, _, _ = unmarked(trace)
    if not markers:
        return kept, kept.clear(), 0
    marked = pl.concat([m.select(kept.columns).cast({LINE: kept.schema[LINE]}) for m in markers])
    marked = marked.sort(LINE)
    return pl.concat([kept, marked]).sort(LINE), marked, other.height + cut_other


def warnings(name: str, markers: pl.DataFrame) -> list[str]:
    """One warning for the ``qtrace_unreadable`` rows of a log, with the first line."""
    if markers.height == 0:
        return []
    return [
        f"{name}: {markers.height} FlatView lines are garbled or cut; each is a "
        f"{UNREADABLE} row, never a view (first at line {markers[LINE][0]})"
    ]


__all__ = [
    "FLATVIEW_MENTION",
    "QUOTE_CHARS",
    "as_unreadable",
    "garbled",
    "mark",
    "names_flatview",
    "quote",
    "unmarked",
    "warnings",
]
