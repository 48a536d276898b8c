"""The simple-backend reader: same records as QEMU's simpletrace.py, and damage handled calmly.

Real traces first (every ../shared/traces/*.simpletrace against simpletrace.py's own output),
then synthetic files built with struct for the edge cases real runs rarely show.
"""

from __future__ import annotations

import struct
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from qtrace.parsers import parse_file, simple
from qtrace.parsers.simple import arguments as simple_arguments
from qtrace.parsers.simple import blocks
from qtrace.parsers.trace_events_decl import TraceEvents, is_string_type, parse_trace_events
from simple_traces import (
    FLATVIEW_IDS,
    REAL_TRACES,
    SHARED,
    TRACE_EVENTS,
    arguments,
    event,
    flatview_mappings,
    header,
    mapping,
    markers,
    parse_bytes,
    parse_bytes_path,
    read_rows,
    reader_variant,
    simpletrace_lines,
)

from qtrace.errors import InputError
from qtrace.events import ALL_EVENTS, DROPPED_EVENT, EVENTS_SCHEMA, EventSelection

assert reader_variant  # the autouse fixture: every test runs over every variant of the reader


# --- real traces ------------------------------------------------------------------------------


def test_real_traces_are_present() -> None:
    assert {p.name for p in REAL_TRACES} >= {"pc-boot.simpletrace", "pc-bridges-mixed.simpletrace"}


@pytest.mark.block_records(997)
@pytest.mark.parametrize("trace", REAL_TRACES, ids=lambda p: p.stem)
def test_same_records_as_qemu_simpletrace(trace: Path) -> None:
    parsed = parse_bytes_path(trace)
    expected = Path(f"{trace}.txt").read_text().splitlines()
    assert simpletrace_lines(parsed.events) == expected
    assert parsed.warnings == []
    assert parsed.bytes_skipped == 0


def test_real_trace_columns() -> None:
    trace = SHARED / "pc-boot.simpletrace"
    parsed = parse_bytes_path(trace, EventSelection(), None)
    events = parsed.events
    assert (parsed.format, parsed.dialect, parsed.clock) == (
        "simple",
        "simple-v4-le",
        "monotonic-ns",
    )
    assert dict(events.schema) == EVENTS_SCHEMA
    assert events.height == 763
    assert events["source"].unique().to_list() == [str(trace)]
    assert events["tid"].null_count() == events.height
    assert events["line"].null_count() == events.height
    data = trace.read_bytes()
    # Every offset is a record's type word (1 = event), and they increase.
    assert all(struct.unpack_from("<Q", data, off)[0] == 1 for off in events["offset"].to_list())
    assert events["offset"].is_sorted() and events["offset"].n_unique() == events.height
    # view and root carry a FlatView event's arguments; no text repeats them.
    assert events["args"].null_count() == events.height
    first = events.row(0, named=True)
    assert (first["event"], first["view"], first["root"]) == ("flatview_new", 0x56181CEEFD20, 0)


@pytest.mark.block_records(997)
def test_default_selection_needs_no_trace_events() -> None:
    parsed = parse_bytes_path(SHARED / "pc-bridges-mixed.simpletrace", EventSelection(), None)
    counts = dict(parsed.events.group_by("event").len().iter_rows())
    assert counts == {"flatview_new": 406, "flatview_destroy_rcu": 402, "flatview_destroy": 402}
    assert parsed.warnings == []
    assert parsed.events["view"].null_count() == 0


@pytest.mark.block_records(997)
def test_without_declarations_other_events_are_kept_without_args(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(blocks, "DEFAULT_TRACE_EVENTS", tmp_path / "absent")
    parsed = parse_bytes_path(
        SHARED / "pc-bridges-mixed.simpletrace", EventSelection(("flatview_new", "pci_cfg_*")), None
    )
    by_event = parsed.events.group_by("event").agg(pl.col("args").null_count(), pl.len())
    rows = {r[0]: (r[1], r[2]) for r in by_event.iter_rows()}
    assert rows == {
        "flatview_new": (406, 406),  # view and root hold the arguments
        "pci_cfg_read": (384, 384),
        "pci_cfg_write": (227, 227),
    }
    assert len(parsed.warnings) == 1 and "trace-events-all" in parsed.warnings[0]
    assert parsed.events.filter(pl.col("event") != "flatview_new")["view"].null_count() == 611


@pytest.mark.block_records(997)
def test_glob_selection_on_real_mixed_trace() -> None:
    parsed = parse_bytes_path(
        SHARED / "pc-bridges-mixed.simpletrace", EventSelection(("pci_update_mappings_*",))
    )
    counts = dict(parsed.events.group_by("event").len().iter_rows())
    assert counts == {"pci_update_mappings_add": 13, "pci_update_mappings_del": 1}
    assert all(a.startswith("dev=b'") for a in parsed.events["args"].to_list())
    assert parsed.events["view"].null_count() == 14


def test_parse_file_sniffs_simple(tmp_path: Path) -> None:
    parsed = parse_file(str(SHARED / "pc-boot.simpletrace"), selection=EventSelection())
    assert parsed.format == "simple" and parsed.events.height == 763


def test_sample_is_bundled() -> None:
    sample = Path(__file__).resolve().parents[1] / "samples" / "pc-boot.simpletrace"
    assert sample.read_bytes() == (SHARED / "pc-boot.simpletrace").read_bytes()


# --- synthetic: layouts, byte order, mappings, dropped events ---------------------------------


def flatview_trace(order: str = "<", count: int = 5) -> bytes:
    records = [
        event(10 + i % 3, 1_000_000 + 1000 * i, [0x5600_0000 + 0x40 * i, 0x55AA00], order=order)
        for i in range(count)
    ]
    return header(order) + flatview_mappings(order) + b"".join(records)


def test_big_endian_reads_like_little_endian(tmp_path: Path) -> None:
    little = parse_bytes(tmp_path, flatview_trace("<", 40), name="le")
    big = parse_bytes(tmp_path, flatview_trace(">", 40), name="be")
    assert (little.dialect, big.dialect) == ("simple-v4-le", "simple-v4-be")
    assert big.events.drop("source").equals(little.events.drop("source"))
    assert arguments(big.events)[1] == "view=0x56000040 root=0x55aa00"
    assert big.events["event"][:3].to_list() == list(FLATVIEW_IDS)


def test_mapping_records_in_the_middle(tmp_path: Path) -> None:
    data = (
        header()
        + mapping(10, "flatview_new")
        + event(10, 100, [1, 2])
        + mapping(77, "flatview_destroy")
        + event(77, 200, [1, 2])
        + mapping(10, "flatview_new")  # repeated, same name: harmless
        + event(10, 300, [3, 2])
    )
    parsed = parse_bytes(tmp_path, data)
    assert parsed.events["event"].to_list() == ["flatview_new", "flatview_destroy", "flatview_new"]
    # header 24, mappings of 12- and 16-byte names 32 and 36, FlatView events 48 each
    assert parsed.events["offset"].to_list() == [56, 56 + 48 + 36, 56 + 48 + 36 + 48 + 32]


def test_remapped_id_uses_the_mapping_in_force(tmp_path: Path) -> None:
    data = (
        header()
        + mapping(5, "flatview_new")
        + event(5, 1, [1, 2])
        + mapping(5, "flatview_destroy")
        + event(5, 2, [1, 2])
    )
    parsed = parse_bytes(tmp_path, data)
    assert parsed.events["event"].to_list() == ["flatview_new", "flatview_destroy"]
    # Only the second name has records, and only the first is wanted: nothing is kept.
    data = (
        header()
        + mapping(5, "flatview_new")
        + mapping(6, "flatview_destroy")
        + event(6, 1, [1, 2])
        + mapping(5, "mystery")
        + event(5, 2, [1])
    )
    parsed = parse_bytes(tmp_path, data, selection=EventSelection(("flatview_new",)))
    assert parsed.events.height == 0 and parsed.warnings == []


def test_an_id_named_twice_in_one_block_is_unreadable(tmp_path: Path) -> None:
    """QEMU writes each id once, after the header: two names for one id there is damage
    (a flipped bit in an id), and neither name can be trusted for its records."""
    data = (
        header()
        + mapping(5, "flatview_new")
        + mapping(5, "flatview_destroy")
        + event(5, 1, [1, 2])
        + event(5, 2, [3, 2])
    )
    parsed = parse_bytes(tmp_path, data, selection=EventSelection())
    assert markers(parsed.events) == [(24 + 32 + 36, "2 records of unknown event id 0x5")]
    assert read_rows(parsed.events).height == 0
    assert parsed.warnings[0].endswith(
        "mapping records at offsets 24 and 56 map 'flatview_new' id 0x5 and 'flatview_destroy' "
        "id 0x5 in one block: a damaged mapping; records of event id 0x5 are marked unreadable"
    )


def test_dropped_events_are_rows_and_counted(tmp_path: Path) -> None:
    dropped_id = 0xFFFFFFFFFFFFFFFE
    data = (
        header()
        + flatview_mappings()
        + event(10, 1000, [0xAB, 0])
        + event(dropped_id, 2000, [5])
        + event(11, 3000, [0xAB, 0])
        + event(dropped_id, 4000, [0x13])
    )
    parsed = parse_bytes(tmp_path, data, selection=EventSelection(), trace_events=None)
    assert parsed.events["event"].to_list() == [
        "flatview_new",
        DROPPED_EVENT,
        "flatview_destroy_rcu",
        DROPPED_EVENT,
    ]
    assert parsed.events["args"].to_list()[1::2] == [
        "num_events_dropped=0x5",
        "num_events_dropped=0x13",
    ]
    assert parsed.dropped_events == 0x18
    assert parsed.events.filter(pl.col("event") == DROPPED_EVENT)["view"].null_count() == 2


def test_string_arguments_print_as_python_bytes(tmp_path: Path) -> None:
    decls = tmp_path / "trace-events-all"
    decls.write_text(
        '# comment\n\nmy_event(const char *name, int n, const char *other) "%s %d %s"\n'
        'quiet_event(void) ""\n'
    )
    strings = [b"apic-msi", b"it's", b'say "hi"', b"back\\slash", b"\x00\xff\n\t", b""]
    data = header() + mapping(3, "my_event") + mapping(4, "quiet_event")
    data += b"".join(event(3, 10 + i, [s, 0x10 + i, s[::-1]]) for i, s in enumerate(strings))
    data += event(4, 99, [])
    parsed = parse_bytes(tmp_path, data, trace_events=decls)
    expected = [f"name={s!r} n={0x10 + i:#x} other={s[::-1]!r}" for i, s in enumerate(strings)]
    assert parsed.events["args"].to_list() == [*expected, ""]
    assert parsed.warnings == []


@pytest.mark.parametrize(
    "strings",
    [
        [b"a", b"ends in nul\x00"],  # a real trailing NUL: cut one by one, not padded
        [b"x" * 65, b"short"],  # longer than the padded width: cut one by one
        [b"", b"a longer string than the last one", b"end"],  # its window runs past the end
        [b"\x00lead", b"in\x00side", b"big-endian"],
    ],
)
@pytest.mark.parametrize("order", ["<", ">"])
def test_strings_cut_in_bulk_read_exactly(tmp_path: Path, strings: list[bytes], order: str) -> None:
    """Bulk string cutting pads with NULs and strips them: every byte must survive anyway."""
    decls = tmp_path / "trace-events-all"
    decls.write_text('str_event(int n, const char *s) "%d %s"\n')
    data = header(order) + mapping(5, "str_event", order)
    data += b"".join(event(5, i, [i, s], order=order) for i, s in enumerate(strings))
    parsed = parse_bytes(tmp_path, data, trace_events=decls)
    assert parsed.events["args"].to_list() == [f"n={i:#x} s={s!r}" for i, s in enumerate(strings)]
    assert parsed.warnings == []


def test_layout_groups_come_back_in_file_order(tmp_path: Path) -> None:
    """Events of different layouts are decoded group by group, then put back in file order."""
    decls = tmp_path / "trace-events-all"
    decls.write_text('str_event(const char *s) "%s"\nint_event(int a, int b) "%d %d"\n')
    data = header() + mapping(5, "str_event") + mapping(6, "int_event") + flatview_mappings()
    data += event(5, 1, [b"dev"]) + event(6, 2, [1, 2]) + event(10, 3, [0x10, 0x20])
    data += event(6, 4, [3, 4]) + event(5, 5, [b"dev"]) + event(11, 6, [0x10, 0x20])
    parsed = parse_bytes(tmp_path, data, trace_events=decls)
    events = parsed.events
    assert events["ts_ns"].to_list() == [1, 2, 3, 4, 5, 6]
    assert arguments(events) == [
        "s=b'dev'",
        "a=0x1 b=0x2",
        "view=0x10 root=0x20",
        "a=0x3 b=0x4",
        "s=b'dev'",
        "view=0x10 root=0x20",
    ]
    assert events["view"].to_list() == [None, None, 0x10, None, None, 0x10]


def test_undeclared_event_is_kept_without_args(tmp_path: Path) -> None:
    data = header() + mapping(9, "mystery_event") + event(9, 5, [1, 2, 3]) + flatview_mappings()
    data += event(10, 6, [7, 8])
    parsed = parse_bytes(tmp_path, data)
    assert parsed.events["event"].to_list() == ["mystery_event", "flatview_new"]
    assert arguments(parsed.events) == [None, "view=0x7 root=0x8"]
    assert parsed.events["args"].to_list() == [None, None]
    assert any("not declared" in w for w in parsed.warnings)


def test_unmapped_event_id_is_skipped_by_length(tmp_path: Path) -> None:
    data = header() + flatview_mappings() + event(99, 5, [1, 2, 3]) + event(10, 6, [7, 8])
    parsed = parse_bytes(tmp_path, data)
    assert parsed.events["event"].to_list() == ["qtrace_unreadable", "flatview_new"]
    assert markers(parsed.events) == [(len(data) - 104, "1 record of unknown event id 0x63")]
    assert parsed.bytes_skipped == 8 + 24 + 24
    assert any("no mapping record names" in w for w in parsed.warnings)


def test_args_not_matching_the_declaration(tmp_path: Path) -> None:
    data = header() + flatview_mappings() + event(10, 5, [1, 2, 3]) + event(10, 6, [7, 8])
    parsed = parse_bytes(tmp_path, data, selection=EventSelection(), trace_events=None)
    # A FlatView record that does not decode as view and root is never a FlatView event.
    assert parsed.events["event"].to_list() == ["qtrace_unreadable", "flatview_new"]
    assert arguments(parsed.events) == [
        "flatview_new record whose arguments do not decode as view and root (24 bytes of "
        "arguments)",
        "view=0x7 root=0x8",
    ]
    assert parsed.events["view"].to_list() == [None, 7]
    assert len(parsed.warnings) == 1 and "do not decode as view and root" in parsed.warnings[0]
    # Another event that does not fit its declaration is kept, without arguments.
    decls = tmp_path / "decls"
    decls.write_text('two_ints(int a, int b) "%d %d"\n')
    data = header() + mapping(3, "two_ints") + event(3, 5, [1, 2, 3]) + event(3, 6, [7, 8])
    parsed = parse_bytes(tmp_path, data, trace_events=decls)
    assert arguments(parsed.events) == [None, "a=0x7 b=0x8"]
    assert len(parsed.warnings) == 1 and "do not match their declaration" in parsed.warnings[0]


# --- synthetic: damage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (0, "t.simpletrace: unsupported simple trace version 0 (qtrace reads version 4)"),
        (2, "t.simpletrace: unsupported simple trace version 2 (qtrace reads version 4)"),
        (3, "t.simpletrace: unsupported simple trace version 3 (qtrace reads version 4)"),
        (5, "t.simpletrace: unknown simple trace version 5 (qtrace reads version 4)"),
    ],
)
def test_other_versions_are_refused(tmp_path: Path, version: int, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_bytes(tmp_path, header(version=version) + flatview_mappings(), name="t.simpletrace")
    assert str(err.value).endswith(message)


def test_bad_magic_short_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not a QEMU simple trace \(bad magic\)"):
        parse_bytes(tmp_path, b"\x00" * 8 + header(magic=0x1234)[8:] + b"\0" * 64)
    with pytest.raises(
        InputError,
        match=r"a QEMU simple trace with a damaged header \(magic 0x0000000000001234, "
        r"expected 0xf2b177cb0aa429b4\)$",
    ):
        parse_bytes(tmp_path, header(magic=0x1234) + b"\0" * 64)
    with pytest.raises(InputError, match=r"too short for a QEMU simple trace \(10 bytes"):
        parse_bytes(tmp_path, header()[:10])
    with pytest.raises(InputError, match="empty file"):
        parse_bytes(tmp_path, b"")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        simple.parse(open_input_plain(empty), ALL_EVENTS, None)


def open_input_plain(path: Path) -> simple.OpenedInput:
    return simple.OpenedInput(path.name, path)


def test_header_only(tmp_path: Path) -> None:
    parsed = parse_bytes(tmp_path, header())
    assert parsed.events.height == 0
    assert dict(parsed.events.schema) == EVENTS_SCHEMA
    assert parsed.warnings == [f"{tmp_path / 't.simpletrace'}: no trace records after the header"]


def test_truncated_last_record_of_a_real_trace(tmp_path: Path) -> None:
    data = (SHARED / "pc-boot.simpletrace").read_bytes()
    cut = len(data) - 48 + 20  # the last 48-byte record keeps 20 bytes
    parsed = parse_bytes(tmp_path, data[:cut], selection=EventSelection(), trace_events=None)
    assert read_rows(parsed.events).height == 762
    assert markers(parsed.events) == [
        (len(data) - 48, f"last record at offset {len(data) - 48} is cut short (20 of 32 bytes)")
    ]
    assert parsed.bytes_skipped == 20
    assert parsed.warnings == [
        f"{tmp_path / 't.simpletrace'}: last record at offset {len(data) - 48} is cut short "
        "(20 of 32 bytes); ignored"
    ]


def test_truncated_inside_the_record_body(tmp_path: Path) -> None:
    data = flatview_trace(count=3)[:-10]
    parsed = parse_bytes(tmp_path, data)
    assert read_rows(parsed.events).height == 2
    assert [args for _, args in markers(parsed.events)] == [
        f"last record at offset {len(data) - 38} is cut short (38 of 48 bytes)"
    ]
    assert parsed.bytes_skipped == 38
    assert "cut short (38 of 48 bytes)" in parsed.warnings[0]


@pytest.mark.parametrize("bad_length", [3, 23, 10**6, 0xFFFFFFFF, 24 + 40 * 48])
def test_corrupt_length_resynchronises(tmp_path: Path, bad_length: int) -> None:
    records = [event(10 + i % 3, 10**9 + 1000 * i, [0x5600 + i, 0x77]) for i in range(80)]
    damaged_at = 30
    records[damaged_at] = event(10, 10**9, [0x5600 + damaged_at, 0x77], length=bad_length)
    prefix = header() + flatview_mappings()
    data = prefix + b"".join(records)
    parsed = parse_bytes(tmp_path, data)
    offset = len(prefix) + 48 * damaged_at
    assert read_rows(parsed.events).height == 79
    assert (0x5600 + damaged_at) not in parsed.events["view"].to_list()
    ((where, text),) = markers(parsed.events)
    assert where == offset and text.startswith("damaged records: 48 bytes skipped (")
    assert parsed.events["seq"].to_list() == list(range(80))
    assert parsed.events.row(damaged_at, named=True)["event"] == "qtrace_unreadable"
    assert parsed.bytes_skipped == 48
    assert len(parsed.warnings) == 1 and f"offset {offset}" in parsed.warnings[0]


def test_garbage_between_records_is_skipped_once(tmp_path: Path) -> None:
    prefix = header() + flatview_mappings()
    good = [event(10, 10**9 + i, [0x100 + i, 0]) for i in range(20)]
    data = prefix + b"".join(good[:10]) + b"\x07" * 13 + b"".join(good[10:]) + b"\x09" * 5
    parsed = parse_bytes(tmp_path, data)
    assert read_rows(parsed.events)["view"].to_list() == [0x100 + i for i in range(20)]
    assert markers(parsed.events) == [
        (
            len(prefix) + 480,
            "damaged records: 13 bytes skipped (unknown record type 0x707070707070707)",
        ),
        (len(data) - 5, f"last record at offset {len(data) - 5} is cut short (5 of 8 bytes)"),
    ]
    assert parsed.bytes_skipped == 13 + 5
    assert any(f"offset {len(prefix) + 480}" in w for w in parsed.warnings)


def test_missing_trace_events_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such trace-events file"):
        parse_bytes(tmp_path, flatview_trace(), trace_events=tmp_path / "nope")


# --- declarations -------------------------------------------------------------------------------


def test_trace_events_declarations() -> None:
    decls = parse_trace_events(
        "vcpu guest_cpu_enter(void)\n"
        'disable foo(const char *name, char **argv, uint64_t x) "%s"\n'
        'bar(void *opaque, const char*dev) "%p %s"\n'
        "not a declaration\n"
    )
    assert decls["guest_cpu_enter"].layout == ((False, "__cpu"),)
    assert decls["foo"].layout == ((True, "name"), (False, "argv"), (False, "x"))
    assert decls["bar"].layout == ((False, "opaque"), (True, "dev"))
    assert set(decls) == {"guest_cpu_enter", "foo", "bar"}
    assert is_string_type(" const char *") and not is_string_type("char **")


def test_declarations_read_on_demand_are_the_whole_files() -> None:
    text = TRACE_EVENTS.read_text()
    whole = parse_trace_events(text)
    on_demand = TraceEvents.from_text(text)
    assert all(on_demand.get(name) == decl for name, decl in whole.items())
    assert on_demand.get("no_such_event") is None
    # A name declared twice takes its last well-formed declaration.
    twice = TraceEvents.from_text('ev(int a) "%d"\nev(int a, int b) "%d %d"\nev(int) ""\n')
    assert twice.get("ev") == parse_trace_events('ev(int a, int b) "%d %d"\n')["ev"]


def test_real_trace_events_all_declares_the_flatview_events() -> None:
    decls = parse_trace_events(TRACE_EVENTS.read_text())
    assert decls["flatview_new"].layout == ((False, "view"), (False, "root"))
    assert decls["memory_region_ops_write"].layout[-1] == (True, "name")
    assert len(decls) > 4000


# --- properties ---------------------------------------------------------------------------------

STRING_DECLS = 'str_event(const char *name, unsigned size) "%s %u"\n'
RECORD = st.one_of(
    st.tuples(
        st.just("flatview"), st.integers(0, 2), st.integers(0, 2**64 - 1), st.integers(1, 30)
    ),
    st.tuples(
        st.just("string"), st.binary(max_size=40), st.integers(0, 2**64 - 1), st.integers(1, 12)
    ),
    st.tuples(st.just("dropped"), st.integers(0, 2**64 - 1), st.just(0), st.just(1)),
    st.tuples(st.just("mapping"), st.just(0), st.just(0), st.just(1)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=st.lists(RECORD, min_size=1, max_size=12), order=st.sampled_from("<>"))
def test_generated_traces_decode_exactly(
    tmp_path: Path, runs: list[tuple[str, object, int, int]], order: str
) -> None:
    """Records in runs (so the bulk run path engages) decode to exactly what was written."""
    decls = tmp_path / "decls"
    decls.write_text(STRING_DECLS)
    names = [*FLATVIEW_IDS, "str_event"]
    data = header(order) + flatview_mappings(order) + mapping(20, "str_event", order)
    expected: list[tuple[str, int, str]] = []
    ts = 0
    for kind, a, b, repeat in runs:
        for _ in range(repeat):
            ts += 1
            if kind == "flatview":
                assert isinstance(a, int)
                data += event(10 + a, ts, [b, ts], order=order)
                expected.append((names[a], ts, f"view={b:#x} root={ts:#x}"))
            elif kind == "string":
                assert isinstance(a, bytes)
                data += event(20, ts, [a, b], order=order)
                expected.append(("str_event", ts, f"name={a!r} size={b:#x}"))
            elif kind == "dropped":
                assert isinstance(a, int)
                data += event(0xFFFFFFFFFFFFFFFE, ts, [a], order=order)
                expected.append((DROPPED_EVENT, ts, f"num_events_dropped={a:#x}"))
            else:
                data += mapping(20, "str_event", order)
    parsed = parse_bytes(tmp_path, data, trace_events=decls)
    events = parsed.events
    got = list(zip(events["event"], events["ts_ns"], arguments(events), strict=True))
    assert got == expected
    assert parsed.warnings == [] and parsed.bytes_skipped == 0


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tail=st.binary(max_size=400))
@example(tail=b"00000000")  # junk that reads like more name: the last mapping stays
def test_arbitrary_bytes_after_a_header_never_crash(tmp_path: Path, tail: bytes) -> None:
    data = header() + flatview_mappings() + tail
    parsed = parse_bytes(tmp_path, data)
    assert parsed.bytes_skipped <= len(tail)
    assert all(0 < off < len(data) for off in parsed.events["offset"].to_list())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)), max_size=6),
    keep=st.floats(0.0, 1.0),
)
def test_mutated_real_trace_never_crashes(
    tmp_path: Path, flips: list[tuple[int, int]], keep: float
) -> None:
    original = (SHARED / "pc-bridges-mixed.simpletrace").read_bytes()[:60_000]
    data = bytearray(original[: max(1, int(len(original) * keep))])
    for where, bit in flips:
        data[where % len(data)] ^= 1 << bit
    try:
        parsed = parse_bytes(tmp_path, bytes(data))
    except InputError:
        return  # a damaged header is refused with a one-line message
    assert parsed.bytes_skipped <= len(data)
    assert parsed.events.height <= len(data) // 32
    assert dict(parsed.events.schema) == EVENTS_SCHEMA


@pytest.mark.parametrize("columns", [3, 5])
def test_many_distinct_argument_tuples(columns: int) -> None:
    """10^12 tuples number within a 63-bit key; 10^20 fall back to a plain join."""
    layout = tuple((False, f"x{i}") for i in range(columns))
    values = pl.DataFrame(
        {f"a{i}": [(r * 7919 + i) * 104729 + 2**63 for r in range(10_000)] for i in range(columns)}
    )
    values = values.with_columns(pl.col(c).cast(pl.UInt64) for c in values.columns)
    texts, numbers = simple_arguments._numbered_texts(layout, values, values.height, {})
    text = texts.gather(numbers)
    expected = [" ".join(f"x{i}={v:#x}" for i, v in enumerate(row)) for row in values.iter_rows()]
    assert text.to_list() == expected


def test_a_mapping_named_with_a_trailing_newline_is_no_flatview_event(tmp_path: Path) -> None:
    """Issue 13: the selection ended in ``$``, which Python also matches before a trailing
    newline, so a mapping named ``flatview_new\\n`` was selected as ``flatview_new``. Now
    the selection ends in ``\\Z``, and the reader takes such a name for damage."""
    data = (
        header()
        + mapping(10, "flatview_new\n")
        + mapping(11, "flatview_destroy_rcu")
        + event(10, 1_000, [0x10, 0x20])
        + event(11, 2_000, [0x10, 0x20])
    )
    assert EventSelection().matches("flatview_new")
    assert not EventSelection().matches("flatview_new\n")
    parsed = parse_bytes(tmp_path, data, EventSelection(), trace_events=None)
    assert "flatview_new" not in parsed.events["event"].cast(pl.String).to_list()
    assert markers(parsed.events)[0][1].startswith("damaged records:")
