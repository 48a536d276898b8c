"""What an analysis found, judged once: counts, uncertainty, the ``--fail-on`` policy and exit code.

Every door renders this one value: the text, JSON and Markdown reports, the dashboard header,
``qtrace batch`` (summary.json, JUnit, annotations, summary.md, the fleet page) and
``qtrace diff``. No renderer counts findings itself, so no two doors can disagree.

A trace has *checks*: ``readable`` (FlatView events could be read from it at all), ``leaked``
(views still live after a newer view of their root was built) and one per anomaly kind. The
policy names the checks that fail; failing findings give exit 1, an input that gave nothing
to judge gives exit 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from qtrace.errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, UsageError
from qtrace.model import ANOMALY_KINDS, Analysis

READABLE = "readable"
LEAKED = "leaked"
CHECKS: tuple[str, ...] = (READABLE, LEAKED, *ANOMALY_KINDS)

# Policy words: every check by name (``unreadable`` stands for the readable check), and
# words for groups of checks.
UNREADABLE = "unreadable"
ANOMALIES = "anomalies"
ANY = "any"
NONE = "none"
POLICY_WORDS: tuple[str, ...] = (LEAKED, *ANOMALY_KINDS, ANOMALIES, UNREADABLE, ANY, NONE)
DEFAULT_FAIL_ON: tuple[str, ...] = (LEAKED, ANOMALIES, UNREADABLE)

# More than this share of an input's bytes skipped as damage: the verdict says so, as such a
# result says little about the trace.
MOSTLY_SKIPPED = 0.5


@dataclass(frozen=True)
class FailPolicy:
    """The ``--fail-on`` policy of ``qtrace analyze`` and ``qtrace batch`` (the same words).

    Examples
    --------
    >>> sorted(FailPolicy.parse("leaked,unreadable").checks)
    ['leaked', 'readable']
    >>> FailPolicy.parse(None).words
    ('leaked', 'anomalies', 'unreadable')
    """

    words: tuple[str, ...]
    checks: frozenset[str]

    @classmethod
    def parse(cls, words: str | Iterable[str] | None) -> FailPolicy:
        """The policy from comma-separated words (or several such texts); None: the default.

        Raises ``UsageError`` for an unknown word, or ``none`` combined with another.
        """
        if words is None:
            given: list[str] = list(DEFAULT_FAIL_ON)
        else:
            texts = [words] if isinstance(words, str) else list(words)
            given = [w.strip() for text in texts for w in text.split(",") if w.strip()]
            if not given:
                raise UsageError("--fail-on: give at least one word (or none)")
        unknown = sorted(set(given) - set(POLICY_WORDS))
        if unknown:
            raise UsageError(
                f"--fail-on: unknown {', '.join(unknown)} (choose from {', '.join(POLICY_WORDS)})"
            )
        if NONE in given and len(set(given)) > 1:
            raise UsageError("--fail-on none cannot be combined with other words")
        checks: set[str] = set()
        for word in given:
            if word == ANY:
                checks.update(CHECKS)
            elif word == ANOMALIES:
                checks.update(ANOMALY_KINDS)
            elif word == UNREADABLE:
                checks.add(READABLE)
            elif word != NONE:
                checks.add(word)
        return cls(tuple(dict.fromkeys(given)), frozenset(checks))


DEFAULT_POLICY = FailPolicy.parse(None)


def exit_code(failing: Iterable[str]) -> int:
    """0 when nothing fails; 1 when a finding fails; 3 when only the readable check fails."""
    failed = set(failing)
    if failed - {READABLE}:
        return EXIT_FINDINGS
    if READABLE in failed:
        return EXIT_INPUT
    return EXIT_OK


@dataclass(frozen=True)
class Findings:
    """What one analysis found, judged by one policy. Build it with ``Findings.of``.

    ``checks`` maps every check to its count (``readable``: 1 when no FlatView event could be
    read). ``uncertain`` counts the findings (leaked views and anomalies) whose instance spans
    a place where events were dropped or could not be read. ``notes`` are the sentences the
    verdict adds to its counts, in the order every renderer prints them.
    """

    statuses: dict[str, int]
    anomalies: dict[str, int]
    checks: dict[str, int]
    uncertain: int
    dropped_events: int
    unreadable_places: int
    flatview_events: int
    # root_finalized_while_pinned by what pinned the root, and how many of them the proposed
    # early unref at flatview_destroy_rcu would remove (those only RCU-pending views pinned).
    hazards: dict[str, int]
    policy: FailPolicy
    failing: tuple[str, ...]
    exit_code: int
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, analysis: Analysis, policy: FailPolicy = DEFAULT_POLICY) -> Findings:
        """Count and judge ``analysis`` under ``policy``.

        Examples
        --------
        >>> import polars as pl
        >>> from qtrace.events import conform
        >>> events = conform(pl.DataFrame({
        ...     "seq": [0, 1, 2], "event": ["flatview_new"] * 3,
        ...     "view": [1, 2, 3], "root": [0, 16, 16]}))
        >>> found = Findings.of(qtrace.analyze(events))
        >>> found.text, found.exit_code
        ('leaks: 1, anomalies: 0', 1)
        """
        statuses = dict(analysis.status_counts)
        anomalies = dict(analysis.anomaly_counts)
        flatview = analysis.flatview_events_read
        checks = {READABLE: int(flatview == 0), LEAKED: statuses[LEAKED], **anomalies}
        uncertain = int(analysis.flagged_views.filter(status=LEAKED)["uncertain"].sum()) + int(
            analysis.anomalies["uncertain"].sum()
        )
        failing = tuple(c for c in CHECKS if checks[c] and c in policy.checks)
        pinned_by = analysis.finalized_pinned_by
        hazards = {**pinned_by, "early_unref_removes": pinned_by["rcu_pending"]}
        found = cls(
            statuses=statuses,
            anomalies=anomalies,
            checks=checks,
            uncertain=uncertain,
            dropped_events=analysis.dropped_events,
            unreadable_places=analysis.unreadable_places,
            flatview_events=flatview,
            hazards=hazards,
            policy=policy,
            failing=failing,
            exit_code=exit_code(failing),
        )
        return cls(**{**found.__dict__, "notes": _notes(found, analysis)})

    @property
    def leaked(self) -> int:
        return self.statuses[LEAKED]

    @property
    def lost(self) -> int:
        return self.statuses["lost"]

    @property
    def anomaly_total(self) -> int:
        return sum(self.anomalies.values())

    @property
    def counts(self) -> dict[str, int]:
        """Counts per finding kind (``leaked`` and every anomaly kind)."""
        return {kind: n for kind, n in self.checks.items() if kind != READABLE}

    @property
    def text(self) -> str:
        """The verdict's first line: ``leaks: N, anomalies: N``."""
        return f"leaks: {self.leaked}, anomalies: {self.anomaly_total}"

    @property
    def line(self) -> str:
        """The verdict in one line: the counts, then every note."""
        return "; ".join([self.text, *self.notes])

    def to_json(self) -> dict[str, Any]:
        """The verdict section of the JSON report (and of each batch summary record)."""
        return {
            "leaked": self.leaked,
            "lost": self.lost,
            "anomalies": self.anomaly_total,
            "uncertain": self.uncertain,
            "dropped_events": self.dropped_events,
            "unreadable_places": self.unreadable_places,
            "flatview_events": self.flatview_events,
            "hazards": dict(self.hazards),
            "checks": dict(self.checks),
            "fail_on": list(self.policy.words),
            "failing": list(self.failing),
            "exit_code": self.exit_code,
            "text": self.text,
            "notes": list(self.notes),
        }


def _notes(found: Findings, analysis: Analysis) -> tuple[str, ...]:
    notes: list[str] = []
    if found.flatview_events == 0:
        notes.append("no FlatView events read (was flatview_* tracing on? is this the right file?)")
    trace = analysis.trace
    if (
        trace is not None
        and trace.input_bytes
        and (trace.bytes_skipped > MOSTLY_SKIPPED * trace.input_bytes)
    ):
        share = trace.bytes_skipped / trace.input_bytes
        notes.append(
            f"{share:.0%} of the input's bytes could not be read ({trace.bytes_skipped} of "
            f"{trace.input_bytes}): the counts cover the rest only"
        )
    live, pending = found.hazards["live"], found.hazards["rcu_pending"]
    if live or pending:
        notes.append(
            f"roots finalized while pinned: {live + pending}; the early unref at "
            f"flatview_destroy_rcu would remove {pending} (only RCU-pending views pinned "
            f"the root), not {live} (a live view did)"
        )
    losses = []
    if found.dropped_events:
        losses.append(f"dropped events: {found.dropped_events}")
    if found.unreadable_places:
        losses.append(f"unreadable places: {found.unreadable_places}")
    if losses:
        notes.append(", ".join(losses))
    if found.uncertain:
        notes.append(f"{found.uncertain} finding(s) uncertain: dropped or unreadable events")
    if not analysis.destroy_traced and found.unreadable_places and found.flatview_events:
        # The model's rule stands (no flatview_destroy read: destroy is not traced), but a
        # damaged mapping turns every record of one event into unreadable places: say that
        # the inference may be wrong, and what it would hide.
        notes.append(
            "no flatview_destroy was read, so views are taken as freed at their "
            f"flatview_destroy_rcu; {found.unreadable_places} unreadable place(s) may have held "
            "flatview_destroy records, and RCU-pending views (and the finalize hazards they "
            "cause) would then be missed"
        )
    steps_back = int(analysis.run_table["clock_steps_back"].sum())
    if steps_back:
        notes.append(
            f"the clock stepped back {steps_back} time(s) (an NTP step?): "
            f"{analysis.negative_durations} duration(s) it made negative are left out"
        )
    return tuple(notes)


__all__ = [
    "CHECKS",
    "DEFAULT_FAIL_ON",
    "DEFAULT_POLICY",
    "LEAKED",
    "POLICY_WORDS",
    "READABLE",
    "FailPolicy",
    "Findings",
    "exit_code",
]
