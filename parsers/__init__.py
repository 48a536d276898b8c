"""Input parsers: one module per trace format, each producing the canonical events table.

``parse_file`` opens an input (decompressing by magic bytes), detects its format from
content unless told, and hands it to the format's parser: ``simple`` (the binary backend),
``journald`` (``journalctl -o json``), ``testlog`` (meson's ``testlog.json``) or ``log``
(every text dialect, the default). A directory holding a CTF trace (LTTng) is read by
``ctf`` through babeltrace2's Python bindings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qtrace.parsers import ctf
from qtrace.parsers.json_lines import sniff_container
from qtrace.parsers.source import (
    OpenedInput,
    append_cut_marker,
    open_input,
    shown_name,
    sniff_format,
)

from qtrace.errors import UsageError
from qtrace.events import EventSelection, ParsedInput

Reader = Callable[[OpenedInput, EventSelection, Path | None], ParsedInput]


# Each reader's module is imported when an input of its format is read: a log never loads
# the simple reader (and numpy) nor the JSON readers.
def _read_log(opened: OpenedInput, selection: EventSelection, _: Path | None) -> ParsedInput:
    from qtrace.parsers import log_text

    return log_text.parse(opened, selection)


def _read_simple(
    opened: OpenedInput, selection: EventSelection, trace_events: Path | None
) -> ParsedInput:
    from qtrace.parsers import simple

    return simple.parse(opened, selection, trace_events)


def _read_journald(opened: OpenedInput, selection: EventSelection, _: Path | None) -> ParsedInput:
    from qtrace.parsers import journald

    return journald.parse(opened, selection)


def _read_testlog(opened: OpenedInput, selection: EventSelection, _: Path | None) -> ParsedInput:
    from qtrace.parsers import testlog

    return testlog.parse(opened, selection)


# Every input format and its reader (only the simple backend needs trace-events-all).
READERS: dict[str, Reader] = {
    "log": _read_log,
    "simple": _read_simple,
    "journald": _read_journald,
    "testlog": _read_testlog,
}
INPUT_FORMATS = tuple(READERS)


def parse_file(
    name: str,
    *,
    selection: EventSelection,
    input_format: str | None = None,
    trace_events: Path | None = None,
    shown: str | None = None,
    limit_bytes: int | None = None,
    scratch_dir: str | None = None,
) -> ParsedInput:
    """Read one input file (or '-' for standard input) into a ``ParsedInput``.

    ``shown`` names the input in the table and messages; ``limit_bytes`` bounds what it may
    hold or decode to; ``scratch_dir`` is where a decoded copy goes (see
    ``qtrace.parsers.source.open_input``).
    """
    if input_format is not None and input_format not in INPUT_FORMATS:
        raise UsageError(
            f"unknown input format {input_format!r} (choose {', '.join(INPUT_FORMATS)})"
        )
    if input_format is None and ctf.is_ctf_dir(Path(name)):  # an LTTng session's directory
        found = ctf.parse(Path(name), shown_name(name) if shown is None else shown, selection)
        found.input_bytes = sum(f.stat().st_size for f in Path(name).rglob("*") if f.is_file())
        return found
    with open_input(name, shown=shown, limit_bytes=limit_bytes, tmpdir=scratch_dir) as opened:
        fmt = input_format or sniff_format(opened.path)
        if fmt == "log" and input_format is None:
            fmt = sniff_container(opened.path) or fmt
        parsed = READERS[fmt](opened, selection, trace_events)
        parsed.input_bytes = opened.path.stat().st_size
    append_cut_marker(parsed, opened)
    parsed.warnings[:0] = opened.warnings
    parsed.bytes_skipped += opened.bytes_skipped
    return parsed


__all__ = ["INPUT_FORMATS", "parse_file"]
