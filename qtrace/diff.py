"""``qtrace diff A B``: two traces, or two batch summaries, side by side.

Both sides are compared as ``qtrace.analyze/1`` documents: a trace is read and analyzed
exactly as ``qtrace analyze`` does (the same events, the same ``Findings``), and an analyze
JSON file is taken as it is, so a trace and its saved report compare equal. Nothing is
recounted here: counts come from the documents' sections, the verdict from their
``verdict``.

Roots of two runs have different addresses (ASLR, a different heap), so roots are matched by
name when both runs have names (``--names``, or names the traces carry), and otherwise by the
order in which each run first built a view of them: QEMU builds its address spaces in the
same order on every run of the same machine, so root #3 of A is root #3 of B.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from qtrace.errors import InputError, UsageError
from qtrace.instances import STATUSES
from qtrace.names import Names, names_beside, read_names
from qtrace.names.render import root_label_expr

BATCH_SCHEMA = "qtrace.batch/1"
ANALYZE_SCHEMA = "qtrace.analyze/1"
# The verdict's numbers that a comparison shows (its checks are the anomaly counts again).
VERDICT_COUNTS = (
    "leaked",
    "lost",
    "anomalies",
    "uncertain",
    "dropped_events",
    "unreadable_places",
    "exit_code",
)


@dataclass(frozen=True)
class Side:
    """One compared input: its name, its document, and for a trace its views (the timeline)."""

    name: str
    kind: str  # "trace" or "summary"
    document: dict[str, Any]
    views: pl.DataFrame | None = None


@dataclass
class DiffResult:
    """The differences between ``a`` and ``b``: tables of (what, A, B) rows."""

    a: str
    b: str
    kind: str
    counts: list[tuple[str, int, int]] = field(default_factory=list)
    statuses: list[tuple[str, int, int]] = field(default_factory=list)
    verdicts: tuple[str, str] = ("", "")
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


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _flat_numbers(prefix: str, value: Any, out: dict[str, int]) -> None:
    number = _number(value)
    if number is not None:
        out[prefix] = number
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key not in ("items", "checks"):
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
    except (UnicodeDecodeError, ValueError, RecursionError):
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
    return Side(path, "trace", to_json(analysis), analysis.views)


def _section(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _counts(a: dict[str, Any], b: dict[str, Any], keys: tuple[str, ...]) -> list[Any]:
    flat_a: dict[str, int] = {}
    flat_b: dict[str, int] = {}
    for key in keys:
        _flat_numbers(key, a.get(key), flat_a)
        _flat_numbers(key, b.get(key), flat_b)
    names = sorted(set(flat_a) | set(flat_b))
    return [(name, flat_a.get(name, 0), flat_b.get(name, 0)) for name in names]


def _verdict_counts(document: dict[str, Any]) -> dict[str, int]:
    verdict = _section(document, "verdict")
    return {f"verdict.{k}": n for k in VERDICT_COUNTS if (n := _number(verdict.get(k))) is not None}


def _ranked_roots(document: dict[str, Any]) -> pl.DataFrame:
    """The document's roots with their rank by first view built, per run, and ``label``: the
    root's name with its alias target (null when unnamed)."""
    items = _section(document, "roots").get("items") or []
    schema = {
        "run": pl.Int64,
        "root": pl.String,
        "first_seq": pl.Int64,
        "instances": pl.Int64,
        "max_concurrent": pl.Int64,
        "name": pl.String,
        "alias_of": pl.String,
    }
    rows = [
        {name: item.get(name) for name in schema}
        for item in items
        if isinstance(item, dict) and isinstance(item.get("root"), str)
    ]
    frame = pl.DataFrame(rows, schema=schema, strict=False)
    return frame.sort("run", "first_seq", "root", nulls_last=True).with_columns(
        rank=pl.int_range(pl.len()).over("run"), label=root_label_expr().cast(pl.String)
    )


def _match_keys(roots: pl.DataFrame, by_name: bool) -> pl.DataFrame:
    """``key`` and ``nth``: what a root is matched on. By name: the name with its alias target,
    and the order among roots of that name; unnamed roots, and all roots without names, by
    the order in which the run first built a view of them."""
    key = pl.col("label") if by_name else pl.lit(None, pl.String)
    return roots.with_columns(key=key).with_columns(
        nth=pl.int_range(pl.len()).over("run", "key", order_by="rank")
    )


def _root_rows(a: Side, b: Side) -> list[dict[str, Any]]:
    ra, rb = _ranked_roots(a.document), _ranked_roots(b.document)
    # Names make the match independent of build order, when both sides have them.
    by_name = bool(ra["label"].is_not_null().any() and rb["label"].is_not_null().any())
    ra, rb = _match_keys(ra, by_name), _match_keys(rb, by_name)
    joined = ra.join(
        rb, on=["run", "key", "nth"], how="full", suffix="_b", coalesce=True, nulls_equal=True
    ).sort("run", "rank", "rank_b", nulls_last=True)
    rows = []
    for row in joined.iter_rows(named=True):  # a few dozen roots: a loop is clearest
        rank = row["rank"] if row["rank"] is not None else row["rank_b"]
        entry = {"run": row["run"], "rank": rank, "root_a": row["root"], "root_b": row["root_b"]}
        entry["name"] = row["label"] or row["label_b"]
        entry["matched_by"] = "name" if row["key"] is not None else "order"
        changed = entry["root_a"] is None or entry["root_b"] is None
        for column in ("instances", "max_concurrent"):
            entry[f"{column}_a"], entry[f"{column}_b"] = row[column], row[f"{column}_b"]
            changed = changed or entry[f"{column}_a"] != entry[f"{column}_b"]
        entry["changed"] = changed
        rows.append(entry)
    return rows


def _statuses(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, int, int]]:
    views_a, views_b = _section(a, "views"), _section(b, "views")
    return [
        (status, _number(views_a.get(status)) or 0, _number(views_b.get(status)) or 0)
        for status in STATUSES
    ]


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

    def rows(document: dict[str, Any]) -> dict[str, Any]:
        records = document.get("artifacts")
        valid = records if isinstance(records, list) else []
        return {
            str(r["artifact"]): row_of(r) for r in valid if isinstance(r, dict) and "artifact" in r
        }

    rows_a, rows_b = rows(a), rows(b)
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
    >>> result = diff("samples/pc-boot-ts.log", "samples/pc-bridges-ts.log")
    >>> result.kind, result.differs
    ('trace', True)
    >>> print(render_text(result).splitlines()[0])
    A: samples/pc-boot-ts.log
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
    verdict_a, verdict_b = _verdict_counts(side_a.document), _verdict_counts(side_b.document)
    result.counts = _counts(side_a.document, side_b.document, keys) + [
        (name, verdict_a.get(name, 0), verdict_b.get(name, 0))
        for name in sorted(set(verdict_a) | set(verdict_b))
    ]
    result.statuses = _statuses(side_a.document, side_b.document)
    result.verdicts = (
        str(_section(side_a.document, "verdict").get("text", "")),
        str(_section(side_b.document, "verdict").get("text", "")),
    )
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
    if any(result.verdicts):
        lines += [f"verdict A: {result.verdicts[0]}", f"verdict B: {result.verdicts[1]}", ""]
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
        "verdicts": {"a": result.verdicts[0], "b": result.verdicts[1]},
        "counts": [{"name": n, "a": va, "b": vb} for n, va, vb in result.counts],
        "statuses": [{"status": n, "a": va, "b": vb} for n, va, vb in result.statuses],
        "roots": result.roots,
        "artifacts": result.artifacts,
    }


def render_html(result: DiffResult) -> str:
    """The self-contained comparison page (``qtrace.dashboards.diff_page``)."""
    from qtrace.dashboards.diff_page import diff_page

    return diff_page(result)


__all__ = ["DiffResult", "diff", "render_html", "render_json", "render_text"]
