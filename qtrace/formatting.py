"""How qtrace writes values for people: pointers, durations, and text made safe for a format.

Each rule is written once, as a polars expression over a column, so tables of any size
format in one pass and every output (terminal, Markdown, JSON, HTML, Plotly labels) shows
a value the same way. ``scalar`` applies an expression to one value for the few places that
format a single number.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

_HEX_DIGITS = list("0123456789abcdef")


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
    # polars has no hex formatter for integers: the digits from nibbles, zeros stripped.
    digits = pl.concat_str(
        [
            ((col // (1 << (4 * (15 - i)))) % 16).replace_strict(
                list(range(16)), _HEX_DIGITS, return_dtype=pl.String
            )
            for i in range(16)
        ]
    )
    stripped = digits.str.strip_chars_start("0")
    hexed = pl.lit("0x") + pl.when(stripped == "").then(pl.lit("0")).otherwise(stripped)
    out = pl.when(col.is_null()).then(None).otherwise(hexed)
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
