"""Read one text trace file into the events table: one streaming pass, then the few odd rows.

The file is scanned once with polars' streaming engine. Lines holding a literal part of the
wanted event names (``flatview_`` for the FlatView events) are parsed, each by the fastest
cut of the dialects common in the file (``classify.dialects_to_cut``); the few lines these
do not read leave the stream with their text and are tried against every other dialect
afterwards. The other lines are only classified, for the counts and for the bare-line rule
(``classify``). Memory stays near the size of the selected events however large the log is.

Before all this, ``log_fast`` (a C scanner, when it was built) tries the common case: a plain
``tid-timestamp``, ``iso8601`` or ``bare`` file read for the FlatView events. It answers only
when its result is exactly what this module would give; ``QTRACE_NO_FASTLOG=1`` switches it
off.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from qtrace.parsers import log_fast
from qtrace.parsers.log import classify, damage, fields
from qtrace.parsers.log.dialects import BARE, BY_NAME, CODE, DIALECTS, Dialect
from qtrace.parsers.log.fields import LINE, OUTPUT, TEXT
from qtrace.parsers.log.lines import (
    LONG_LINE_BYTES,
    TextFile,
    ends_with_newline,
    is_utf8_error,
    last_line,
    scan,
    utf8_text,
)
from qtrace.parsers.source import OpenedInput

from qtrace.errors import InputError
from qtrace.events import FLATVIEW_EVENTS, EventSelection, ParsedInput, conform, summarise

NAMES = [d.name for d in DIALECTS]
CLOCKED = [CODE[d.name] for d in DIALECTS if d.clock != "none"]


def selected(selection: EventSelection) -> pl.Expr:
    """True for rows whose ``event`` (a String) the selection keeps."""
    rx = selection.regex()
    if rx is None:
        return pl.lit(True)
    patterns = selection.patterns or ()
    if all(not re.search(r"[*?\[]", p) for p in patterns):
        return pl.col("event").is_in(list(patterns))  # a hash lookup beats a regex per row
    return pl.col("event").str.contains(rx)


@dataclass
class _Pass:
    """What the one streaming pass over the file found."""

    rows: pl.DataFrame  # lines worth parsing, parsed in the stream; OUTPUT and _keep
    counts: dict[str, int]  # over the other lines: prefixed, bare and strong trace lines
    # The lines that start a QEMU run (line, prefixed); None: they are among the rows.
    starts: pl.DataFrame | None
    lines_total: int
    replaced: int | None  # the first line holding U+FFFD (lossy decoding only)


def _one_pass(
    lines: pl.LazyFrame, chain: list[Dialect], selection: EventSelection, lossy: bool
) -> _Pass:
    """One pass: parse the lines worth it, only classify the others.

    Every parsed line leaves the stream as one row of a single query: selected events, other
    events (``_keep`` false; counted, then dropped) and lines no dialect of ``chain`` read
    (``event`` null, the whole line in ``args``). A second query filtering the same parse
    made polars cache and re-read it, which cost a fifth of the time. The counts over the
    other lines share the scan; counting them per run there (a cumulative sum over every
    line) held the whole file in memory, so that is done only when a file needs it
    (``_apply_bare_rule``).
    """
    text = pl.col(TEXT)
    literals = classify.hints(selection)
    hint = None if literals is None else classify.any_of(literals)
    parsed = fields.parse_chain(lines if hint is None else lines.filter(hint), chain)
    ok = pl.col("event").is_not_null()
    keep = ok & selected(selection)
    if hint is None:
        # Every line is parsed: drop the noise and unselected events in the stream, keeping
        # what may be another dialect's line or FlatView damage.
        wanted = keep | (~ok & (classify.accepts(list(DIALECTS)) | text.str.contains("flatview_")))
        if classify.keeps_flatview(selection):
            wanted = wanted | (ok & pl.col("event").is_in(FLATVIEW_EVENTS))
        parsed = parsed.filter(wanted)
    output = [
        c
        for c in OUTPUT
        if (c != "dialect" or len(chain) > 1) and (c != "thread" or any(map(_threads, chain)))
    ]
    codes = {CODE[d.name] for d in chain}
    rows = parsed.with_columns(_keep=keep).pipe(fields.with_pointers, codes)
    unparsed = text if hint is None else text.filter(~hint)
    queries = [
        # A handful of thread names: categorical codes in the stream, as for event names.
        rows.select(*output, "_keep").with_columns(
            pl.col("thread").cast(pl.Categorical) if "thread" in output else []
        ),
        lines.select(
            n=pl.len(),
            **classify.counts(unparsed, classify.unparsed_strong(selection, literals)),
        ),
    ]
    starts_in_rows = classify.keeps_flatview(selection)  # else they are looked for here
    if not starts_in_rows:
        # Only the cheap suffix test runs on every line; the rest on the few it lets pass.
        queries.append(lines.filter(text.str.ends_with(classify.RUN_START_END)).select(LINE, TEXT))
    if lossy:
        queries.append(lines.filter(text.str.contains("\ufffd", literal=True)).select(LINE).head(1))
    found = pl.collect_all(queries, engine="streaming")
    totals = found[1].row(0, named=True)
    starts = None
    if not starts_in_rows:
        starts = found[2].filter(classify.run_start()).select(LINE, prefixed=classify.is_prefixed())
    replaced = found[-1] if lossy else None
    return _Pass(
        rows=found[0],
        counts={k: int(totals[k] or 0) for k in ("prefixed", "bare", "strong")},
        starts=starts,
        lines_total=int(totals["n"]),
        replaced=replaced[LINE][0] if replaced is not None and replaced.height else None,
    )


def _threads(dialect: Dialect) -> bool:
    """Whether ``dialect`` prints thread names (else the column stays null)."""
    return dialect.name.endswith("message-context") or dialect.name.startswith("babeltrace2")


def _read_others(
    unread: pl.DataFrame, chain: list[Dialect], selection: EventSelection
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Lines the stream's dialects did not read: other dialects' trace lines, and the rest.

    Returns the trace lines parsed (OUTPUT and ``_keep``) and the lines no dialect reads
    (``line``, ``args`` holding the text). Few lines get here in most files; each dialect
    is tried only on the lines its match test accepts.
    """
    found: list[pl.DataFrame] = []
    rest = unread.select(LINE, pl.col("args").alias(TEXT))
    for dialect in DIALECTS:
        if rest.height == 0:
            break
        hit = rest[TEXT].str.contains(dialect.match)
        if not hit.any():
            continue
        # A fast cut that reads only the common shape (the stream's cut has left the others
        # here) gives way to the regex, which reads every shape.
        exact = dialect not in chain and dialect.name not in fields.COMMON_SHAPE_ONLY
        parse = fields.parse if exact else fields.parse_regex
        parsed = (
            parse(rest.filter(hit).lazy(), dialect)
            .with_columns(_keep=selected(selection))
            .pipe(fields.with_pointers, {CODE[dialect.name]})
            .collect()
        )
        read = parsed["dialect"].is_not_null()  # a parse may be stricter than the match
        found.append(
            parsed.filter(read)
            .select(*OUTPUT, "_keep")
            .with_columns(pl.col("thread").cast(pl.Categorical))
        )
        rest = pl.concat([rest.filter(~hit), parsed.filter(~read).select(LINE, TEXT)]).sort(LINE)
    trace = pl.concat(found).sort(LINE) if found else pl.DataFrame(schema=_row_schema())
    return trace, rest.select(LINE, pl.col(TEXT).alias("args"))


def _row_schema() -> dict[str, pl.DataType]:
    return {
        "dialect": pl.Int8(),
        "ts_ns": pl.Int64(),
        "tid": pl.Int32(),
        "pid": pl.Int32(),
        "thread": pl.Categorical(),
        "event": pl.Categorical(),
        "view": pl.UInt64(),
        "root": pl.UInt64(),
        "args": pl.String(),
        LINE: pl.Int64(),
        "_keep": pl.Boolean(),
    }


@dataclass
class _Rows:
    """The parsed rows, as trace lines (after the bare rule) and lines no dialect reads."""

    trace: pl.DataFrame  # OUTPUT and _keep, in line order
    other: pl.DataFrame  # line, args (the text)
    trace_lines: int  # trace lines among every line of the file
    set_aside: pl.Series  # lines of selected bare events taken for -d output (the bare rule)


def _run_starts(trace: pl.DataFrame) -> pl.DataFrame:
    """The runs' first views among the events read: nil-root ``flatview_new`` events."""
    start = (
        (pl.col("event") == "flatview_new") & (pl.col("root") == 0) & (pl.col("view") != 0)
    ).fill_null(False)
    return trace.filter(start).select(LINE, prefixed=pl.col("dialect") != BARE)


def _apply_bare_rule(
    found: _Pass,
    chain: list[Dialect],
    selection: EventSelection,
    hinted: bool,
    per_run: Callable[[pl.Series], pl.DataFrame],
) -> _Rows:
    """Split the rows into trace lines and others, and count the file's trace lines.

    ``hinted``: the rows are the lines holding a hint, and ``found.counts`` counts the
    others; else ``found.counts`` counts every line, and the rows are only what is worth
    keeping. ``per_run(starts)`` counts the unparsed lines per run, in another pass over the
    file: only a file where a run without prefixed lines meets bare-looking lines needs it.
    """
    rows = found.rows
    matched = rows["event"].is_not_null()
    all_matched = bool(matched.all())
    primary = rows if all_matched else rows.filter(matched)
    others, other = _read_others(
        rows.clear() if all_matched else rows.filter(~matched), chain, selection
    )
    if "dialect" not in primary.columns:
        primary = primary.with_columns(dialect=pl.lit(CODE[chain[0].name], pl.Int8))
    if "thread" not in primary.columns:
        primary = primary.with_columns(thread=pl.lit(None, pl.Categorical))
    trace = primary.select(*OUTPUT, "_keep")
    if others.height:
        trace = pl.concat([trace, others.select(trace.columns)]).sort(LINE)

    counts = found.counts
    weak = (pl.col("dialect") == BARE) & ~pl.col("event").is_in(classify.strong_names(selection))
    bare_rows = BY_NAME["bare"] in chain or bool((others["dialect"] == BARE).any())
    weak_rows = bare_rows and bool(trace.select(weak.any()).item())
    weak_lines = counts["bare"] > counts["strong"]
    prefixed_rows = trace[LINE] if not bare_rows else trace.filter(pl.col("dialect") != BARE)[LINE]
    found_starts = found.starts if found.starts is not None else _run_starts(trace)
    starts = found_starts[LINE]
    trace_lines = counts["prefixed"] + counts["strong"]
    rejected: pl.Series | None = None
    if not (weak_rows or weak_lines):
        pass
    elif counts["prefixed"] == 0 and prefixed_rows.len() == 0:
        trace_lines += counts["bare"] - counts["strong"]  # no prefixed line: a bare file
    elif bool(found_starts["prefixed"].all()):
        # Every run starts with a prefixed line (or there is one run, holding one): all
        # bare-looking lines but the strong ones are -d output.
        rejected = trace.select(weak).to_series() if weak_rows else None
    else:
        runs = per_run(starts)
        prefixed_runs = pl.concat(
            [
                runs.filter(pl.col("prefixed") > 0)["run"],
                classify.runs_holding(prefixed_rows, starts),
            ]
        ).unique()
        bare_runs = runs.filter(~pl.col("run").is_in(prefixed_runs.implode()))
        weak_in_bare_runs = bare_runs.select(pl.col("bare").sum() - pl.col("strong").sum())
        trace_lines += int(weak_in_bare_runs.item() or 0)
        if weak_rows:
            run = classify.run_of(trace[LINE], starts)
            rejected = trace.select(weak).to_series() & run.is_in(prefixed_runs.implode())
    set_aside = pl.Series(LINE, [], pl.Int64)
    if rejected is not None and rejected.any():
        # -d output in a run of prefixed lines: no trace line; its text rebuilt to quote.
        text = pl.concat_str(
            [pl.col("event").cast(pl.String), pl.lit(" "), pl.col("args").fill_null("")]
        )
        if not selection.keeps_all:  # named events: say so (-d output is no news to "*")
            set_aside = trace.filter(rejected & trace["_keep"])[LINE]
        other = pl.concat([other, trace.filter(rejected).select(LINE, args=text)]).sort(LINE)
        trace = trace.filter(~rejected)
    trace_lines += trace.height if hinted else 0
    return _Rows(trace, other, trace_lines, set_aside)


def parse(opened: OpenedInput, selection: EventSelection) -> ParsedInput:
    """Read one text trace file into the events table; each line in its own dialect.

    Parameters
    ----------
    opened
        The input as a plain local file (decompressed by ``qtrace.parsers.source``).
    selection
        Which events to keep; lines of other events are classified but not parsed.
        ``qtrace_unreadable`` rows for FlatView damage come with any selection that keeps a
        FlatView event.

    Returns
    -------
    ParsedInput
        Events in line order (``line`` 1-based, ``offset`` null, ``source`` the input's
        name), the dialect and clock (``mixed(a,b)`` when lines of several dialects were
        read), how many lines were no trace line, and one warning per kind of damage met.

    Raises
    ------
    InputError
        When the file holds no QEMU trace line at all.

    Examples
    --------
    >>> from qtrace.parsers.source import open_input
    >>> with open_input("samples/pc-boot-ts.log") as opened:
    ...     parsed = parse(opened, EventSelection())
    >>> parsed.dialect, parsed.events.height
    ('tid-timestamp', 763)
    """
    fast = log_fast.read(opened.path, selection)
    if fast is not None:  # the C scanner read every line; it answers as the code below would
        return _result(opened.name, [fast.dialect], fast.events, fast.lines_skipped, [])
    with utf8_text(opened.path, opened.scratch() if opened.scratch else None) as text:
        return _parse_text(opened.name, text, selection)


def _parse_text(name: str, text: TextFile, selection: EventSelection) -> ParsedInput:
    lossy = False
    literals = classify.hints(selection)
    hint = None if literals is None else classify.any_of(literals)
    while True:
        try:
            chain = classify.dialects_to_cut(scan(text, lossy), text.path, literals)
            if not chain:
                raise InputError(f"{name}: no QEMU trace lines found")
            found = _one_pass(scan(text, lossy), chain, selection, lossy)
            break
        except pl.exceptions.ComputeError as exc:
            if lossy or not is_utf8_error(exc):
                raise
            lossy = True

    def per_run(starts: pl.Series) -> pl.DataFrame:
        unparsed = scan(text, lossy)
        if hint is not None:
            unparsed = unparsed.filter(~hint)
        strong = classify.unparsed_strong(selection, literals)
        return (
            unparsed.group_by(run=classify.run_expr(starts))
            .agg(**classify.counts(pl.col(TEXT), strong))
            .collect(engine="streaming")
        )

    rows = _apply_bare_rule(found, chain, selection, hint is not None, per_run)
    if classify.keeps_flatview(selection):
        cut = None if ends_with_newline(text.path) else (found.lines_total, last_line(text.path))
        events, markers, marked_other = damage.mark(rows.trace, rows.other, cut)
    else:  # no FlatView event wanted: its damage is no hole in what was asked for
        events, markers, marked_other = damage.unmarked(rows.trace)
    warnings: list[str] = []
    if text.encoding:
        warnings.append(f"{name}: read as {text.encoding} text (converted to UTF-8)")
    warnings += damage.warnings(name, markers)
    if rows.set_aside.len():
        warnings.append(
            f"{name}: {rows.set_aside.len()} bare lines of selected events stand in runs of "
            "prefixed lines and were taken for -d output, not events "
            f"(first at line {rows.set_aside[0]})"
        )
    warnings += _stamp_warnings(name, events)
    n_long, first_long = text.long_lines
    if n_long:
        warnings.append(
            f"{name}: {n_long} lines longer than {LONG_LINE_BYTES >> 20} MiB "
            f"(first at line {first_long}) were read cut to that length"
        )
    if lossy:
        where = f" (first at line {found.replaced})" if found.replaced is not None else ""
        warnings.append(f"{name}: bytes that are not UTF-8 were replaced{where}")
    codes = _dialects_read(events, chain[0])
    events = _wrapped(events, codes)
    skipped = found.lines_total - rows.trace_lines - marked_other
    return _result(name, [NAMES[c] for c in codes], events.drop("dialect"), skipped, warnings)


def _dialects_read(events: pl.DataFrame, first: Dialect) -> list[int]:
    """The dialects of the events read (else the first dialect's), without a pass over all."""
    dialect = events["dialect"]
    if events.height and dialect.n_unique() == 1 and dialect[0] is not None:
        return [int(dialect[0])]  # the usual file, its column one value
    return [int(c) for c in dialect.drop_nulls().unique()] or [CODE[first.name]]


def _stamp_warnings(name: str, events: pl.DataFrame) -> list[str]:
    """Trace lines whose stamp reads as no instant (year 9999, 30 February, 20 digits)."""
    if events["ts_ns"].null_count() == 0:
        return []
    lost = events.filter(pl.col("dialect").is_in(CLOCKED) & pl.col("ts_ns").is_null())
    if lost.height == 0:
        return []
    return [
        f"{name}: {lost.height} trace lines have a timestamp out of range or of no such "
        f"date; their ts_ns is null (first at line {lost[LINE][0]})"
    ]


def _wrapped(events: pl.DataFrame, codes: list[int]) -> pl.DataFrame:
    """Stamps without a date or year, with days or years added where they wrap around."""
    for dialect, wrap in (("babeltrace2", fields.wrap_days), ("syslog", fields.wrap_years)):
        if CODE[dialect] not in codes:
            continue
        mask = events["dialect"] == CODE[dialect]
        if mask.any():
            ts = events["ts_ns"]
            events = events.with_columns(ts_ns=ts.scatter(mask.arg_true(), wrap(ts.filter(mask))))
    return events


def _result(
    name: str, dialects: list[str], events: pl.DataFrame, lines_skipped: int, warnings: list[str]
) -> ParsedInput:
    # seq numbers the file's own events; the ingest layer renumbers across files.
    # (with_row_index keeps the columns' chunks aligned: a column of other chunks would make
    # polars copy the whole table into one chunk, doubling peak memory.)
    if "seq" not in events.columns:  # the C fast path numbers its events already
        events = events.with_row_index("seq")
    table = conform(events.with_columns(source=pl.lit(name, pl.Categorical)))
    return ParsedInput(
        events=table,
        format="log",
        dialect=summarise(dialects),
        clock=summarise([BY_NAME[d].clock for d in dialects]),
        lines_skipped=lines_skipped,
        warnings=warnings,
    )
