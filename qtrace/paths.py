"""How a file name is shown to a person: one function for every output.

Linux file names are bytes, not text. Python carries the bytes that are not UTF-8 as lone
surrogates (``os.fsdecode``'s ``surrogateescape``): such a name opens its file, but cannot be
printed, written as UTF-8 or put in a polars column. And a name that is valid UTF-8 can
still hold control characters (ESC, a newline, U+202E RIGHT-TO-LEFT OVERRIDE) that rewrite
a terminal line or a report. qtrace opens files by their names as given, losslessly, and
shows them everywhere (messages, the events' ``source`` column, reports, JSON, Markdown,
JUnit, HTML) as ``display`` writes them.
"""

from __future__ import annotations

import os
import unicodedata

# Categories shown as escapes: controls (C0, C1), format characters (bidi overrides,
# zero-width characters, the BOM), line and paragraph separators, lone surrogates.
_HIDDEN_CATEGORIES = frozenset(["Cc", "Cf", "Zl", "Zp", "Cs"])
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """The text that shows ``path``: printable, valid UTF-8, one line.

    Bytes that are not UTF-8 show as ``\\xNN``, control and invisible format characters as
    ``\\xNN``, ``\\uNNNN`` or ``\\t``, ``\\n``, ``\\r``; everything else, backslashes
    included, is shown as it is, so a usual name stays exactly the same. Showing is all
    this is for: open files by the original name, never by this text.

    Examples
    --------
    >>> display("ci/run 1/trace.log")
    'ci/run 1/trace.log'
    >>> display(b"caf\\xe9.log")
    'caf\\\\xe9.log'
    >>> display("caf\\udce9.log")  # how Python carries that byte from a command line
    'caf\\\\xe9.log'
    >>> display("evil\\x1b[2J\\u202etxt.log")
    'evil\\\\x1b[2J\\\\u202etxt.log'
    """
    try:
        text = os.fsencode(path).decode("utf-8", errors="backslashreplace")
    except UnicodeEncodeError:  # a str with surrogates no file name can hold: show them
        text = str(os.fspath(path))
    if text.isprintable():
        return text
    return "".join(
        _escape(char) if unicodedata.category(char) in _HIDDEN_CATEGORIES else char for char in text
    )
