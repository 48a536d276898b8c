"""The lines of a text trace, numbered from 1, whatever their encoding and line endings.

- UTF-8, with or without a byte-order mark (the mark is no part of line 1).
- UTF-16 and UTF-32 (as a Windows tool or PowerShell's ``>`` saves a log): told by their
  byte-order mark, or UTF-16 without one by its NUL bytes, and converted to UTF-8 in a
  temporary file as it streams; a warning says so.
- Bytes that are not UTF-8 make polars' fast line reader fail; the file is then read again
  through the CSV reader's lossy decoding (U+FFFD), and a warning says where first.
- CR LF and LF endings (one CR before the LF is dropped).
- Lines longer than ``LONG_LINE_BYTES`` (binary junk, a gzip of zeros, lost newlines) are
  cut at that length in a temporary copy: polars holds a line whole, so one line of 1 GiB
  took 3 GB. A cut line that names a FlatView event after the cut keeps the name at its end,
  so the reader still marks it as a garbled FlatView line.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
LONG_LINE_BYTES = 1 << 20  # longer lines are cut (and reported): polars holds a line whole
FLATVIEW_NAME = re.compile(rb"flatview_(?:new|destroy_rcu|destroy)")
NAME_BYTES = len("flatview_destroy_rcu")  # the longest name: what a search keeps back
# The end of a cut line's kept text that " NAME" is written over: the name, its space, up
# to 3 more bytes to start on a character, and the up to 3 bytes a cut inside a character
# takes back from what was kept.
KEPT_END_BYTES = NAME_BYTES + 1 + 3 + 3
TAIL_BYTES = 1 << 16  # how much of a file's end is read back to quote a cut last line


@dataclass(frozen=True)
class TextFile:
    """A UTF-8 (or nearly) file to read lines from, and what reading it needed."""

    path: Path
    bom: bool = False  # a UTF-8 byte-order mark starts line 1
    encoding: str | None = None  # the encoding it was converted from, if any
    long_lines: tuple[int, int | None] = (0, None)  # lines cut at LONG_LINE_BYTES, the first


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


def has_long_line(path: Path, limit: int = LONG_LINE_BYTES) -> bool:
    """Whether a line of the file at ``path`` is longer than ``limit`` bytes.

    Read in chunks of ``limit`` bytes: a line inside one chunk is shorter, so only the line
    that runs over each chunk's edges is measured (a search for the first and last newline
    of each chunk, at memory speed).

    Examples
    --------
    >>> has_long_line(Path("samples/pc-boot-ts.log"))
    False
    """
    run = 0  # bytes of the line still open at the end of the chunks read
    with path.open("rb") as fh:
        while chunk := fh.read(limit):
            first = chunk.find(b"\n")
            if first < 0:
                run += len(chunk)
            elif run + first > limit:
                return True
            else:
                run = len(chunk) - chunk.rfind(b"\n") - 1
            if run > limit:
                return True
    return False


class _LineCutter:
    """Copies a file with every line longer than ``limit`` bytes cut to ``limit`` bytes.

    A cut line whose dropped part names a FlatView event ends with that name (within the
    limit), so the reader marks it as a garbled FlatView line, as it would the whole line.
    """

    def __init__(self, out: BinaryIO, limit: int) -> None:
        self.out, self.limit = out, limit
        self.line = 1  # the line being copied
        self.kept = 0  # its bytes written
        self.cut = False  # it is over the limit: the rest of it is dropped
        self.named: bytes | None = None  # the FlatView name first met in its dropped part
        self.pending = b""  # the end of its text not yet searched for a name
        self.kept_end = b""  # the end of its kept text
        self.visible = 0  # bytes at the start of pending that are kept text
        self.cuts = 0
        self.first_cut: int | None = None

    def _search(self, final: bool) -> None:
        """Look for a FlatView name in ``pending`` that runs past the kept text; all of it at
        the line's end, else only where a whole name fits (the rest waits for the next part).
        """
        if self.named is None:
            stop = len(self.pending) if final else len(self.pending) - NAME_BYTES
            for found in FLATVIEW_NAME.finditer(self.pending):
                if found.end() <= self.visible:
                    continue  # in the kept text: the reader sees it
                if found.start() < stop:
                    self.named = found.group()
                break
        dropped = max(len(self.pending) - NAME_BYTES, 0)
        self.pending = self.pending[dropped:]
        self.visible = max(self.visible - dropped, 0)

    def _continue(self, part: bytes) -> None:
        """``part`` continues the current line (no newline in it)."""
        room = self.limit - self.kept
        if self.cut:
            self.pending += part
        elif len(part) <= room:
            self.out.write(part)
            self.kept += len(part)
            self.kept_end = (self.kept_end + part)[-KEPT_END_BYTES:]
            return
        else:
            # Cut before a character, not inside one (the copy stays UTF-8), going back into
            # what was written if the character began there.
            text = self.kept_end + part
            at = len(self.kept_end) + room
            while at > 0 and text[at] & 0xC0 == 0x80:
                at -= 1
            if at < len(self.kept_end):
                self.out.seek(at - len(self.kept_end), os.SEEK_CUR)  # later writes go over it
            else:
                self.out.write(part[: at - len(self.kept_end)])
            self.kept_end = text[:at][-KEPT_END_BYTES:]
            # A name may start in the kept text and run on past the cut.
            self.pending = self.kept_end[-NAME_BYTES:] + text[at:]
            self.visible = len(self.kept_end[-NAME_BYTES:])
            self.cut = True
            self.cuts += 1
            self.first_cut = self.first_cut or self.line
        self._search(final=False)

    def _end_line(self) -> None:
        if self.cut:
            self._search(final=True)
        if self.named is not None:
            # The kept text's end becomes " NAME", starting on a character: within the limit.
            size = len(self.named) + 1
            while size < len(self.kept_end) and self.kept_end[-size] & 0xC0 == 0x80:
                size += 1
            self.out.seek(-size, os.SEEK_CUR)
            self.out.write(b" " * (size - len(self.named)) + self.named)
        self.line += 1
        self.kept, self.cut, self.named, self.pending, self.kept_end = 0, False, None, b"", b""

    def feed(self, chunk: bytes) -> None:
        """Copy the next ``chunk`` (at most ``limit`` bytes, so only its first line can be
        long with what came before, and its last with what comes after)."""
        first = chunk.find(b"\n")
        if first < 0:
            self._continue(chunk)
            return
        self._continue(chunk[:first])
        self._end_line()
        last = chunk.rfind(b"\n")
        self.out.write(chunk[first : last + 1])  # whole lines, each within the limit
        self.line += chunk.count(b"\n", first + 1, last + 1)
        if last + 1 < len(chunk):
            self._continue(chunk[last + 1 :])

    def close(self) -> None:
        """End the copy: a last line with no newline may be cut too."""
        if self.cut:
            self._end_line()
        self.out.truncate()  # a character cut from the last line's end may still stand there


def _cut_copy(path: Path, out_fd: int, limit: int) -> tuple[int, int | None]:
    """Copy ``path`` into ``out_fd`` with long lines cut; how many were cut, and the first."""
    with path.open("rb") as raw, os.fdopen(out_fd, "wb") as out:
        cutter = _LineCutter(out, limit)
        while chunk := raw.read(limit):
            cutter.feed(chunk)
        cutter.close()
    return cutter.cuts, cutter.first_cut


@contextlib.contextmanager
def utf8_text(path: Path, tmpdir: Path | None = None) -> Iterator[TextFile]:
    """The file as UTF-8 text with no line over ``LONG_LINE_BYTES``: itself, or a converted
    or cut temporary copy (in ``tmpdir``) removed afterwards."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    encoding = _wide_encoding(head)
    made: list[Path] = []

    def temporary() -> tuple[int, Path]:
        fd, tmp = tempfile.mkstemp(prefix="qtrace-utf8-", suffix=".log", dir=tmpdir)
        made.append(Path(tmp))
        return fd, made[-1]

    try:
        text = TextFile(path, bom=head.startswith(BOM_UTF8))
        if encoding is not None:
            fd, converted = temporary()
            _convert(path, encoding, fd)
            with converted.open("rb") as fh:
                bom = fh.read(3) == BOM_UTF8  # a BOM-less UTF-16 file may still hold U+FEFF
            text = TextFile(converted, bom=bom, encoding=encoding.upper())
        if has_long_line(text.path):
            fd, cut = temporary()
            long_lines = _cut_copy(text.path, fd, LONG_LINE_BYTES)
            text = TextFile(cut, bom=text.bom, encoding=text.encoding, long_lines=long_lines)
            if len(made) > 1:
                made.pop(0).unlink()  # the converted copy, read now
        yield text
    finally:
        for tmp in made:
            tmp.unlink(missing_ok=True)


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


__all__ = [
    "LONG_LINE_BYTES",
    "TextFile",
    "ends_with_newline",
    "has_long_line",
    "is_utf8_error",
    "last_line",
    "scan",
    "utf8_text",
]
