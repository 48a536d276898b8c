"""The mapping table: which name each event id has, from the file's mapping records.

Mapping records are the file's only word on event names, so a damaged one that still reads
as sound would name records wrongly: a ``flatview_destroy`` read as another event is a
destroy lost without a trace, and the model would report a leak with full confidence. A
mapping is taken as damaged, and its id left unnamed (its records are then marked unreadable,
a hole the model knows about), when:

- one block of mapping records (mappings with no event record between them; QEMU writes one,
  after the header) maps an id to two names, or one name to two ids: the record whose id
  breaks the block's order (QEMU numbers them 0, 1, 2, ...) is dropped, and when that does
  not tell which one is damaged, neither id is trusted;
- its name is one byte away from the name of an event the model reads
  (``flatview_destroy`` -> ``flatview_destrny``).

A later block may map an id again: each record takes the mapping in force at its offset (the
last one before it, or the first one when none precedes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl
from qtrace.parsers.simple.layout import DROPPED_EVENT_ID

from qtrace.events import DROPPED_EVENT, MODEL_EVENTS

# Up to this many distinct values, one numpy comparison per value beats a hash join.
FEW_VALUES = 12


@dataclass(frozen=True)
class Mapping:
    """One mapping record: where it is, the id and name it maps, and its block."""

    offset: int
    eid: int
    name: str
    block: int  # mapping records with no event record between them share a block number
    size: int  # the record's bytes

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass
class MappingTable:
    """Every ``(offset, name)`` each trusted event id is mapped to, in file order."""

    by_id: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def near_model_name(name: str) -> str | None:
    """The model event whose name ``name`` misses by one byte, if any.

    Examples
    --------
    >>> near_model_name("flatview_destrny"), near_model_name("flatview_new")
    ('flatview_destroy', None)
    """
    for model_name in _MODEL_NAMES_BY_LENGTH.get(len(name), ()):
        # One differing byte cannot be in both the first four and the last four (a quick
        # no for the thousands of names a file maps).
        if name[:4] != model_name[:4] and name[-4:] != model_name[-4:]:
            continue
        if sum(a != b for a, b in zip(name, model_name, strict=True)) == 1:
            return model_name
    return None


_MODEL_NAMES_BY_LENGTH: dict[int, list[str]] = {}
for _name in MODEL_EVENTS:
    _MODEL_NAMES_BY_LENGTH.setdefault(len(_name), []).append(_name)


def build_table(mappings: list[Mapping], source: str) -> MappingTable:
    """The trusted mappings of a file, and one warning per mapping taken as damaged."""
    table = MappingTable()
    untrusted: set[int] = set()
    for mapping in mappings:
        model_name = near_model_name(mapping.name)
        if model_name is not None:
            untrusted.add(mapping.eid)
            table.warnings.append(
                f"{source}: the mapping record at offset {mapping.offset} names "
                f"{mapping.name!r}, one byte away from {model_name}: taken as damaged; records "
                f"of event id {mapping.eid:#x} are marked unreadable"
            )
    blocks: dict[int, list[Mapping]] = {}
    for mapping in mappings:
        blocks.setdefault(mapping.block, []).append(mapping)
    dropped: set[int] = set()
    for block in blocks.values():
        damaged, ids = _conflicts(block, source, table.warnings)
        dropped |= damaged
        untrusted |= ids
    for mapping in mappings:
        if mapping.eid not in untrusted and mapping.offset not in dropped:
            table.by_id.setdefault(mapping.eid, []).append((mapping.offset, mapping.name))
    table.by_id[DROPPED_EVENT_ID] = [(0, DROPPED_EVENT)]
    return table


def _conflicts(block: list[Mapping], source: str, warnings: list[str]) -> tuple[set[int], set[int]]:
    """Mappings of one block that contradict each other (one id, two names; one name, two
    ids), with a warning each. Returns the offsets of the mapping records taken as damaged
    and the ids no mapping can be trusted for.

    Of two such mappings, the one whose id does not follow on from a neighbour's is the
    damaged one (QEMU numbers the mappings it writes in order), and only that record is
    dropped; when that does not tell, their ids are untrusted.
    """
    in_sequence = {
        index
        for index, mapping in enumerate(block)
        if (index > 0 and block[index - 1].eid + 1 == mapping.eid)
        or (index + 1 < len(block) and block[index + 1].eid - 1 == mapping.eid)
    }
    dropped: set[int] = set()
    untrusted: set[int] = set()
    by_id: dict[int, int] = {}
    by_name: dict[str, int] = {}
    for index, mapping in enumerate(block):
        for earlier_index in (
            by_id.setdefault(mapping.eid, index),
            by_name.setdefault(mapping.name, index),
        ):
            earlier = block[earlier_index]
            if (earlier.name, earlier.eid) == (mapping.name, mapping.eid):
                continue  # the same mapping again, or no conflict
            fits = (earlier_index in in_sequence, index in in_sequence)
            if fits[0] != fits[1]:
                damaged = mapping if fits[0] else earlier
                dropped.add(damaged.offset)
                verdict = f"the one at offset {damaged.offset} breaks the ids' order: dropped"
            else:
                untrusted.update((earlier.eid, mapping.eid))
                ids = sorted({earlier.eid, mapping.eid})
                verdict = (
                    f"records of event id {' and '.join(f'{eid:#x}' for eid in ids)} are "
                    "marked unreadable"
                )
            warnings.append(
                f"{source}: mapping records at offsets {earlier.offset} and {mapping.offset} "
                f"map {_mapped(earlier)} and {_mapped(mapping)} in one block: a damaged "
                f"mapping; {verdict}"
            )
    return dropped, untrusted


def _mapped(mapping: Mapping) -> str:
    return f"{mapping.name!r} id {mapping.eid:#x}"


def value_codes(values: npt.NDArray[np.uint64], distinct: list[int] | pl.Series) -> pl.Series:
    """Each value's position in ``distinct`` (which holds every value that occurs)."""
    if len(distinct) <= FEW_VALUES:
        codes = np.zeros(values.size, np.uint32)
        for number, value in enumerate(distinct):
            if number:
                codes[values == value] = number
        return pl.Series("code", codes)
    numbers = pl.DataFrame(
        {"value": distinct, "code": np.arange(len(distinct), dtype=np.uint32)},
        schema={"value": pl.UInt64, "code": pl.UInt32},
    )
    # A join probes faster than replace_strict when there are many distinct values.
    looked_up = (
        pl.LazyFrame({"value": values})
        .join(numbers.lazy(), on="value", how="left", maintain_order="left")
        .select("code")
        .collect(engine="in-memory")
    )
    return looked_up.get_column("code")


def event_names(
    eids: npt.NDArray[np.uint64],
    offsets: npt.NDArray[np.int64],
    table: MappingTable,
    present: list[int],
) -> pl.Series:
    """Each record's event name, through the mapping table (``present``: the ids used)."""
    by_id = table.by_id
    names = pl.Series("event", [by_id[eid][-1][1] for eid in present], pl.Categorical).gather(
        value_codes(eids, present)
    )
    for eid in present:
        entries = by_id[eid]
        if len({name for _, name in entries}) == 1:
            continue
        # An id mapped again to another name: each record takes the mapping in force at
        # its offset (the last one before it, or the first one if none precedes it).
        rows = np.flatnonzero(eids == eid)
        map_offsets = np.array([off for off, _ in entries], np.int64)
        which = np.maximum(np.searchsorted(map_offsets, offsets[rows], side="right") - 1, 0)
        chosen = [entries[i][1] for i in which.tolist()]
        names = names.scatter(rows, pl.Series(chosen, dtype=pl.Categorical))
    return names
