"""Read the text QEMU's ``log`` trace backend prints (and its SystemTap and ftrace cousins).

Every trace line is ``PREFIX NAME ARGS``; the prefix says which dialect wrote it
(``ParsedInput.dialect``) and which clock its stamp reads (``ParsedInput.clock``):

- ``bare``: ``flatview_new 0x55.. (root 0x55..)``; clock ``none``.
- ``tid-timestamp``: ``31546@1795569496.114719:flatview_new ...`` (QEMU up to 10.0 with
  ``-msg timestamp=on``, and every QEMU up to 5.2); clock ``wall-us``.
- ``iso8601``: ``2025-07-21T18:43:28.089797Z flatview_new ...`` (QEMU 10.1 on; the
  fraction is left out when zero); clock ``wall-us``.
- ``prog-thread``: ``qemu-system-x86_64: (772366:main): flatview_new ...`` (proposed);
  clock ``none``.
- ``iso8601-prog-thread``: the ISO stamp, a space, then the prog-thread prefix; ``wall-us``.
- ``systemtap``: ``4242@1753123408089797000 flatview_new ...`` (the dtrace backend's
  generated log probes); clock ``wall-ns``.
- ``ftrace``: ``qemu-4242 [001] .... 1234.567890: tracing_mark_write: flatview_new ...``;
  clock ``monotonic-us``.

Clocks: ``wall-us`` is ``gettimeofday()`` (or the ISO stamp) at microsecond resolution,
``wall-ns`` SystemTap's ``gettimeofday_ns()``, ``monotonic-us`` the kernel's trace clock
(seconds since boot, microseconds), ``none`` no clock (order by line). All land in
``ts_ns``. The number before ``@`` (and in ``(772366:main)``) is a thread id (``tid``);
SystemTap's and ftrace's number is a process id (``pid``).

A file normally holds one dialect, found from its first trace lines. Lines with any
timestamped or prefixed form are read wherever they appear; a bare ``name args`` line is
accepted only in a bare file (elsewhere it is ``-d`` output such as
``check_exception old: ...``). Bare names must hold an underscore, as QEMU's event names
do, so English prose (``char device redirected to ...``) is not taken for events.
Everything else (CPU dumps, ``in_asm`` blocks, libvirt lines, blank lines) is counted in
``lines_skipped``.

The file is scanned once with polars' streaming engine: lines containing a literal part of
the wanted event names are parsed, the others only classified for the skipped count, so
memory stays near the size of the selected events however large the log is. The common
dialects (``bare``, ``tid-timestamp``) are cut with find-and-slice expressions after one
match test; the others, and stray lines of a second dialect, with capture regexes, which
cost several times more per line. Invalid UTF-8 makes the fast line reader fail; the file
is then read again through the CSV reader's lossy decoding.

Before all this, ``log_fast`` (a C scanner, when it was built) tries the common case: a
plain ``tid-timestamp``, ``iso8601`` or ``bare`` file read for the FlatView events. It
answers only when its result is exactly what the polars path would give;
``QTRACE_NO_FASTLOG=1`` switches it off.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from qtrace.parsers import log_fast
from qtrace.parsers.source import OpenedInput

from qtrace.errors import InputError
from qtrace.events import FLATVIEW_EVENTS, EventSelection, ParsedInput, conform

TEXT = "text"
LINE = "line"
SAMPLE_TRACE_LINES = 64  # trace lines read up front to decide the dialect
PROBE_LINES = 100_000  # how far a bare-looking head is searched for prefixed lines
LONG_LINE_BYTES = 1 << 20  # longer lines are reported: usually binary junk or lost newlines

NAME = r"(?P<name>[a-z_][A-Za-z0-9_]*)"
# Without a prefix to vouch for it, a name must look like QEMU's (subsystem_what).
BARE_NAME = r"(?P<name>(?:_|[a-z][A-Za-z0-9]*_)[A-Za-z0-9_]*)"
TAIL = r"(?: (?P<args>.*))?$"  # QEMU always prints "name " even for events without arguments
ISO = (
    r"(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?Z"
)
PROG_THREAD = r"[A-Za-z0-9_./+-]+: \((?P<tid>[0-9]+):[^)]*\):"
FTRACE_MARK = "tracing_mark_write: "
FTRACE_PID = r"^\s*\S.*?-([0-9]+)\s+(?:\(\s*[0-9-]*\)\s+)?\[[0-9]+\]"
FTRACE_TS = r"\s([0-9]+)\.([0-9]+):\s"

NS_PER_S = 1_000_000_000
MAX_EPOCH_S = (2**63 - 1) // NS_PER_S


@dataclass(frozen=True)
class Dialect:
    """One way QEMU (or a tracer around it) prefixes trace lines."""

    name: str
    clock: str
    pattern: str  # whole-line regex; named groups feed ``columns``
    prefixed: bool = True


DIALECTS = (
    Dialect(
        "tid-timestamp",
        "wall-us",
        rf"^(?P<tid>[0-9]+)@(?P<sec>[0-9]+)\.(?P<frac>[0-9]+):{NAME}{TAIL}",
    ),
    Dialect("iso8601-prog-thread", "wall-us", rf"^{ISO} {PROG_THREAD} {NAME}{TAIL}"),
    Dialect("iso8601", "wall-us", rf"^{ISO} {NAME}{TAIL}"),
    Dialect("prog-thread", "none", rf"^{PROG_THREAD} {NAME}{TAIL}"),
    Dialect("systemtap", "wall-ns", rf"^(?P<pid>[0-9]+)@(?P<nsec>[0-9]+) {NAME}{TAIL}"),
    Dialect("ftrace", "monotonic-us", rf"^(?P<head>.*?){FTRACE_MARK}{NAME}{TAIL}"),
    Dialect("bare", "none", rf"^{BARE_NAME}{TAIL}", prefixed=False),
)
BY_NAME = {d.name: d for d in DIALECTS}


def _groups_only(pattern: str) -> str:
    """The pattern for a plain match test: no named groups, stopping after the name."""
    head = pattern.removesuffix(TAIL) + r"(?: |$)"
    return re.sub(r"\(\?P<[a-z]+>", "(?:", head)


def _accepts(dialects: list[Dialect], text: pl.Expr | None = None) -> pl.Expr:
    """True for lines that are trace lines of any of ``dialects`` (counting, not parsing).

    The anchored prefixes share one regex that rejects most noise within a few bytes. The
    ftrace form, whose prefix has no fixed shape, is searched unanchored from its marker
    instead, which the regex engine finds with a fast literal search. ``text`` defaults to
    the line column; pass a filtered one to run the regexes on fewer lines.
    """
    text = pl.col(TEXT) if text is None else text
    anchored = [_groups_only(d.pattern).removeprefix("^") for d in dialects if d.name != "ftrace"]
    expr = text.str.contains("^(?:" + "|".join(f"(?:{p})" for p in anchored) + ")")
    if any(d.name == "ftrace" for d in dialects):
        expr = expr | text.str.contains(FTRACE_MARK + _groups_only(NAME + TAIL))
    return expr


# ---------------------------------------------------------------------------- reading lines


def _scan(path: Path, lossy: bool) -> pl.LazyFrame:
    """The file's lines (CR LF and LF endings) with 1-based line numbers, streamed."""
    if lossy:
        # scan_lines rejects invalid UTF-8; the CSV reader can replace it. NUL is the
        # separator so a line is one field (text after a NUL byte is dropped: binary junk).
        lines = pl.scan_csv(
            path,
            has_header=False,
            separator="\x00",
            quote_char=None,
            comment_prefix=None,
            schema={TEXT: pl.String},
            encoding="utf8-lossy",
            truncate_ragged_lines=True,
            empty_string_is_null=False,
            raise_if_empty=False,
            extra_columns="ignore",
            glob=False,
        )
    else:
        lines = pl.scan_lines(path, name=TEXT, glob=False)
    return lines.with_row_index(LINE, offset=1)


def _is_utf8_error(exc: Exception) -> bool:
    return "utf8" in str(exc).lower() or "utf-8" in str(exc).lower()


# ------------------------------------------------------------------------- dialect decision


def _classify(sample: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """Per dialect: how many of ``sample``'s lines it matches, and the first such line."""
    seen: dict[str, tuple[int, int]] = {}
    compiled = [(d, re.compile(_groups_only(d.pattern))) for d in DIALECTS]
    for number, text in sample.select(LINE, TEXT).iter_rows():
        for dialect, rx in compiled:  # prefixed dialects first: a bare match is the fallback
            if rx.match(text):
                count, first = seen.get(dialect.name, (0, number))
                seen[dialect.name] = (count + 1, first)
                break
    return seen


def _detect(lines: pl.LazyFrame) -> Dialect | None:
    """The dialect of the file's first trace lines, or None when it has none at all.

    Prefixed dialects win over ``bare``: a bare-looking line in a timestamped file is
    other ``-d`` output (``check_exception old: ...``). When the first trace-looking lines
    are all bare, the file's head is searched for prefixed lines before settling on bare.
    The queries stop early; only a file without any trace line is read to its end here.
    """
    sample = (
        lines.filter(_accepts(list(DIALECTS))).head(SAMPLE_TRACE_LINES).collect(engine="streaming")
    )
    seen = _classify(sample)
    if seen and not any(BY_NAME[k].prefixed for k in seen):
        prefixed = _accepts([d for d in DIALECTS if d.prefixed])
        head = lines.head(PROBE_LINES).filter(prefixed)
        seen |= _classify(head.head(SAMPLE_TRACE_LINES).collect(engine="streaming"))
    if not seen:
        return None
    prefixed_seen = {k: v for k, v in seen.items() if BY_NAME[k].prefixed}
    pool = prefixed_seen or seen
    best = max(pool, key=lambda k: (pool[k][0], -pool[k][1]))
    return BY_NAME[best]


# --------------------------------------------------------------------------- line -> columns


def _ns_from(sec: pl.Expr, frac: pl.Expr | None) -> pl.Expr:
    """Nanoseconds from decimal seconds text and an optional fraction text of 1-9 digits."""
    seconds = sec.cast(pl.Int64, strict=False)
    whole = pl.when(seconds <= MAX_EPOCH_S).then(seconds * NS_PER_S)
    if frac is None:
        return whole
    frac_ns = frac.str.slice(0, 9).str.pad_end(9, "0").cast(pl.Int64, strict=False)
    return whole + frac_ns.fill_null(0)


def _columns(dialect: Dialect, g: Callable[[str], pl.Expr]) -> dict[str, pl.Expr]:
    """tid, pid and ts_ns of ``dialect`` from its regex groups (``g(name)``)."""
    tid, pid = pl.lit(None, pl.Int32), pl.lit(None, pl.Int32)
    ts = pl.lit(None, pl.Int64)
    if dialect.name == "tid-timestamp":
        tid = g("tid").cast(pl.Int32, strict=False)
        ts = _ns_from(g("sec"), g("frac"))
    elif dialect.name in ("iso8601", "iso8601-prog-thread"):
        stamp = g("iso").str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="ns", strict=False)
        frac_ns = g("frac").str.pad_end(9, "0").cast(pl.Int64, strict=False).fill_null(0)
        ts = stamp.cast(pl.Int64) + frac_ns
        if dialect.name == "iso8601-prog-thread":
            tid = g("tid").cast(pl.Int32, strict=False)
    elif dialect.name == "prog-thread":
        tid = g("tid").cast(pl.Int32, strict=False)
    elif dialect.name == "systemtap":
        pid = g("pid").cast(pl.Int32, strict=False)
        ts = g("nsec").cast(pl.Int64, strict=False)
    elif dialect.name == "ftrace":
        head = g("head")
        pid = head.str.extract(FTRACE_PID, 1).cast(pl.Int32, strict=False)
        ts = _ns_from(head.str.extract(FTRACE_TS, 1), head.str.extract(FTRACE_TS, 2))
    return {"tid": tid, "pid": pid, "ts_ns": ts}


def _parse_regex(frame: pl.LazyFrame, dialect: Dialect) -> pl.LazyFrame:
    """``frame`` parsed by ``dialect``'s regex; where it does not match, ``event`` is null."""
    parts = pl.col(TEXT).str.extract_groups(dialect.pattern)
    cols = _columns(dialect, lambda n: pl.col("_g").struct.field(n))
    return frame.with_columns(_g=parts).with_columns(
        event=pl.col("_g").struct.field("name"),
        args=pl.when(pl.col("_g").struct.field("name").is_not_null())
        .then(pl.col("_g").struct.field("args").fill_null(""))
        .otherwise(pl.col(TEXT)),
        **cols,
    )


def _parse_split(frame: pl.LazyFrame, dialect: Dialect) -> pl.LazyFrame:
    """``bare`` and ``tid-timestamp`` lines (the common, hot cases) without regex captures.

    A capture regex costs several times more than these find-and-slice expressions. The
    match test keeps them as strict as the regex: on lines that pass it the first '@', ':'
    and ' ' are exactly the field boundaries.
    """
    text = pl.col(TEXT)
    at, colon, space = pl.col("_at"), pl.col("_colon"), pl.col("_space")
    tid: pl.Expr = pl.lit(None, pl.Int32)
    ts_ns: pl.Expr = pl.lit(None, pl.Int64)
    name_start: pl.Expr = pl.lit(0, pl.Int64)
    position = {"_space": text.str.find(" ", literal=True).fill_null(text.str.len_bytes())}
    if dialect.name == "tid-timestamp":
        position |= {
            "_at": text.str.find("@", literal=True),
            "_colon": text.str.find(":", literal=True),
        }
        name_start = colon + 1
        # SEC.USEC parses exactly as a double: 2**53 covers microseconds until the year 2255.
        stamp_s = text.str.slice(at + 1, (colon - at - 1).clip(0, 40)).cast(
            pl.Float64, strict=False
        )
        stamp_us = (stamp_s * 1e6).round()
        tid = text.str.head(at.clip(0)).cast(pl.Int32, strict=False)
        ts_ns = pl.when(stamp_us < MAX_EPOCH_S * 1e6).then(stamp_us.cast(pl.Int64) * 1000)
    return (
        frame.with_columns(
            _valid=text.str.contains(_groups_only(dialect.pattern)),
            # Positions are meaningful only on valid lines; clipping keeps other slices legal.
            **{name: expr.cast(pl.Int64) for name, expr in position.items()},
        )
        .with_columns(
            event=pl.when("_valid").then(text.str.slice(name_start, (space - name_start).clip(0))),
            # An integer choice is cheaper than choosing between two string columns.
            args=text.str.slice(pl.when("_valid").then(space + 1).otherwise(0)),
            tid=tid,
            pid=pl.lit(None, pl.Int32),
            ts_ns=ts_ns,
        )
        .drop("_valid", *position)
    )


def _parse_stamp_first(frame: pl.LazyFrame, dialect: Dialect) -> pl.LazyFrame:
    """``iso8601`` and ``systemtap`` lines: ``STAMP NAME ARGS``, cut at the first two spaces."""
    text = pl.col(TEXT)
    fields = pl.col("_fields")
    stamp = fields.struct.field("field_0")
    tid: pl.Expr = pl.lit(None, pl.Int32)
    pid: pl.Expr = pl.lit(None, pl.Int32)
    if dialect.name == "iso8601":
        ts_ns = stamp.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ns", strict=False).cast(
            pl.Int64
        )
    else:
        pid_ns = stamp.str.split_exact("@", 1)
        pid = pid_ns.struct.field("field_0").cast(pl.Int32, strict=False)
        ts_ns = pid_ns.struct.field("field_1").cast(pl.Int64, strict=False)
    return (
        frame.with_columns(
            _valid=text.str.contains(_groups_only(dialect.pattern)),
            _fields=text.str.splitn(" ", 3),
        )
        .with_columns(
            event=pl.when("_valid").then(fields.struct.field("field_1")),
            args=pl.when("_valid")
            .then(fields.struct.field("field_2").fill_null(""))
            .otherwise(text),
            tid=tid,
            pid=pid,
            ts_ns=ts_ns,
        )
        .drop("_valid", "_fields")
    )


def _parse(frame: pl.LazyFrame, dialect: Dialect) -> pl.LazyFrame:
    """Parse ``frame``'s lines as ``dialect``.

    On lines of other shapes ``event`` is null and ``args`` holds the whole line, so the
    unmatched lines can leave the stream in the same rows as the events.
    """
    if dialect.name in ("bare", "tid-timestamp"):
        return _parse_split(frame, dialect)
    if dialect.name in ("iso8601", "systemtap"):
        return _parse_stamp_first(frame, dialect)
    return _parse_regex(frame, dialect)


ROOT_MARK = " (root "


def _with_pointers(frame: pl.LazyFrame) -> pl.LazyFrame:
    """``view`` and ``root`` of FlatView events, from ``%p (root %p)``; null where odd.

    ``args`` becomes null where both pointers were read.

    A pointer is ``0x`` and hex digits, or ``(nil)`` for NULL (SystemTap prints 0x0).
    Prefix and suffix tests cost next to nothing; only the two hex slices allocate. A
    capture regex over the arguments cost three times as much.
    """
    args = pl.col("args")
    mark = pl.col("_mark")
    root_start = mark + len(ROOT_MARK)
    end = args.str.len_bytes().cast(pl.Int64) - 1  # the closing ')'

    def hex_at(start: pl.Expr, stop: pl.Expr) -> pl.Expr:
        return args.str.slice(start, (stop - start).clip(0, 16)).str.to_integer(
            base=16, dtype=pl.UInt64, strict=False
        )

    zero = pl.lit(0, pl.UInt64)
    # Hex digits must fill the whole field: a longer field is not a pointer.
    view_fits = (mark - 2).is_between(1, 16)
    root_fits = (end - root_start - 2).is_between(1, 16)
    shaped = args.str.ends_with(")")
    return (
        frame.with_columns(
            _mark=pl.when(pl.col("event").is_in(FLATVIEW_EVENTS) & shaped).then(
                args.str.find(ROOT_MARK, literal=True).cast(pl.Int64)
            )
        )
        .with_columns(
            view=pl.when(mark.is_null())
            .then(None)
            .when((mark == 5) & args.str.starts_with("(nil)"))
            .then(zero)
            .when(args.str.starts_with("0x") & view_fits)
            .then(hex_at(pl.lit(2), mark)),
            root=pl.when(mark.is_null())
            .then(None)
            .when((end - root_start == 5) & args.str.ends_with(" (root (nil))"))
            .then(zero)
            .when(args.str.contains(" (root 0x", literal=True) & root_fits)
            .then(hex_at(root_start + 2, end)),
        )
        # view and root now hold a FlatView event's arguments: the text is kept only for
        # other events and odd FlatView lines (a third of a large log's table otherwise).
        .with_columns(
            args=pl.when(pl.col("view").is_null() | pl.col("root").is_null()).then(args),
            # Categorical within the stream, so the rows it gathers never hold a name each.
            event=pl.col("event").cast(pl.Categorical),
        )
        .drop("_mark")
    )


def _selected(selection: EventSelection) -> pl.Expr:
    rx = selection.regex()
    if rx is None:
        return pl.lit(True)
    patterns = selection.patterns or ()
    if all(not re.search(r"[*?\[]", p) for p in patterns):
        return pl.col("event").is_in(list(patterns))  # a hash lookup beats a regex per row
    return pl.col("event").str.contains(rx)


OUTPUT = ("ts_ns", "tid", "pid", "event", "view", "root", "args", LINE)


# -------------------------------------------------------------------------------- the parser


def _hints(selection: EventSelection) -> tuple[str, ...] | None:
    """Literal substrings, one of which every wanted line holds; as few as possible.

    One ``contains`` of a common prefix (``flatview_`` for the three FlatView events)
    is cheaper than one per pattern and lets through the same lines or a few more.
    """
    hints = selection.literal_hints()
    if not hints:
        return None
    common = hints[0]
    for hint in hints[1:]:
        while not hint.startswith(common):
            common = common[:-1]
    if len(common) >= 4:
        return (common,)
    return tuple(h for h in hints if not any(o != h and o in h for o in hints))


def _any_of(hints: tuple[str, ...]) -> pl.Expr:
    text = pl.col(TEXT)
    expr = text.str.contains(hints[0], literal=True)
    for hint in hints[1:]:
        expr = expr | text.str.contains(hint, literal=True)
    return expr


@dataclass
class _Scan:
    """What the one streaming pass over the file found."""

    events: pl.DataFrame  # selected events of the file's dialect (OUTPUT columns)
    unparsed: pl.DataFrame  # hint lines the dialect did not match: line, text
    lines_total: int
    trace_lines: int  # trace lines of the file's dialect, plus any trace line without a hint
    long_lines: pl.DataFrame  # n, first
    replaced: pl.DataFrame  # first line holding U+FFFD (lossy decoding only)


def _run(
    lines: pl.LazyFrame,
    dialect: Dialect,
    accepted: list[Dialect],
    selection: EventSelection,
    lossy: bool,
) -> _Scan:
    """One pass: parse the hint lines, only classify the others.

    Every hint line leaves the stream as one row of a single query: selected events,
    other events (``_keep`` false; counted, then dropped) and lines the dialect did not
    match (``event`` null, the whole line in ``args``, for ``_parse_others``). A second
    query filtering the same parse made polars cache and re-read it, which cost a fifth
    of the time. Only the counts over all lines run as a second query sharing the scan.
    """
    text = pl.col(TEXT)
    hints = _hints(selection)
    hint = None if hints is None else _any_of(hints)
    ok = pl.col("event").is_not_null()
    keep = ok & _selected(selection)
    parsed = _parse(lines if hint is None else lines.filter(hint), dialect)
    if hint is None:
        # Every line is parsed: drop the noise (and other events) in the stream.
        rows = parsed.filter(keep | (~ok & _accepts(accepted)))
        elsewhere: pl.Expr = pl.lit(0, pl.UInt32)
    else:
        # Few lines hold a hint but are no selected event: they ride along to be counted.
        rows = parsed
        elsewhere = _accepts(accepted, text.filter(~hint)).sum()
    long = text.str.len_bytes() > LONG_LINE_BYTES
    queries = [
        # Unmatched lines keep their text in args (event null) for _parse_others.
        rows.with_columns(_keep=keep).pipe(_with_pointers).select(*OUTPUT, "_keep"),
        lines.select(
            n=pl.len(),
            trace=elsewhere,
            n_long=long.sum(),
            first_long=pl.col(LINE).filter(long).min(),
        ),
    ]
    if hint is None:
        queries.append(parsed.select(ok.sum().alias("n")))
    if lossy:
        queries.append(lines.filter(text.str.contains("\ufffd", literal=True)).select(LINE).head(1))
    found = pl.collect_all(queries, engine="streaming")
    found_rows, counts = found[0], found[1]
    n_ok = int(found[2]["n"][0]) if hint is None else int(found_rows["event"].is_not_null().sum())
    # Usually every row is a kept event: filtering would copy the whole table for nothing.
    kept = found_rows["_keep"]
    events = found_rows if kept.all() else found_rows.filter(kept)
    return _Scan(
        events=events.drop("_keep"),
        unparsed=found_rows.filter(~ok).select(LINE, pl.col("args").alias(TEXT)),
        lines_total=int(counts["n"][0]),
        trace_lines=n_ok + int(counts["trace"][0]),
        long_lines=counts.select(n="n_long", first="first_long"),
        replaced=found[-1] if lossy else pl.DataFrame({LINE: []}),
    )


def _parse_others(
    unparsed: pl.DataFrame, dialects: list[Dialect], selection: EventSelection
) -> tuple[pl.DataFrame | None, list[str], pl.DataFrame]:
    """Hint lines the main dialect did not match: other dialects' trace lines, or damage.

    Returns the selected events among them, the dialects met, and the lines that are no
    trace line at all. Few lines get here, so regex captures are affordable.
    """
    found: list[pl.DataFrame] = []
    names: list[str] = []
    rest = unparsed.select(LINE, TEXT)
    for dialect in dialects:
        if rest.height == 0:
            break
        parsed = _parse_regex(rest.lazy(), dialect).collect()
        hit = parsed.filter(pl.col("event").is_not_null())
        if hit.height:
            names.append(dialect.name)
            found.append(_finish(hit.lazy(), selection).collect())
        rest = parsed.filter(pl.col("event").is_null()).select(LINE, TEXT)
    return (pl.concat(found) if found else None), names, rest


def _finish(frame: pl.LazyFrame, selection: EventSelection) -> pl.LazyFrame:
    return (
        frame.filter(pl.col("event").is_not_null() & _selected(selection))
        .pipe(_with_pointers)
        .select(*OUTPUT)
    )


def _read(opened: OpenedInput, selection: EventSelection) -> tuple[Dialect, _Scan, bool]:
    """Decide the dialect, then scan; falls back to lossy decoding on invalid UTF-8."""
    lossy = False
    while True:
        try:
            detected = _detect(_scan(opened.path, lossy))
            if detected is None:
                raise InputError(f"{opened.name}: no QEMU trace lines found")
            accepted = [d for d in DIALECTS if d.prefixed or not detected.prefixed]
            scan = _run(_scan(opened.path, lossy), detected, accepted, selection, lossy)
            return detected, scan, lossy
        except pl.exceptions.ComputeError as exc:
            if lossy or not _is_utf8_error(exc):
                raise
            lossy = True


def parse(opened: OpenedInput, selection: EventSelection) -> ParsedInput:
    """Read one log-backend text file into the events table.

    Parameters
    ----------
    opened
        The input as a plain local file (decompressed by ``qtrace.parsers.source``).
    selection
        Which events to keep; lines of other events are classified but not parsed.

    Returns
    -------
    ParsedInput
        Events in line order (``line`` 1-based, ``offset`` null, ``source`` the input's
        name), the dialect and clock, how many lines were not trace lines, and one warning
        per kind of damage met.

    Raises
    ------
    InputError
        When the file holds no QEMU trace line at all.

    Examples
    --------
    >>> from qtrace.parsers.source import open_input
    >>> with open_input("samples/pc-boot-ts.log") as opened:
    ...     parse(opened, EventSelection()).events.height
    763
    """
    fast = log_fast.read(opened.path, selection)
    if fast is not None:  # the C scanner read every line; it answers as the code below would
        damage = _damaged(opened.name, selection, fast.damaged, fast.first_damaged)
        return _result(opened.name, BY_NAME[fast.dialect], fast.events, fast.lines_skipped, damage)
    dialect, scan, lossy = _read(opened, selection)
    name = opened.name
    warnings: list[str] = []
    events = scan.events
    if not events[LINE].is_sorted():  # the streaming engine keeps order; this is a guard
        events = events.sort(LINE)
    unparsed = scan.unparsed.sort(LINE)
    trace_lines = scan.trace_lines
    if unparsed.height:
        accepted = [
            d for d in DIALECTS if d is not dialect and (d.prefixed or not dialect.prefixed)
        ]
        extra, met, damaged = _parse_others(unparsed, accepted, selection)
        other_lines = unparsed.height - damaged.height
        trace_lines += other_lines
        if other_lines:
            first = unparsed.join(damaged, on=LINE, how="anti")[LINE][0]
            warnings.append(
                f"{name}: {other_lines} trace lines in another dialect ({', '.join(met)}; "
                f"first at line {first}) read along with the {dialect.name} lines"
            )
        if extra is not None and extra.height:
            events = pl.concat([events, extra.select(*OUTPUT)]).sort(LINE)
        if damaged.height:
            warnings += _damaged(name, selection, damaged.height, damaged[LINE][0])
    n_long = int(scan.long_lines["n"][0])
    if n_long:
        warnings.append(
            f"{name}: {n_long} lines longer than {LONG_LINE_BYTES >> 20} MiB "
            f"(first at line {scan.long_lines['first'][0]})"
        )
    if lossy:
        where = f" (first at line {scan.replaced[LINE][0]})" if scan.replaced.height else ""
        warnings.append(f"{name}: bytes that are not UTF-8 were replaced{where}")
    odd = events.filter(
        pl.col("event").is_in(FLATVIEW_EVENTS)
        & (pl.col("view").is_null() | pl.col("root").is_null())
    )
    if odd.height:
        warnings.append(
            f"{name}: {odd.height} FlatView events whose arguments are not '%p (root %p)' "
            f"have no view/root (first at line {odd[LINE][0]})"
        )
    return _result(name, dialect, events, scan.lines_total - trace_lines, warnings)


def _damaged(name: str, selection: EventSelection, n: int, first: int) -> list[str]:
    if not n or not selection.literal_hints():
        return []
    hints = " or ".join(_hints(selection) or ())
    return [
        f"{name}: {n} lines mention {hints} but are not trace lines "
        f"(cut or garbled?); skipped, first at line {first}"
    ]


def _result(
    name: str, dialect: Dialect, events: pl.DataFrame, lines_skipped: int, warnings: list[str]
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
        dialect=dialect.name,
        clock=dialect.clock,
        lines_skipped=lines_skipped,
        warnings=warnings,
    )
