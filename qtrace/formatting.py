"""How qtrace writes values for people: pointers, durations, and text made safe for a format.

Each rule is written once, as a polars expression over a column, so tables of any size
format in one pass and every output (terminal, Markdown, JSON, HTML, Plotly labels) shows
a value the same way. ``scalar`` applies an expression to one value for the few places that
format a single number.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import polars as pl

try:
    from qtrace import _format
except ImportError:  # built without a compiler
    _format = None  # type: ignore[assignment]

NO_FORMAT_EXTENSION = "QTRACE_NO_FORMAT_EXTENSION"  # "1": the polars expressions (tests)


class _Arrow:
    """One column from the extension (Arrow C Data Interface capsules), for ``pl.Series``."""

    def __init__(self, capsules: tuple[object, object]) -> None:
        self._capsules = capsules

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        return self._capsules


def _hex_pointers_c(values: pl.Series) -> pl.Series:
    found = _format.hex_pointers(values.cast(pl.UInt64).__arrow_c_stream__())
    return pl.Series(values.name, _Arrow(found)).cast(pl.String)


@functools.cache
def _hex_chunks() -> pl.Series:
    """Every 16-bit value as four hex digits: a pointer's text is four of them, gathered."""
    return pl.Series([f"{i:04x}" for i in range(1 << 16)], dtype=pl.String)


def _hex_pointers_polars(col: pl.Expr) -> pl.Expr:
    # polars has no hex formatter for integers: the digits of each 16 bits from a table, then
    # the leading zero digits cut (all but one for nil). A null stays null all the way.
    digits = pl.concat_str(
        [pl.lit(_hex_chunks()).gather((col // (1 << (16 * (3 - i)))) % (1 << 16)) for i in range(4)]
    )
    leading_zero_digits = pl.min_horizontal(col.bitwise_leading_zeros() // 4, 15)
    return pl.lit("0x") + digits.str.slice(leading_zero_digits)


def hex_pointer(column: str | pl.Expr) -> pl.Expr:
    """A UInt64 pointer as QEMU prints it: ``0x55a9b6e62e50``; nil is ``0x0``; null stays null.

    Examples
    --------
    >>> scalar(hex_pointer, 0x55A9B6E62E50, pl.UInt64)
    '0x55a9b6e62e50'
    >>> scalar(hex_pointer, 0, pl.UInt64)
    '0x0'
    """
    col = pl.col(column) if isinstance(column, str) else column
    if _format is not None and os.environ.get(NO_FORMAT_EXTENSION, "") != "1":
        # Millions of pointers (``qtrace events -f csv``): the extension writes them directly.
        out = col.map_batches(_hex_pointers_c, return_dtype=pl.String, is_elementwise=True)
    else:
        out = _hex_pointers_polars(col.cast(pl.UInt64))
    return out.alias(column) if isinstance(column, str) else out


def significant(expr: pl.Expr) -> pl.Expr:
    """A number as text with three significant figures; a whole number shows no ``.0``.

    The zoom script in the dashboards repeats this rule in JavaScript (its ``significant``).

    Examples
    --------
    >>> scalar(significant, 12_345.0, pl.Float64), scalar(significant, 12.5, pl.Float64)
    ('12300', '12.5')
    """
    return expr.cast(pl.Float64).round_sig_figs(3).cast(pl.String).str.strip_suffix(".0")


# A duration's units, largest first: (ns in one, name).
_UNITS = ((1e9, "s"), (1e6, "ms"), (1e3, "µs"))


def duration(expr: pl.Expr) -> pl.Expr:
    """A duration in ns as short text with a unit, three significant figures: ``3.55 ms``.

    Examples
    --------
    >>> scalar(duration, 3_550_000, pl.Int64)
    '3.55 ms'
    >>> scalar(duration, 812, pl.Int64)
    '812 ns'
    >>> scalar(duration, 131_000_000, pl.Int64)
    '131 ms'
    >>> scalar(duration, 12.5, pl.Float64)
    '12.5 ns'
    """
    value = expr.cast(pl.Float64)
    size = value.abs()
    scaled: Any = pl
    unit: Any = pl
    for ns, name in _UNITS:
        scaled = scaled.when(size >= ns).then(value / ns)
        unit = unit.when(size >= ns).then(pl.lit(name))
    number = significant(scaled.otherwise(value))
    return pl.format("{} {}", number, unit.otherwise(pl.lit("ns")))


def scalar(rule: Any, value: Any, dtype: pl.DataType | type[pl.DataType]) -> Any:
    """``rule`` (one of this module's expression builders) applied to a single value."""
    return pl.select(rule(pl.lit(value, dtype))).item()


# ------------------------------------------------------------------------------ escaping

# Text from a trace or a file name is hostile until escaped: one rule per target format.
# Quotes as numeric references: valid in HTML and decoded by Plotly's labels and hovers too,
# which know only a few named entities (not &quot;).
_HTML = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;"))
# Characters that steer a terminal or reorder text (C0/C1 controls, bidi overrides): shown as
# U+FFFD wherever text is embedded in a document.
_CONTROL = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
_CONTROL_RE = re.compile(_CONTROL)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")


def escape_html(text: str) -> str:
    """``text`` for HTML element content, a quoted attribute value, or a Plotly label.

    Examples
    --------
    >>> escape_html('<b onclick="x">&</b>')
    '&lt;b onclick=&#34;x&#34;&gt;&amp;&lt;/b&gt;'
    """
    for raw, entity in _HTML:
        text = text.replace(raw, entity)
    return text


def escape_html_column(expr: pl.Expr) -> pl.Expr:
    """``escape_html`` over a column (the same five replacements, in the same order)."""
    out = expr.cast(pl.String)
    for raw, entity in _HTML:
        out = out.str.replace_all(raw, entity, literal=True)
    return out


def escape_markdown(text: str) -> str:
    """``text`` safe inside a Markdown table cell or list item: one line, no HTML, no markup.

    Whitespace runs (newlines included) become one space, control characters U+FFFD, HTML is
    escaped, and Markdown's inline markers are backslash-escaped.

    Examples
    --------
    >>> escape_markdown("a|b `c`\\n<i>")
    'a\\\\|b \\\\`c\\\\` &lt;i&gt;'
    """
    flat = " ".join(_CONTROL_RE.sub("\ufffd", text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escape_html(flat))


def escape_control(text: str) -> str:
    """``text`` with terminal control and bidi-override characters shown as U+FFFD."""
    return _CONTROL_RE.sub("\ufffd", text)


__all__ = [
    "duration",
    "escape_control",
    "escape_html",
    "escape_html_column",
    "escape_markdown",
    "hex_pointer",
    "scalar",
    "significant",
]
