"""Which lines are trace lines, of which dialect, and which lines are read at all.

A line with a prefix of any dialect is a trace line wherever it stands. A ``bare`` line
(``name args``, nothing before the name) has only its name to vouch for it, and ``-d``
output such as ``check_exception old: 0xffffffff new 0xd`` looks the same. The rule, per
QEMU run (a run starts at a nil-root ``flatview_new``, QEMU's first view; lines before the
first start belong to the first run):

- a bare line naming an event the model reads (a FlatView event, and
  ``memory_region_finalize`` when it is selected) is a trace line anywhere: no ``-d`` output
  or prose prints those names;
- any other bare line is a trace line only in a run where no prefixed trace line appears.
  In a run whose lines carry a prefix it is other ``-d`` output, skipped and counted.

So a bare run followed by a timestamped one (a libvirt log across a restart, a QEMU 10.0 to
10.1 upgrade) is read whole, and a bare log with one stray timestamped line loses nothing.
Bare names need an underscore, as QEMU's event names have, so prose is never an event.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import polars as pl
from qtrace.parsers.log.dialects import BY_NAME, DIALECTS, FTRACE_MARK, Dialect
from qtrace.parsers.log.fields import LINE, TEXT

from qtrace.events import FLATVIEW_EVENTS, MR_FINALIZE, EventSelection

SAMPLE_TRACE_LINES = 64  # trace lines read at the head to choose the dialects cut first
FLATVIEW_HINT = "flatview_"
# A line that ends like QEMU's first view of a process and names its event: a run starts.
RUN_START_END = " (root (nil))"
RUN_START_NAME = "flatview_new "
PREFIXED = [d for d in DIALECTS if d.prefixed]


def keeps_flatview(selection: EventSelection) -> bool:
    """Whether ``selection`` keeps a FlatView event: then FlatView damage is marked."""
    return any(selection.matches(name) for name in FLATVIEW_EVENTS)


def strong_names(selection: EventSelection) -> tuple[str, ...]:
    """Event names a bare line is read by wherever it stands (see the module's rule)."""
    finalize = (MR_FINALIZE,) if not selection.keeps_all and selection.matches(MR_FINALIZE) else ()
    return (*FLATVIEW_EVENTS, *finalize)


def hints(selection: EventSelection) -> tuple[str, ...] | None:
    """Literal substrings, one of which every line worth parsing holds; as few as possible.

    Every line holding ``flatview_`` is parsed when a FlatView event is selected, so that
    garbled and cut FlatView lines are seen. One ``contains`` of a common prefix is cheaper
    than one per pattern and lets through the same lines or a few more.
    """
    literal = selection.literal_hints()
    if not literal:
        return None
    if keeps_flatview(selection):
        literal = (FLATVIEW_HINT, *(h for h in literal if not h.startswith(FLATVIEW_HINT)))
    common = literal[0]
    for hint in literal[1:]:
        while not hint.startswith(common):
            common = common[:-1]
    if len(common) >= 4:
        return (common,)
    return tuple(sorted(h for h in set(literal) if not any(o != h and o in h for o in literal)))


def any_of(literals: tuple[str, ...]) -> pl.Expr:
    """True for lines holding one of ``literals``."""
    text = pl.col(TEXT)
    expr = text.str.contains(literals[0], literal=True)
    for literal in literals[1:]:
        expr = expr | text.str.contains(literal, literal=True)
    return expr


def accepts(dialects: list[Dialect], text: pl.Expr | None = None) -> pl.Expr:
    """True for lines that are lines of any of ``dialects`` (counting, not parsing).

    The anchored prefixes share one regex that rejects most noise within a few bytes. The
    ftrace form, whose prefix has no fixed shape, is searched unanchored from its marker
    instead, which the regex engine finds with a fast literal search.
    """
    text = pl.col(TEXT) if text is None else text
    anchored = [d.match.removeprefix("^") for d in dialects if d.name != "ftrace"]
    expr = text.str.contains("^(?:" + "|".join(f"(?:{p})" for p in anchored) + ")")
    if any(d.name == "ftrace" for d in dialects):
        ftrace = BY_NAME["ftrace"].match.split(FTRACE_MARK, 1)[1]
        expr = expr | text.str.contains(FTRACE_MARK + ftrace)
    return expr


def is_prefixed(text: pl.Expr | None = None) -> pl.Expr:
    return accepts(PREFIXED, text)


def is_bare(text: pl.Expr | None = None) -> pl.Expr:
    return accepts([BY_NAME["bare"]], text)


def names_one_of(names: tuple[str, ...], text: pl.Expr | None = None) -> pl.Expr:
    """True for bare lines whose name is one of ``names`` (prefix tests, no regex)."""
    text = pl.col(TEXT) if text is None else text
    expr = pl.lit(False)
    for name in names:
        expr = expr | text.str.starts_with(name + " ") | (text == name)
    return expr


def unparsed_strong(selection: EventSelection, literals: tuple[str, ...] | None) -> tuple[str, ...]:
    """The strong names whose bare lines may be among the lines not parsed (no hint)."""
    strong = strong_names(selection)
    if literals is None:
        return strong
    return tuple(s for s in strong if not any(h in s for h in literals))


def counts(text: pl.Expr, strong: tuple[str, ...]) -> dict[str, pl.Expr]:
    """Sums of the prefixed, bare and strong bare trace lines among ``text``."""
    bare = is_bare(text)
    return {
        "prefixed": is_prefixed(text).sum(),
        "bare": bare.sum(),
        "strong": (bare & names_one_of(strong, text)).sum() if strong else pl.lit(0, pl.UInt32),
    }


def run_expr(starts: pl.Series) -> pl.Expr:
    """The run of each line, from the sorted line numbers of the run starts (streams)."""
    after = pl.lit(starts).search_sorted(pl.col(LINE), side="right").cast(pl.Int64)
    return (after - 1).clip(lower_bound=0)


def run_start() -> pl.Expr:
    """True for the lines that start a QEMU run (a nil-root ``flatview_new``)."""
    text = pl.col(TEXT)
    return text.str.ends_with(RUN_START_END) & text.str.contains(RUN_START_NAME, literal=True)


def run_of(lines: pl.Series, starts: pl.Series) -> pl.Series:
    """The run of each line number (0-based; lines before the first start are in run 0)."""
    after = starts.search_sorted(lines, side="right").cast(pl.Int64)
    return (after - 1).clip(lower_bound=0).alias("run")


def runs_holding(lines: pl.Series, starts: pl.Series) -> pl.Series:
    """The runs (as ``run_of`` numbers them) that hold at least one of the sorted ``lines``.

    One binary search per run, not per line: the lines may be millions.
    """
    edges = starts.slice(1)  # run r + 1 starts at starts[r + 1]; run 0 ends at starts[1]
    before = lines.search_sorted(edges, side="left").cast(pl.Int64)
    ends = pl.concat([before, pl.Series([lines.len()], dtype=pl.Int64)])
    begins = pl.concat([pl.Series([0], dtype=pl.Int64), before])
    held = (ends - begins) > 0
    return pl.int_range(0, held.len(), dtype=pl.Int64, eager=True).filter(held).alias("run")


# ------------------------------------------------------------------- the dialects to cut

SPREAD_WINDOWS = 16  # places across the file whose lines are sampled
WINDOW_BYTES = 1 << 16
CHAIN_SHARE = 0.02  # a dialect this common among the sampled lines is cut in the stream
CHAIN_LENGTH = 3


def classify(text: str) -> Dialect | None:
    """The dialect of one line, in the table's order (Python's regexes; for samples)."""
    for dialect, rx in _COMPILED:
        if rx.match(text):
            return dialect
    return None


_COMPILED = [(d, re.compile(d.match)) for d in DIALECTS]


def _spread_sample(path: Path, literals: tuple[str, ...] | None) -> Counter[str]:
    """The dialects of lines worth parsing, sampled at places across the whole file.

    A file's head says nothing of a run printed in another dialect later on (a libvirt log
    after a restart); a few windows read with seek cost next to nothing.
    """
    seen: Counter[str] = Counter()
    if not path.is_file():  # nothing to seek in (the reader's other passes need a file too)
        return seen
    size = path.stat().st_size
    with path.open("rb") as fh:
        for k in range(SPREAD_WINDOWS):
            fh.seek(size * k // SPREAD_WINDOWS)
            lines = fh.read(WINDOW_BYTES).split(b"\n")
            for raw in lines[1 if k else 0 : -1]:  # whole lines only
                text = raw.rstrip(b"\r").decode("utf-8", errors="replace").lstrip("\ufeff")
                if literals is not None and not any(h in text for h in literals):
                    continue
                dialect = classify(text)
                if dialect is not None:
                    seen[dialect.name] += 1
    return seen


def dialects_to_cut(
    lines: pl.LazyFrame, path: Path, literals: tuple[str, ...] | None
) -> list[Dialect]:
    """The dialects the one pass cuts in the stream, most common first; [] for no trace line.

    The lines worth parsing are sampled at the file's head and across it. The most common
    dialect is cut first; another as common as ``CHAIN_SHARE`` is cut in the stream too
    (on the lines the first did not read), so that a file of several large runs in several
    dialects never has the text of millions of lines gathered for a second look. Rarer
    lines are read afterwards. The head query stops early; a file without any trace line is
    read to its end here.
    """
    trace = accepts(list(DIALECTS))
    hint = None if literals is None else any_of(literals)
    seen: Counter[str] = Counter()
    for where in ([hint & trace] if hint is not None else []) + [trace]:
        sample = lines.filter(where).head(SAMPLE_TRACE_LINES).collect(engine="streaming")
        seen = Counter(d.name for d in map(classify, sample[TEXT]) if d is not None)
        if seen:
            break
    if not seen:
        return []
    seen += _spread_sample(path, literals)
    total = sum(seen.values())
    # The most frequent first; of equals, the one met first (a Counter keeps that order).
    order = {name: i for i, name in enumerate(seen)}
    ranked = sorted(seen, key=lambda name: (-seen[name], order[name]))
    chain = [name for name in ranked if seen[name] >= CHAIN_SHARE * total][:CHAIN_LENGTH]
    return [BY_NAME[name] for name in chain]


__all__ = [
    "LINE",
    "accepts",
    "any_of",
    "classify",
    "counts",
    "hints",
    "is_bare",
    "is_prefixed",
    "keeps_flatview",
    "names_one_of",
    "run_expr",
    "run_of",
    "run_start",
    "runs_holding",
    "strong_names",
    "unparsed_strong",
]
