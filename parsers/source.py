"""Open one input: a path or '-', decompressed by magic bytes into a plain local file.

Parsers then read plain files only. Decompression streams into a temporary file so a
10 GB log never sits in memory; a truncated stream keeps what was decoded and says so.
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from qtrace.errors import InputError

CHUNK_BYTES = 1 << 20
# Deflate expands at most ~1000x, so one 64 KiB piece decodes to at most ~64 MiB.
RAW_CHUNK_BYTES = 1 << 16

MAGICS: dict[str, bytes] = {
    "gzip": b"\x1f\x8b",
    "zstd": b"\x28\xb5\x2f\xfd",
    "xz": b"\xfd7zXZ\x00",
    "bz2": b"BZh",
}


def sniff_compression(head: bytes) -> str | None:
    """The compression whose magic ``head`` starts with, if any."""
    for name, magic in MAGICS.items():
        if head.startswith(magic):
            return name
    return None


@dataclass
class OpenedInput:
    """A plain, seekable local file holding the input's bytes."""

    name: str  # what the user called it ('-' shows as '<stdin>')
    path: Path  # where the plain bytes are
    compression: str | None = None
    warnings: list[str] = field(default_factory=list)
    bytes_skipped: int = 0


class _Decompressor(Protocol):
    """The incremental interface zlib, bz2, lzma and zstandard decompressors share."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, /) -> bytes: ...


def _decompressor(kind: str) -> _Decompressor:
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor()
    import zstandard

    return cast(_Decompressor, zstandard.ZstdDecompressor().decompressobj())


def _decompress_into(kind: str, raw: BinaryIO, out: BinaryIO, name: str) -> str | None:
    """Copy the decompressed stream to ``out``; return a warning if the stream was damaged.

    Incremental decompressors hand over every byte decoded before the damage (a file
    object's read() would lose its last partial chunk), and small input pieces bound the
    memory one piece can expand to.
    """
    decoder = _decompressor(kind)
    try:
        while chunk := raw.read(RAW_CHUNK_BYTES):
            out.write(decoder.decompress(chunk))
            # Concatenated streams (gzip members, xz streams, zstd frames) follow one another.
            while decoder.eof and decoder.unused_data:
                rest = decoder.unused_data
                decoder = _decompressor(kind)
                out.write(decoder.decompress(rest))
    except Exception as exc:
        # zlib.error, OSError, EOFError, lzma.LZMAError, ValueError; zstandard.ZstdError.
        return (
            f"{name}: {kind} stream is damaged after {out.tell()} decoded bytes "
            f"({exc}); reading what was decoded"
        )
    if not decoder.eof:
        return (
            f"{name}: {kind} stream is truncated after {out.tell()} decoded bytes; "
            "reading what was decoded"
        )
    return None


@contextlib.contextmanager
def open_input(name: str, tmpdir: str | None = None) -> Iterator[OpenedInput]:
    """Yield the input as a plain local file; temporary copies are removed afterwards."""
    shown = "<stdin>" if name == "-" else name
    temps: list[Path] = []
    try:
        if name == "-":
            fd, tmp = tempfile.mkstemp(prefix="qtrace-stdin-", dir=tmpdir)
            temps.append(Path(tmp))
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out, CHUNK_BYTES)
            path = Path(tmp)
        else:
            path = Path(name)
            if not path.exists():
                raise InputError(f"{shown}: no such file")
            if path.is_dir():
                raise InputError(f"{shown}: is a directory, not a trace file")
        try:
            with path.open("rb") as fh:
                head = fh.read(8)
        except OSError as exc:
            raise InputError(f"{shown}: cannot read ({exc.strerror or exc})") from None
        kind = sniff_compression(head)
        opened = OpenedInput(shown, path, kind)
        if kind is not None:
            fd, tmp = tempfile.mkstemp(prefix="qtrace-plain-", dir=tmpdir)
            temps.append(Path(tmp))
            with path.open("rb") as raw, os.fdopen(fd, "wb") as out:
                warning = _decompress_into(kind, raw, out, shown)
            if warning:
                opened.warnings.append(warning)
            opened.path = Path(tmp)
        if opened.path.stat().st_size == 0:
            if opened.warnings:  # a damaged stream that gave nothing: say why, not "empty"
                raise InputError(opened.warnings[0].replace("; reading what was decoded", ""))
            after = f" (after {kind} decompression)" if kind else ""
            raise InputError(f"{shown}: empty file{after}")
        yield opened
    finally:
        for tmp_path in temps:
            tmp_path.unlink(missing_ok=True)


SIMPLE_HEADER_EVENT_ID = b"\xff" * 8
SIMPLE_MAGIC = 0xF2B177CB0AA429B4


def sniff_format(path: Path) -> str:
    """'simple' when the file starts like the simple backend's header, else 'log'.

    Either of the header's first two words is enough (its all-ones header id, or its magic
    in either byte order): no text starts with eight 0xff bytes, so a header with a damaged
    field goes to the simple reader, which says what is wrong with it, instead of to the log
    reader, which would find no trace lines in it.
    """
    with path.open("rb") as fh:
        head = fh.read(16)
    if head[:8] == SIMPLE_HEADER_EVENT_ID:
        return "simple"
    magic = head[8:16]
    if len(magic) == 8 and SIMPLE_MAGIC in (
        int.from_bytes(magic, "little"),
        int.from_bytes(magic, "big"),
    ):
        return "simple"
    return "log"
