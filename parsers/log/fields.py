"""Cut a trace line into its fields: event, arguments, thread and process ids, thread name, time.

Every parse adds the columns ``dialect`` (the code of the dialect that read the line; null
where it did not), ``event``, ``args``, ``tid``, ``pid``, ``thread`` and ``ts_ns``. On a line
the dialect does not read, ``event`` is null and ``args`` holds the whole line, so unread
lines can leave the stream in the same rows as the events.

The common dialects (``bare``, ``tid-timestamp``, ``iso8601``, ``systemtap``) are cut with
find-and-slice expressions after one match test; the others with a capture regex, which costs
several times more per line.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
from qtrace.parsers.log.dialects import (
    BY_NAME,
    CODE,
    DEFAULT_CONTEXT_SHAPES,
    FTRACE_MARK,
    SYSLOG_Z_SHAPE,
    Dialect,
)

from qtrace.events import FLATVIEW_EVENTS

TEXT = "text"
LINE = "line"
NS_PER_S = 1_000_000_000
NS_PER_US = 1_000
INT64_MAX = 2**63 - 1
MAX_EPOCH_S = INT64_MAX // NS_PER_S
# Microseconds whose nanoseconds, fraction added, still fit an Int64 (1677 to 2262).
MAX_US = (INT64_MAX - NS_PER_S) // NS_PER_US
MIN_US = -MAX_US
DAY_NS = 86_400 * NS_PER_S
# Syslog stamps are read in the year 2000 (a leap year, so 29 February reads).
SYSLOG_YEAR = "2000"
SYSLOG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z
FTRACE_PID = r"^\s*\S.*?-([0-9]+)\s+(?:\(\s*[0-9-]*\)\s+)?\[[0-9]+\]"
FTRACE_TS = r"\s([0-9]+)\.([0-9]+):\s"
ROOT_MARK = " (root "
OUTPUT = ("dialect", "ts_ns", "tid", "pid", "thread", "event", "view", "root", "args", LINE)

# ------------------------------------------------------------------------------ time stamps


def ns_from_seconds(sec: pl.Expr, frac: pl.Expr | None) -> pl.Expr:
    """Nanoseconds from decimal seconds text and an optional fraction text (null if too big)."""
    seconds = sec.cast(pl.Int64, strict=False)
    whole = pl.when(seconds <= MAX_EPOCH_S).then(seconds * NS_PER_S)
    if frac is None:
        return whole
    return whole + fraction_ns(frac)


def fraction_ns(frac: pl.Expr) -> pl.Expr:
    """Nanoseconds of a decimal fraction of 0 to 9 digits (null or empty: 0)."""
    return frac.str.slice(0, 9).str.pad_end(9, "0").cast(pl.Int64, strict=False).fill_null(0)


def ns_from_datetime(text: pl.Expr, fmt: str, frac: pl.Expr, sec_field: pl.Expr) -> pl.Expr:
    """Nanoseconds since the epoch of a date and time ``text`` plus a fraction.

    Null for a date that does not exist (30 February), a leap second (QEMU's clocks never
    print one) or an instant an Int64 of nanoseconds cannot hold (year 9999): polars would
    wrap those around silently at nanosecond resolution, so they are read in microseconds.
    """
    us = text.str.to_datetime(fmt, time_unit="us", strict=False).cast(pl.Int64)
    fits = us.is_between(MIN_US, MAX_US) & (sec_field != "60")
    return pl.when(fits).then(us * NS_PER_US + fraction_ns(frac))


def offset_ns(tz: pl.Expr) -> pl.Expr:
    """An RFC 3339 offset (``Z``, ``+01:00``, ``-0530``) in nanoseconds east of UTC."""
    digits = tz.str.replace(":", "", literal=True)
    hours = digits.str.slice(1, 2).cast(pl.Int64, strict=False)
    minutes = digits.str.slice(3, 2).cast(pl.Int64, strict=False)
    sign = pl.when(digits.str.starts_with("-")).then(-1).otherwise(1)
    east = sign * (hours * 3600 + minutes * 60) * NS_PER_S
    return pl.when(tz == "Z").then(0).otherwise(east)


def _iso_ns(iso: pl.Expr, frac: pl.Expr) -> pl.Expr:
    return ns_from_datetime(iso, "%Y-%m-%dT%H:%M:%S", frac, iso.str.slice(17, 2))


def _syslog_ns(mon: pl.Expr, day: pl.Expr, hms: pl.Expr, frac: pl.Expr) -> pl.Expr:
    """Nanoseconds since 1 January of an unknown (leap) year; ``wrap_years`` adds years."""
    text = pl.concat_str([pl.lit(SYSLOG_YEAR + " "), mon, pl.lit(" "), day, pl.lit(" "), hms])
    since_epoch = ns_from_datetime(text, "%Y %b %d %H:%M:%S", frac, hms.str.slice(6, 2))
    return since_epoch - SYSLOG_EPOCH_US * NS_PER_US


def _time_of_day_ns(hms: pl.Expr, frac: pl.Expr) -> pl.Expr:
    h, m, s = (hms.str.slice(i, 2).cast(pl.Int64, strict=False) for i in (0, 3, 6))
    ok = (h <= 23) & (m <= 59) & (s <= 59)
    return pl.when(ok).then(((h * 60 + m) * 60 + s) * NS_PER_S + fraction_ns(frac))


def wrap_days(ts_ns: pl.Series) -> pl.Series:
    """babeltrace2's time of day, with a day added at each wrap past midnight."""
    back = (ts_ns.forward_fill().shift(1) - ts_ns).fill_null(0) > DAY_NS // 2
    return ts_ns + back.cast(pl.Int64).cum_sum() * DAY_NS


def wrap_years(ts_ns: pl.Series) -> pl.Series:
    """Classic syslog's stamps, with a (leap) year added at each wrap into January."""
    year_ns = 366 * DAY_NS
    back = (ts_ns.forward_fill().shift(1) - ts_ns).fill_null(0) > year_ns // 2
    return ts_ns + back.cast(pl.Int64).cum_sum() * year_ns


# ---------------------------------------------------------------------------- other columns


def bt_field(args: pl.Expr, key: str, value: str = r"0x[0-9a-fA-F]+|[0-9]+") -> pl.Expr:
    """The text of the field ``key`` in babeltrace2's ``{ key = value, ... }`` groups."""
    return args.str.extract(r"(?:^|[{,] )" + key + " = (" + value + r")(?:,| \}|$)", 1)


def bt_integer(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A babeltrace2 integer field's text (hex ``0x..`` or decimal) as ``dtype``."""
    hex_value = text.str.strip_prefix("0x").str.to_integer(base=16, dtype=pl.UInt64, strict=False)
    value = (
        pl.when(text.str.starts_with("0x"))
        .then(hex_value)
        .otherwise(text.cast(pl.UInt64, strict=False))
    )
    return value.cast(dtype, strict=False)


def columns(dialect: Dialect, g: Callable[[str], pl.Expr]) -> dict[str, pl.Expr]:
    """tid, pid, thread and ts_ns of a ``dialect`` line from its regex groups (``g(name)``)."""
    tid: pl.Expr = pl.lit(None, pl.Int32)
    pid: pl.Expr = pl.lit(None, pl.Int32)
    thread: pl.Expr = pl.lit(None, pl.String)
    ts: pl.Expr = pl.lit(None, pl.Int64)
    name = dialect.name
    if name == "tid-timestamp":
        tid = g("tid").cast(pl.Int32, strict=False)
        ts = ns_from_seconds(g("sec"), g("frac"))
    elif name == "systemtap":
        pid = g("pid").cast(pl.Int32, strict=False)
        ts = g("nsec").cast(pl.Int64, strict=False)
    elif name == "syslog-rfc3339":
        pid = g("pid").cast(pl.Int32, strict=False)
        ts = _iso_ns(g("iso"), g("frac")) - offset_ns(g("tz"))
    elif name in ("iso8601", "iso8601-message-context"):
        ts = _iso_ns(g("iso"), g("frac"))
    elif name == "syslog":
        pid = g("pid").cast(pl.Int32, strict=False)
        ts = _syslog_ns(g("mon"), g("day"), g("hms"), g("frac"))
    elif name == "babeltrace2-date":
        stamp = pl.concat_str([g("bt_date"), pl.lit("T"), g("bt_time")])
        dated = _iso_ns(stamp, g("bt_frac"))
        ts = (
            pl.when(g("bt_sec").is_null())
            .then(dated)
            .otherwise(ns_from_seconds(g("bt_sec"), g("bt_secfrac")))
        )
    elif name == "babeltrace2":
        ts = _time_of_day_ns(g("bt_time"), g("bt_frac"))
    elif name == "ftrace":
        head = g("head")
        pid = head.str.extract(FTRACE_PID, 1).cast(pl.Int32, strict=False)
        ts = ns_from_seconds(head.str.extract(FTRACE_TS, 1), head.str.extract(FTRACE_TS, 2))
    if name.endswith("message-context"):
        tid = g("tid").cast(pl.Int32, strict=False)
        thread = g("thread")
    if name.startswith("babeltrace2"):
        args = g("args")
        tid = bt_integer(bt_field(args, "vtid"), pl.Int32())
        pid = bt_integer(bt_field(args, "vpid"), pl.Int32())
        thread = bt_field(args, "procname", r'"[^"]*"').str.strip_chars('"')
    return {"tid": tid, "pid": pid, "thread": thread, "ts_ns": ts}


# ---------------------------------------------------------------------------------- parsing


def _code(dialect: Dialect, valid: pl.Expr) -> pl.Expr:
    return pl.when(valid).then(pl.lit(CODE[dialect.name], pl.Int8))


def parse_regex(frame: pl.LazyFrame, dialect: Dialect) -> pl.LazyFrame:
    """``frame`` parsed by ``dialect``'s capture regex (any dialect; the reference parse)."""
    text = pl.col(TEXT)
    parts = text.str.extract_groups(dialect.pattern)
    # The capture matched: that is the match test, unless the dialect has a stricter one.
    valid = (
        text.str.contains(dialect.match)
        if dialect.match_pattern
        else pl.col("_g").struct.field("name").is_not_null()
    )
    cols = columns(dialect, lambda n: pl.col("_g").struct.field(n))
    name = pl.col("_g").struct.field("name")
    return (
        frame.with_columns(_g=parts)
        .with_columns(_valid=valid)
        .with_columns(
            dialect=_code(dialect, pl.col("_valid")),
            event=pl.when("_valid").then(name),
            args=pl.when("_valid")
            .then(pl.col("_g").struct.field("args").fill_null(""))
            .otherwise(text),
            **{k: pl.when("_valid").then(v) for k, v in cols.items()},
        )
        .drop("_g", "_valid")
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
    valid = pl.col("_valid")
    return (
        frame.with_columns(
            _valid=text.str.contains(dialect.match),
            # Positions are meaningful only on valid lines; clipping keeps other slices legal.
            **{name: expr.cast(pl.Int64) for name, expr in position.items()},
        )
        .with_columns(
            dialect=_code(dialect, valid),
            event=pl.when(valid).then(text.str.slice(name_start, (space - name_start).clip(0))),
            # An integer choice is cheaper than choosing between two string columns.
            args=text.str.slice(pl.when(valid).then(space + 1).otherwise(0)),
            tid=tid,
            pid=pl.lit(None, pl.Int32),
            thread=pl.lit(None, pl.String),
            ts_ns=ts_ns,
        )
        .drop("_valid", *position)
    )


def _parse_stamp_first(frame: pl.LazyFrame, dialect: Dialect) -> pl.LazyFrame:
    """``iso8601`` and ``systemtap`` lines: ``STAMP NAME ARGS``, cut at the first two spaces."""
    text = pl.col(TEXT)
    fields = pl.col("_fields")
    stamp = fields.struct.field("field_0")
    pid: pl.Expr = pl.lit(None, pl.Int32)
    valid = text.str.contains(dialect.match)
    if dialect.name == "iso8601":
        # STAMP[.FRACTION]Z: the fraction's text sits between the 20th character and the Z.
        ts_ns = _iso_ns(stamp.str.head(19), stamp.str.slice(20).str.strip_suffix("Z"))
        valid = valid & ~text.str.contains(SYSLOG_Z_SHAPE)
    else:
        pid_ns = stamp.str.split_exact("@", 1)
        pid = pid_ns.struct.field("field_0").cast(pl.Int32, strict=False)
        ts_ns = pid_ns.struct.field("field_1").cast(pl.Int64, strict=False)
    return (
        frame.with_columns(_valid=valid, _fields=text.str.splitn(" ", 3))
        .with_columns(
            dialect=_code(dialect, pl.col("_valid")),
            event=pl.when("_valid").then(fields.struct.field("field_1")),
            args=pl.when("_valid")
            .then(fields.struct.field("field_2").fill_null(""))
            .otherwise(text),
            tid=pl.lit(None, pl.Int32),
            pid=pid,
            thread=pl.lit(None, pl.String),
            ts_ns=ts_ns,
        )
        .drop("_valid", "_fields")
    )


def _parse_default_context(frame: pl.LazyFrame, dialect: Dialect) -> pl.LazyFrame:
    """``[STAMP ]PROGRAM: (TID:THREAD): NAME ARGS``, QEMU 11's default, cut at ``": "``.

    The shape test leaves no ``": "`` in the program or thread name, so the first two are
    the field ends. Lines of the dialect's other shapes (a guest name, no program) are left
    unread here, for ``parse_regex``.
    """
    text = pl.col(TEXT)
    fields = pl.col("_fields")
    head, ids, body = (fields.struct.field(f"field_{i}") for i in range(3))
    colon = ids.str.find(":", literal=True)
    space = body.str.find(" ", literal=True).fill_null(body.str.len_bytes())
    ts_ns: pl.Expr = pl.lit(None, pl.Int64)
    if dialect.name.startswith("iso8601"):
        stamp = head.str.head(head.str.find(" ", literal=True))
        ts_ns = _iso_ns(stamp.str.head(19), stamp.str.slice(20).str.strip_suffix("Z"))
    valid = pl.col("_valid")
    return (
        frame.with_columns(
            _valid=text.str.contains(DEFAULT_CONTEXT_SHAPES[dialect.name]),
            _fields=text.str.splitn(": ", 3),
        )
        .with_columns(
            dialect=_code(dialect, valid),
            event=pl.when(valid).then(body.str.head(space)),
            args=pl.when(valid).then(body.str.slice(space + 1)).otherwise(text),
            tid=pl.when(valid).then(ids.str.slice(1, colon - 1).cast(pl.Int32, strict=False)),
            pid=pl.lit(None, pl.Int32),
            thread=pl.when(valid).then(ids.str.slice(colon + 1, ids.str.len_bytes() - colon - 2)),
            ts_ns=pl.when(valid).then(ts_ns),
        )
        .drop("_valid", "_fields")
    )


# Dialects whose fast cut reads only their common shape; the others' read every line.
COMMON_SHAPE_ONLY = frozenset(DEFAULT_CONTEXT_SHAPES)


def parse(frame: pl.LazyFrame, dialect: Dialect) -> pl.LazyFrame:
    """Parse ``frame``'s lines as ``dialect``, the fastest way that reads the common shape.

    Lines of the dialect that a fast cut leaves unread are read by ``parse_regex`` (which
    reads every line of its dialect): ``reader`` tries them again.
    """
    if dialect.name in ("bare", "tid-timestamp"):
        return _parse_split(frame, dialect)
    if dialect.name in ("iso8601", "systemtap"):
        return _parse_stamp_first(frame, dialect)
    if dialect.name.endswith("message-context"):
        return _parse_default_context(frame, dialect)
    return parse_regex(frame, dialect)


PARSED = ("dialect", "event", "args", "tid", "pid", "thread", "ts_ns")


def parse_chain(frame: pl.LazyFrame, dialects: list[Dialect]) -> pl.LazyFrame:
    """``frame`` parsed by each of ``dialects`` in turn, each reading what the ones before
    did not (every cut runs on every line: for the few files of several large runs)."""
    frame = parse(frame, dialects[0])
    for dialect in dialects[1:]:
        before = {c: f"_{c}_before" for c in PARSED}
        frame = parse(frame.rename(before), dialect)
        read = pl.col("_dialect_before").is_not_null()
        frame = frame.with_columns(
            pl.when(read).then(pl.col(before[c])).otherwise(pl.col(c)).alias(c) for c in PARSED
        ).drop(*before.values())
    return frame


# ----------------------------------------------------------------------------------- pointers


def _pointer_text(args: pl.Expr, start: pl.Expr, stop: pl.Expr) -> pl.Expr:
    return args.str.slice(start, (stop - start).clip(0, 16)).str.to_integer(
        base=16, dtype=pl.UInt64, strict=False
    )


def percent_p_pointers(args: pl.Expr, on: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``view`` and ``root`` from QEMU's ``%p (root %p)`` where ``on``; null where odd.

    A pointer is ``0x`` and 1 to 16 hex digits, or ``(nil)`` for NULL. Prefix and suffix
    tests cost next to nothing; only the two hex slices allocate. A capture regex over the
    arguments cost three times as much.
    """
    # polars reads "+1" as the number 1: a '+' (never in a pointer) makes the line odd.
    shaped = args.str.ends_with(")") & ~args.str.contains("+", literal=True)
    mark = pl.when(on & shaped).then(args.str.find(ROOT_MARK, literal=True).cast(pl.Int64))
    root_start = mark + len(ROOT_MARK)
    end = args.str.len_bytes().cast(pl.Int64) - 1  # the closing ')'
    zero = pl.lit(0, pl.UInt64)
    # Hex digits must fill the whole field: a longer field is not a pointer.
    view_fits = (mark - 2).is_between(1, 16)
    root_fits = (end - root_start - 2).is_between(1, 16)
    view = (
        pl.when(mark.is_null())
        .then(None)
        .when((mark == 5) & args.str.starts_with("(nil)"))
        .then(zero)
        .when(args.str.starts_with("0x") & view_fits)
        .then(_pointer_text(args, pl.lit(2), mark))
    )
    root = (
        pl.when(mark.is_null())
        .then(None)
        .when((end - root_start == 5) & args.str.ends_with(" (root (nil))"))
        .then(zero)
        .when(args.str.contains(" (root 0x", literal=True) & root_fits)
        .then(_pointer_text(args, root_start + 2, end))
    )
    return view, root


def bt_pointers(args: pl.Expr, on: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``view`` and ``root`` from babeltrace2's fields (``view = 0x..``; nil is ``0x0``)."""
    pointer = r"0x[0-9a-fA-F]{1,16}|[0-9]{1,20}"
    view = bt_integer(bt_field(args, "view", pointer), pl.UInt64())
    root = bt_integer(bt_field(args, "root", pointer), pl.UInt64())
    return pl.when(on).then(view), pl.when(on).then(root)


def with_pointers(frame: pl.LazyFrame, dialect_codes: set[int] | None = None) -> pl.LazyFrame:
    """``view`` and ``root`` of the FlatView events; ``args`` null where both were read.

    A FlatView line whose pointers did not both read keeps its whole line in ``args`` (the
    damage report quotes it). ``dialect_codes`` are the dialects the rows may be of (None:
    any); babeltrace2's fields are looked up only when its rows may be there.
    """
    args = pl.col("args")
    flatview = pl.col("event").is_in(FLATVIEW_EVENTS)
    bt = {CODE["babeltrace2"], CODE["babeltrace2-date"]}
    codes = set(CODE.values()) if dialect_codes is None else dialect_codes
    if codes <= bt:
        view, root = bt_pointers(args, flatview)
    elif codes & bt:
        is_bt = pl.col("dialect").is_in(list(bt))
        p_view, p_root = percent_p_pointers(args, flatview & ~is_bt)
        b_view, b_root = bt_pointers(args, flatview & is_bt)
        view, root = pl.coalesce(p_view, b_view), pl.coalesce(p_root, b_root)
    else:
        view, root = percent_p_pointers(args, flatview)
    # A NULL view is no view QEMU ever prints: that line is damage too.
    read = pl.col("view").is_not_null() & pl.col("root").is_not_null() & (pl.col("view") != 0)
    return frame.with_columns(view=view, root=root).with_columns(
        # view and root now hold a FlatView event's arguments: the text is kept only for
        # other events and odd FlatView lines (a third of a large log's table otherwise).
        args=pl.when(~flatview).then(args).when(~read).then(pl.col(TEXT)),
        # Categorical within the stream, so the rows it gathers never hold a name each.
        event=pl.col("event").cast(pl.Categorical),
    )


__all__ = [
    "BY_NAME",
    "COMMON_SHAPE_ONLY",
    "FTRACE_MARK",
    "LINE",
    "OUTPUT",
    "TEXT",
    "columns",
    "parse",
    "parse_chain",
    "parse_regex",
    "with_pointers",
    "wrap_days",
    "wrap_years",
]
