"""A simple trace that shrinks while it is read (logrotate's copytruncate, a QEMU restarted on
the same file) gives what was there, a marker at the cut and a warning: never a signal.

The reader used to map the file: touching a page past the new end killed the process with
SIGBUS (exit 135, no message). The file is truncated here for real, from inside the reader's
I/O layer, at chosen moments of the read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from qtrace.parsers import simple
from qtrace.parsers.simple import file as simple_file
from qtrace.parsers.source import OpenedInput
from simple_traces import (
    SHARED,
    event,
    flatview_mappings,
    header,
    mapping,
    markers,
    read_rows,
    reader_variant,
)

from qtrace.events import ALL_EVENTS, EventSelection, ParsedInput

assert reader_variant  # the autouse fixture: every test runs over every variant of the reader

BOOT = SHARED / "pc-boot.simpletrace"


def truncate_on_read(
    monkeypatch: pytest.MonkeyPatch, path: Path, on_read: int, to_bytes: int
) -> list[int]:
    """Truncate ``path`` to ``to_bytes`` just before the reader's read number ``on_read``
    (0-based). Returns the list of read offsets, filled as the reader reads."""
    read_into = simple_file.TraceFile.read_into
    starts: list[int] = []

    def shrinking(self: simple_file.TraceFile, buffer: memoryview, start: int) -> int:
        if len(starts) == on_read:
            os.truncate(path, to_bytes)
        starts.append(start)
        return read_into(self, buffer, start)

    monkeypatch.setattr(simple_file.TraceFile, "read_into", shrinking)
    return starts


def read(path: Path, selection: EventSelection = ALL_EVENTS) -> ParsedInput:
    return simple.parse(OpenedInput(str(path), path), selection, None)


@pytest.fixture
def boot_copy(tmp_path: Path) -> Path:
    path = tmp_path / "pc-boot.simpletrace"
    path.write_bytes(BOOT.read_bytes())
    return path


def records_before(cut: int) -> int:
    """How many of pc-boot's 763 event records (48 bytes each, from 169574) end by ``cut``."""
    return max(0, min(763, (cut - 169574) // 48))


def reads_of(path: Path) -> int:
    """How many reads the reader makes of ``path`` (the first reads the header)."""
    with pytest.MonkeyPatch.context() as patch:
        starts = truncate_on_read(patch, path, -1, 0)
        read(path, EventSelection())
    return len(starts)


@pytest.mark.parametrize("cut", [169574 + 48 * 300, 169574 + 48 * 300 + 17, 200_000, 169574])
@pytest.mark.parametrize("moment", ["first window", "middle", "last read"])
def test_a_file_that_shrinks_while_read_gives_what_was_there(
    monkeypatch: pytest.MonkeyPatch, boot_copy: Path, cut: int, moment: str
) -> None:
    reads = reads_of(boot_copy)
    on_read = {"first window": 1, "middle": max(1, reads // 2), "last read": reads - 1}[moment]
    truncate_on_read(monkeypatch, boot_copy, on_read, cut)
    parsed = read(boot_copy, EventSelection())
    got = read_rows(parsed.events)
    # What was read before the file shrank is kept, exactly; nothing before the cut is lost.
    assert got["offset"].to_list() == [169574 + 48 * i for i in range(got.height)]
    assert got.height >= records_before(cut)
    if moment == "first window":
        assert got.height == records_before(cut)
    (shrank,) = [(at, text) for at, text in markers(parsed.events) if "shrank" in text]
    assert shrank[0] >= cut
    assert shrank[1] == (
        f"the file shrank from 206198 to {cut} bytes while it was read: what came after "
        f"offset {shrank[0]} was not read"
    )
    assert any(
        w.endswith(
            f"the file shrank from 206198 to {cut} bytes while it was read; read up to offset "
            f"{shrank[0]}"
        )
        for w in parsed.warnings
    )


def test_a_file_emptied_while_read(monkeypatch: pytest.MonkeyPatch, boot_copy: Path) -> None:
    truncate_on_read(monkeypatch, boot_copy, 1, 0)
    parsed = read(boot_copy)
    assert read_rows(parsed.events).height == 0
    assert [text for _, text in markers(parsed.events)] == [
        "the file shrank from 206198 to 0 bytes while it was read: what came after offset 24 "
        "was not read"
    ]


def test_a_file_that_shrinks_before_the_second_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Mapping records after event records are decoded in a second pass over the records
    the walk found: the file may shrink in between, and what went is marked."""
    records = [event(10 + i % 3, 1000 + i, [0x5600 + i, 0x77]) for i in range(40)]
    head = header() + flatview_mappings()
    path = tmp_path / "late.simpletrace"
    path.write_bytes(head + b"".join(records) + mapping(20, "late_event"))
    cut = len(head) + 48 * 25 + 10
    replay = simple.replay

    def shrink_then_replay(*args: Any) -> Any:
        os.truncate(path, cut)
        return replay(*args)

    monkeypatch.setattr(simple, "replay", shrink_then_replay)
    parsed = read(path)
    got = read_rows(parsed.events)
    # The window still holding bytes read before the file shrank keeps them; anything read
    # after it comes from the shorter file.
    assert got["ts_ns"].to_list() == list(range(1000, 1000 + got.height))
    assert got.height >= 25
    if got.height < 40:
        assert any("shrank" in text for _, text in markers(parsed.events))


def test_the_file_is_never_mapped(monkeypatch: pytest.MonkeyPatch, boot_copy: Path) -> None:
    """A map of the file is what turned a shrinking file into SIGBUS."""
    import mmap

    real = mmap.mmap

    def only_anonymous(fileno: int, *args: object, **kwargs: object) -> mmap.mmap:
        assert fileno == -1, "the reader mapped a file"
        return real(fileno, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mmap, "mmap", only_anonymous)
    assert read_rows(read(boot_copy).events).height == 763
