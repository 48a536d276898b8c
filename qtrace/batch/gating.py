"""Verdicts: which checks of which artifacts fail, by ``--fail-on`` and against ``--baseline``.

Each artifact has the checks of ``qtrace.findings`` (``readable``: its input could be read and
held FlatView events; ``leaked``; one per anomaly kind), and ``--fail-on`` is the same
``FailPolicy`` as ``qtrace analyze``'s. With a baseline (a previous
``summary.json``), a check fails only when it got worse than the same artifact's baseline:
more leaks, an anomaly kind that was absent, readable before and not now. Artifacts the
baseline does not know are judged by the policy alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtrace.errors import InputError
from qtrace.findings import CHECKS, LEAKED, READABLE, FailPolicy, exit_code

# The check names, as qtrace.findings names them (the batch judges the same checks).
LEAKS = LEAKED
__all__ = ["LEAKS", "READABLE", "Check", "Verdict", "batch_exit_code", "judge", "load_baseline"]


@dataclass(frozen=True)
class Check:
    """One check of one artifact: its count now, at baseline, and whether it fails."""

    name: str
    count: int
    failed: bool
    baseline: int | None = None
    message: str = ""


@dataclass
class Verdict:
    """The checks of one artifact and what changed against the baseline."""

    artifact: str
    checks: list[Check] = field(default_factory=list)
    improved: list[str] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.failed]


def counts_of(record: dict[str, Any]) -> dict[str, int]:
    """Check name -> count for one summary record (``readable`` counts 1 when unreadable).

    The counts are the record's ``findings``: the check counts of ``qtrace.findings``,
    written once by the task that analyzed the artifact (summaries are read back as
    baselines, so a value of the wrong type counts as 0 rather than failing the batch).
    """
    if record.get("error") is not None:
        return {name: int(name == READABLE) for name in CHECKS}
    found = record.get("findings")
    found = found if isinstance(found, dict) else {}

    def count(name: str) -> int:
        value = found.get(name, 0)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0

    return {name: count(name) for name in CHECKS}


def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """Artifact name -> record, from a previous batch's ``summary.json``.

    A file that is no batch summary, or whose records have the wrong shape, is unreadable
    input (exit 3), said in one line.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise InputError(f"{path}: cannot read the baseline (nested too deeply)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the baseline ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != "qtrace.batch/1":
        raise InputError(f"{path}: not a qtrace batch summary (schema qtrace.batch/1)")
    records = document.get("artifacts", [])
    if not isinstance(records, list):
        raise InputError(f"{path}: not a qtrace batch summary (artifacts is not a list)")
    for number, record in enumerate(records):
        problem = _record_problem(record)
        if problem:
            raise InputError(f"{path}: not a qtrace batch summary (artifact {number}: {problem})")
    return {record["artifact"]: record for record in records}


def _record_problem(record: Any) -> str | None:
    """What makes ``record`` no summary record, or None: the fields a judgement reads."""
    if not isinstance(record, dict) or not isinstance(record.get("artifact"), str):
        return "not a record with an artifact name"
    if not isinstance(record.get("error"), str | None):
        return "error is not text"
    for section in ("findings", "anomalies"):
        counts = record.get(section, {})
        if not isinstance(counts, dict):
            return f"{section} is not an object"
        for name, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool):
                return f"{section}.{name} is not a count"
    return None


def _judge(name: str, now: int, before: int | None) -> tuple[bool, str]:
    """Whether a check with ``now`` findings (``before`` at baseline) got worse, and why."""
    if before is None:
        return now > 0, ""
    if name == LEAKS:
        return now > before, f"{before} -> {now}"
    # Anomaly kinds and readability: only appearing counts as worse; more of a kind already
    # there is the same problem, already known.
    return now > 0 and before == 0, f"{before} -> {now}"


def judge(record: dict[str, Any], policy: FailPolicy, baseline: dict[str, Any] | None) -> Verdict:
    """The verdict on one artifact's summary record."""
    verdict = Verdict(str(record["artifact"]))
    now = counts_of(record)
    before = counts_of(baseline) if baseline is not None else None
    for name in CHECKS:
        if now[READABLE] and name != READABLE:  # nothing was read: only this check ran
            continue
        was = None if before is None else before.get(name)
        worse, change = _judge(name, now[name], was)
        if was is not None and now[name] < was:
            verdict.improved.append(f"{name} {change}")
        if worse and was is not None:
            verdict.worse.append(f"{name} {change}")
        verdict.checks.append(
            Check(
                name,
                now[name],
                worse and name in policy.checks,
                was,
                _message(name, record, now[name], change),
            )
        )
    if before is not None and before.get(READABLE) == 1 and now.get(READABLE) == 0:
        verdict.improved.append("readable again")
    return verdict


def _message(name: str, record: dict[str, Any], count: int, change: str) -> str:
    if name == READABLE:
        if record.get("error") is not None:
            return str(record["error"])
        return "no FlatView events read" if count else ""
    suffix = f" (baseline {change})" if change else ""
    return f"{name}: {count}{suffix}"


def batch_exit_code(verdicts: list[Verdict]) -> int:
    """The batch's exit code: ``qtrace.findings.exit_code`` of every failing check."""
    return exit_code(check.name for verdict in verdicts for check in verdict.failed)
