"""Input parsers: one module per trace format, each producing the canonical events table.

``parse_file`` opens an input (decompressing by magic bytes), detects its format from
content unless told, and hands it to the format's parser.
"""

from __future__ import annotations

from pathlib import Path

from qtrace.parsers import log_text, simple
from qtrace.parsers.source import append_cut_marker, open_input, sniff_format

from qtrace.errors import UsageError
from qtrace.events import EventSelection, ParsedInput

INPUT_FORMATS = ("log", "simple")


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
        raise UsageError(f"unknown input format {input_format!r} (choose log or simple)")
    with open_input(name, shown=shown, limit_bytes=limit_bytes, tmpdir=scratch_dir) as opened:
        fmt = input_format or sniff_format(opened.path)
        if fmt == "simple":
            parsed = simple.parse(opened, selection, trace_events)
        else:
            parsed = log_text.parse(opened, selection)
        parsed.input_bytes = opened.path.stat().st_size
    append_cut_marker(parsed, opened)
    parsed.warnings[:0] = opened.warnings
    parsed.bytes_skipped += opened.bytes_skipped
    return parsed


__all__ = ["INPUT_FORMATS", "parse_file"]
