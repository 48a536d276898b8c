"""Argument decoding: the ``args`` text of records that share one layout, as simpletrace.py prints
it (``name=0x1f dev=b'pci'``).

Each distinct argument tuple is rendered once and every record points at its text, so the
column shares a few strings instead of holding one per record. The C kernel hashes each
record's argument bytes and renders the distinct ones; the numpy path (the reference)
decodes the values column by column, numbers the distinct tuples and renders them in Python,
where ``repr`` of bytes is the exact text QEMU's reader prints.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from qtrace.parsers.simple import kernel
from qtrace.parsers.simple.file import Window
from qtrace.parsers.simple.gather import Fields, Offsets
from qtrace.parsers.simple.layout import EVENT_HEADER_BYTES
from qtrace.parsers.simple.mappings import value_codes

Layout = tuple[tuple[bool, str], ...]
# Argument texts remembered across blocks, per layout (a tuple repeats in many blocks); the
# memory this takes is capped by forgetting them all now and then.
Rendered = dict[Layout, dict[tuple[Any, ...], str]]
RENDERED_LIMIT = 1 << 20


def args_text(
    window: Window,
    order: str,
    offsets: Offsets,
    lengths: npt.NDArray[np.uint32],
    layout: Layout,
    rendered: Rendered,
) -> tuple[pl.Series, npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
    """The texts of records sharing ``layout``: distinct texts, each row's text, and ``ok``.

    ``ok`` is false where a record does not fit the layout (its row's text is meaningless).
    ``offsets`` are file offsets of records held in ``window``.
    """
    relative = offsets - window.base
    kernel_module = kernel.get()
    if kernel_module is not None:
        strings = bytes(is_string for is_string, _ in layout)
        names = tuple(name for _, name in layout)
        codes = np.empty(offsets.size, np.uint32)
        ok = np.empty(offsets.size, np.bool_)
        texts = kernel_module.render(
            window.buffer(), relative, lengths, strings, names, order == ">", codes, ok
        )
        return pl.Series("args", texts, pl.String), codes, ok
    values, ok = decode_values(Fields(window.data, order), relative, lengths, layout)
    text, codes = _numbered_texts(layout, values, offsets.size, rendered)
    return text, codes, ok


def decode_values(
    fields: Fields, offsets: Offsets, lengths: npt.NDArray[np.uint32], layout: Layout
) -> tuple[pl.DataFrame, npt.NDArray[np.bool_]]:
    """One column per argument (``a0``, ``a1``, ...) and the per-record ``ok`` mask.

    ``offsets`` are relative to ``fields``. A record that does not fit the layout has
    placeholder values and ``ok`` false.
    """
    ends = offsets + lengths.astype(np.int64) + 8
    ok = np.ones(offsets.size, bool)
    columns: dict[str, pl.Series] = {}
    pos = offsets + EVENT_HEADER_BYTES
    for index, (is_string, _name) in enumerate(layout):
        key = f"a{index}"
        if is_string:
            ok &= pos + 4 <= ends
            str_len = np.where(ok, fields.u32(np.where(ok, pos, offsets)), 0).astype(np.int64)
            ok &= pos + 4 + str_len <= ends
            columns[key] = fields.strings(pos + 4, np.where(ok, str_len, 0)).alias(key)
            pos = np.where(ok, pos + 4 + str_len, pos)
        else:
            ok &= pos + 8 <= ends
            columns[key] = pl.Series(key, fields.u64(np.where(ok, pos, offsets)))
            pos = pos + 8
    ok &= pos == ends
    return pl.DataFrame(columns), ok


def _render(layout: Layout, values: pl.DataFrame, rendered: Rendered) -> list[str]:
    """simpletrace.py's text for each row of distinct argument values.

    A Python loop over *distinct* tuples only: ``repr`` of bytes is the exact text QEMU's
    reader prints for strings, and no polars expression reproduces it.
    """
    known = rendered.setdefault(layout, {})
    if len(known) > RENDERED_LIMIT:
        known.clear()
    texts = []
    for row in values.iter_rows():
        text = known.get(row)
        if text is None:
            text = known[row] = " ".join(
                f"{name}={value!r}" if is_string else f"{name}=0x{value:x}"
                for (is_string, name), value in zip(layout, row, strict=True)
            )
        texts.append(text)
    return texts


def _numbered_texts(
    layout: Layout, values: pl.DataFrame, rows: int, rendered: Rendered
) -> tuple[pl.Series, npt.NDArray[np.uint32]]:
    """The ``args`` text: each distinct argument tuple rendered once, and each row's number.

    Each row's tuple becomes one integer key (hash lookups on one u64 column beat a
    multi-column join): the integer column with the largest values enters the key as it is,
    the other columns are numbered by their distinct values and packed below it by mixed
    radix. Rows that failed their declaration hold placeholder values; the caller nulls them.
    """
    keys = list(values.columns)
    if not keys:
        return pl.Series("args", [""], pl.String), np.zeros(rows, np.uint32)
    int_keys = [k for k, (is_string, _) in zip(keys, layout, strict=True) if not is_string]
    maxes: dict[str, int] = {}
    if int_keys:
        maxes = dict(zip(int_keys, values.select(int_keys).max().row(0), strict=True))
    by_max = sorted(int_keys, key=maxes.__getitem__, reverse=True)
    raw = by_max[0] if by_max else None
    distinct_values = {
        k: values.get_column(k).unique(maintain_order=True) for k in keys if k != raw
    }
    span = prod(s.len() for s in distinct_values.values())
    if raw is not None and (maxes[raw] + 1) * span >= 2**64:
        # Too large to pack as it is (e.g. a -1 that became 0xffff...): number it too, and
        # take as raw the next column that fits instead.
        distinct_values[raw] = values.get_column(raw).unique(maintain_order=True)
        span *= distinct_values[raw].len()
        raw = None
        for k in by_max[1:]:
            rest = span // distinct_values[k].len()
            if (maxes[k] + 1) * rest < 2**64:
                raw, span = k, rest
                break
    coded = [k for k in keys if k != raw]
    if span >= 2**64:
        distinct = values.unique(subset=keys)
        texts = distinct.with_columns(
            pl.Series("args", _render(layout, distinct, rendered), pl.String)
        )
        joined = values.join(texts, on=keys, how="left", maintain_order="left")["args"]
        return joined, np.arange(rows, dtype=np.uint32)
    # Built in place in one array: every full-length temporary is fresh memory to fault in.
    key = np.zeros(rows, np.uint64)
    if raw is not None:
        np.multiply(values.get_column(raw).to_numpy(), np.uint64(span), out=key)
    scale = 1
    for k in coded:
        uniques = distinct_values[k]
        if uniques.dtype == pl.Binary:
            numbers = np.arange(uniques.len(), dtype=np.uint32)
            codes = values.get_column(k).replace_strict(uniques, numbers, return_dtype=pl.UInt32)
        else:
            codes = value_codes(values.get_column(k).to_numpy(), uniques)
        code_values = codes.to_numpy()
        if scale != 1:
            code_values = code_values * np.uint64(scale)
        key += code_values
        scale *= uniques.len()
    tuple_key = pl.Series("key", key)
    tuple_keys = tuple_key.unique(maintain_order=True)
    remaining = tuple_keys.to_numpy()
    columns = {}
    for k in coded:
        uniques = distinct_values[k]
        columns[k] = uniques.gather(remaining % np.uint64(uniques.len()))
        remaining = remaining // np.uint64(uniques.len())
    if raw is not None:
        columns[raw] = pl.Series(raw, remaining)
    distinct = pl.DataFrame({k: columns[k] for k in keys})
    text = pl.Series("args", _render(layout, distinct, rendered), pl.String)
    return text, value_codes(key, tuple_keys).to_numpy()
