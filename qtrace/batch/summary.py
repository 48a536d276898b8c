"""The batch summary document (``qtrace.batch/1``) and the flat per-artifact row read from it.

The summary is what later runs read back (``--baseline``, ``qtrace diff``), so the flat row
is derived from a summary record only, never from in-memory analysis objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qtrace.batch.gating import counts_of
from qtrace.findings import LEAKED, READABLE

SCHEMA = "qtrace.batch/1"

STATUS_CLEAN = "clean"
STATUS_FINDINGS = "findings"
STATUS_UNREADABLE = "unreadable"


def _count(value: Any, *keys: str) -> int:
    """A count that the analyze document gives as a number or as an object holding one."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, dict):
        for key in keys:
            if isinstance(value.get(key), int | float):
                return int(value[key])
    return 0


@dataclass(frozen=True)
class Row:
    """One artifact as the fleet table, the Markdown table and the junit suite show it."""

    artifact: str
    status: str
    error: str | None
    events: int
    views: int
    leaks: int
    anomalies: int
    max_concurrent_views: int
    duration_s: float | None
    dashboard: str | None
    seconds: float = 0.0  # time qtrace spent on the artifact


def row_of(record: dict[str, Any]) -> Row:
    """The flat row of one summary record.

    Its counts are the record's check counts (``findings``, written once from
    ``qtrace.findings.Findings``): an artifact without FlatView events is unreadable, one
    with any finding has findings.
    """
    checks = counts_of(record)
    leaks = checks[LEAKED]
    anomaly_total = sum(n for name, n in checks.items() if name not in (READABLE, LEAKED))
    if checks[READABLE]:
        status = STATUS_UNREADABLE
    elif leaks or anomaly_total:
        status = STATUS_FINDINGS
    else:
        status = STATUS_CLEAN
    events = record.get("events") or {}
    duration_ns = record.get("duration_ns")
    verdict = record.get("verdict")
    notes = verdict.get("notes") if isinstance(verdict, dict) else None
    error = record.get("error")
    if error is None and checks[READABLE] and isinstance(notes, list) and notes:
        error = str(notes[0])
    return Row(
        artifact=str(record["artifact"]),
        status=status,
        error=error,
        events=sum(int(v) for v in events.values() if isinstance(v, int)),
        views=_count(record.get("views"), "instances", "total", "count"),
        leaks=leaks,
        anomalies=anomaly_total,
        max_concurrent_views=_count(record.get("roots"), "max_concurrent_views"),
        duration_s=duration_ns / 1e9 if isinstance(duration_ns, int) else None,
        dashboard=record.get("dashboard"),
        seconds=float(record.get("seconds") or 0.0),
    )


def _sum_into(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            if key.startswith("max"):  # a maximum across artifacts, not a sum
                total[key] = max(total.get(key, value), value)
            else:
                total[key] = total.get(key, 0) + value
        elif isinstance(value, dict):
            _sum_into(total.setdefault(key, {}), value)


def totals_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over the readable artifacts' numbers (maxima for ``max*`` keys), plus counts."""
    rows = [row_of(record) for record in records]
    totals: dict[str, Any] = {
        "artifacts": len(records),
        "readable": sum(row.status != STATUS_UNREADABLE for row in rows),
        "unreadable": sum(row.status == STATUS_UNREADABLE for row in rows),
        "clean": sum(row.status == STATUS_CLEAN for row in rows),
        "with_findings": sum(row.status == STATUS_FINDINGS for row in rows),
        "leaks": sum(row.leaks for row in rows),
    }
    for key in ("source", "events", "views", "roots", "anomalies"):
        summed: dict[str, Any] = {}
        for record in records:
            value = record.get(key)
            if isinstance(value, dict):
                _sum_into(summed, value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                summed["total"] = summed.get("total", 0) + value
        totals[key] = summed
    return totals
