"""Which name each root interval takes: claims placed on the trace, then chosen per span.

A pointer names different MemoryRegions over a trace: QEMU frees a region and allocates
another at the same address. The trace tells where that can happen. A root's *pinned
interval* cannot change region (its views hold it), except in the seed's hazard, where a
region is finalized while pinned; and a ``memory_region_finalize`` ends a region for sure.
So, per (run, root):

- a claim is placed at a seq: a trace claim at its event; a timed claim (names file) at the
  last event at or before its time; a trace without a clock cannot place a timed claim;
- finalizes cut the pointer's history into *epochs*: the region that held the pointer from
  one finalize to the next. A claim only names spans of its own epoch;
- a span (an interval ``[start_seq, end_seq)``) takes, in this order: the first claim made
  inside it; the finalize that ended its epoch; the last claim before it; the first claim
  after it. A later claim for the same pointer means the address holds another region from
  then on; the first claim also holds before it (a debugger names roots after they appear).
- Timed claims on a trace without a clock: a pointer's claims name all its spans when they
  agree; when they disagree (the address held several regions) it stays unnamed.

Alias information (``alias_root``, ``alias_of``) comes from the nearest names-file or gdb
claim that gives the chosen name at the same address, in another epoch if need be: the
trace's events never say whether a region is an alias, and a region re-initialised in place
after its finalize (the seed's pci-bridge windows) is the same kind of region again.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from qtrace.events import FLATVIEW_EVENTS, FLATVIEW_NEW

SPAN_KEY = ["run", "root", "start_seq"]
# Sources whose claims say whether a region is an alias; ordered first among equal claims.
ALIAS_SOURCES = ("file", "gdb")
NAME_COLUMNS: dict[str, pl.DataType] = {
    "name": pl.String(),
    "alias_root": pl.UInt64(),
    "alias_of": pl.String(),
    "name_source": pl.String(),
}
_NEVER = 2**62  # a span still open at the end


def run_of(seqs: pl.Series, events: pl.DataFrame) -> pl.Series:
    """The run (as the model numbers runs, docs/model.md) of each seq; seqs before any run: 0.

    A nil-root ``flatview_new`` starts a run; FlatView events before the first one form a
    run of their own.
    """
    flatview = events.filter(pl.col("event").is_in(FLATVIEW_EVENTS))
    starts = flatview.filter((pl.col("event") == FLATVIEW_NEW) & (pl.col("root") == 0))["seq"]
    first_fv = flatview["seq"].min()
    pre_run = isinstance(first_fv, int) and (starts.len() == 0 or first_fv < starts.min())  # type: ignore[operator]
    runs = starts.sort().search_sorted(seqs, side="right").cast(pl.Int64) - (0 if pre_run else 1)
    return runs.clip(lower_bound=0).alias("run")


def _seq_at_times(times_ns: pl.Series, events: pl.DataFrame) -> pl.Series:
    """The seq of the last event at or before each time (-1: before every event)."""
    stamped = events.select("seq", "ts_ns").drop_nulls("ts_ns")
    # Simple-backend stamps can step back a little between threads: search their running max.
    clock = stamped["ts_ns"].cum_max()
    index = clock.search_sorted(times_ns, side="right").cast(pl.Int64) - 1
    seqs = stamped["seq"].gather(index.clip(lower_bound=0))
    return pl.select(pl.when(index >= 0).then(seqs).otherwise(-1)).to_series().alias("at_seq")


def _epochs(frame: pl.DataFrame, at: str, finalizes: pl.DataFrame, *, strict: bool) -> pl.Series:
    """Per row of ``frame``: how many finalizes of its (run, root) come at or before ``at``
    (before, when ``strict``)."""
    if finalizes.height == 0 or frame.height == 0:
        return pl.Series("epoch", [0] * frame.height, dtype=pl.Int64)
    probe = frame.select(
        "run",
        "root",
        (pl.col(at) - (1 if strict else 0)).alias("x"),
        pl.int_range(pl.len()).alias("i"),
    ).sort("x")
    found = probe.join_asof(
        finalizes.sort("seq"),
        left_on="x",
        right_on="seq",
        by=["run", "root"],
        strategy="backward",
        check_sortedness=False,  # sorted by the key above; by-groups cannot be checked
    )
    return found.sort("i")["count"].fill_null(0).cast(pl.Int64).alias("epoch")


@dataclass(frozen=True)
class PlacedClaims:
    """``claims`` with ``run``, ``at`` (a seq; null when it cannot be placed) and ``epoch``;
    ``finalizes``: ``run``, ``root``, ``seq`` and ``count`` (1 for a pointer's first)."""

    claims: pl.DataFrame
    finalizes: pl.DataFrame


def place_claims(claims: pl.DataFrame, events: pl.DataFrame, *, has_clock: bool) -> PlacedClaims:
    """Place every claim on the trace (see the module's docstring)."""
    timed = claims["at_ns"].is_not_null()
    if has_clock and timed.any():
        at_times = _seq_at_times(claims["at_ns"].filter(timed), events)
        at = claims["at_seq"].clone().scatter(timed.arg_true(), at_times)
    else:
        at = claims["at_seq"]
    placed = claims.with_columns(at=at).with_columns(
        run=pl.when(pl.col("at").is_not_null()).then(run_of(at.fill_null(0), events))
    )
    finalizes = (
        placed.filter(pl.col("finalized"))
        .select("run", "root", seq="at")
        .unique()
        .sort("run", "root", "seq")
        .with_columns(count=pl.int_range(1, pl.len() + 1).over("run", "root"))
    )
    located = placed.filter(pl.col("at").is_not_null()).sort("at")
    located = located.with_columns(
        epoch=pl.when(pl.col("finalized"))
        .then(_epochs(located, "at", finalizes, strict=True))
        .otherwise(_epochs(located, "at", finalizes, strict=False))
    )
    # A stretch of accesses to one region under one name (memory_region_ops_*, thousands a
    # second): its first and last claim place the name as well as all of them do.
    group = ["run", "root", "epoch"]
    name = pl.col("name")
    ends = name.ne_missing(name.shift(1).over(group)) | name.ne_missing(name.shift(-1).over(group))
    is_ops = pl.col("source") == "ops"
    located = pl.concat(
        [located.filter(~is_ops), located.filter(is_ops).filter(ends)], how="vertical"
    ).sort("at")
    unplaced = placed.filter(pl.col("at").is_null()).with_columns(epoch=pl.lit(None, pl.Int64))
    return PlacedClaims(pl.concat([located, unplaced], how="vertical"), finalizes)


def _ranked(keyed: pl.DataFrame, located: pl.DataFrame) -> pl.DataFrame:
    """Span x claim pairs (same run and root) with ``rank`` and ``order`` (module docstring)
    and ``distance``, how many finalizes lie between the claim and the span's start."""
    end = pl.col("end_seq").fill_null(_NEVER)
    at = pl.col("at")
    return keyed.join(located, on=["run", "root"], how="inner", suffix="_claim").with_columns(
        rank=pl.when(pl.col("finalized"))
        .then(1)
        .when((at >= pl.col("start_seq")) & (at < end))
        .then(0)
        .when(at < pl.col("start_seq"))
        .then(2)
        .otherwise(3),
        order=pl.when(at < pl.col("start_seq")).then(-at).otherwise(at),
        distance=(pl.col("epoch_claim") - pl.col("epoch")).abs(),
    )


def name_spans(spans: pl.DataFrame, claims: PlacedClaims) -> pl.DataFrame:
    """``spans`` (``run``, ``root``, ``start_seq``, ``end_seq``) with ``NAME_COLUMNS``."""
    keyed = spans.select([*SPAN_KEY, "end_seq"]).unique(SPAN_KEY).sort("start_seq")
    keyed = keyed.with_columns(epoch=_epochs(keyed, "start_seq", claims.finalizes, strict=False))
    placed = claims.claims
    ranked = _ranked(keyed, placed.filter(pl.col("at").is_not_null()))
    # Timed claims a trace without a clock cannot place: a pointer's claims when they agree.
    agreeing = (
        placed.filter(pl.col("at").is_null())
        .group_by("root")
        .agg(pl.all().first(), variants=pl.struct("name", "alias_root", "alias_of").n_unique())
        .filter(pl.col("variants") == 1)
        .drop("variants", "run", "epoch")
    )
    fallback = keyed.join(agreeing, on="root", how="inner").with_columns(
        rank=pl.lit(4), order=pl.lit(0, pl.Int64), distance=pl.lit(0, pl.Int64)
    )
    candidates = pl.concat(
        [ranked.select(fallback.columns), fallback], how="vertical"
    ).with_columns(
        by_source=pl.when(pl.col("source").is_in(ALIAS_SOURCES)).then(0).otherwise(1),
    )
    # The name: from a claim about the region of the span's own epoch.
    best = (
        candidates.filter(pl.col("distance") == 0)
        .sort("rank", "order", "by_source")
        .group_by(SPAN_KEY, maintain_order=True)
    )
    chosen = best.agg(pl.col("name", "source").first()).rename({"source": "name_source"})
    # Whether it is an alias: from the nearest names-file or gdb claim of the same name at the
    # same address, another epoch's too. A region finalized and re-initialised in place (the
    # seed's pci-bridge windows) is seen by a debugger only after its finalize.
    aliases = (
        candidates.join(chosen.select([*SPAN_KEY, "name"]), on=[*SPAN_KEY, "name"], how="semi")
        .filter(pl.col("source").is_in(ALIAS_SOURCES))
        .sort("distance", "rank", "order")
        .group_by(SPAN_KEY, maintain_order=True)
        .agg(pl.col("alias_root", "alias_of").first())
    )
    named = chosen.join(aliases, on=SPAN_KEY, how="left")
    return spans.join(named, on=SPAN_KEY, how="left", maintain_order="left").with_columns(
        [pl.col(c).cast(t) for c, t in NAME_COLUMNS.items()]
    )
