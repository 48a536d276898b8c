"""Byte-limited copying and decompression: how a decompression bomb ends as a failure record.

The batch decompresses inputs itself (instead of leaving it to ``open_input``) so that every
byte an artifact can make qtrace write or parse is counted against ``--max-input-bytes``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path
from typing import BinaryIO, Protocol

from qtrace.parsers.source import sniff_compression

CHUNK_BYTES = 1 << 20


class LimitExceeded(Exception):
    """An artifact decoded to more bytes than the per-artifact input limit."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def copy_limited(source: Readable, out: BinaryIO, limit_bytes: int) -> int:
    """Copy ``source`` to ``out``; raise ``LimitExceeded`` past ``limit_bytes``. Bytes copied."""
    copied = 0
    while True:
        chunk = source.read(min(CHUNK_BYTES, limit_bytes + 1 - copied))
        if not chunk:
            return copied
        copied += len(chunk)
        if copied > limit_bytes:
            raise LimitExceeded(
                f"decodes to more than the per-artifact input limit of {limit_bytes} bytes "
                "(--max-input-bytes); not read"
            )
        out.write(chunk)


def decompressor(kind: str, raw: BinaryIO) -> Readable:
    """A reader of the decoded stream of ``raw`` compressed with ``kind``."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw)  # handles concatenated members
    if kind == "bz2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    import zstandard

    reader: Readable = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return reader


def _is_damage(exc: Exception) -> bool:
    # gzip/bz2/xz raise EOFError, OSError or their own errors; zstandard its ZstdError.
    return isinstance(exc, EOFError | OSError | zlib.error | lzma.LZMAError | ValueError) or (
        type(exc).__name__ == "ZstdError"
    )


def decompress_limited(kind: str, path: Path, out: BinaryIO, limit_bytes: int) -> str | None:
    """Decode ``path`` into ``out`` up to ``limit_bytes``; a warning if the stream was damaged.

    A damaged or truncated stream keeps what was decoded (as ``open_input`` does for one
    file); more than ``limit_bytes`` raises ``LimitExceeded``.
    """
    with path.open("rb") as raw:
        reader = decompressor(kind, raw)
        try:
            copy_limited(reader, out, limit_bytes)
        except LimitExceeded:
            raise
        except Exception as exc:
            if not _is_damage(exc):
                raise
            return (
                f"{kind} stream is damaged or truncated after {out.tell()} decoded bytes "
                f"({exc}); reading what was decoded"
            )
    return None


def head_bytes(path: Path, size: int) -> bytes:
    """The first ``size`` decoded bytes of ``path`` (fewer if it is shorter or damaged)."""
    with path.open("rb") as raw:
        kind = sniff_compression(raw.read(8))
        raw.seek(0)
        if kind is None:
            return raw.read(size)
        try:
            return decompressor(kind, raw).read(size)
        except Exception as exc:
            if _is_damage(exc):
                return b""
            raise
