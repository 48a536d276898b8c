"""The ``qtrace.analyze/1`` JSON document.

Reports read the model's tables and the one ``Findings`` value (findings.py); they count
nothing themselves. This module is the report API: the text and Markdown renderings
(report_text.py) are re-exported here.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from qtrace.findings import Findings
from qtrace.formatting import hex_pointer
from qtrace.model import Analysis
from qtrace.names.render import name_sources
from qtrace.report_text import render_markdown, render_text

SCHEMA = "qtrace.analyze/1"

LEAK_FIELDS = [
    "run",
    "view",
    "generation",
    "root",
    "status",
    "new_seq",
    "new_ts_ns",
    "source",
    "line",
    "offset",
    "uncertain",
    "root_name",
    "root_alias_of",
]
ANOMALY_FIELDS = [
    "run",
    "kind",
    "seq",
    "ts_ns",
    "view",
    "root",
    "generation",
    "uncertain",
    "source",
    "line",
    "offset",
    "detail",
    "root_name",
    "root_alias_of",
    "pinned_by",
]
RUN_FIELDS = [
    "run",
    "pid",
    "label",
    "first_seq",
    "last_seq",
    "first_ts_ns",
    "last_ts_ns",
    "flatview_events",
    "loss_points",
    "clock_steps_back",
]
ROOT_FIELDS = [
    "run",
    "root",
    "instances",
    "max_concurrent",
    "pinned_at_end",
    "leaked",
    "intervals",
    "first_seq",
    "last_seq",
    "pinned_ns",
    "pending_only_windows",
    "pending_only_ns",
    "name",
    "alias_of",
    "alias_root",
    "name_source",
]
POINTER_FIELDS = ("view", "root", "alias_root")


def _items(frame: pl.DataFrame, fields: list[str]) -> list[dict[str, Any]]:
    """Rows as JSON objects, pointers in hex. Callers sort the frame first."""
    pointers = [hex_pointer(name) for name in POINTER_FIELDS if name in fields]
    return frame.select(fields).rechunk().with_columns(pointers).to_dicts()


def _source(analysis: Analysis) -> dict[str, Any]:
    trace = analysis.trace
    if trace is not None:
        paths, fmt, dialect, clock = trace.paths, trace.format, trace.dialect, trace.clock
        lines_skipped, bytes_skipped = trace.lines_skipped, trace.bytes_skipped
    else:
        sources = analysis.run_table["label"].drop_nulls().unique().sort().to_list()
        paths, fmt, dialect = sources, None, None
        clock = "ns" if analysis.has_clock else "none"
        lines_skipped = bytes_skipped = 0
    return {
        "paths": list(paths),
        "format": fmt,
        "dialect": dialect,
        "clock": clock,
        "lines_skipped": lines_skipped,
        "bytes_skipped": bytes_skipped,
        "dropped_events": analysis.dropped_events,
        "destroy_traced": analysis.destroy_traced,
    }


def to_json(analysis: Analysis, findings: Findings | None = None) -> dict[str, Any]:
    """The ``qtrace.analyze/1`` document as a dict (schema in docs/model.md).

    ``findings``: the verdict to report (default: ``Findings.of(analysis)``, the default
    ``--fail-on`` policy).

    Examples
    --------
    >>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")
    >>> document = to_json(qtrace.analyze(trace))
    >>> document["schema"], document["verdict"]["text"]
    ('qtrace.analyze/1', 'leaks: 0, anomalies: 0')
    """
    found = findings if findings is not None else Findings.of(analysis)
    statuses = found.statuses
    # Generation 0 exists once per pointer and run; generation 1 once per reused pointer.
    generations = analysis.pointer_reuse
    roots = analysis.roots.sort(["run", "root"])
    leaks = analysis.flagged_views
    anomalies = analysis.anomalies.sort(["run", "seq", "kind", "view"], nulls_last=True)
    window = analysis.window
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "runs": analysis.runs,
        "run_items": _items(analysis.run_table.sort("run"), RUN_FIELDS),
        "root_release": analysis.root_release,
        "window": None
        if window is None
        else {
            "unit": window.unit,
            "begin": window.begin,
            "end": window.end,
            "begin_seq": window.begin_seq,
            "end_seq": window.end_seq,
        },
        "source": _source(analysis),
        "events": dict(analysis.event_counts),
        "views": {
            "instances": sum(statuses.values()),
            **statuses,
            "distinct_pointers": int(generations[0]),
            "reused_pointers": int(generations[1]),
            "uncertain": analysis.uncertain_views,
        },
        "roots": {
            "distinct": roots.height,
            "max_concurrent_views": int(
                roots.select(pl.col("max_concurrent").max().fill_null(0)).item()
            ),
            "items": _items(roots, ROOT_FIELDS),
        },
        "names": name_sources(roots),
        "overlaps": analysis.overlap_summary,
        "anomalies": dict(found.anomalies),
        "anomaly_items": _items(anomalies, ANOMALY_FIELDS),
        "leaks": _items(leaks, LEAK_FIELDS),
        "verdict": found.to_json(),
    }
    if analysis.has_clock:
        document["durations"] = analysis.duration_stats
    return document


# The long lists of flat rows in the document, by their keys from the top.
ROW_LISTS = (("anomaly_items",), ("leaks",), ("roots", "items"), ("run_items",))


def _rows_json(rows: list[dict[str, Any]], depth: int) -> str:
    """``json.dumps(rows, sort_keys=True, indent=2)`` as it reads ``depth`` levels down.

    Python's indenting encoder is pure Python (half a second on 40k roots); the C encoder
    indents too when the separators carry the newlines. Rows are flat and a JSON string
    holds no raw newline, so the only ``},`` + newline are the ends of rows.
    """
    if not rows:
        return "[]"
    outer = "\n" + "  " * depth
    item, field = outer + "  ", outer + "    "
    text = json.dumps(rows, sort_keys=True, separators=("," + field, ": "))
    text = text.replace("}," + field + "{", item + "}," + item + "{" + field)
    return "[" + item + "{" + field + text[2:-2] + item + "}" + outer + "]"


def render_json(analysis: Analysis, findings: Findings | None = None) -> str:
    """The JSON report: sorted keys and rows, so the same input gives the same bytes.

    Examples
    --------
    >>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")
    >>> render_json(qtrace.analyze(trace)).splitlines()[:3]
    ['{', '  "anomalies": {', '    "destroy_without_rcu": 0,']
    """
    document = to_json(analysis, findings)
    rendered = {}
    for path in ROW_LISTS:
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        # A placeholder no report string starts with; replaced by the rows rendered apart.
        marker = "\0" + ".".join(path)
        rendered[json.dumps(marker)] = _rows_json(parent[path[-1]], len(path))
        parent[path[-1]] = marker
    text = json.dumps(document, sort_keys=True, indent=2)
    for marker, rows in rendered.items():
        text = text.replace(marker, rows, 1)
    return text + "\n"


__all__ = [
    "SCHEMA",
    "render_json",
    "render_markdown",
    "render_text",
    "to_json",
]
