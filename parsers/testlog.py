"""Read meson's ``testlog.json``: the trace lines in each test's captured output.

``meson test`` writes one JSON object per test to ``meson-logs/testlog.json``, with its
``name``, ``result``, ``command`` and the test's ``stdout`` and ``stderr`` (meson merges
stderr into stdout for some protocols). A qtest run with ``QTEST_TRACE='flatview_*'`` makes
every QEMU it starts write its ``log``-backend lines to its stderr, so each test's output
holds the runs of its QEMU processes, in any dialect the log reader knows.

Each test's output is read by the log reader (``log_text``). Its events get ``source``
``<file>!<test name>`` (the batch's archive-member separator), so reports label the runs by
their test; ``line`` is the line *within that test's output* (its stdout or stderr), not in
the JSON file, where a whole test is one line. When both streams of a test hold trace lines
they are told apart as ``<file>!<test name> [stdout]`` and ``... [stderr]``; a name meson
ran more than once (``--repeat``) gets ``#2``, ``#3``. Lines that are not JSON objects are
skipped and counted (a cut last line loses that test's output), as are tests without trace
lines.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
from qtrace.parsers import log_text
from qtrace.parsers.json_lines import TESTLOG
from qtrace.parsers.source import OpenedInput

from qtrace.errors import InputError
from qtrace.events import COLUMNS, EventSelection, ParsedInput, conform, summarise

MEMBER_SEPARATOR = "!"  # as qtrace.batch.artifact.ARCHIVE_SEPARATOR
STREAMS = ("stdout", "stderr")


def _read_stream(name: str, text: str, selection: EventSelection) -> ParsedInput | None:
    """One test stream through the log reader; None when it holds no trace line."""
    fd, tmp = tempfile.mkstemp(prefix="qtrace-testlog-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8", errors="replace"))
        try:
            return log_text.parse(OpenedInput(name, Path(tmp)), selection)
        except InputError:
            return None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _tests(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
    """(line, test object) for each test, and the lines that are not JSON test objects.

    One test is in memory at a time while its output is read; the objects kept hold only
    what the caller reads next.
    """
    tests: list[tuple[int, dict[str, Any]]] = []
    bad: list[int] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                bad.append(number)
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                bad.append(number)
                continue
            tests.append((number, entry))
    return tests, bad


def parse(opened: OpenedInput, selection: EventSelection) -> ParsedInput:
    """Read a meson ``testlog.json`` into the events table, test by test.

    Parameters
    ----------
    opened
        The file as a plain local file (decompressed by ``qtrace.parsers.source``).
    selection
        Which events to keep.

    Returns
    -------
    ParsedInput
        Events test by test in file order (stdout before stderr), ``source``
        ``<file>!<test name>``, ``line`` the line within the test's output, ``format``
        ``"testlog"`` and ``dialect`` the outputs' log dialect.

    Raises
    ------
    InputError
        When no test's output holds a QEMU trace line.

    Examples
    --------
    >>> import tempfile
    >>> test = {"name": "qtest-x86_64/boot", "result": "OK", "stdout": "",
    ...         "stderr": "flatview_new 0x1 (root (nil))"}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "testlog.json"
    ...     _ = path.write_text(json.dumps(test))
    ...     events = parse(OpenedInput("testlog.json", path), EventSelection()).events
    >>> events["source"].cast(pl.String).to_list()
    ['testlog.json!qtest-x86_64/boot']
    """
    tests, bad = _tests(opened.path)
    seen: Counter[str] = Counter()
    parts: list[ParsedInput] = []
    lines_skipped = len(bad)
    for _, entry in tests:
        name = entry["name"]
        seen[name] += 1
        label = name if seen[name] == 1 else f"{name}#{seen[name]}"
        source = f"{opened.name}{MEMBER_SEPARATOR}{label}"
        found: list[tuple[str, ParsedInput]] = []
        for stream in STREAMS:
            text = entry.get(stream)
            if not isinstance(text, str) or not text:
                continue
            parsed = _read_stream(source, text, selection)
            if parsed is None:
                lines_skipped += text.count("\n") + (not text.endswith("\n"))
            else:
                found.append((stream, parsed))
        for stream, parsed in found:
            if len(found) > 1:  # both streams traced: keep their line numbers apart
                parsed.events = parsed.events.with_columns(
                    source=pl.lit(f"{source} [{stream}]", pl.Categorical)
                )
            parts.append(parsed)
    if not parts:
        raise InputError(f"{opened.name}: a meson testlog with no QEMU trace lines in any test")
    warnings = [w for part in parts for w in part.warnings]
    if bad:
        warnings.append(
            f"{opened.name}: {len(bad)} lines are not JSON test objects (cut or garbled?); "
            f"skipped with their output, first at line {bad[0]}"
        )
    events = pl.concat([part.events.select(COLUMNS) for part in parts], how="vertical")
    events = conform(events.drop("seq").with_row_index("seq"))
    return ParsedInput(
        events=events,
        format=TESTLOG,
        dialect=summarise([part.dialect for part in parts]),
        clock=summarise([part.clock for part in parts]),
        lines_skipped=lines_skipped + sum(part.lines_skipped for part in parts),
        warnings=warnings,
    )


__all__ = ["parse"]
