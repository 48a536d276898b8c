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

from qtrace.parsers import ctf, journald, log_text, simple, testlog
from qtrace.parsers.json_lines import sniff_container
from qtrace.parsers.source import OpenedInput, open_input, sniff_format

from qtrace.errors import UsageError
from qtrace.events import EventSelection, ParsedInput

Reader = Callable[[OpenedInput, EventSelection, Path | None], ParsedInput]
# Every input format and its reader (only the simple backend needs trace-events-all).
READERS: dict[str, Reader] = {
    "log": lambda opened, selection, _: log_text.parse(opened, selection),
    "simple": simple.parse,
    "journald": lambda opened, selection, _: journald.parse(opened, selection),
    "testlog": lambda opened, selection, _: testlog.parse(opened, selection),
}
INPUT_FORMATS = tuple(READERS)


def parse_file(
    name: str,
    *,
    selection: EventSelection,
    input_format: str | None = None,
    trace_events: Path | None = None,
) -> ParsedInput:
    """Read one input file (or '-' for standard input) into a ``ParsedInput``."""
    if input_format is not None and input_format not in INPUT_FORMATS:
        raise UsageError(
            f"unknown input format {input_format!r} (choose {', '.join(INPUT_FORMATS)})"
        )
    if input_format is None and ctf.is_ctf_dir(Path(name)):  # an LTTng session's directory
        found = ctf.parse(Path(name), name, selection)
        found.input_bytes = sum(f.stat().st_size for f in Path(name).rglob("*") if f.is_file())
        return found
    with open_input(name) as opened:
        fmt = input_format or sniff_format(opened.path)
        if fmt == "log" and input_format is None:
            fmt = sniff_container(opened.path) or fmt
        parsed = READERS[fmt](opened, selection, trace_events)
        parsed.input_bytes = opened.path.stat().st_size
    parsed.warnings[:0] = opened.warnings
    parsed.bytes_skipped += opened.bytes_skipped
    return parsed


__all__ = ["INPUT_FORMATS", "parse_file"]
