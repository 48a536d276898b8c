"""The names qtrace knows about MR pointers, from every source, as one table of claims.

A claim says "MR pointer ROOT was named NAME (an alias of ALIAS_ROOT, named ALIAS_OF)", with
where it holds: at a time (a names file, ``qtrace names``), at an event of the trace
(``memory_region_ops_*``), or up to an event (``memory_region_finalize``: the name held until
the region died). Which root interval a claim names is decided in scope.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from qtrace.events import MR_FINALIZE
from qtrace.names.file import NameLine, read_names_file

# Where a name came from, in the order a report lists them.
SOURCES = ("file", "gdb", "finalize", "ops")
MR_OPS = ("memory_region_ops_read", "memory_region_ops_write")
TRACE_NAME_EVENTS = (MR_FINALIZE, *MR_OPS)

CLAIM_SCHEMA: dict[str, pl.DataType] = {
    "root": pl.UInt64(),  # the MemoryRegion pointer named
    "name": pl.String(),
    "alias_root": pl.UInt64(),  # for an alias: the pointer of the region it aliases
    "alias_of": pl.String(),  # and that region's name
    "at_ns": pl.Int64(),  # seen at this time (names files), in the trace's clock
    "at_seq": pl.Int64(),  # seen at this event of the trace (names the trace carries)
    "finalized": pl.Boolean(),  # memory_region_finalize: the name held up to at_seq
    "source": pl.String(),  # one of SOURCES
    "origin": pl.String(),  # where the claim was read: FILE:LINE, or the trace's file:line
}


def empty_claims() -> pl.DataFrame:
    """A claims table with no rows."""
    return pl.DataFrame(schema=CLAIM_SCHEMA)


@dataclass(frozen=True)
class Names:
    """Names of MR pointers from any number of sources, each claim with its source.

    ``claims`` has ``CLAIM_SCHEMA``; ``paths`` the names files read. Merge with ``+``.

    Examples
    --------
    >>> roots_file = "../shared/traces/qemu10-pc-bridges-ts.roots.txt"
    >>> names = read_names(roots_file) + read_names(roots_file)
    >>> names.claims.height, names.claims["source"].unique().to_list()
    (22, ['file'])
    """

    claims: pl.DataFrame = field(default_factory=empty_claims)
    paths: tuple[str, ...] = ()

    def __add__(self, other: Names) -> Names:
        return Names(
            pl.concat([self.claims, other.claims], how="vertical"), self.paths + other.paths
        )

    @property
    def is_empty(self) -> bool:
        return self.claims.height == 0


def merge_names(names: Iterable[Names]) -> Names:
    """All claims of ``names`` in one ``Names`` (each keeps its source)."""
    merged = Names()
    for one in names:
        merged = merged + one
    return merged


def _source_of(label: str) -> str:
    return "gdb" if label.split(maxsplit=1)[:1] == ["gdb"] else "file"


def names_from_lines(lines: list[NameLine], path: str) -> Names:
    """The claims of parsed names-file lines."""
    claims = pl.DataFrame(
        {
            "root": [n.root for n in lines],
            "name": [n.name for n in lines],
            "alias_root": [n.alias_root for n in lines],
            "alias_of": [n.alias_of for n in lines],
            "at_ns": [n.at_ns for n in lines],
            "at_seq": [None] * len(lines),
            "finalized": [False] * len(lines),
            "source": [_source_of(n.label) for n in lines],
            "origin": [f"{path}:{n.line}" for n in lines],
        },
        schema=CLAIM_SCHEMA,
    )
    return Names(claims, (path,))


def read_names(path: str | Path) -> Names:
    """Read a names file (``TIME POINTER NAME [alias of POINTER NAME] [label]``).

    Raises ``qtrace.InputError`` (exit code 3) when the file is missing or a line does not
    parse; the message names the file and line.

    Examples
    --------
    >>> names = qtrace.read_names("../shared/traces/qemu10-pc-bridges-ts.roots.txt")
    >>> trace = qtrace.read_trace("../shared/traces/qemu10-pc-bridges-ts.log")
    >>> roots = qtrace.analyze(trace, names=names).roots.sort("first_seq")
    >>> roots["name"].head(3).to_list(), roots["alias_of"][2]
    (['io', 'system', 'pci_bridge_pref_mem'], 'pci_bridge_pci')
    """
    return names_from_lines(read_names_file(path), str(path))


NAMES_SUFFIX = ".names"


def names_beside(trace: str | Path) -> Path | None:
    """The names file that belongs to a trace: the same path with ``.names`` for its suffix
    (``qtrace record`` writes ``trace.log`` and ``trace.names``); None when there is none."""
    path = Path(trace).with_suffix(NAMES_SUFFIX)
    return path if path.is_file() and path != Path(trace) else None


# The pointer and the name in each event's arguments: the log backend prints
# "mr 0x55.., NAME" (finalize) and "... mr 0x55.. ... name 'NAME'" (ops); the simple reader
# decodes "mr=0x55.. ... name=b'NAME'".
_MR = r"\bmr[= ]0x([0-9a-fA-F]+)"
_QUOTED_NAME = r"""\bname(?:=b|=|\s+)(?:'(.*)'|"(.*)")\s*$"""
_BARE_NAME = r"""\bname=([^\s'"]\S*)\s*$"""  # name=VALUE, as hand-made tables write it
_FINALIZE_NAME = r"^\s*mr\s+0x[0-9a-fA-F]+,\s*(.*?)\s*$"


def trace_names(events: pl.DataFrame) -> Names:
    """The names a trace carries: ``memory_region_finalize`` and ``memory_region_ops_*``.

    Only the rows of those events are read (a default read keeps ``memory_region_finalize``;
    ``memory_region_ops_*`` when selected).

    Examples
    --------
    >>> events = qtrace.read_trace("../shared/traces/pc-bridges-mixed.simpletrace", events="*")
    >>> claims = trace_names(events.events).claims
    >>> claims.height > 0, claims["source"].unique().to_list()
    (True, ['ops'])
    """
    rows = events.lazy().filter(pl.col("event").is_in(TRACE_NAME_EVENTS))
    args = pl.col("args")
    quoted = pl.coalesce(
        args.str.extract(_QUOTED_NAME, 1),
        args.str.extract(_QUOTED_NAME, 2),
        args.str.extract(_BARE_NAME, 1),
    )
    is_finalize = pl.col("event") == MR_FINALIZE
    found = (
        rows.select(
            root=args.str.extract(_MR, 1).str.to_integer(base=16, dtype=pl.UInt64, strict=False),
            name=pl.coalesce(
                quoted, pl.when(is_finalize).then(args.str.extract(_FINALIZE_NAME, 1))
            ),
            at_seq=pl.col("seq"),
            finalized=is_finalize,
            origin=pl.format(
                "{}:{}",
                pl.col("source").cast(pl.String),
                pl.coalesce(pl.col("line"), pl.col("offset")),
            ),
        )
        .filter(pl.col("root").is_not_null() & (pl.col("root") != 0) & pl.col("name").is_not_null())
        .filter(pl.col("name") != "")
        .sort("at_seq")
        .collect()
    )
    claims = found.select(
        "root",
        "name",
        alias_root=pl.lit(None, pl.UInt64),
        alias_of=pl.lit(None, pl.String),
        at_ns=pl.lit(None, pl.Int64),
        at_seq="at_seq",
        finalized="finalized",
        source=pl.when(pl.col("finalized")).then(pl.lit("finalize")).otherwise(pl.lit("ops")),
        origin="origin",
    ).select([pl.col(c).cast(t) for c, t in CLAIM_SCHEMA.items()])
    return Names(claims)


__all__ = [
    "CLAIM_SCHEMA",
    "NAMES_SUFFIX",
    "SOURCES",
    "TRACE_NAME_EVENTS",
    "Names",
    "empty_claims",
    "merge_names",
    "names_beside",
    "names_from_lines",
    "read_names",
    "trace_names",
]
