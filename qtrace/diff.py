"""``qtrace diff A B``: two traces, or two batch summaries, side by side.

Roots of two runs have different addresses (ASLR, a different heap), so roots are matched by
name when both runs have names (``--names``, or names the traces carry), and otherwise by the
order in which each run first built a view of them: QEMU builds its address spaces in the
same order on every run of the same machine, so root #3 of A is root #3 of B.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from qtrace.errors import InputError, UsageError
from qtrace.export import hex_pointer
from qtrace.names import Names, names_beside, read_names
from qtrace.names.render import root_label_expr

BATCH_SCHEMA = "qtrace.batch/1"
ANALYZE_SCHEMA = "qtrace.analyze/1"


@dataclass(frozen=True)
class Side:
    """One compared input: its name and, for traces, the analysis tables."""

    name: str
    kind: str  # "trace" or "summary"
    document: dict[str, Any]
    views: pl.DataFrame | None = None
    roots: pl.DataFrame | None = None


@dataclass
class DiffResult:
    """The differences between ``a`` and ``b``: tables of (what, A, B) rows."""

    a: str
    b: str
    kind: str
    counts: list[tuple[str, int, int]] = field(default_factory=list)
    statuses: list[tuple[str, int, int]] = field(default_factory=list)
    roots: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    timelines: dict[str, pl.DataFrame] = field(default_factory=dict)
    time_unit: str = "ms"

    @property
    def differs(self) -> bool:
        """Whether anything compared differs."""
        return (
            any(a != b for _, a, b in self.counts + self.statuses)
            or any(row["changed"] for row in self.roots)
            or any(row["changed"] for row in self.artifacts)
        )


def _flat_numbers(prefix: str, value: Any, out: dict[str, int]) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        out[prefix] = int(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key != "items":
                _flat_numbers(f"{prefix}.{key}" if prefix else str(key), inner, out)


def _read_document(path: str) -> dict[str, Any] | None:
    """The JSON document ``path`` holds if it is a qtrace summary or analysis, else None."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    with file.open("rb") as fh:
        head = fh.read(64).lstrip()
    if not head.startswith(b"{"):
        return None
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(document, dict) and document.get("schema") in (BATCH_SCHEMA, ANALYZE_SCHEMA):
        return document
    return None


def _kind(document: dict[str, Any] | None) -> str:
    return "summary" if document is not None and document["schema"] == BATCH_SCHEMA else "trace"


def _load(path: str, document: dict[str, Any] | None, names: Names | None = None) -> Side:
    if document is not None:
        return Side(path, _kind(document), document)
    from qtrace.ingest import read_trace
    from qtrace.model import analyze
    from qtrace.report import to_json

    beside = names_beside(path)  # trace.names beside trace.log, as qtrace record leaves them
    if beside is not None:
        names = read_names(beside) + (names or Names())
    analysis = analyze(read_trace(path), names=names)
    return Side(path, "trace", to_json(analysis), analysis.views, analysis.roots)


def _counts(a: dict[str, Any], b: dict[str, Any], keys: tuple[str, ...]) -> list[Any]:
    flat_a: dict[str, int] = {}
    flat_b: dict[str, int] = {}
    for key in keys:
        _flat_numbers(key, a.get(key), flat_a)
        _flat_numbers(key, b.get(key), flat_b)
    if isinstance(a.get("leaks"), list) or isinstance(b.get("leaks"), list):
        flat_a["leaks"] = len(a.get("leaks") or [])
        flat_b["leaks"] = len(b.get("leaks") or [])
    names = sorted(set(flat_a) | set(flat_b))
    return [(name, flat_a.get(name, 0), flat_b.get(name, 0)) for name in names]


def _ranked_roots(side: Side) -> pl.DataFrame:
    """Roots with their rank by first view built, per run, and their names (``label``)."""
    if side.views is None or side.roots is None:
        items = (side.document.get("roots") or {}).get("items") or []
        frame = pl.DataFrame(items) if items else pl.DataFrame()
        if frame.is_empty() or "root" not in frame.columns:
            return pl.DataFrame(
                schema={"run": pl.Int64, "rank": pl.UInt32, "root": pl.String, "label": pl.String}
            )
        if "run" not in frame.columns:
            frame = frame.with_columns(pl.lit(0).alias("run"))
        return _labelled(frame.with_columns(pl.int_range(pl.len()).over("run").alias("rank")))
    first = side.views.group_by("run", "root").agg(pl.col("new_seq").min().alias("first_seq"))
    roots = side.roots.join(first, on=["run", "root"], how="left").sort("run", "first_seq")
    return _labelled(
        roots.with_columns(
            pl.int_range(pl.len()).over("run").alias("rank"),
            hex_pointer("root")
            if roots.schema["root"].is_integer()
            else pl.col("root").cast(pl.String),
        )
    )


def _labelled(roots: pl.DataFrame) -> pl.DataFrame:
    """``label``: the root's name with its alias target (null when unnamed or no names)."""
    if "name" not in roots.columns:
        return roots.with_columns(label=pl.lit(None, pl.String))
    if "alias_of" not in roots.columns:
        roots = roots.with_columns(alias_of=pl.lit(None, pl.String))
    return roots.with_columns(label=root_label_expr().cast(pl.String))


def _match_keys(roots: pl.DataFrame, by_name: bool) -> pl.DataFrame:
    """``key`` and ``nth``: what a root is matched on. By name: the name with its alias target,
    and the order among roots of that name; unnamed roots, and all roots without names, by
    the order in which the run first built a view of them."""
    key = pl.col("label") if by_name else pl.lit(None, pl.String)
    return roots.with_columns(key=key).with_columns(
        nth=pl.int_range(pl.len()).over("run", "key", order_by="rank")
    )


def _root_rows(a: Side, b: Side) -> list[dict[str, Any]]:
    ra, rb = _ranked_roots(a), _ranked_roots(b)
    # Names make the match independent of build order, when both sides have them.
    by_name = bool(ra["label"].is_not_null().any() and rb["label"].is_not_null().any())
    ra, rb = _match_keys(ra, by_name), _match_keys(rb, by_name)
    joined = ra.join(
        rb, on=["run", "key", "nth"], how="full", suffix="_b", coalesce=True, nulls_equal=True
    ).sort("run", "rank", "rank_b", nulls_last=True)
    rows = []
    for row in joined.iter_rows(named=True):  # a few dozen roots: a loop is clearest
        rank = row["rank"] if row.get("rank") is not None else row.get("rank_b")
        entry = {"run": row["run"], "rank": rank, "root_a": row.get("root")}
        entry["root_b"] = row.get("root_b")
        entry["name"] = row.get("label") or row.get("label_b")
        entry["matched_by"] = "name" if row.get("key") is not None else "order"
        changed = entry["root_a"] is None or entry["root_b"] is None
        for column in ("instances", "max_concurrent"):
            entry[f"{column}_a"], entry[f"{column}_b"] = row.get(column), row.get(f"{column}_b")
            changed = changed or entry[f"{column}_a"] != entry[f"{column}_b"]
        entry["changed"] = changed
        rows.append(entry)
    return rows


def _statuses(a: Side, b: Side) -> list[tuple[str, int, int]]:
    def counts(side: Side) -> dict[str, int]:
        if side.views is not None:
            table = side.views.group_by("status").len()
            return dict(zip(table["status"].to_list(), table["len"].to_list(), strict=True))
        views = side.document.get("views") or {}
        by_status = views.get("by_status") or views.get("statuses") or {}
        return {str(k): int(v) for k, v in by_status.items()}

    ca, cb = counts(a), counts(b)
    return [(s, ca.get(s, 0), cb.get(s, 0)) for s in sorted(set(ca) | set(cb))]


def _timeline(views: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """Views alive over time since the run's first view (event order when no clock)."""
    clock = views["new_ts_ns"].null_count() < views.height
    start = pl.col("new_ts_ns") if clock else pl.col("new_seq")
    scale = 1e6 if clock else 1.0
    steps = pl.concat(
        [
            views.select(start.alias("at"), pl.lit(1).alias("delta")),
            views.filter(pl.col("live_ns").is_not_null() if clock else pl.lit(False)).select(
                (pl.col("new_ts_ns") + pl.col("live_ns")).alias("at"), pl.lit(-1).alias("delta")
            ),
        ]
    ).drop_nulls("at")
    origin = steps["at"].min() if steps.height else 0
    timeline = steps.sort("at").select(
        ((pl.col("at") - origin) / scale).alias("t"),
        pl.col("delta").cum_sum().alias("live_views"),
    )
    return timeline, "ms" if clock else "view number"


def _artifact_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    from qtrace.batch.summary import row_of

    rows_a = {str(r["artifact"]): row_of(r) for r in a.get("artifacts", [])}
    rows_b = {str(r["artifact"]): row_of(r) for r in b.get("artifacts", [])}
    out = []
    for name in sorted(set(rows_a) | set(rows_b)):
        ra, rb = rows_a.get(name), rows_b.get(name)
        entry: dict[str, Any] = {"artifact": name}
        for column in ("status", "leaks", "anomalies", "events", "max_concurrent_views"):
            entry[f"{column}_a"] = getattr(ra, column) if ra else None
            entry[f"{column}_b"] = getattr(rb, column) if rb else None
        entry["changed"] = any(
            entry[f"{c}_a"] != entry[f"{c}_b"] for c in ("status", "leaks", "anomalies")
        )
        out.append(entry)
    return out


def diff(a: str, b: str, *, names: Names | None = None) -> DiffResult:
    """Compare two traces (or analyze JSON documents), or two batch ``summary.json`` files.

    Roots are matched by name (and alias target, and order among equals) when both sides
    have names, else by the order in which each run first built a view of them. A trace's
    names come from ``names`` (applied to both), from the names file beside it
    (``trace.names`` beside ``trace.log``), from the events it carries, or, for an analyze
    JSON document, from its ``roots.items``.

    Examples
    --------
    >>> result = diff("before.log", "after.log")  # doctest: +SKIP
    >>> print(render_text(result))  # doctest: +SKIP
    """
    doc_a, doc_b = _read_document(a), _read_document(b)
    if _kind(doc_a) != _kind(doc_b):
        raise UsageError(f"cannot compare a {_kind(doc_a)} ({a}) with a {_kind(doc_b)} ({b})")
    side_a, side_b = _load(a, doc_a, names), _load(b, doc_b, names)
    result = DiffResult(a, b, side_a.kind)
    if side_a.kind == "summary":
        result.counts = _counts(side_a.document, side_b.document, ("totals",))
        result.artifacts = _artifact_rows(side_a.document, side_b.document)
        return result
    keys = ("events", "views", "roots", "anomalies")
    result.counts = _counts(side_a.document, side_b.document, keys)
    result.statuses = _statuses(side_a, side_b)
    result.roots = _root_rows(side_a, side_b)
    for label, side in (("A", side_a), ("B", side_b)):
        if side.views is not None and side.views.height:
            result.timelines[label], result.time_unit = _timeline(side.views)
    return result


def _mark(a: Any, b: Any) -> str:
    return " " if a == b else "*"


def render_text(result: DiffResult) -> str:
    """A plain-text side-by-side report; ``*`` marks what differs."""
    lines = [f"A: {result.a}", f"B: {result.b}", ""]
    width = max([len(n) for n, _, _ in result.counts + result.statuses] + [10])
    lines.append(f"  {'':{width}}  {'A':>10}  {'B':>10}")
    for name, va, vb in result.counts:
        lines.append(f"{_mark(va, vb)} {name:{width}}  {va:>10}  {vb:>10}")
    if result.statuses:
        lines += ["", "view statuses:"]
        for name, va, vb in result.statuses:
            lines.append(f"{_mark(va, vb)} {name:{width}}  {va:>10}  {vb:>10}")
    if result.roots:
        matched = "by name" if any(r["matched_by"] == "name" for r in result.roots) else ""
        lines += [
            "",
            f"roots {matched or 'by first use'} (A root / B root: instances A B, max "
            "concurrent A B):",
        ]
        for row in result.roots:
            name = f" {row['name']}" if row["name"] else ""
            lines.append(
                f"{'*' if row['changed'] else ' '} run {row['run']} #{row['rank']:<3}{name} "
                f"{row['root_a']} / {row['root_b']}: instances {row['instances_a']} "
                f"{row['instances_b']}, max concurrent {row['max_concurrent_a']} "
                f"{row['max_concurrent_b']}"
            )
    if result.artifacts:
        lines += ["", "artifacts (status, leaks, anomalies in A -> B):"]
        for row in result.artifacts:
            lines.append(
                f"{'*' if row['changed'] else ' '} {row['artifact']}: {row['status_a']} -> "
                f"{row['status_b']}, leaks {row['leaks_a']} -> {row['leaks_b']}, anomalies "
                f"{row['anomalies_a']} -> {row['anomalies_b']}"
            )
    lines += ["", "differences found" if result.differs else "no differences"]
    return "\n".join(lines) + "\n"


def render_json(result: DiffResult) -> dict[str, Any]:
    """The comparison as a JSON-ready document (schema ``qtrace.diff/1``)."""
    return {
        "schema": "qtrace.diff/1",
        "a": result.a,
        "b": result.b,
        "kind": result.kind,
        "differs": result.differs,
        "counts": [{"name": n, "a": va, "b": vb} for n, va, vb in result.counts],
        "statuses": [{"status": n, "a": va, "b": vb} for n, va, vb in result.statuses],
        "roots": result.roots,
        "artifacts": result.artifacts,
    }


def _html_table(headers: list[str], rows: list[tuple[bool, list[Any]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{"changed" if changed else ""}">'
        + "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in cells)
        + "</tr>"
        for changed, cells in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(result: DiffResult) -> str:
    """A self-contained page: the tables with differences highlighted, both runs on one axis."""
    import plotly.graph_objects as go

    sections = [
        "<h2>Counts</h2>",
        _html_table(["", "A", "B"], [(va != vb, [n, va, vb]) for n, va, vb in result.counts]),
    ]
    if result.statuses:
        sections += [
            "<h2>View statuses</h2>",
            _html_table(
                ["status", "A", "B"], [(va != vb, [n, va, vb]) for n, va, vb in result.statuses]
            ),
        ]
    if result.roots:
        columns = ["run", "rank", "name", "root_a", "root_b", "instances_a", "instances_b"]
        columns += ["max_concurrent_a", "max_concurrent_b"]
        by_name = any(r["matched_by"] == "name" for r in result.roots)
        sections += [
            f"<h2>Roots, matched by {'name' if by_name else 'first use'}</h2>",
            _html_table(columns, [(r["changed"], [r[c] for c in columns]) for r in result.roots]),
        ]
    if result.artifacts:
        columns = ["artifact", "status_a", "status_b", "leaks_a", "leaks_b"]
        columns += ["anomalies_a", "anomalies_b"]
        sections += [
            "<h2>Artifacts</h2>",
            _html_table(
                columns, [(r["changed"], [r[c] for c in columns]) for r in result.artifacts]
            ),
        ]
    figure_html = ""
    if result.timelines:
        figure = go.Figure()
        for label, timeline in result.timelines.items():
            name = result.a if label == "A" else result.b
            figure.add_trace(
                go.Scatter(
                    x=timeline["t"].to_list(),
                    y=timeline["live_views"].to_list(),
                    mode="lines",
                    line_shape="hv",
                    name=f"{label}: {name}",
                )
            )
        figure.update_layout(
            title="Views alive (not yet destroy_rcu), both runs from their first view",
            xaxis_title=f"since first view ({result.time_unit})",
            yaxis_title="live views",
        )
        figure_html = figure.to_html(full_html=False, include_plotlyjs=True)
    title = f"qtrace diff: {html.escape(result.a)} vs {html.escape(result.b)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; }}
tr.changed td {{ background: #fff0c2; font-weight: 600; }}</style></head>
<body><h1>{title}</h1>
<p>A: {html.escape(result.a)}<br>B: {html.escape(result.b)}</p>
<p>{"Highlighted rows differ." if result.differs else "No differences."}</p>
{"".join(sections)}
{figure_html}
</body></html>
"""
