"""Tar and zip archives as containers of artifacts, read without trusting anything inside.

Member names are labels only: no member is ever extracted to, or opened by, its name. Zip
members are read in place by index; tar members (whose compressed streams allow no cheap
random access) are copied once to files whose names qtrace chooses. Symlinks, hard links and
devices are reported, never followed. Every copy stops at the per-artifact byte limit.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from qtrace.parsers.decompress import MAGIC_BYTES, DecodedReader, decoded_head, sniff_compression
from qtrace.parsers.source import InputTooLarge, copy_limited
from qtrace.paths import display

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
TAR_MAGIC_OFFSET = 257
TAR_MAGIC = b"ustar"


def archive_kind(path: Path) -> str | None:
    """``"zip"``, ``"tar"`` (plain or gzip/bzip2/xz/zstd-compressed) or None, by content."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(ZIP_MAGICS):
        return "zip"
    block = decoded_head(path, TAR_MAGIC_OFFSET + len(TAR_MAGIC))
    if block[TAR_MAGIC_OFFSET:].startswith(TAR_MAGIC):
        return "tar"
    return None


def is_archive_bytes(head: bytes) -> bool:
    """Whether decoded bytes start like an archive (for archives nested in archives)."""
    return head.startswith(ZIP_MAGICS) or head[TAR_MAGIC_OFFSET:].startswith(TAR_MAGIC)


@dataclass(frozen=True)
class Member:
    """One archive member: its name (a label), and either where its bytes are or why not."""

    name: str  # as ``qtrace.paths.display`` shows it
    zip_index: int | None = None
    copied_to: Path | None = None
    error: str | None = None


def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def zip_members(path: Path) -> Iterator[Member]:
    """The zip's file members, in archive order; links and directories are not artifacts."""
    with zipfile.ZipFile(path) as archive:
        for index, info in enumerate(archive.infolist()):
            if info.is_dir():
                continue
            if _zip_is_symlink(info):
                yield Member(display(info.filename), error="symbolic link in archive: not followed")
                continue
            yield Member(display(info.filename), zip_index=index)


def read_zip_member(path: Path, index: int, out: BinaryIO, limit_bytes: int, shown: str) -> None:
    """Copy member ``index`` of zip ``path`` into ``out``, at most ``limit_bytes`` decoded."""
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[index]
        if info.flag_bits & 0x1:
            raise ValueError("member is encrypted")
        # The declared size can lie (a bomb declares little); copy_limited counts real bytes.
        with archive.open(info) as member:
            copy_limited(member, out, limit_bytes, shown)


def _tar_member_problem(info: tarfile.TarInfo) -> str | None:
    if info.issym():
        return f"symbolic link in archive (to '{display(info.linkname)}'): not followed"
    if info.islnk():
        return f"hard link in archive (to '{display(info.linkname)}'): not followed"
    if not info.isreg():
        return "not a regular file (device, fifo or other special member)"
    return None


def tar_members(path: Path, spill_dir: Path, limit_bytes: int) -> Iterator[Member]:
    """Walk the tar once, copying each regular member to ``spill_dir`` under a chosen name.

    A compressed tar is decoded by the same reader as every input (``DecodedReader``). A
    member larger than ``limit_bytes`` (by its header, or by what really decodes) gets an
    error instead of a copy; decoding the rest of the archive goes on.
    """
    with path.open("rb") as raw:
        kind = sniff_compression(raw.read(MAGIC_BYTES))
        raw.seek(0)
        stream = DecodedReader(raw, kind)
        try:
            yield from _tar_stream_members(stream, spill_dir, limit_bytes)
        except tarfile.TarError as exc:
            if stream.damage is None:
                raise
            raise tarfile.ReadError(f"{kind} stream {stream.damage}") from exc


def _tar_stream_members(
    stream: DecodedReader, spill_dir: Path, limit_bytes: int
) -> Iterator[Member]:
    # "r|": one forward pass over the decoded stream; no seeking, no name lookups.
    with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
        for number, info in enumerate(archive):
            name = display(info.name)
            if info.isdir():
                continue
            problem = _tar_member_problem(info)
            if problem is not None:
                yield Member(name, error=problem)
                continue
            if info.size > limit_bytes:
                yield Member(name, error=_over_limit(info.size, limit_bytes))
                continue
            target = spill_dir / f"tar-member-{number:07d}"
            source = archive.extractfile(info)
            if source is None:  # isreg() members always have data; keep mypy and readers sure
                yield Member(name, error="member has no data")
                continue
            try:
                with target.open("wb") as out:
                    copy_limited(source, out, limit_bytes, "member")
            except InputTooLarge:
                target.unlink(missing_ok=True)
                yield Member(name, error=_over_limit(None, limit_bytes))
                continue
            yield Member(name, copied_to=target)


def _over_limit(size_bytes: int | None, limit_bytes: int) -> str:
    size = "holds more than" if size_bytes is None else f"is {size_bytes} bytes, over"
    return f"member {size} the input limit of {limit_bytes} bytes (--max-input-bytes)"
