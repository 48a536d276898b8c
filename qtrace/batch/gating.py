"""Verdicts: which checks of which artifacts fail, by ``--fail-on`` and against ``--baseline``.

Each artifact has the checks ``readable`` (its input could be read), ``leaks`` and one per
anomaly kind. A policy names the checks that fail the batch. With a baseline (a previous
``summary.json``), a check fails only when it got worse than the same artifact's baseline:
more leaks, an anomaly kind that was absent, readable before and not now. Artifacts the
baseline does not know are judged by the policy alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtrace.errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, InputError, UsageError

READABLE = "readable"
LEAKS = "leaked"  # the finding name `qtrace analyze --fail-on` uses
# Policy words that stand for several checks.
ANY = "any"
NONE = "none"
ANOMALIES = "anomalies"
UNREADABLE = "unreadable"  # the policy word for the `readable` check
# As `qtrace analyze` by default (any leak or anomaly), and an unreadable artifact too.
DEFAULT_FAIL_ON = frozenset({LEAKS, ANOMALIES, UNREADABLE})


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


def check_names(anomaly_kinds: list[str]) -> list[str]:
    """Every check, in report order."""
    return [READABLE, LEAKS, *anomaly_kinds]


def parse_policy(words: set[str] | None, anomaly_kinds: list[str]) -> frozenset[str]:
    """The set of check names a ``--fail-on`` policy fails on.

    The words of ``qtrace analyze --fail-on`` (``leaked``, an anomaly kind, ``anomalies`` for
    every kind, ``none``) plus ``unreadable`` (the readable-input check) and ``any``.
    """
    if words is None:
        words = set(DEFAULT_FAIL_ON)
    known = {LEAKS, ANY, NONE, ANOMALIES, UNREADABLE, *anomaly_kinds}
    unknown = sorted(words - known)
    if NONE in words and len(words) > 1:
        raise UsageError("--fail-on none cannot be combined with other kinds")
    if unknown:
        raise UsageError(
            f"--fail-on: unknown {', '.join(unknown)} (choose from {', '.join(sorted(known))})"
        )
    checks: set[str] = set()
    for word in words:
        if word == ANY:
            checks.update(check_names(anomaly_kinds))
        elif word == ANOMALIES:
            checks.update(anomaly_kinds)
        elif word == UNREADABLE:
            checks.add(READABLE)
        elif word != NONE:
            checks.add(word)
    return frozenset(checks)


def counts_of(record: dict[str, Any], anomaly_kinds: list[str]) -> dict[str, int]:
    """Check name -> count for one summary record (``readable`` counts 1 when unreadable)."""
    if record.get("error") is not None:
        return {READABLE: 1}
    found = record.get("findings") or {}
    counts = {READABLE: 0, LEAKS: int(found.get(LEAKS, 0))}
    anomalies = record.get("anomalies") or {}
    for kind in anomaly_kinds:
        counts[kind] = int(found.get(kind, anomalies.get(kind, 0)))
    return counts


def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """Artifact name -> record, from a previous batch's ``summary.json``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the baseline ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != "qtrace.batch/1":
        raise InputError(f"{path}: not a qtrace batch summary (schema qtrace.batch/1)")
    return {str(record["artifact"]): record for record in document.get("artifacts", [])}


def _judge(name: str, now: int, before: int | None) -> tuple[bool, str]:
    """Whether a check with ``now`` findings (``before`` at baseline) got worse, and why."""
    if before is None:
        return now > 0, ""
    if name == LEAKS:
        return now > before, f"{before} -> {now}"
    # Anomaly kinds and readability: only appearing counts as worse; more of a kind already
    # there is the same problem, already known.
    return now > 0 and before == 0, f"{before} -> {now}"


def judge(
    record: dict[str, Any],
    policy: frozenset[str],
    anomaly_kinds: list[str],
    baseline: dict[str, Any] | None,
) -> Verdict:
    """The verdict on one artifact's summary record."""
    verdict = Verdict(str(record["artifact"]))
    now = counts_of(record, anomaly_kinds)
    before = counts_of(baseline, anomaly_kinds) if baseline is not None else None
    for name in check_names(anomaly_kinds):
        if name not in now:  # unreadable: only the readable check ran
            continue
        was = None if before is None else before.get(name)
        worse, change = _judge(name, now[name], was)
        if was is not None and now[name] < was:
            verdict.improved.append(f"{name} {change}")
        if worse and was is not None:
            verdict.worse.append(f"{name} {change}")
        verdict.checks.append(
            Check(name, now[name], worse and name in policy, was, _message(name, record, change))
        )
    if before is not None and before.get(READABLE) == 1 and now.get(READABLE) == 0:
        verdict.improved.append("readable again")
    return verdict


def _message(name: str, record: dict[str, Any], change: str) -> str:
    if name == READABLE:
        return str(record.get("error") or "")
    suffix = f" (baseline {change})" if change else ""
    return f"{name}: {counts_of(record, [name]).get(name, 0)}{suffix}"


def exit_code(verdicts: list[Verdict]) -> int:
    """0 clean; 1 when a finding fails; 3 when only unreadable inputs fail."""
    failed = {check.name for verdict in verdicts for check in verdict.failed}
    if failed - {READABLE}:
        return EXIT_FINDINGS
    if READABLE in failed:
        return EXIT_INPUT
    return EXIT_OK
