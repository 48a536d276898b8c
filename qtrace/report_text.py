"""Human renderings of an analysis: rich tables for a terminal, Markdown for a bug report.

Both start with the verdict (the ``Findings`` line, never recounted here) and truncate long
lists with a count of what was left out.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from qtrace.findings import Findings
from qtrace.formatting import duration, escape_control, escape_markdown, hex_pointer
from qtrace.model import Analysis
from qtrace.names.render import root_label

MAX_ROWS = 20
# "root" may hold a name under its pointer: it wraps at blanks, never inside the pointer.
FOLDED_COLUMNS = {"detail", "where", "root"}
# Columns left out when no row has a value (no names known; finalizes have no view).
OPTIONAL_COLUMNS = {"name", "view", "gen"}


def _summary(analysis: Analysis, found: Findings) -> str:
    statuses = found.statuses
    parts = ", ".join(f"{n} {s}" for s, n in statuses.items() if n)
    release = "" if analysis.root_release == "destroy" else ", roots released at destroy_rcu"
    traced = "" if analysis.destroy_traced else ", flatview_destroy not traced"
    window = analysis.window
    scope = "" if window is None else f", window seq {window.begin_seq}..{window.end_seq}"
    return (
        f"runs: {analysis.runs}, views: {sum(statuses.values())} ({parts or 'none'}), "
        f"roots: {analysis.roots.height}{release}{traced}{scope}"
    )


def _when(ts_ns: int | None, start_ns: int | None) -> str:
    """A timestamp as seconds since the first view of the trace."""
    if ts_ns is None or start_ns is None:
        return ""
    return f"+{(ts_ns - start_ns) / 1e9:.6f}s"


def _where(row: dict[str, Any]) -> str:
    source = escape_control(row.get("source") or "")
    if row.get("line") is not None:
        return f"{source}:{row['line']}"
    if row.get("offset") is not None:
        return f"{source}@{row['offset']}"
    return source


def _run_rows(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    """One row per QEMU run (process, source), when the input holds more than one."""
    header = ["run", "pid", "source", "flatview events", "first seq", "loss points"]
    if analysis.has_clock:
        header += ["length", "clock back"]
    rows = []
    # Durations formatted over the whole column: one polars call, not one per cell.
    length = (pl.col("last_ts_ns") - pl.col("first_ts_ns")).clip(lower_bound=0)
    runs = analysis.run_table.sort("run").with_columns(duration(length).alias("length"))
    for r in runs.to_dicts():
        row = [
            str(r["run"]),
            "" if r["pid"] is None else str(r["pid"]),
            escape_control(r["label"] or ""),
            str(r["flatview_events"]),
            str(r["first_seq"]),
            str(r["loss_points"]),
        ]
        if analysis.has_clock:
            row += [r["length"] or "", str(r["clock_steps_back"])]
        rows.append(row)
    return header, rows


def _root_rows(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    # Short headers keep a root's row on one 80-column line; --format json has the long names.
    header = ["run", "root", "name", "views", "peak", "at end", "spans"]
    if analysis.has_clock:
        header += ["pinned", "pend-only"]
    rows = []
    roots = analysis.roots.sort(["run", "root"]).rechunk()
    spans = [duration(pl.col(c)).alias(c) for c in ("pinned_ns", "pending_only_ns")]
    for r in roots.with_columns(hex_pointer("root"), *spans).to_dicts():
        row = [
            str(r["run"]),
            r["root"] or "",
            root_label(r["name"], r["alias_of"]),
            str(r["instances"]),
            str(r["max_concurrent"]),
            "yes" if r["pinned_at_end"] else "no",
            str(r["intervals"]),
        ]
        if analysis.has_clock:
            row += [r["pinned_ns"] or "", r["pending_only_ns"] or ""]
        rows.append(row)
    return header, rows


def _leak_rows(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    start = analysis.start_ts_ns
    header = ["run", "view", "gen", "root", "name", "status", "seq", "at", "where", "uncertain"]
    leaks = analysis.flagged_views.rechunk().with_columns(hex_pointer("view"), hex_pointer("root"))
    rows = [
        [
            str(v["run"]),
            v["view"] or "",
            str(v["generation"]),
            v["root"] or "",
            root_label(v["root_name"], v["root_alias_of"]),
            v["status"],
            str(v["new_seq"]),
            _when(v["new_ts_ns"], start),
            _where(v),
            "yes" if v["uncertain"] else "",
        ]
        for v in leaks.to_dicts()
    ]
    return header, rows


def _anomaly_rows(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    start = analysis.start_ts_ns
    header = ["run", "kind", "seq", "at", "view", "gen", "root", "name", "where", "uncertain"]
    header.append("detail")
    rows = [
        [
            str(a["run"]),
            # A finalize hazard says what pinned the root: live or rcu_pending.
            a["kind"] + (f"\npinned by {a['pinned_by']}" if a["pinned_by"] else ""),
            str(a["seq"]),
            _when(a["ts_ns"], start),
            a["view"] or "",
            "" if a["generation"] is None else str(a["generation"]),
            a["root"] or "",
            root_label(a["root_name"], a["root_alias_of"]),
            _where(a),
            "yes" if a["uncertain"] else "",
            a["detail"],
        ]
        for a in analysis.anomalies.sort(["run", "seq", "kind"])
        .rechunk()
        .with_columns(hex_pointer("view"), hex_pointer("root"))
        .to_dicts()
    ]
    return header, rows


def _drop_quiet_columns(
    analysis: Analysis, header: list[str], rows: list[list[str]]
) -> tuple[list[str], list[list[str]]]:
    """Leave out columns that say nothing in this trace, so the rest fits a terminal."""
    quiet = set()
    if analysis.runs <= 1:
        quiet.add("run")
    if not analysis.dropped_events:
        quiet.add("uncertain")
    keep = [i for i, name in enumerate(header) if name not in quiet]
    return _drop_empty_optional([header[i] for i in keep], [[row[i] for i in keep] for row in rows])


def _drop_empty_optional(
    header: list[str], rows: list[list[str]]
) -> tuple[list[str], list[list[str]]]:
    """Leave out the optional columns (names) no row fills."""
    empty = {i for i, name in enumerate(header) if name in OPTIONAL_COLUMNS}
    empty = {i for i in empty if not any(row[i] for row in rows)}
    keep = [i for i in range(len(header)) if i not in empty]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


def _names_under_roots(
    header: list[str], rows: list[list[str]]
) -> tuple[list[str], list[list[str]]]:
    """For a terminal: a root's name goes under its pointer, in the same cell, instead of a
    column of its own, so that a named table still fits 80 columns."""
    if "name" not in header or "root" not in header:
        return header, rows
    root, name = header.index("root"), header.index("name")
    merged = []
    for row in rows:
        cells = list(row)
        if cells[name]:
            cells[root] = f"{cells[root]}\n{cells[name]}"
        merged.append(cells[:name] + cells[name + 1 :])
    return header[:name] + header[name + 1 :], merged


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    # A light frame and unbroken cells (headers may wrap): 80 columns still show whole hex.
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in header:
        if name == "root":  # a whole pointer per line; a name under it wraps at blanks
            table.add_column(name, overflow="fold", min_width=len("0x563e2d2198b0"))
        elif name in FOLDED_COLUMNS:
            table.add_column(name, overflow="fold")
        else:
            table.add_column(name, no_wrap=True)
    for row in rows[:MAX_ROWS]:
        table.add_row(*(Text(cell) for cell in row))  # cells are text, not markup
    if len(rows) > MAX_ROWS:
        table.caption = f"... and {len(rows) - MAX_ROWS} more"
    return table


def render_text(analysis: Analysis, console: Console, findings: Findings | None = None) -> None:
    """Print the verdict, then tables of roots, leaks and anomalies, truncated.

    ``findings``: the verdict to print (default: ``Findings.of(analysis)``).

    Examples
    --------
    >>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")
    >>> render_text(qtrace.analyze(trace), Console(width=100))  # doctest: +ELLIPSIS
    leaks: 0, anomalies: 0
    runs: 1, views: 257 (253 freed, 1 immortal, 3 current), roots: 3
    ...
    """
    found = findings if findings is not None else Findings.of(analysis)
    console.print(found.line, markup=False, highlight=False)
    console.print(_summary(analysis, found), markup=False, highlight=False)
    if analysis.runs > 1:
        console.print(_rich_table("Runs", *_run_rows(analysis)))
    header, rows = _names_under_roots(*_drop_quiet_columns(analysis, *_root_rows(analysis)))
    if rows:
        console.print(_rich_table("Roots", header, rows))
    header, rows = _names_under_roots(*_drop_quiet_columns(analysis, *_leak_rows(analysis)))
    if rows:
        console.print(_rich_table("Leaked and lost views", header, rows))
    counts = {k: n for k, n in found.anomalies.items() if n}
    if counts:
        console.print(
            _rich_table("Anomalies", ["kind", "count"], [[k, str(n)] for k, n in counts.items()])
        )
        header, rows = _names_under_roots(*_drop_quiet_columns(analysis, *_anomaly_rows(analysis)))
        console.print(_rich_table("Anomaly events", header, rows))


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"\n... and {len(rows) - MAX_ROWS} more")
    return lines


def render_markdown(analysis: Analysis, findings: Findings | None = None) -> str:
    """The report as Markdown, for pasting into a bug report.

    Every cell and name is escaped (``escape_markdown``): file names and trace text are
    hostile until escaped.

    Examples
    --------
    >>> trace = qtrace.read_trace("samples/pc-boot.simpletrace")
    >>> render_markdown(qtrace.analyze(trace)).splitlines()[:3]
    ['# qtrace analyze', '', '**leaks: 0, anomalies: 0**']
    """
    found = findings if findings is not None else Findings.of(analysis)
    lines = ["# qtrace analyze", "", f"**{escape_markdown(found.line)}**", ""]
    lines += [escape_markdown(_summary(analysis, found)), ""]
    if analysis.trace is not None:
        shown = ", ".join(escape_markdown(p) for p in analysis.trace.paths)
        lines += [f"Input: {shown} ({escape_markdown(analysis.trace.dialect)})", ""]
    sections = [("Roots", _root_rows(analysis)), ("Leaked and lost views", _leak_rows(analysis))]
    if analysis.runs > 1:
        sections.insert(0, ("Runs", _run_rows(analysis)))
    counts = found.anomalies
    sections.append(("Anomalies", (["kind", "count"], [[k, str(n)] for k, n in counts.items()])))
    sections.append(("Anomaly events", _anomaly_rows(analysis)))
    for title, (header, rows) in sections:
        lines += [f"## {title}", ""]
        lines += _md_table(*_drop_empty_optional(header, rows)) if rows else ["none"]
        lines.append("")
    return "\n".join(lines)
