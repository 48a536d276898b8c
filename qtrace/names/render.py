"""How names and the finalize hazards read in reports: one place for the words and counts.

The report, text, dashboard and batch layers call these; none of them spells a root's name
or counts the hazards on its own.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from qtrace.names.claims import SOURCES


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
    >>> names = qtrace.read_names("../shared/traces/qemu10-pc-bridges-ts.roots.txt")
    >>> trace = qtrace.read_trace("../shared/traces/qemu10-pc-bridges-ts.log")
    >>> name_sources(qtrace.analyze(trace, names=names).roots)
    {'source': {'file': 11, 'gdb': 0, 'finalize': 0, 'ops': 0}, 'unnamed': 0}
    """
    if "name_source" not in roots.columns:
        return {"source": dict.fromkeys(SOURCES, 0), "unnamed": roots.height}
    counts = roots.group_by("name_source").len()
    found = dict(zip(counts["name_source"].to_list(), counts["len"].to_list(), strict=True))
    return {
        "source": {source: int(found.get(source, 0)) for source in SOURCES},
        "unnamed": int(found.get(None, 0)),
    }


__all__ = [
    "name_sources",
    "root_label",
    "root_label_expr",
]
