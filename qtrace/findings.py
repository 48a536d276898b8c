"""What an analysis found, counted per kind, and the --fail-on policy that judges it."""

from __future__ import annotations

from qtrace.errors import UsageError
from qtrace.model import ANOMALY_KINDS, Analysis

# --fail-on accepts every finding kind, "anomalies" for all anomaly kinds, or "none".
FAIL_ON_CHOICES: tuple[str, ...] = ("leaked", *ANOMALY_KINDS, "anomalies", "none")


def hex_pointer(value: int | None) -> str | None:
    """A pointer as QEMU prints it, ``0x`` and lower-case hex (``0x0`` for nil)."""
    return None if value is None else f"{value:#x}"


def status_counts(analysis: Analysis) -> dict[str, int]:
    """How many instances end in each status (every status, zeros included)."""
    return dict(analysis.status_counts)


def anomaly_counts(analysis: Analysis) -> dict[str, int]:
    """How many anomalies of each kind (every kind, zeros included)."""
    counts = analysis.anomalies.group_by("kind").len()
    found = dict(zip(counts["kind"].to_list(), counts["len"].to_list(), strict=True))
    return {kind: int(found.get(kind, 0)) for kind in ANOMALY_KINDS}


def findings(analysis: Analysis) -> dict[str, int]:
    """Counts per finding kind: ``leaked`` and every anomaly kind.

    Examples
    --------
    >>> findings(qtrace.analyze(events))  # doctest: +SKIP
    {'leaked': 0, 'new_while_live': 0, ...}
    """
    return {"leaked": status_counts(analysis)["leaked"], **anomaly_counts(analysis)}


def fails(analysis: Analysis, policy: set[str] | None) -> bool:
    """Whether the findings pass the ``--fail-on`` policy (exit code 1).

    ``None`` is the default policy: any leaked instance or any anomaly. ``{"none"}`` never
    fails; otherwise any named kind (``"anomalies"``: every anomaly kind) with a count fails.

    Examples
    --------
    >>> fails(analysis, {"leaked", "orphan_destroy_rcu"})  # doctest: +SKIP
    False
    """
    if policy is not None:
        unknown = sorted(policy - set(FAIL_ON_CHOICES))
        if unknown:
            raise UsageError(
                f"unknown --fail-on kind {', '.join(unknown)} (choose {', '.join(FAIL_ON_CHOICES)})"
            )
        if "none" in policy:
            if len(policy) > 1:
                raise UsageError("--fail-on none cannot be combined with other kinds")
            return False
    counts = findings(analysis)
    wanted = {"leaked", "anomalies"} if policy is None else policy
    if "anomalies" in wanted:
        wanted = (wanted - {"anomalies"}) | set(ANOMALY_KINDS)
    return any(counts[kind] > 0 for kind in wanted)
