"""Read one text trace file into the events table: one streaming pass, then the few odd rows.

The file is scanned once with polars' streaming engine. Lines holding a literal part of the
wanted event names (``flatview_`` for the FlatView events) are parsed, first as the dialect
most of the file's first such lines have, with its fastest cut; the lines it does not read
leave the stream with their text and are tried against every other dialect afterwards. The
other lines are only classified, per run, for the counts and for the bare-line rule
(``classify``). Memory stays near the size of the selected events however large the log is.

Before all this, ``log_fast`` (a C scanner, when it was built) tries the common case: a plain
``tid-timestamp``, ``iso8601`` or ``bare`` file read for the FlatView events. It answers only
when its result is exactly what this module would give; ``QTRACE_NO_FASTLOG=1`` switches it
off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from qtrace.parsers import log_fast
from qtrace.parsers.log import classify, damage, fields
from qtrace.parsers.log.dialects import BARE, BY_NAME, CODE, DIALECTS, Dialect, summary
from qtrace.parsers.log.fields import LINE, OUTPUT, TEXT
from qtrace.parsers.log.lines import TextFile, ends_with_newline, is_utf8_error, scan, utf8_text
from qtrace.parsers.source import OpenedInput

from qtrace.errors import InputError
from qtrace.events import FLATVIEW_EVENTS, EventSelection, ParsedInput, conform

LONG_LINE_BYTES = 1 << 20  # longer lines are reported: usually binary junk or lost newlines
TAIL_BYTES = 1 << 16  # how much of a file's end is read back to quote a cut last line
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

    rows: pl.DataFrame  # lines worth parsing, parsed as the first dialect; OUTPUT and _keep
    runs: pl.DataFrame  # per run, over the other lines: prefixed, bare and strong bare counts
    starts: pl.Series  # line numbers that start a QEMU run
    lines_total: int
    long_lines: pl.DataFrame  # n, first
    replaced: pl.DataFrame  # first line holding U+FFFD (lossy decoding only)


def _one_pass(lines: pl.LazyFrame, first: Dialect, selection: EventSelection, lossy: bool) -> _Pass:
    """One pass: parse the lines worth it, only classify the others.

    Every parsed line leaves the stream as one row of a single query: selected events, other
    events (``_keep`` false; counted, then dropped) and lines the first dialect did not read
    (``event`` null, the whole line in ``args``). A second query filtering the same parse
    made polars cache and re-read it, which cost a fifth of the time.
    """
    text = pl.col(TEXT)
    literals = classify.hints(selection)
    hint = None if literals is None else classify.any_of(literals)
    parsed = fields.parse(lines if hint is None else lines.filter(hint), first)
    ok = pl.col("event").is_not_null()
    keep = ok & selected(selection)
    if hint is None:
        # Every line is parsed: drop the noise and unselected events in the stream, keeping
        # what may be another dialect's line or FlatView damage.
        wanted = keep | (~ok & (classify.accepts(list(DIALECTS)) | text.str.contains("flatview_")))
        if classify.keeps_flatview(selection):
            wanted = wanted | (ok & pl.col("event").is_in(FLATVIEW_EVENTS))
        parsed = parsed.filter(wanted)
    output = [c for c in OUTPUT if c != "dialect" and (c != "thread" or _threads(first))]
    rows = parsed.with_columns(_keep=keep).pipe(fields.with_pointers, {CODE[first.name]})

    others = lines.with_columns(
        run=(classify.run_start().cum_sum().cast(pl.Int64) - 1).clip(lower_bound=0)
    )
    if hint is not None:
        others = others.filter(~hint)
    strong = classify.strong_names(selection)
    if literals is not None:  # lines naming a strong event hold a hint: they are rows
        strong = tuple(s for s in strong if not any(h in s for h in literals))
    bare = classify.is_bare()
    long = text.str.len_bytes() > LONG_LINE_BYTES
    queries = [
        rows.select(*output, "_keep"),
        others.group_by("run").agg(
            prefixed=classify.is_prefixed().sum(),
            bare=bare.sum(),
            strong=(bare & classify.names_one_of(strong)).sum() if strong else pl.lit(0),
        ),
        lines.select(n=pl.len(), n_long=long.sum(), first_long=pl.col(LINE).filter(long).min()),
        lines.filter(classify.run_start()).select(LINE),
    ]
    if lossy:
        queries.append(lines.filter(text.str.contains("\ufffd", literal=True)).select(LINE).head(1))
    found = pl.collect_all(queries, engine="streaming")
    totals = found[2]
    return _Pass(
        rows=found[0],
        runs=found[1],
        starts=found[3][LINE].sort(),
        lines_total=int(totals["n"][0]),
        long_lines=totals.select(n="n_long", first="first_long"),
        replaced=found[4] if lossy else pl.DataFrame({LINE: []}),
    )


def _threads(dialect: Dialect) -> bool:
    """Whether ``dialect`` prints thread names (else the column stays null)."""
    return dialect.name.endswith("message-context") or dialect.name.startswith("babeltrace2")


def _read_others(
    unread: pl.DataFrame, first: Dialect, selection: EventSelection
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Lines the first dialect did not read: other dialects' trace lines, and the rest.

    Returns the trace lines parsed (OUTPUT and ``_keep``) and the lines no dialect reads
    (``line``, ``args`` holding the text). Few lines get here in most files; each dialect
    is tried only on the lines its match test accepts.
    """
    found: list[pl.DataFrame] = []
    rest = unread.select(LINE, pl.col("args").alias(TEXT))
    for dialect in DIALECTS:
        if dialect is first or rest.height == 0:
            continue
        hit = rest[TEXT].str.contains(dialect.match)
        if not hit.any():
            continue
        parsed = (
            fields.parse(rest.filter(hit).lazy(), dialect)
            .with_columns(_keep=selected(selection))
            .pipe(fields.with_pointers, {CODE[dialect.name]})
            .select(*OUTPUT, "_keep")
            .collect()
        )
        found.append(parsed)
        rest = rest.filter(~hit)
    trace = pl.concat(found).sort(LINE) if found else pl.DataFrame(schema=_row_schema())
    return trace, rest.select(LINE, pl.col(TEXT).alias("args"))


def _row_schema() -> dict[str, pl.DataType]:
    return {
        "dialect": pl.Int8(),
        "ts_ns": pl.Int64(),
        "tid": pl.Int32(),
        "pid": pl.Int32(),
        "thread": pl.String(),
        "event": pl.Categorical(),
        "view": pl.UInt64(),
        "root": pl.UInt64(),
        "args": pl.String(),
        LINE: pl.Int64(),
        "_keep": pl.Boolean(),
    }


def _last_line(path: Path) -> str:
    """The text of a file's last line (read back from its end)."""
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - TAIL_BYTES))
        tail = fh.read()
    return tail.rsplit(b"\n", 1)[-1].rstrip(b"\r").decode("utf-8", errors="replace")


@dataclass
class _Rows:
    """The parsed rows, as trace lines (after the bare rule) and lines no dialect reads."""

    trace: pl.DataFrame  # OUTPUT and _keep, in line order
    other: pl.DataFrame  # line, args (the text)
    trace_lines: int  # trace lines among every line of the file
    set_aside: pl.Series  # lines of selected bare events taken for -d output (the bare rule)


def _apply_bare_rule(
    found: _Pass, first: Dialect, selection: EventSelection, hinted: bool
) -> _Rows:
    """Split the rows into trace lines and others, and count the file's trace lines.

    ``hinted``: the rows are the lines holding a hint, and ``found.runs`` counts the others;
    else ``found.runs`` counts every line and the rows are only the events worth keeping.
    """
    rows = found.rows
    matched = rows["event"].is_not_null()
    all_matched = bool(matched.all())
    primary = rows if all_matched else rows.filter(matched)
    others, other = _read_others(
        rows.clear() if all_matched else rows.filter(~matched), first, selection
    )
    primary = primary.with_columns(dialect=pl.lit(CODE[first.name], pl.Int8))
    if "thread" not in primary.columns:
        primary = primary.with_columns(thread=pl.lit(None, pl.String))
    trace = primary.select(*OUTPUT, "_keep")
    if others.height:
        trace = pl.concat([trace, others.select(trace.columns)]).sort(LINE)

    runs = found.runs
    weak = (pl.col("dialect") == BARE) & ~pl.col("event").is_in(classify.strong_names(selection))
    bare_rows = first.name == "bare" or bool((others["dialect"] == BARE).any())
    weak_rows = bare_rows and bool(trace.select(weak.any()).item())
    prefixed_runs = pl.Series("run", [], pl.Int64)
    if weak_rows or runs["bare"].sum() > runs["strong"].sum():
        # Only then does it matter which runs hold prefixed lines.
        prefixed_rows = (
            trace[LINE] if not bare_rows else trace.filter(pl.col("dialect") != BARE)[LINE]
        )
        prefixed_runs = pl.concat(
            [
                runs.filter(pl.col("prefixed") > 0)["run"],
                classify.runs_holding(prefixed_rows, found.starts),
            ]
        ).unique()
    in_prefixed_run = pl.col("run").is_in(prefixed_runs.implode())
    counted = runs.select(
        pl.col("prefixed").sum()
        + pl.col("strong").sum()
        + (pl.col("bare") - pl.col("strong")).filter(~in_prefixed_run).sum()
    ).item()
    set_aside = pl.Series(LINE, [], pl.Int64)
    if weak_rows and prefixed_runs.len():
        run = classify.run_of(trace[LINE], found.starts)
        rejected = trace.select(weak).to_series() & run.is_in(prefixed_runs.implode())
        if rejected.any():
            # -d output in a run of prefixed lines: no trace line; its text rebuilt to quote.
            text = pl.concat_str(
                [pl.col("event").cast(pl.String), pl.lit(" "), pl.col("args").fill_null("")]
            )
            if not selection.keeps_all:  # named events: say so (-d output is no news to "*")
                set_aside = trace.filter(rejected & trace["_keep"])[LINE]
            other = pl.concat([other, trace.filter(rejected).select(LINE, args=text)]).sort(LINE)
            trace = trace.filter(~rejected)
    trace_lines = int(counted or 0) + (trace.height if hinted else 0)
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
    with utf8_text(opened.path) as text:
        return _parse_text(opened.name, text, selection)


def _parse_text(name: str, text: TextFile, selection: EventSelection) -> ParsedInput:
    lossy = False
    literals = classify.hints(selection)
    hint = None if literals is None else classify.any_of(literals)
    while True:
        try:
            first = classify.first_dialect(scan(text, lossy), hint)
            if first is None:
                raise InputError(f"{name}: no QEMU trace lines found")
            found = _one_pass(scan(text, lossy), first, selection, lossy)
            break
        except pl.exceptions.ComputeError as exc:
            if lossy or not is_utf8_error(exc):
                raise
            lossy = True
    rows = _apply_bare_rule(found, first, selection, hint is not None)
    cut_line = None if ends_with_newline(text.path) else found.lines_total
    events, markers, marked_other = _damage(rows, selection, cut_line, text.path)
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
    n_long = int(found.long_lines["n"][0])
    if n_long:
        warnings.append(
            f"{name}: {n_long} lines longer than {LONG_LINE_BYTES >> 20} MiB "
            f"(first at line {found.long_lines['first'][0]})"
        )
    if lossy:
        where = f" (first at line {found.replaced[LINE][0]})" if found.replaced.height else ""
        warnings.append(f"{name}: bytes that are not UTF-8 were replaced{where}")
    events = _wrapped(events)
    codes = events["dialect"].drop_nulls().unique().to_list() or [CODE[first.name]]
    skipped = found.lines_total - rows.trace_lines - marked_other
    return _result(name, [NAMES[c] for c in codes], events.drop("dialect"), skipped, warnings)


def _blank(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``frame`` (``line``, ``args`` and perhaps ``name``) with nothing else read."""
    return frame.select(
        dialect=pl.lit(None, pl.Int8),
        ts_ns=pl.lit(None, pl.Int64),
        tid=pl.lit(None, pl.Int32),
        pid=pl.lit(None, pl.Int32),
        thread=pl.lit(None, pl.String),
        event=pl.lit(None, pl.Categorical),
        view=pl.lit(None, pl.UInt64),
        root=pl.lit(None, pl.UInt64),
        args=pl.col("args"),
        line=pl.col(LINE).cast(pl.Int64),
        _keep=pl.lit(True),
        name=pl.col("name") if "name" in frame.columns else pl.lit(None, pl.String),
    )


def _damage(
    rows: _Rows, selection: EventSelection, cut_line: int | None, path: Path
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The events kept, with FlatView damage turned into ``qtrace_unreadable`` rows.

    Returns the events (OUTPUT, in line order), the marker rows among them, and how many of
    those are lines no dialect reads (counted as markers, not as skipped lines).
    """
    trace, other = rows.trace, rows.other
    if not classify.keeps_flatview(selection):
        kept = trace if trace["_keep"].all() else trace.filter("_keep")
        return kept.drop("_keep"), kept.clear().drop("_keep"), 0
    bad = damage.garbled(trace)
    other = other.with_columns(name=damage.names_flatview(pl.col("args"))).filter(
        pl.col("name").is_not_null()
    )
    markers: list[pl.DataFrame] = []
    cut_other = 0
    if cut_line is not None:
        last = _last_line(path)
        at_cut = trace.filter(pl.col(LINE) == cut_line)
        whole = at_cut.height > 0 and not bad.filter(trace[LINE] == cut_line).any()
        whole = whole and at_cut["event"].cast(pl.String)[0] in FLATVIEW_EVENTS
        if damage.FLATVIEW_MENTION in last and not whole:
            # The cut line's row, if any, gives its time and thread; its text is the file's.
            frame = pl.DataFrame({LINE: [cut_line], "args": [last]})
            cut = (
                at_cut.with_columns(name=pl.lit(None, pl.String))
                if at_cut.height
                else _blank(frame)
            )
            cut = cut.with_columns(args=pl.lit(last), name=damage.names_flatview(pl.lit(last)))
            name = pl.col("name").fill_null("flatview_")
            markers.append(damage.as_unreadable(cut, name + " line cut at the end of the file"))
            in_other = other.filter(pl.col(LINE) == cut_line).height > 0
            cut_other = int(not at_cut.height and (in_other or classify.classify(last) is None))
            keep_rows = trace[LINE] != cut_line
            trace, bad = trace.filter(keep_rows), bad.filter(keep_rows)
            other = other.filter(pl.col(LINE) != cut_line)
    if bad.any():
        garbled = trace.filter(bad).with_columns(name=pl.col("event").cast(pl.String))
        markers.append(damage.as_unreadable(garbled, "garbled " + pl.col("name") + " line"))
        trace = trace.filter(~bad)
    if other.height:
        markers.append(damage.as_unreadable(_blank(other), "garbled " + pl.col("name") + " line"))
    kept = trace if trace["_keep"].all() else trace.filter("_keep")
    if not markers:
        return kept.drop("_keep"), kept.clear().drop("_keep"), 0
    line_type = kept.schema[LINE]
    marked = pl.concat([m.select(kept.columns).cast({LINE: line_type}) for m in markers])
    marked = marked.sort(LINE)
    events = pl.concat([kept, marked]).sort(LINE).drop("_keep")
    return events, marked.drop("_keep"), other.height + cut_other


def _stamp_warnings(name: str, events: pl.DataFrame) -> list[str]:
    """Trace lines whose stamp reads as no instant (year 9999, 30 February, 20 digits)."""
    lost = events.filter(pl.col("dialect").is_in(CLOCKED) & pl.col("ts_ns").is_null())
    if lost.height == 0:
        return []
    return [
        f"{name}: {lost.height} trace lines have a timestamp out of range or of no such "
        f"date; their ts_ns is null (first at line {lost[LINE][0]})"
    ]


def _wrapped(events: pl.DataFrame) -> pl.DataFrame:
    """Stamps without a date or year, with days or years added where they wrap around."""
    for dialect, wrap in (("babeltrace2", fields.wrap_days), ("syslog", fields.wrap_years)):
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
        dialect=summary(dialects),
        clock=summary([BY_NAME[d].clock for d in dialects]),
        lines_skipped=lines_skipped,
        warnings=warnings,
    )
