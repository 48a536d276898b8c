"""The simple reader on damaged input: a damaged record costs that record, what could not be
read is marked where events may have been lost, and nothing damaged becomes a FlatView event.

Real traces with one flipped bit first (the cases of issues 10 and 13), then the header, then
synthetic files for how the loss markers are placed and counted.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import polars as pl
import pytest
from qtrace.parsers import parse_file
from qtrace.parsers.simple import losses
from rich.console import Console
from simple_traces import (
    FLATVIEW_IDS,
    SHARED,
    event,
    flatview_mappings,
    header,
    mapping,
    markers,
    parse_bytes,
    read_rows,
    reader_variant,
)

import qtrace
from qtrace.errors import InputError
from qtrace.events import ALL_EVENTS, FLATVIEW_EVENTS, UNREADABLE, EventSelection
from qtrace.findings import Findings
from qtrace.report import to_json
from qtrace.report_text import render_text

assert reader_variant  # the autouse fixture: every test runs over every variant of the reader

BOOT = SHARED / "pc-boot.simpletrace"
# pc-boot.simpletrace's mapping records of the FlatView events (offset, id, name length).
NEW_MAPPING = (138641, 3288, 12)
DESTROY_MAPPING = (138673, 3289, 16)
RCU_MAPPING = (138709, 3290, 20)
BOOT_COUNTS = {"flatview_new": 257, "flatview_destroy_rcu": 253, "flatview_destroy": 253}


def flipped(tmp_path: Path, source: Path, byte: int, bit: int) -> Path:
    """A copy of ``source`` with one bit flipped."""
    data = bytearray(source.read_bytes())
    data[byte] ^= 1 << bit
    path = tmp_path / f"{source.stem}-{byte}-{bit}.simpletrace"
    path.write_bytes(bytes(data))
    return path


def counts(events: pl.DataFrame) -> dict[str, int]:
    return dict(events.group_by("event").len().iter_rows())


def test_the_mapping_records_are_where_the_tests_say() -> None:
    data = BOOT.read_bytes()
    for offset, eid, name_len in (NEW_MAPPING, DESTROY_MAPPING, RCU_MAPPING):
        assert struct.unpack_from("<QQI", data, offset) == (0, eid, name_len)


def test_one_flipped_bit_in_a_mapping_costs_that_mapping_not_the_file(tmp_path: Path) -> None:
    """Issue 13: bit 0 of byte 8018 made the reader skip 198,181 of 206,198 bytes and read
    nothing, a clean verdict from reading nothing."""
    trace = qtrace.read_trace(flipped(tmp_path, BOOT, 8018, 0))
    assert counts(read_rows(trace.events)) == BOOT_COUNTS
    assert trace.bytes_skipped == 45  # the mapping record at 8017, and nothing else
    assert markers(trace.events) == [
        (8017, "damaged records: 45 bytes skipped (unknown record type 0x100)")
    ]


def test_a_damaged_flatview_mapping_marks_its_records_as_holes(tmp_path: Path) -> None:
    """Issue 10: the flatview_destroy mapping damaged. The reader skipped 30,901 bytes of
    mappings, then 506 records of unknown ids, and the report said 251 leaked views, none
    uncertain. Now the damage costs that mapping; its 253 records are unreadable, marked
    between the events around them, and the model reads those places as holes."""
    path = flipped(tmp_path, BOOT, DESTROY_MAPPING[0], 0)
    trace = qtrace.read_trace(path)
    read = read_rows(trace.events)
    assert counts(read) == {k: v for k, v in BOOT_COUNTS.items() if k != "flatview_destroy"}
    assert trace.bytes_skipped == 36 + 253 * 48  # the mapping, and the records it named
    lost = [m for m in markers(trace.events) if "unknown event id 0xcd9" in m[1]]
    assert sum(int(text.split()[0]) for _, text in lost) == 253
    assert any("253 records (first at offset" in w for w in trace.warnings)
    analysis = qtrace.analyze(trace)
    assert analysis.uncertain_views > 0
    flagged = analysis.flagged_views
    assert flagged["uncertain"].all()


DESTROY_MAY_BE_HIDDEN = "no flatview_destroy was read, so views are taken as freed at their"


def test_a_verdict_without_flatview_destroy_says_damage_may_have_hidden_them(
    tmp_path: Path,
) -> None:
    """Issue 10: every flatview_destroy record unreadable, the model reads destroy as not
    traced and the text report said "flatview_destroy not traced" and nothing of why. The
    verdict now says the inference may be wrong; a trace without destroy and without damage
    gets no such note."""
    analysis = qtrace.analyze(qtrace.read_trace(flipped(tmp_path, BOOT, DESTROY_MAPPING[0], 0)))
    assert not analysis.destroy_traced
    (note,) = [n for n in Findings.of(analysis).notes if n.startswith(DESTROY_MAY_BE_HIDDEN)]
    assert f"{analysis.unreadable_places} unreadable place(s) may have held" in note
    buffer = io.StringIO()
    render_text(analysis, Console(file=buffer, width=100))
    text = buffer.getvalue()
    assert " ".join(text.split()).count(DESTROY_MAY_BE_HIDDEN) == 1
    assert to_json(analysis)["verdict"]["notes"][-1] == note
    without = qtrace.read_trace(BOOT).events.filter(pl.col("event") != "flatview_destroy")
    clean = qtrace.analyze(without)
    assert not clean.destroy_traced and clean.unreadable_places == 0
    assert not any(n.startswith(DESTROY_MAY_BE_HIDDEN) for n in Findings.of(clean).notes)


@pytest.mark.parametrize(
    ("byte", "bit", "why"),
    [
        # the id of flatview_destroy's mapping becomes flatview_new's: the record that breaks
        # the ids' order is the damaged one, flatview_new stays named
        (DESTROY_MAPPING[0] + 8, 0, "breaks the ids' order"),
        # flatview_destroy_rcu's name length 20 -> 16: it reads 'flatview_destroy', and the
        # rest of its name follows it
        (RCU_MAPPING[0] + 16, 2, "its name length cuts its name short"),
        # 'flatview_destroy' -> 'flatview_destrox': one byte from an event the model reads
        (DESTROY_MAPPING[0] + 20 + 15, 0, "one byte away from flatview_destroy"),
        # the type word of flatview_new's mapping
        (NEW_MAPPING[0], 1, "unknown record type 0x2"),
    ],
)
def test_a_damaged_flatview_mapping_never_renames_records(
    tmp_path: Path, byte: int, bit: int, why: str
) -> None:
    parsed = parse_file(str(flipped(tmp_path, BOOT, byte, bit)), selection=EventSelection())
    assert any(why in w for w in parsed.warnings), parsed.warnings
    original = parse_file(str(BOOT), selection=EventSelection()).events
    read = read_rows(parsed.events)
    # Every FlatView row read is the original's record, with its name, view and root.
    joined = read.join(original, on="offset", how="left", suffix="_original")
    assert joined.height == read.height
    for column in ("event", "view", "root"):
        assert (joined[column] == joined[f"{column}_original"]).all()
    # One event lost its name; its records are marked, the other two are all there.
    lost = set(BOOT_COUNTS) - set(counts(read))
    assert len(lost) == 1
    assert all(counts(read)[name] == BOOT_COUNTS[name] for name in counts(read))
    assert markers(parsed.events)


# --- the header --------------------------------------------------------------------------


def test_a_damaged_magic_is_read_with_a_warning_not_taken_for_a_log(tmp_path: Path) -> None:
    """Issue 13: it was sniffed as a log and reported as 'no QEMU trace lines found'."""
    path = flipped(tmp_path, BOOT, 8, 3)
    parsed = parse_file(str(path), selection=EventSelection())
    assert parsed.format == "simple"
    assert counts(parsed.events) == BOOT_COUNTS
    assert parsed.warnings == [
        f"{path}: a QEMU simple trace with a damaged header (magic 0xf2b177cb0aa429bc, "
        "expected 0xf2b177cb0aa429b4); the records after it are sound: read as version 4"
    ]


def test_a_damaged_header_id_is_read_with_a_warning(tmp_path: Path) -> None:
    path = flipped(tmp_path, BOOT, 0, 0)
    parsed = parse_file(str(path), selection=EventSelection())
    assert counts(parsed.events) == BOOT_COUNTS
    assert parsed.warnings == [
        f"{path}: damaged header (first word 0xfffffffffffffffe, expected "
        "0xffffffffffffffff); read as version 4"
    ]


def test_a_header_damaged_beyond_reading_says_so(tmp_path: Path) -> None:
    data = bytearray(BOOT.read_bytes())
    data[8] ^= 1  # the magic
    data[16] ^= 2  # and the version
    path = tmp_path / "t.simpletrace"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as caught:
        parse_file(str(path), selection=EventSelection())
    assert str(caught.value) == (
        f"{path}: a QEMU simple trace with a damaged header (magic 0xf2b177cb0aa429b5, "
        "expected 0xf2b177cb0aa429b4)"
    )


def test_a_header_of_the_other_byte_order_is_read_in_the_records_order(tmp_path: Path) -> None:
    records = flatview_mappings() + event(10, 5, [0x10, 0x20]) + event(11, 6, [0x10, 0x20])
    parsed = parse_bytes(tmp_path, header(">") + records, name="t.simpletrace")
    assert parsed.dialect == "simple-v4-le"
    assert parsed.events["event"].to_list() == ["flatview_new", "flatview_destroy_rcu"]
    assert parsed.warnings == [
        f"{tmp_path / 't.simpletrace'}: the header is big-endian but the records are "
        "little-endian; read as little-endian"
    ]


def test_a_real_trace_with_a_big_endian_header(tmp_path: Path) -> None:
    data = BOOT.read_bytes()
    path = tmp_path / "t.simpletrace"
    path.write_bytes(header(">") + data[24:])
    parsed = parse_file(str(path), selection=EventSelection())
    assert counts(parsed.events) == BOOT_COUNTS
    assert "the header is big-endian but the records are little-endian" in parsed.warnings[0]


# --- loss markers --------------------------------------------------------------------------


def test_unknown_ids_between_two_rows_read_are_one_marker(tmp_path: Path) -> None:
    """A run of records no mapping names, with no row read among them, is one hole."""
    data = header() + flatview_mappings() + mapping(20, "pci_cfg_read")
    data += event(10, 1, [0x10, 0x1])
    first_unknown = len(data)
    data += event(98, 2, [1]) + event(20, 3, [b"dev", 1, 2, 3, 4, 5]) + event(99, 4, [1, 2])
    data += event(98, 5, [1]) + event(11, 6, [0x10, 0x1])
    second_unknown = len(data)
    data += event(99, 7, [1, 2]) + event(12, 8, [0x10, 0x1])
    # FlatView events only: pci_cfg_read is read but not kept, so one hole spans it.
    parsed = parse_bytes(tmp_path, data, selection=EventSelection())
    assert parsed.events["event"].to_list() == [
        "flatview_new",
        UNREADABLE,
        "flatview_destroy_rcu",
        UNREADABLE,
        "flatview_destroy",
    ]
    assert markers(parsed.events) == [
        (first_unknown, "3 records of unknown event ids 0x62, 0x63"),
        (second_unknown, "1 record of unknown event id 0x63"),
    ]
    # A marker takes the time of the row before it, so a merge of files by time keeps it.
    assert parsed.events["ts_ns"].to_list() == [1, 1, 6, 6, 8]
    assert parsed.events["seq"].to_list() == list(range(5))
    # Every event kept: pci_cfg_read splits the first run of unknown records in two.
    everything = parse_bytes(tmp_path, data, selection=ALL_EVENTS)
    assert [text for _, text in markers(everything.events)] == [
        "1 record of unknown event id 0x62",
        "2 records of unknown event ids 0x62, 0x63",
        "1 record of unknown event id 0x63",
    ]


def test_damage_in_several_places_between_two_rows_is_one_marker(tmp_path: Path) -> None:
    prefix = header() + flatview_mappings() + event(10, 1, [0x10, 0x1])
    records = [event(12, 2 + i, [0x100 + i, 0x1]) for i in range(7)]
    # Records of an event nobody asked for, with garbage in two places among them (three
    # sound records after each: a resynchronisation believes a chain of three).
    data = prefix + records[0] + b"\x05" * 11 + b"".join(records[1:4]) + b"\x06" * 7
    data += b"".join(records[4:]) + event(11, 9, [0x10, 0x1])
    parsed = parse_bytes(
        tmp_path, data, selection=EventSelection(("flatview_new", "flatview_destroy_rcu"))
    )
    assert parsed.events["event"].to_list() == ["flatview_new", UNREADABLE, "flatview_destroy_rcu"]
    ((offset, text),) = markers(parsed.events)
    assert offset == len(prefix) + 48
    assert text.startswith("damaged records: 18 bytes skipped in 2 places (unknown record type")


def test_a_flatview_record_that_does_not_decode_is_a_marker_in_place(tmp_path: Path) -> None:
    data = header() + flatview_mappings()
    data += event(10, 1, [0x10, 0x1]) + event(11, 2, [0x10]) + event(12, 3, [0x10, 0x1, 0x2])
    data += event(12, 4, [0x10, 0x1])
    parsed = parse_bytes(tmp_path, data, selection=EventSelection())
    events = parsed.events
    assert events["event"].to_list() == ["flatview_new", UNREADABLE, UNREADABLE, "flatview_destroy"]
    assert events["args"].to_list()[1:3] == [
        "flatview_destroy_rcu record whose arguments do not decode as view and root (8 bytes "
        "of arguments)",
        "flatview_destroy record whose arguments do not decode as view and root (24 bytes of "
        "arguments)",
    ]
    assert events.filter(pl.col("event") == UNREADABLE)["view"].null_count() == 2
    assert events.filter(pl.col("event").is_in(FLATVIEW_EVENTS))["view"].null_count() == 0
    assert parsed.warnings == [
        f"{tmp_path / 't.simpletrace'}: 2 FlatView records (first flatview_destroy_rcu at "
        "offset 180) do not decode as view and root; marked unreadable"
    ]


def test_mapping_ids_known_to_the_tests() -> None:
    assert FLATVIEW_IDS == {"flatview_new": 10, "flatview_destroy_rcu": 11, "flatview_destroy": 12}


@pytest.mark.parametrize("selection", [EventSelection(), ALL_EVENTS], ids=["flatview", "all"])
def test_markers_spliced_in_or_sorted_in_give_one_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, selection: EventSelection
) -> None:
    """Few markers are spliced in between slices of the table, many sorted in with it."""
    path = flipped(tmp_path, BOOT, DESTROY_MAPPING[0], 0)
    monkeypatch.setattr(losses, "SPLICED_MARKERS", 10**6)
    spliced = parse_file(str(path), selection=selection).events
    monkeypatch.setattr(losses, "SPLICED_MARKERS", 0)
    sorted_in = parse_file(str(path), selection=selection).events
    assert spliced.equals(sorted_in)
    assert spliced["seq"].to_list() == list(range(spliced.height))
    assert spliced["offset"].is_sorted()
    assert spliced.filter(pl.col("event") == UNREADABLE).height > 1
