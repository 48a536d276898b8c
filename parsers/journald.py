"""Read ``journalctl -o json`` output: QEMU's trace messages, with the journal's pid and clock.

QEMU's ``syslog`` trace backend (``openlog(NULL, LOG_PID, LOG_DAEMON)``, one
``syslog(LOG_INFO, ...)`` per event) makes each event one journal entry whose ``MESSAGE`` is
the event's text, ``flatview_new 0x.. (root 0x..)``. A QEMU whose stderr goes to the journal
(a systemd unit, ``systemd-cat``) makes one entry per ``log``-backend line, with whatever
prefix ``-msg`` gave it. journalctl prints one JSON object per entry (``-o json-seq`` puts
an ASCII record separator before each), and the fields read here are:

- ``MESSAGE``: the text; an array of byte values when it is not valid UTF-8;
- ``_PID``: the process id (``pid``): several QEMU processes in one journal are several runs;
- ``__REALTIME_TIMESTAMP``: when journald received the entry, microseconds since the epoch
  (``ts_ns`` when the message carries no stamp of its own);
- ``_COMM``, ``SYSLOG_IDENTIFIER``: the program's name.

Each message of a QEMU process goes through the log reader (``log_text``), so every
dialect it knows reads here too, and ``line`` is the entry's line in the export. Entries of
other programs are skipped and counted: a process is QEMU when it is named ``qemu*`` or
printed a FlatView event (so the kernel's ``snd_hda_intel 0000:00:1f.3: ...`` never reads
as an event). A line that is not a JSON object is skipped and counted; where it mentions a wanted
event it also becomes a ``qtrace_unreadable`` row, and so does journald's own note that it
dropped messages (``Suppressed N messages from ...``, its rate limit): events were lost there.

Field values journald cut (``journalctl`` prints fields over 4096 bytes as null without
``--all``) cannot hold a trace message, which is far shorter.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from qtrace.parsers import log_text
from qtrace.parsers.json_lines import JOURNALD
from qtrace.parsers.source import OpenedInput

from qtrace.errors import InputError
from qtrace.events import (
    UNREADABLE,
    EventSelection,
    ParsedInput,
    conform,
)

FIELDS = {
    "message": "MESSAGE",
    "journal_pid": "_PID",
    "realtime_us": "__REALTIME_TIMESTAMP",
    "comm": "_COMM",
    "identifier": "SYSLOG_IDENTIFIER",
}
QEMU_NAME_PREFIX = "qemu"
FLATVIEW_MARK = "flatview_"
# systemd-journald's note when its rate limit dropped a service's messages.
SUPPRESSED = r"^Suppressed ([0-9]+) messages from (.+)$"
JOURNALD_COMM = "systemd-journal"
SHOWN_TEXT = 120  # characters of a damaged line quoted in its qtrace_unreadable row


@dataclass
class _Entries:
    """The export's lines as journal fields (``line`` 1-based) and the lines that are no JSON."""

    table: pl.DataFrame  # line, message, journal_pid, realtime_us, comm, identifier
    bad_lines: pl.DataFrame  # line, text: lines that are not a JSON object
    lossy: bool  # bytes that are not UTF-8 were replaced


def _lines(path: Path, lossy: bool) -> pl.LazyFrame:
    if lossy:
        # The CSV reader can replace invalid UTF-8; NUL as separator keeps a line one field.
        frame = pl.scan_csv(
            path,
            has_header=False,
            separator="\x00",
            quote_char=None,
            schema={"text": pl.String},
            encoding="utf8-lossy",
            truncate_ragged_lines=True,
            raise_if_empty=False,
            glob=False,
        )
    else:
        frame = pl.scan_lines(path, name="text", glob=False)
    return frame.with_row_index("line", offset=1).with_columns(
        pl.col("line").cast(pl.Int64), pl.col("text").str.strip_chars_start("\x1e")
    )


def _decode_message(value: object) -> str | None:
    """A MESSAGE value: text, or journald's array of byte values for text that is not UTF-8."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", errors="replace")
    return None  # a field given several times, or something journalctl never prints


def _read_entries(path: Path) -> _Entries:
    message = pl.col("message")
    # json_path_match gives null for a line that is no JSON, and an array as its JSON text:
    # only those few lines keep their text, to be decoded one by one below (a journal's lines
    # are mostly fields nobody reads: holding them all would cost the file's size).
    odd = (
        message.is_null() & pl.col("text").str.strip_chars().str.len_bytes().gt(0)
    ) | message.str.starts_with("[")
    lossy = False
    while True:
        try:
            found = (
                _lines(path, lossy)
                .with_columns(
                    pl.col("text").str.json_path_match(f"$.{key}").alias(name)
                    for name, key in FIELDS.items()
                )
                .select("line", *FIELDS, text=pl.when(odd).then(pl.col("text")))
                .collect(engine="streaming")
            )
            break
        except pl.exceptions.ComputeError as exc:
            if lossy or "utf" not in str(exc).lower():
                raise
            lossy = True
    fixed: list[tuple[int, str | None]] = []
    bad: list[tuple[int, str]] = []
    for line, text in found.filter(pl.col("text").is_not_null()).select("line", "text").iter_rows():
        try:
            entry = json.loads(text)
        except ValueError:
            bad.append((line, text))
            continue
        if not isinstance(entry, dict):
            bad.append((line, text))
            continue
        fixed.append((line, _decode_message(entry.get("MESSAGE"))))
    table = found.drop("text").with_columns(
        pl.col("journal_pid").cast(pl.Int32, strict=False),
        pl.col("realtime_us").cast(pl.Int64, strict=False),
    )
    if fixed:
        repaired = pl.DataFrame(
            fixed, schema={"line": pl.Int64, "message": pl.String}, orient="row"
        )
        table = table.update(repaired, on="line", include_nulls=True)
    bad_frame = pl.DataFrame(bad, schema={"line": pl.Int64, "text": pl.String}, orient="row")
    table = table.with_columns(message=_one_line(message))
    return _Entries(table, bad_frame, lossy)


def _one_line(message: pl.Expr) -> pl.Expr:
    """The message without its trailing newline; a message of several lines is no event."""
    text = message.str.strip_chars_end("\r\n")
    return pl.when(text.str.contains("[\r\n]")).then(None).otherwise(text)


def _from_qemu(entries: pl.DataFrame) -> pl.Expr:
    """True for entries of a QEMU process: one named ``qemu*``, or one that printed a
    FlatView event (an entry without a pid counts when it names a FlatView event itself)."""
    message, pid = pl.col("message"), pl.col("journal_pid")
    named = pl.col("comm").str.starts_with(QEMU_NAME_PREFIX) | pl.col("identifier").str.starts_with(
        QEMU_NAME_PREFIX
    )
    flatview = message.str.contains(FLATVIEW_MARK, literal=True)
    qemu = entries.filter(named | flatview)["journal_pid"].drop_nulls().unique()
    return pid.is_in(qemu.implode()) | (pid.is_null() & flatview.fill_null(False))


def _loss_rows(entries: _Entries, selection: EventSelection) -> pl.DataFrame:
    """qtrace_unreadable rows: journald's rate-limit notes, and damaged lines naming an event."""
    suppressed = entries.table.filter(
        (pl.col("comm") == JOURNALD_COMM) | (pl.col("identifier") == "systemd-journald")
    ).select(
        "line",
        pid=pl.lit(None, pl.Int32),
        ts_ns=pl.col("realtime_us") * 1000,
        args=pl.format(
            "journald dropped {} messages (rate limit) from {}",
            pl.col("message").str.extract(SUPPRESSED, 1),
            pl.col("message").str.extract(SUPPRESSED, 2),
        ),
    )
    hints = selection.literal_hints()
    text = pl.col("text")
    mentions = (
        pl.lit(True)
        if hints is None
        else pl.any_horizontal([text.str.contains(h, literal=True) for h in hints])
    )
    damaged = entries.bad_lines.filter(mentions).select(
        "line",
        pid=pl.lit(None, pl.Int32),
        ts_ns=pl.lit(None, pl.Int64),
        args="journal line that is not JSON (cut or garbled?): " + text.str.slice(0, SHOWN_TEXT),
    )
    return (
        pl.concat([suppressed.drop_nulls("args"), damaged])
        .with_columns(event=pl.lit(UNREADABLE))
        .sort("line")
    )


def parse(opened: OpenedInput, selection: EventSelection) -> ParsedInput:
    """Read a ``journalctl -o json`` export into the events table.

    Parameters
    ----------
    opened
        The export as a plain local file (decompressed by ``qtrace.parsers.source``).
    selection
        Which events to keep.

    Returns
    -------
    ParsedInput
        Events in export order: ``pid`` from ``_PID``, ``ts_ns`` from the message's own
        stamp or else ``__REALTIME_TIMESTAMP``, ``line`` the entry's line, ``format``
        ``"journald"`` and ``dialect`` the messages' log dialect.

    Raises
    ------
    InputError
        When no entry holds a QEMU trace message.

    Examples
    --------
    >>> import tempfile
    >>> entry = {"__REALTIME_TIMESTAMP": "1700000000000000", "_PID": "4242",
    ...          "_COMM": "qemu-system-x86", "MESSAGE": "flatview_new 0x1 (root (nil))"}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "journal.json"
    ...     _ = path.write_text(json.dumps(entry))
    ...     parse(OpenedInput("journal.json", path), EventSelection()).events["pid"].to_list()
    [4242]
    """
    entries = _read_entries(opened.path)
    fd, tmp = tempfile.mkstemp(prefix="qtrace-journal-")
    try:
        with os.fdopen(fd, "wb") as out:
            # One message a line, blank for other lines: line N here is line N of the export.
            entries.table.select(
                pl.when(_from_qemu(entries.table)).then(pl.col("message"))
            ).write_csv(out, include_header=False, quote_style="never")
        try:
            inner = log_text.parse(OpenedInput(opened.name, Path(tmp)), selection)
        except InputError:
            raise InputError(
                f"{opened.name}: a journal export (journalctl -o json) with no QEMU trace messages"
            ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    fields = entries.table.select("line", "journal_pid", "realtime_us")
    events = (
        inner.events.join(fields, on="line", how="left", maintain_order="left")
        .with_columns(
            pid=pl.coalesce("journal_pid", "pid"),
            ts_ns=pl.coalesce("ts_ns", pl.col("realtime_us") * 1000),
        )
        .drop("journal_pid", "realtime_us")
    )
    losses = _loss_rows(entries, selection)
    if losses.height:
        events = pl.concat(
            [
                events,
                conform(losses.with_columns(source=pl.lit(opened.name))).select(events.columns),
            ]
        ).sort("line", maintain_order=True)
    events = conform(events.drop("seq").with_row_index("seq"))
    warnings = list(inner.warnings)
    if entries.bad_lines.height:
        warnings.append(
            f"{opened.name}: {entries.bad_lines.height} lines are not JSON journal entries "
            f"(cut or garbled?); skipped, first at line {entries.bad_lines['line'][0]}"
        )
    if entries.lossy:
        warnings.append(f"{opened.name}: bytes that are not UTF-8 were replaced")
    # The message's own stamp when its dialect has one, else journald's receive time.
    clock = inner.clock
    if clock == "none" and events["ts_ns"].null_count() < events.height:
        clock = "wall-us"
    return ParsedInput(
        events=events,
        format=JOURNALD,
        dialect=inner.dialect,
        clock=clock,
        lines_skipped=inner.lines_skipped,
        warnings=warnings,
    )


__all__ = ["parse"]
