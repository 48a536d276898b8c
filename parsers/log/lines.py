"""The lines of a text trace, numbered from 1, whatever their encoding and line endings.

- UTF-8, with or without a byte-order mark (the mark is no part of line 1).
- UTF-16 and UTF-32 (as a Windows tool or PowerShell's ``>`` saves a log): told by their
  byte-order mark, or UTF-16 without one by its NUL bytes, and converted to UTF-8 in a
  temporary file as it streams; a warning says so.
- Bytes that are not UTF-8 make polars' fast line reader fail; the file is then read again
  through the CSV reader's lossy decoding (U+FFFD), and a warning says where first.
- CR LF and LF endings (one CR before the LF is dropped).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from qtrace.parsers.log.fields import LINE, TEXT

BOM_UTF8 = b"\xef\xbb\xbf"
# Longest first: UTF-32 LE's mark starts with UTF-16 LE's.
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
SNIFF_BYTES = 4096
CHUNK_BYTES = 1 << 20
TAIL_BYTES = 1 << 16  # how much of a file's end is read back to quote a cut last line


@dataclass(frozen=True)
class TextFile:
    """A UTF-8 (or nearly) file to read lines from, and what reading it needed."""

    path: Path
    bom: bool = False  # a UTF-8 byte-order mark starts line 1
    encoding: str | None = None  # the encoding it was converted from, if any


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16 or UTF-32 by a byte-order mark, or UTF-16 by NULs in every other byte."""
    for bom, encoding in WIDE_BOMS:
        if head.startswith(bom):
            return encoding
    pairs = len(head) // 2
    if pairs < 8:
        return None
    nul_even = head[0 : 2 * pairs : 2].count(0)
    nul_odd = head[1 : 2 * pairs : 2].count(0)
    # ASCII text in UTF-16 has a NUL in nearly every high byte and in no low byte.
    if nul_odd > 0.8 * pairs and nul_even < 0.05 * pairs:
        return "utf-16-le"
    if nul_even > 0.8 * pairs and nul_odd < 0.05 * pairs:
        return "utf-16-be"
    return None


def _convert(path: Path, encoding: str, out_fd: int) -> None:
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    with path.open("rb") as raw, os.fdopen(out_fd, "wb") as out:
        while chunk := raw.read(CHUNK_BYTES):
            out.write(decoder.decode(chunk).encode())
        out.write(decoder.decode(b"", final=True).encode())


@contextlib.contextmanager
def utf8_text(path: Path) -> Iterator[TextFile]:
    """The file as UTF-8 text: itself, or a converted temporary copy removed afterwards."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    encoding = _wide_encoding(head)
    if encoding is None:
        yield TextFile(path, bom=head.startswith(BOM_UTF8))
        return
    fd, tmp = tempfile.mkstemp(prefix="qtrace-utf8-", suffix=".log")
    try:
        _convert(path, encoding, fd)
        converted = Path(tmp)
        with converted.open("rb") as fh:
            bom = fh.read(3) == BOM_UTF8  # a BOM-less UTF-16 file may still hold U+FEFF
        yield TextFile(converted, bom=bom, encoding=encoding.upper())
    finally:
        Path(tmp).unlink(missing_ok=True)


def scan(text: TextFile, lossy: bool) -> pl.LazyFrame:
    """The file's lines with 1-based line numbers, streamed."""
    if lossy:
        # scan_lines rejects invalid UTF-8; the CSV reader can replace it. NUL is the
        # separator so a line is one field (text after a NUL byte is dropped: binary junk).
        lines = pl.scan_csv(
            text.path,
            has_header=False,
            separator="\x00",
            quote_char=None,
            comment_prefix=None,
            schema={TEXT: pl.String},
            encoding="utf8-lossy",
            truncate_ragged_lines=True,
            empty_string_is_null=False,
            raise_if_empty=False,
            extra_columns="ignore",
            glob=False,
        )
    else:
        lines = pl.scan_lines(text.path, name=TEXT, glob=False)
    lines = lines.with_row_index(LINE, offset=1)
    if text.bom:
        first = pl.col(LINE) == 1
        column = pl.col(TEXT)
        lines = lines.with_columns(
            pl.when(first).then(column.str.strip_prefix("\ufeff")).otherwise(column).alias(TEXT)
        )
    return lines


def is_utf8_error(exc: Exception) -> bool:
    return "utf8" in str(exc).lower() or "utf-8" in str(exc).lower()


def ends_with_newline(path: Path) -> bool:
    """Whether the file's last byte is a newline (else its last line may be cut)."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return True
        fh.seek(size - 1)
        return fh.read(1) == b"\n"


def last_line(path: Path) -> str:
    """The text of a file's last line (read back from its end; at most ``TAIL_BYTES``)."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - TAIL_BYTES))
        tail = fh.read()
    return tail.rsplit(b"\n", 1)[-1].rstrip(b"\r").decode("utf-8", errors="replace")


__all__ = ["TextFile", "ends_with_newline", "is_utf8_error", "last_line", "scan", "utf8_text"]
