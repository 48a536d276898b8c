"""Decompression by magic bytes, streamed in bounded pieces, keeping what a damaged stream gave.

One table (``CODECS``) says which compressions qtrace reads and how; ``DecodedReader`` reads
any of them (or plain bytes) through one loop. Whatever the input, one call into a
decompressor decodes at most ``PIECE_BYTES`` (8 MiB for zstd, see ``ZSTD_FEED_BYTES``), so
memory does not grow with the decoded size: a gzip of 1 GiB of zeros decodes in a few MiB
over what the process already holds. Concatenated members (gzip
members, xz streams, zstd frames, bzip2 streams) follow one another, and zero padding after
the last one is ignored. A stream that breaks or stops early ends the reader without an
exception: ``damage`` then says how, and every byte decoded before it was handed out.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, cast

PIECE_BYTES = 1 << 20  # most decoded bytes one decompressor call returns
RAW_BYTES = 1 << 16  # compressed bytes read from the input at a time
# zstandard's decompressobj has no output bound: feed it little at a time instead. A zstd
# block of 128 KiB can be 4 bytes long, so 256 bytes of input decode to at most 8 MiB. The
# many calls cost 0.16 s of CPU for a 110 MB log, against 0.09 s fed 64 KiB at a time.
ZSTD_FEED_BYTES = 256
GATHER_BYTES = 1 << 18  # small outputs are handed out together, from this size


class Decompressor(Protocol):
    """What one member of a stream needs: feed compressed bytes, get decoded pieces."""

    eof: bool  # the member ended; ``leftover`` is what followed it
    leftover: bytes

    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> bytes: ...


class _Zlib:
    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=31)  # gzip header and trailer
        self.eof = False
        self.leftover = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        while True:
            out = self._d.decompress(data, PIECE_BYTES)
            if out:
                yield out
            data = self._d.unconsumed_tail
            # A full piece may leave output pending even when every input byte was taken.
            if self._d.eof or (not data and len(out) < PIECE_BYTES):
                break
        self.eof = self._d.eof
        self.leftover = self._d.unused_data

    def flush(self) -> bytes:
        return self._d.flush()  # the bytes decodable from a cut stream


class _Buffered:
    """bz2 and lzma: they keep unconsumed input themselves and say when they need more."""

    def __init__(self, decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor) -> None:
        self._d = decompressor
        self.eof = False
        self.leftover = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        out = self._d.decompress(data, PIECE_BYTES)
        while True:
            if out:
                yield out
            if self._d.eof or self._d.needs_input:
                break
            out = self._d.decompress(b"", PIECE_BYTES)
        self.eof = self._d.eof
        self.leftover = self._d.unused_data

    def flush(self) -> bytes:
        return b""


def _split(data: bytes) -> Iterator[bytes]:
    for at in range(0, len(data), PIECE_BYTES):
        yield data[at : at + PIECE_BYTES]


class _ZstdObj(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes, /) -> bytes: ...


class _Zstd:
    def __init__(self) -> None:
        import zstandard

        self._d = cast(_ZstdObj, zstandard.ZstdDecompressor().decompressobj())
        self.eof = False
        self.leftover = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        # Small feeds give small outputs: gather them, or the per-piece work downstream
        # would double the time of a read.
        gathered: list[bytes] = []
        size = 0
        for start in range(0, len(data), ZSTD_FEED_BYTES):
            out = self._d.decompress(data[start : start + ZSTD_FEED_BYTES])
            gathered.append(out)
            size += len(out)
            if self._d.eof:
                self.eof = True
                self.leftover = self._d.unused_data + data[start + ZSTD_FEED_BYTES :]
            if size >= GATHER_BYTES or self.eof:
                yield from _split(b"".join(gathered))
                gathered, size = [], 0
            if self.eof:
                return
        yield from _split(b"".join(gathered))

    def flush(self) -> bytes:
        return b""


@dataclass(frozen=True)
class Codec:
    """One compression qtrace reads: its name, its magic bytes, a decoder of one member."""

    name: str
    magic: bytes
    start: Callable[[], Decompressor]


CODECS: tuple[Codec, ...] = (
    Codec("gzip", b"\x1f\x8b", _Zlib),
    Codec("zstd", b"\x28\xb5\x2f\xfd", _Zstd),
    Codec("xz", b"\xfd7zXZ\x00", lambda: _Buffered(lzma.LZMADecompressor())),
    Codec("bz2", b"BZh", lambda: _Buffered(bz2.BZ2Decompressor())),
)
BY_NAME = {codec.name: codec for codec in CODECS}
MAGIC_BYTES = max(len(codec.magic) for codec in CODECS)


def sniff_compression(head: bytes) -> str | None:
    """The compression whose magic ``head`` starts with, if any.

    Examples
    --------
    >>> sniff_compression(b"\\x1f\\x8b\\x08\\x00")
    'gzip'
    >>> sniff_compression(b"31546@1795569496.114719:flatview_new") is None
    True
    """
    for codec in CODECS:
        if head.startswith(codec.magic):
            return codec.name
    return None


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def _is_damage(exc: Exception) -> bool:
    # zlib.error, lzma.LZMAError, OSError/EOFError (bz2, a failing read), ValueError;
    # zstandard.ZstdError (imported lazily, so matched by name).
    return isinstance(exc, zlib.error | lzma.LZMAError | OSError | EOFError | ValueError) or (
        type(exc).__name__ == "ZstdError"
    )


class DecodedReader:
    """The decoded bytes of ``raw`` (compressed with ``kind``, or plain when it is None).

    ``read(size)`` returns at most ``size`` bytes (all that is left for a negative size),
    and ``b""`` at the end, also the end of a damaged stream: read ``damage`` then.
    ``decoded`` counts the bytes handed out.

    Examples
    --------
    >>> import gzip, io
    >>> cut = gzip.compress(b"flatview_new 0x1 (root 0x2)\\n" * 1000)[:-10]  # no trailer
    >>> reader = DecodedReader(io.BytesIO(cut), "gzip")
    >>> data = reader.read(-1)
    >>> reader.damage
    'truncated'
    >>> reader.decoded == len(data) > 0
    True
    """

    def __init__(self, raw: Readable, kind: str | None) -> None:
        self._raw = raw
        self._pieces = self._decode(BY_NAME[kind]) if kind is not None else self._plain()
        self._held = b""
        self._at = 0  # how much of _held was read
        self.kind = kind
        self.damage: str | None = None
        self.decoded = 0

    def _plain(self) -> Iterator[bytes]:
        while piece := self._raw.read(PIECE_BYTES):
            yield piece

    def _decode(self, codec: Codec) -> Iterator[bytes]:
        member: Decompressor | None = None
        try:
            while data := self._raw.read(RAW_BYTES):
                while data:
                    if member is None:
                        if not data.strip(b"\0"):
                            break  # padding after the last member
                        member = codec.start()
                    yield from member.feed(data)
                    data, member = (member.leftover, None) if member.eof else (b"", member)
            if member is not None:
                yield member.flush()
                self.damage = "truncated"
        except Exception as exc:
            if not _is_damage(exc):
                raise
            self.damage = f"damaged ({exc})"

    def read(self, size: int = -1, /) -> bytes:
        # Small reads (tarfile asks for 10 KiB) slice the held piece; nothing is re-copied.
        parts = []
        wanted = size
        while wanted != 0:
            if self._at == len(self._held):
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._held, self._at = piece, 0
            take = len(self._held) - self._at if wanted < 0 else wanted
            part = self._held[self._at : self._at + take]
            self._at += len(part)
            parts.append(part)
            if wanted > 0:
                wanted -= len(part)
        out = parts[0] if len(parts) == 1 else b"".join(parts)
        self.decoded += len(out)
        return out

    def pieces(self) -> Iterator[bytes]:
        """The rest of the decoded bytes, as the decompressor hands them out."""
        while piece := self.read(PIECE_BYTES):
            yield piece


def decoded_head(path: str | os.PathLike[str], size: int) -> bytes:
    """The first ``size`` decoded bytes of the file ``path`` (fewer if it is shorter or damaged).

    Examples
    --------
    >>> decoded_head("samples/pc-boot-ts.log", 6)
    b'2963@1'
    """
    with open(path, "rb") as raw:
        kind = sniff_compression(raw.read(MAGIC_BYTES))
        raw.seek(0)
        return DecodedReader(raw, kind).read(size)
