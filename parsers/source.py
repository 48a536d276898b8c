"""Open one input for the parsers: the one path every door (analyze, dashboard, batch, diff,
``qtrace.read_trace``) reads its inputs through.

An input is a path, ``-`` (standard input), or what a path names that is no regular file: a
named pipe (``<(zcat trace.gz)``), a character device. The parsers read plain regular files
(they map them, or let polars scan them), so ``open_input`` hands them one:

- a plain regular file is read where it is;
- a compressed file (gzip, zstd, xz, bzip2, by magic bytes) is decoded into a temporary
  file, streamed in bounded pieces (``qtrace.parsers.decompress``);
- standard input, a pipe or a device is read as a stream into a temporary file, decoded on
  the way if it is compressed.

A limit (``limit_bytes``, batch's ``--max-input-bytes``) bounds the bytes an input may hold
or decode to: past it the input is refused (``InputTooLarge``), so a decompression bomb ends
as a clear failure. A compressed stream that is cut or damaged keeps what was decoded, with
a warning and ``OpenedInput.cut``, which ``append_cut_marker`` turns into a
``qtrace_unreadable`` row after the input's last event.

File names are carried as given (bytes that are not UTF-8 included) and shown as
``qtrace.paths.display`` writes them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import polars as pl
from qtrace.parsers.decompress import (
    MAGIC_BYTES,
    PIECE_BYTES,
    DecodedReader,
    Readable,
    sniff_compression,
)

from qtrace.errors import InputError
from qtrace.events import UNREADABLE, ParsedInput, conform
from qtrace.paths import display

STDIN = "-"


class InputTooLarge(InputError):
    """An input holds, or decodes to, more bytes than the limit it was opened with."""


@dataclass(frozen=True)
class StreamCut:
    """Where a compressed stream stopped early: the end of what could be decoded."""

    what: str  # in words, for the marker row: "gzip stream truncated after 90374 bytes"
    decoded_bytes: int  # bytes decoded before the cut (the marker's offset)
    line: int  # the 1-based line the cut is in: newlines decoded + 1 (the marker's line)


@dataclass
class OpenedInput:
    """A plain, seekable local file holding the input's bytes."""

    name: str  # how the input is shown (``<stdin>``, or ``qtrace.paths.display`` of its path)
    path: Path  # where the plain bytes are; a path polars can open (valid UTF-8)
    compression: str | None = None
    warnings: list[str] = field(default_factory=list)
    bytes_skipped: int = 0
    cut: StreamCut | None = None  # the decoded stream ended early (the parser reads up to it)
    size: int | None = None  # bytes of the user's own file when read in place; None for copies
    # A directory for a reader's temporary copies, removed with the input (None: the system's).
    scratch: Callable[[], Path] | None = None


def shown_name(name: str | os.PathLike[str]) -> str:
    """How an input named ``name`` on a command line is shown: ``<stdin>`` for ``-``.

    Examples
    --------
    >>> shown_name("-"), shown_name("caf\\udce9.log")
    ('<stdin>', 'caf\\\\xe9.log')
    """
    return "<stdin>" if os.fspath(name) == STDIN else display(name)


def why_unreadable(path: str | os.PathLike[str], exc: OSError) -> str:
    """What ``exc``, met opening or reading ``path``, says about it, in a few words.

    Examples
    --------
    >>> why_unreadable("nope.log", FileNotFoundError(errno.ENOENT, "No such file"))
    'no such file'
    """
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT:
        return "a symbolic link to a missing file" if os.path.islink(path) else "no such file"
    if exc.errno == errno.ENOTDIR:
        return "no such file (a part of the path is not a directory)"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENXIO:
        return "a socket, not a trace file"
    return f"cannot read ({exc.strerror or exc})"


def special_kind(mode: int) -> str | None:
    """What a file that is not a regular file or a directory is, in words (None otherwise)."""
    kinds = {
        stat.S_ISFIFO: "a named pipe",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((what for test, what in kinds.items() if test(mode)), None)


def _stat(name: str, shown: str) -> os.stat_result:
    try:
        return os.stat(name)
    except OSError as exc:
        raise InputError(f"{shown}: {why_unreadable(name, exc)}") from None


def _over(shown: str, limit_bytes: int, verb: str) -> InputTooLarge:
    return InputTooLarge(
        f"{shown}: {verb} more than the input limit of {limit_bytes} bytes "
        "(--max-input-bytes); not read"
    )


class _Prefixed:
    """A stream whose first bytes were already read (to sniff them): those, then the rest."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            out, self._head = (
                (self._head, b"") if size < 0 else (self._head[:size], self._head[size:])
            )
            return out
        return self._rest.read(size)


def copy_limited(source: Readable, out: BinaryIO, limit_bytes: int, shown: str) -> int:
    """Copy ``source`` to ``out``; ``InputTooLarge`` past ``limit_bytes``. Bytes copied.

    For bytes something else decodes (a tar or zip member): nothing past the limit is
    written, whatever the member's header declares.
    """
    copied = 0
    while chunk := source.read(min(PIECE_BYTES, limit_bytes + 1 - copied)):
        copied += len(chunk)
        if copied > limit_bytes:
            raise _over(shown, limit_bytes, "holds")
        out.write(chunk)
    return copied


def _read_head(stream: Readable) -> bytes:
    """The first bytes of a stream; a pipe may hand them out a few at a time."""
    head = b""
    while len(head) < MAGIC_BYTES and (more := stream.read(MAGIC_BYTES - len(head))):
        head += more
    return head


def _copy_decoded(
    raw: Readable,
    kind: str | None,
    shown: str,
    what: str | None,
    limit_bytes: int | None,
    target: Path,
) -> OpenedInput:
    """Decode ``raw`` into ``target``, up to ``limit_bytes``; keep what a damaged stream gave.

    ``what`` is the kind of a stream that is no regular file (``standard input``, ``the named
    pipe``), for the message when it is empty.
    """
    reader = DecodedReader(raw, kind)
    with target.open("wb") as out:
        for piece in reader.pieces():
            if limit_bytes is not None and reader.decoded > limit_bytes:
                raise _over(shown, limit_bytes, "decodes to" if kind else "holds")
            out.write(piece)
    opened = OpenedInput(shown, target, kind)
    decoded = reader.decoded
    if reader.damage is not None:
        if decoded == 0:
            raise InputError(f"{shown}: {kind} stream is {reader.damage} before any decoded byte")
        opened.warnings.append(
            f"{shown}: {kind} stream is {reader.damage} after {decoded} decoded bytes; "
            "reading what was decoded"
        )
        opened.cut = StreamCut(
            f"{kind} stream {reader.damage} after {decoded} bytes", decoded, _lines(target) + 1
        )
    if decoded == 0:
        after = f" after {kind} decompression" if kind else ""
        empty = f"{what} gave no bytes{after}" if what else f"empty file ({after.strip()})"
        raise InputError(f"{shown}: {empty}")
    return opened


def _lines(path: Path) -> int:
    """The newlines in a file (counted again only for a cut stream: the rare case pays)."""
    count = 0
    with path.open("rb") as fh:
        while chunk := fh.read(PIECE_BYTES):
            count += chunk.count(b"\n")
    return count


def _polars_path(path: str, scratch: Callable[[], Path]) -> Path:
    """``path``, or a link to it named in ASCII when the name is not UTF-8 (polars needs it)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        link = scratch() / "input"
        os.symlink(os.path.abspath(path), link)
        return link
    return Path(path)


def _open_file(
    name: str,
    st: os.stat_result,
    shown: str,
    limit_bytes: int | None,
    scratch: Callable[[], Path],
) -> OpenedInput:
    if limit_bytes is not None and st.st_size > limit_bytes:
        raise _over(shown, limit_bytes, f"is {st.st_size} bytes,")
    try:
        with open(name, "rb") as fh:
            head = fh.read(MAGIC_BYTES)
            kind = sniff_compression(head)
            if kind is not None:
                return _copy_decoded(
                    _Prefixed(head, fh), kind, shown, None, limit_bytes, scratch() / "decoded"
                )
    except OSError as exc:
        raise InputError(f"{shown}: {why_unreadable(name, exc)}") from None
    if st.st_size == 0:
        raise InputError(f"{shown}: empty file")
    return OpenedInput(shown, _polars_path(name, scratch), size=st.st_size)


def _open_stream(
    stream: BinaryIO, shown: str, what: str, limit_bytes: int | None, target: Path
) -> OpenedInput:
    head = _read_head(stream)
    kind = sniff_compression(head)
    return _copy_decoded(_Prefixed(head, stream), kind, shown, what, limit_bytes, target)


def _shrank(opened: OpenedInput, path: str) -> str | None:
    """What happened to a file read in place that shrank since it was opened, if it did."""
    if opened.size is None:
        return None
    try:
        now = os.stat(path).st_size
    except OSError:
        return None
    if now >= opened.size:
        return None
    return (
        f"{opened.name}: the file shrank from {opened.size} to {now} bytes while it was read "
        "(rotated with copytruncate, or a QEMU restarted on the same -D file?)"
    )


@contextlib.contextmanager
def open_input(
    name: str | os.PathLike[str],
    *,
    shown: str | None = None,
    limit_bytes: int | None = None,
    tmpdir: str | None = None,
) -> Iterator[OpenedInput]:
    """Yield the input as a plain local file; temporary copies are removed afterwards.

    Parameters
    ----------
    name
        A path (bytes that are not UTF-8 are fine, as Python carries them) or ``-``.
    shown
        How to name the input in the events' ``source``, warnings and errors (default:
        ``shown_name(name)``).
    limit_bytes
        Refuse (``InputTooLarge``) an input that holds or decodes to more bytes.
    tmpdir
        Where temporary copies go (default: the system's temporary directory).

    Raises
    ------
    InputError
        When nothing can be read: missing, a directory, a socket, empty, over the limit, a
        compressed stream damaged before its first byte; or when the file shrank while a
        parser read it.

    Examples
    --------
    >>> with open_input("samples/pc-boot-ts.log") as opened:
    ...     opened.name, opened.compression
    ('samples/pc-boot-ts.log', None)
    """
    text = os.fspath(name)
    shown = shown_name(text) if shown is None else shown
    with contextlib.ExitStack() as stack:
        made: list[Path] = []

        def scratch() -> Path:
            if not made:
                made.append(
                    Path(
                        stack.enter_context(
                            tempfile.TemporaryDirectory(prefix="qtrace-", dir=tmpdir)
                        )
                    )
                )
            return made[0]

        if text == STDIN:
            opened = _open_stream(
                sys.stdin.buffer, shown, "standard input", limit_bytes, scratch() / "stdin"
            )
        else:
            st = _stat(text, shown)
            kind = special_kind(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                raise InputError(f"{shown}: is a directory, not a trace file")
            if stat.S_ISREG(st.st_mode):
                opened = _open_file(text, st, shown, limit_bytes, scratch)
            elif kind == "a socket":
                raise InputError(f"{shown}: is a socket, not a trace file")
            else:
                try:
                    stream = stack.enter_context(open(text, "rb"))
                except OSError as exc:
                    raise InputError(f"{shown}: {why_unreadable(text, exc)}") from None
                what = "the " + (kind or "a file").removeprefix("a ")
                opened = _open_stream(stream, shown, what, limit_bytes, scratch() / "stream")
        opened.scratch = scratch
        try:
            yield opened
        except Exception:
            # A reader that met the end of the file early: say why, in one line.
            shrank = _shrank(opened, text)
            if shrank is not None:
                raise InputError(f"{shrank}; read a copy of it") from None
            raise
        shrank = _shrank(opened, text)
        if shrank is not None:  # read before the cut, or after it: say the events may stop early
            opened.warnings.append(f"{shrank}; its events may stop early")


def append_cut_marker(parsed: ParsedInput, opened: OpenedInput) -> None:
    """After the input's last event, a ``qtrace_unreadable`` row where its stream was cut.

    The row says what in ``args`` (``gzip stream truncated after 90374 bytes``) and where:
    ``line`` (text formats: the line the cut is in) or ``offset`` (binary formats: the
    decoded bytes). Its ``ts_ns`` is the input's last time, so a merge by time keeps it
    after the input's events.
    """
    cut = opened.cut
    if cut is None:
        return
    events = parsed.events
    text = parsed.format != "simple"  # every format but the binary one counts lines
    last_seq = events["seq"].max()
    marker = pl.DataFrame(
        {
            "seq": [0 if last_seq is None else int(cast(int, last_seq)) + 1],
            "ts_ns": [events["ts_ns"].max()],
            "event": [UNREADABLE],
            "args": [cut.what],
            "source": [opened.name],
            "line": [cut.line if text else None],
            "offset": [None if text else cut.decoded_bytes],
        },
        schema_overrides={"seq": pl.Int64, "ts_ns": pl.Int64, "line": pl.Int64, "offset": pl.Int64},
    )
    parsed.events = pl.concat([events, conform(marker)])


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


__all__ = [
    "InputTooLarge",
    "OpenedInput",
    "StreamCut",
    "append_cut_marker",
    "copy_limited",
    "open_input",
    "shown_name",
    "sniff_compression",
    "sniff_format",
    "why_unreadable",
]
