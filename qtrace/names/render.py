"""How names and the finalize hazards read in reports: one place for the words and counts.

The report, text, dashboard and batch layers call these; none of them spells a root's name
or counts the hazards on its own.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from qtrace.names.claims import SOURCES
from qtrace.names.join import FINALIZED_WHILE_PINNED, PINNED_BY


def root_label(name: str | None, alias_of: str | None) -> str:
    """``pci_bridge_io [alias of pci_bridge_io]``, ``system``, or ``""`` when unnamed.

    Examples
    --------
    >>> root_label("pci_bridge_io", "pci_bridge_io")
    'pci_bridge_io [alias of pci_bridge_io]'
    >>> root_label(None, None)
    ''
    """
    if name is None:
        return ""
    return f"{name} [alias of {alias_of}]" if alias_of is not None else name


def root_label_expr(name: str = "name", alias_of: str = "alias_of") -> pl.Expr:
    """``root_label`` as a polars expression (null when unnamed)."""
    return (
        pl.when(pl.col(alias_of).is_not_null())
        .then(pl.format("{} [alias of {}]", pl.col(name), pl.col(alias_of)))
        .otherwise(pl.col(name))
    )


def name_sources(roots: pl.DataFrame) -> dict[str, Any]:
    """The JSON report's ``names``: how many roots each source named, and how many are not.

    Examples
    --------
    >>> name_sources(qtrace.analyze(trace, names=names).roots)  # doctest: +SKIP
    {'source': {'file': 11, 'finalize': 0, 'gdb': 0, 'ops': 0}, 'unnamed': 0}
    """
    if "name_source" not in roots.columns:
        return {"source": dict.fromkeys(SOURCES, 0), "unnamed": roots.height}
    counts = roots.group_by("name_source").len()
    found = dict(zip(counts["name_source"].to_list(), counts["len"].to_list(), strict=True))
    return {
        "source": {source: int(found.get(source, 0)) for source in SOURCES},
        "unnamed": int(found.get(None, 0)),
    }


def hazard_counts(anomalies: pl.DataFrame) -> dict[str, int]:
    """``root_finalized_while_pinned`` findings by what pinned the root: ``live``,
    ``rcu_pending``, and ``early_unref_removes`` (the RCU-pending ones: the proposed unref at
    ``flatview_destroy_rcu`` releases the root before the region dies)."""
    hazards = anomalies.filter(pl.col("kind") == FINALIZED_WHILE_PINNED)
    by = hazards["pinned_by"].to_list() if "pinned_by" in hazards.columns else []
    counts = {what: by.count(what) for what in PINNED_BY}
    return {**counts, "early_unref_removes": counts["rcu_pending"]}


def hazard_sentence(anomalies: pl.DataFrame) -> str | None:
    """The verdict's words on the finalize hazards; None when there is none.

    Examples
    --------
    >>> hazard_sentence(analysis.anomalies)  # doctest: +SKIP
    'roots finalized while pinned: 2; the early unref would remove 1 (only RCU-pending views
    pinned it), not 1 (a live view did)'
    """
    counts = hazard_counts(anomalies)
    total = counts["live"] + counts["rcu_pending"]
    if total == 0:
        return None
    return (
        f"roots finalized while pinned: {total}; the early unref would remove "
        f"{counts['early_unref_removes']} (only RCU-pending views pinned it), "
        f"not {counts['live']} (a live view did)"
    )


__all__ = [
    "hazard_counts",
    "hazard_sentence",
    "name_sources",
    "root_label",
    "root_label_expr",
]
