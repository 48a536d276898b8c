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

import polars as pl
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


def cut_at_end(frame: pl.DataFrame, last_line: int | None) -> pl.Series:
    """True for the row of the file's last line when that line has no newline (else False)."""
    if last_line is None:
        return pl.Series([False] * frame.height, dtype=pl.Boolean)
    return frame[LINE] == last_line


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
    "cut_at_end",
    "garbled",
    "names_flatview",
    "quote",
    "warnings",
]
