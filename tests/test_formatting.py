"""qtrace.formatting's pointer rule: the C extension and the polars expressions agree."""

from __future__ import annotations

import os
from unittest import mock

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

import qtrace
from qtrace import formatting
from qtrace.formatting import NO_FORMAT_EXTENSION, hex_pointer

POINTERS = st.lists(st.one_of(st.none(), st.integers(0, 2**64 - 1)), max_size=40)


def hexed(values: pl.Series, extension: bool) -> pl.Series:
    with mock.patch.dict(os.environ, {NO_FORMAT_EXTENSION: "0" if extension else "1"}):
        return values.to_frame("p").select(hex_pointer("p")).to_series()


def test_the_extension_is_built_here() -> None:
    # CI compiles it: a missing module is a failure, not a slow path.
    assert formatting._format is not None


@given(POINTERS, POINTERS)
def test_both_ways_print_what_qemu_prints(
    first: list[int | None], second: list[int | None]
) -> None:
    # Two chunks, as a table read in parts hands them over.
    values = pl.concat(
        [pl.Series("p", first, pl.UInt64), pl.Series("p", second, pl.UInt64)], rechunk=False
    )
    expected = [None if v is None else f"{v:#x}" for v in first + second]  # QEMU's %p
    assert hexed(values, extension=True).to_list() == expected
    assert hexed(values, extension=False).to_list() == expected


def test_a_sliced_column_and_an_expression_inside_a_format() -> None:
    values = pl.Series("p", [None, 0, 1, 0xFFFF, 0x10000, 2**63, 2**64 - 1], pl.UInt64)
    sliced = values.slice(2, 4)  # an Arrow offset into the chunk
    for extension in (True, False):
        assert hexed(sliced, extension).to_list() == ["0x1", "0xffff", "0x10000", "0x8" + "0" * 15]
        with mock.patch.dict(os.environ, {NO_FORMAT_EXTENSION: "0" if extension else "1"}):
            text = values.to_frame().select(pl.format("view {}", hex_pointer(pl.col("p"))))
        assert text.to_series().to_list()[:3] == [None, "view 0x0", "view 0x1"]


def test_the_pointers_of_a_real_trace_are_the_same_both_ways() -> None:
    events = qtrace.read_events("samples/pc-bridges-ts.log")
    for column in ("view", "root"):
        with_c = hexed(events[column], extension=True)
        assert with_c.equals(hexed(events[column], extension=False))
        assert with_c.drop_nulls().str.starts_with("0x").all()
