"""The log-backend text parser: every dialect QEMU prints, noise, damage and bad input."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from qtrace.parsers import log_text, parse_file
from qtrace.parsers.log import dialects, fields
from qtrace.parsers.source import open_input

from qtrace.errors import InputError
from qtrace.events import COLUMNS, EVENTS_SCHEMA, UNREADABLE, EventSelection, ParsedInput
from qtrace.ingest import read_trace

QEMU10_LOG = "qemu10-pc-bridges-ts.log"
FLATVIEW = EventSelection()
EVERYTHING = EventSelection.parse("*")


def parse_bytes(tmp_path: Path, data: bytes, selection: EventSelection = FLATVIEW) -> ParsedInput:
    path = tmp_path / "trace.log"
    path.write_bytes(data)
    parsed: ParsedInput = parse_file(str(path), selection=selection)
    return parsed


def iso_ns(text: str) -> int:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000


@pytest.fixture(scope="module")
def qemu10(shared_traces: Path) -> Path:
    return shared_traces / QEMU10_LOG


# ------------------------------------------------------------------------------- real trace


def test_real_qemu10_log_reads_every_flatview_event(qemu10: Path) -> None:
    parsed = parse_file(str(qemu10), selection=FLATVIEW)
    events = parsed.events
    assert events.schema == pl.Schema(EVENTS_SCHEMA)
    counts = dict(events.group_by("event").len().iter_rows())
    assert counts == {"flatview_new": 659, "flatview_destroy_rcu": 650, "flatview_destroy": 650}
    first = events.row(0, named=True)
    assert first["event"] == "flatview_new"
    assert first["root"] == 0  # (root (nil)): the empty view every QEMU makes first
    assert first["view"] == 0x563E2C466C50
    assert first["tid"] == 31546
    assert first["ts_ns"] == 1795569496114719000
    assert first["args"] is None  # view and root carry a FlatView event's arguments
    assert first["line"] == 1
    assert (parsed.dialect, parsed.clock, parsed.format) == ("tid-timestamp", "wall-us", "log")
    assert parsed.lines_skipped == 0 and parsed.warnings == []
    assert events["line"].to_list() == list(range(1, 1960))
    assert events["source"].unique().to_list() == [str(qemu10)]
    assert events["offset"].null_count() == events.height
    assert events["pid"].null_count() == events.height
    # The RCU thread destroys: its tid differs from the main loop's.
    assert set(events.filter(pl.col("event") == "flatview_destroy")["tid"]) == {31548}
    last = events.row(-1, named=True)
    assert (last["ts_ns"], last["view"], last["root"]) == (
        1795569496276444000,
        0x7F762CB03020,
        0x563E2D3095A0,
    )


def test_real_log_through_read_trace(qemu10: Path) -> None:
    trace = read_trace(qemu10)
    assert trace.events.height == 1959
    assert trace.events.columns == list(COLUMNS)
    assert trace.events["seq"].to_list() == list(range(1959))
    assert (trace.dialect, trace.clock) == ("tid-timestamp", "wall-us")


# ---------------------------------------------------------------------------------- dialects

FV_ARGS = "0x55a9b6e62e50 (root 0x55a9b6c84800)"
VIEW, ROOT = 0x55A9B6E62E50, 0x55A9B6C84800


@pytest.mark.parametrize(
    ("line", "dialect", "clock", "tid", "pid", "ts_ns"),
    [
        (f"flatview_new {FV_ARGS}", "bare", "none", None, None, None),
        (
            f"31546@1795569496.114719:flatview_new {FV_ARGS}",
            "tid-timestamp",
            "wall-us",
            31546,
            None,
            1795569496114719000,
        ),
        (
            f"2025-07-21T18:43:28.089797Z flatview_new {FV_ARGS}",
            "iso8601",
            "wall-us",
            None,
            None,
            iso_ns("2025-07-21T18:43:28.089797Z"),
        ),
        (  # QEMU omits the fraction when it is zero
            f"2025-07-21T18:43:28Z flatview_new {FV_ARGS}",
            "iso8601",
            "wall-us",
            None,
            None,
            iso_ns("2025-07-21T18:43:28Z"),
        ),
        (
            f"qemu-system-x86_64: (772366:main): flatview_new {FV_ARGS}",
            "message-context",
            "none",
            772366,
            None,
            None,
        ),
        (
            "2025-07-21T18:43:28.5Z qemu-system-x86_64: (772367:CPU 0/KVM): "
            f"flatview_new {FV_ARGS}",
            "iso8601-message-context",
            "wall-us",
            772367,
            None,
            iso_ns("2025-07-21T18:43:28.500000Z"),
        ),
        (
            f"Feb 13 10:30:08 ci-runner qemu-system-x86_64[12345]: flatview_new {FV_ARGS}",
            "syslog",
            "local-no-year",
            None,
            12345,
            (43 * 86400 + 10 * 3600 + 30 * 60 + 8) * 1_000_000_000,
        ),
        (
            "2026-02-13T10:30:08.123456+00:00 ci-runner qemu-system-x86_64[12345]: "
            f"flatview_new {FV_ARGS}",
            "syslog-rfc3339",
            "wall-us",
            None,
            12345,
            iso_ns("2026-02-13T10:30:08.123456Z"),
        ),
        (
            "[10:30:08.123456789] (+0.000001234) ci-runner qemu:flatview_new: "
            "{ cpu_id = 0 }, { view = 0x55a9b6e62e50, root = 0x55a9b6c84800 }",
            "babeltrace2",
            "local-no-date",
            None,
            None,
            (10 * 3600 + 30 * 60 + 8) * 1_000_000_000 + 123456789,
        ),
        (
            f"4242@1753123408089797123 flatview_new {FV_ARGS}",
            "systemtap",
            "wall-ns",
            None,
            4242,
            1753123408089797123,
        ),
        (
            "  qemu-system-x86-4242  [001] d..1.  1234.567890: tracing_mark_write: "
            f"flatview_new {FV_ARGS}",
            "ftrace",
            "monotonic-us",
            None,
            4242,
            1234567890000,
        ),
    ],
)
def test_each_dialect(
    tmp_path: Path,
    line: str,
    dialect: str,
    clock: str,
    tid: int | None,
    pid: int | None,
    ts_ns: int | None,
) -> None:
    # Each line, then the same event as flatview_destroy one line later.
    parsed = parse_bytes(tmp_path, (line + "\n" + line.replace("_new", "_destroy") + "\n").encode())
    assert (parsed.dialect, parsed.clock) == (dialect, clock)
    assert parsed.events["event"].to_list() == ["flatview_new", "flatview_destroy"]
    row = parsed.events.row(0, named=True)
    assert (row["tid"], row["pid"], row["ts_ns"]) == (tid, pid, ts_ns)
    assert (row["view"], row["root"], row["args"], row["line"]) == (VIEW, ROOT, None, 1)
    assert parsed.lines_skipped == 0


FAST_PATH_LINES = {
    "bare": ["flatview_new 0x1 (root 0x2)", "vm_state_notify", "guest_cpu_reset ", "x_y a  b"],
    "tid-timestamp": [
        "1@1.000001:flatview_new 0x1 (root 0x2)",
        "31546@1795569496.114719:vm_state_notify",
        "7@5.5:guest_cpu_reset ",
        "7@5.123456:pci_cfg_read a:b c@d e.f",  # QEMU prints microseconds: %06zu
    ],
    "iso8601": [
        "2025-07-21T18:43:28.089797Z flatview_new 0x1 (root 0x2)",
        "2025-07-21T18:43:28Z vm_state_notify",
        "2025-07-21T18:43:28.5Z guest_cpu_reset ",
        "1999-12-31T23:59:59.999999999Z pci_cfg_read a b  c",
    ],
    "systemtap": [
        "4242@1753123408089797123 flatview_new 0x1 (root 0x0)",
        "1@2 vm_state_notify",
        "1@2 guest_cpu_reset ",
    ],
    # QEMU 11's default context: the fast cut reads this shape (the regex reads the others)
    "message-context": [
        "qemu-system-x86_64: (1184284:CPU 0/TCG): flatview_new 0x1 (root 0x2)",
        "qemu-system-x86_64: (7:main): vm_state_notify",
        "qemu-kvm: (7:IO mon_iothread): guest_cpu_reset ",
        "qemu-system-aarch64: (7:worker (pool)): pci_cfg_read a:b c  d",
    ],
    "iso8601-message-context": [
        "2026-02-11T15:24:41.211823Z qemu-system-x86_64: (1184284:call_rcu): flatview_new 0x1",
        "2026-02-11T15:24:41Z qemu-system-x86_64: (7:main): vm_state_notify",
    ],
}


@pytest.mark.parametrize("dialect", sorted(FAST_PATH_LINES))
def test_fast_paths_agree_with_the_dialect_regex(dialect: str) -> None:
    noise = ["EAX=00000000 EBX=00000000", "", "IN: ", "2025-07-21 18:43:28.089+0000: 1: info : x"]
    lines = pl.DataFrame({"text": FAST_PATH_LINES[dialect] + noise}).with_row_index("line")
    columns = ["line", "dialect", "event", "args", "tid", "pid", "thread", "ts_ns"]
    target = dialects.BY_NAME[dialect]
    fast = fields.parse(lines.lazy(), target).select(columns).collect()
    regex = fields.parse_regex(lines.lazy(), target).select(columns).collect()
    assert fast.filter(pl.col("event").is_not_null()).height == len(FAST_PATH_LINES[dialect])
    assert_frame_equal(
        fast.filter(pl.col("event").is_not_null()), regex.filter(pl.col("event").is_not_null())
    )
    assert fast["event"].is_null().to_list() == regex["event"].is_null().to_list()


def test_usec_fraction_is_scaled_to_ns_whatever_its_width(tmp_path: Path) -> None:
    parsed = parse_bytes(
        tmp_path, b"7@5.5:flatview_new 0x1 (root 0x2)\n7@5.000001:flatview_new 0x3 (root 0x2)\n"
    )
    assert parsed.events["ts_ns"].to_list() == [5_500_000_000, 5_000_001_000]


def test_pointers_are_unsigned_64_bit_and_a_nil_or_0x0_root_is_zero(tmp_path: Path) -> None:
    parsed = parse_bytes(
        tmp_path,
        b"1@1.000001:flatview_new 0xffffffffffffffff (root (nil))\n"
        b"1@1.000002:flatview_destroy 0x1 (root 0x0)\n",
    )
    assert parsed.events["view"].to_list() == [2**64 - 1, 1]
    assert parsed.events["root"].to_list() == [0, 0]
    assert parsed.events["view"].dtype == pl.UInt64


def test_flatview_arguments_that_are_no_pointers_make_unreadable_rows(tmp_path: Path) -> None:
    # A proposed QEMU patch prints the root's name instead of its pointer: such a line is
    # no FlatView event the model can pair, so it is a hole, with its text kept.
    parsed = parse_bytes(
        tmp_path,
        b"1@1.000001:flatview_new 0x10 (root 0x20)\n"
        b"1@1.000002:flatview_destroy 0x10 (root pci_bridge_io)\n"
        b"1@1.000003:flatview_destroy_rcu 0x10 (root pci_bridge_io)\n",
    )
    events = parsed.events
    assert events["event"].to_list() == ["flatview_new", UNREADABLE, UNREADABLE]
    assert events["view"].to_list() == [0x10, None, None]
    assert events["root"].to_list() == [0x20, None, None]
    assert events["args"][1] == (
        "garbled flatview_destroy line: 1@1.000002:flatview_destroy 0x10 (root pci_bridge_io)"
    )
    assert events["ts_ns"][1] == 1_000_002_000 and events["tid"][1] == 1
    assert parsed.warnings == [
        f"{tmp_path / 'trace.log'}: 2 FlatView lines are garbled or cut; each is a "
        "qtrace_unreadable row, never a view (first at line 2)"
    ]


def test_events_without_arguments_and_other_events(tmp_path: Path) -> None:
    data = (
        b"1@1.000001:guest_cpu_reset \n"
        b"1@1.000002:vm_state_notify\n"
        b"1@1.000003:pci_update_mappings_add d=0x5 00:03.0 0,0xfebf1000+0x1000\n"
        b"1@1.000004:flatview_new 0x10 (root 0x20)\n"
    )
    everything = parse_bytes(tmp_path, data, EVERYTHING).events
    assert everything["event"].to_list() == [
        "guest_cpu_reset",
        "vm_state_notify",
        "pci_update_mappings_add",
        "flatview_new",
    ]
    assert everything["args"].to_list()[:3] == ["", "", "d=0x5 00:03.0 0,0xfebf1000+0x1000"]
    assert everything["view"].to_list() == [None, None, None, 0x10]
    pci = parse_bytes(tmp_path, data, EventSelection.parse("pci_*"))
    assert pci.events["line"].to_list() == [3]
    assert pci.lines_skipped == 0  # the unselected events are trace lines, not noise


# ------------------------------------------------------------------------------------- noise

NOISE = [
    "",
    "----------------",
    "IN: ",
    "0x000ffff0:  ljmp     $0xf000, $0xe05b",
    "EAX=00000000 EBX=00000000 ECX=00000000 EDX=00000663",
    "EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0",
    "CS =f000 ffff0000 0000ffff 00009b00",
    "2025-07-21 18:43:28.089+0000: 31540: info : qemuProcessLaunch:7345 : Building emulator",
    "Invalid read at addr 0xFED40000, size 1, region '(null)', reason: rejected",
    "qemu-system-x86_64: terminating on signal 15 from pid 1234 (/usr/sbin/libvirtd)",
    "char device redirected to /dev/pts/3 (label charserial0)",
    "warning: host doesn't support requested feature: CPUID.80000001H:ECX.svm [bit 2]",
    "  1: v=08 e=0000 i=0 cpl=0 IP=0008:00000000000fe0a0 pc=00000000000fe0a0",
]


def interleave(trace_lines: list[str], noise: list[str]) -> tuple[bytes, list[int]]:
    out: list[str] = []
    trace_at: list[int] = []
    for i, line in enumerate(trace_lines):
        out.append(noise[i % len(noise)])
        out.append(line)
        trace_at.append(len(out))
    return ("\n".join(out) + "\n").encode(), trace_at


def test_noise_is_skipped_and_counted_in_a_timestamped_file(tmp_path: Path) -> None:
    lines = [f"1@1.{i:06d}:flatview_new 0x{i + 16:x} (root 0x20)" for i in range(40)]
    # In a timestamped file a bare-looking line is -d int output, not an event.
    noise = [*NOISE, "check_exception old: 0xffffffff new 0xd"]
    data, trace_at = interleave(lines, noise)
    parsed = parse_bytes(tmp_path, data, EVERYTHING)
    assert parsed.events["line"].to_list() == trace_at
    assert parsed.lines_skipped == 40
    assert parsed.warnings == []


def test_a_long_bare_looking_preamble_does_not_make_a_file_bare(tmp_path: Path) -> None:
    preamble = "check_exception old: 0xffffffff new 0xd\n" * 100
    lines = "".join(f"1@1.{i:06d}:flatview_new 0x{i + 16:x} (root 0x20)\n" for i in range(5))
    parsed = parse_bytes(tmp_path, (preamble + lines).encode(), EVERYTHING)
    assert parsed.dialect == "tid-timestamp"
    assert parsed.events["line"].to_list() == [101, 102, 103, 104, 105]
    assert parsed.lines_skipped == 100


def test_noise_is_skipped_and_counted_in_a_bare_file(tmp_path: Path) -> None:
    lines = [f"flatview_new 0x{i + 16:x} (root 0x20)" for i in range(30)]
    data, trace_at = interleave(lines, NOISE)
    parsed = parse_bytes(tmp_path, data, EVERYTHING)
    assert parsed.dialect == "bare"
    assert parsed.events["line"].to_list() == trace_at
    assert parsed.events["view"].to_list() == [i + 16 for i in range(30)]
    assert parsed.lines_skipped == 30


def test_crlf_line_endings_read_like_lf(tmp_path: Path, qemu10: Path) -> None:
    lf = parse_file(str(qemu10), selection=FLATVIEW).events
    crlf = parse_bytes(tmp_path, qemu10.read_bytes().replace(b"\n", b"\r\n")).events
    assert_frame_equal(crlf.drop("source"), lf.drop("source"))


def test_bytes_that_are_not_utf8_are_replaced_and_reported(tmp_path: Path) -> None:
    data = (
        b"1@1.000001:flatview_new 0x10 (root 0x20)\n"
        b"\xff\xfe garbage \xc3\n"
        b"1@1.000002:pci_cfg_read name \xe9t\xe9 0x3\n"
        b"1@1.000003:flatview_destroy 0x10 (root 0x20)\n"
    )
    parsed = parse_bytes(tmp_path, data, EVERYTHING)
    assert parsed.events["line"].to_list() == [1, 3, 4]
    assert parsed.events["args"][1] == "name \ufffdt\ufffd 0x3"
    assert parsed.lines_skipped == 1
    assert [w for w in parsed.warnings if "not UTF-8" in w] == [
        f"{tmp_path / 'trace.log'}: bytes that are not UTF-8 were replaced (first at line 2)"
    ]


def test_a_50_mb_line_is_skipped_counted_and_reported(tmp_path: Path, qemu10: Path) -> None:
    lines = qemu10.read_bytes().splitlines(keepends=True)
    path = tmp_path / "long.log"
    with path.open("wb") as out:
        out.writelines(lines[:1000])
        out.write(b"\x00\x01junk" * (10 * 1024 * 1024) + b"\n")  # 60 MiB without a newline
        out.writelines(lines[1000:])
    parsed = parse_file(str(path), selection=FLATVIEW)
    assert parsed.events.height == 1959
    assert parsed.events["line"][1000] == 1002
    assert parsed.lines_skipped == 1
    assert any("longer than 1 MiB (first at line 1001)" in w for w in parsed.warnings)


def test_a_50_mb_trace_line_is_a_trace_line(tmp_path: Path) -> None:
    data = (
        b"1@1.000001:flatview_new 0x10 (root 0x20)\n"
        + b"1@1.000002:memory_region_ops_read "
        + b"a" * (50 * 1024 * 1024)
        + b"\n1@1.000003:flatview_destroy 0x10 (root 0x20)\n"
    )
    parsed = parse_bytes(tmp_path, data)
    assert parsed.events["line"].to_list() == [1, 3]
    assert parsed.lines_skipped == 0


def test_mixed_dialects_are_read_and_summed_up(tmp_path: Path) -> None:
    data = (
        b"1@1.000001:flatview_new 0x10 (root 0x20)\n"
        b"1@1.000002:flatview_new 0x11 (root 0x20)\n"
        b"2025-07-21T18:43:28Z flatview_destroy 0x10 (root 0x20)\n"
    )
    parsed = parse_bytes(tmp_path, data)
    assert (parsed.dialect, parsed.clock) == ("mixed(iso8601,tid-timestamp)", "wall-us")
    assert parsed.events["line"].to_list() == [1, 2, 3]
    assert parsed.events["ts_ns"][2] == iso_ns("2025-07-21T18:43:28Z")
    assert parsed.warnings == []


EVERY_KIND_OF_LINE = (
    b"1@1.000001:flatview_new 0x10 (root 0x20)\n"  # 1 selected event
    b"1@1.000002:memory_region_ops_read mr 0x3 name 'flatview_probe'\n"  # 2 other, with hint
    b"EAX=00000000 EBX=00000000\n"  # 3 noise
    b"1@1.000003:pci_update_mappings_add d=0x4\n"  # 4 other event, no hint
    b"garbled flatview_destroy 0x10\n"  # 5 mentions the hint, no trace line
    b"2025-07-21T18:43:28Z flatview_destroy_rcu 0x10 (root 0x20)\n"  # 6 another dialect
    b"1@1.000004:flatview_destroy 0x10 (root 0x20)\n"  # 7 selected event
)


def test_every_kind_of_line_is_counted_once_in_one_pass(tmp_path: Path) -> None:
    # The events query also carries the hint lines that are no selected event (counted,
    # then dropped) and the unmatched ones (re-read by the other dialects).
    parsed = parse_bytes(tmp_path, EVERY_KIND_OF_LINE)
    events = parsed.events
    assert events["line"].to_list() == [1, 5, 6, 7]
    assert events["event"].to_list() == [
        "flatview_new",
        UNREADABLE,
        "flatview_destroy_rcu",
        "flatview_destroy",
    ]
    assert events["args"][1] == "garbled flatview_destroy line: garbled flatview_destroy 0x10"
    assert events.filter(pl.col("event") != UNREADABLE)["view"].to_list() == [0x10] * 3
    assert parsed.lines_skipped == 1  # line 3; line 5 is an unreadable row
    assert parsed.dialect == "mixed(iso8601,tid-timestamp)"
    assert parsed.warnings == [
        f"{tmp_path / 'trace.log'}: 1 FlatView lines are garbled or cut; each is a "
        "qtrace_unreadable row, never a view (first at line 5)"
    ]


def test_every_kind_of_line_without_a_literal_hint(tmp_path: Path) -> None:
    # "*" leaves no literal to pre-filter on: every line is parsed, noise dropped in the stream.
    parsed = parse_bytes(tmp_path, EVERY_KIND_OF_LINE, EVERYTHING)
    assert parsed.events["line"].to_list() == [1, 2, 4, 5, 6, 7]
    assert parsed.events["args"][1] == "mr 0x3 name 'flatview_probe'"
    assert parsed.events["event"][3] == UNREADABLE
    assert parsed.events["view"].is_null().to_list() == [False, True, True, True, False, False]
    assert parsed.lines_skipped == 1
    assert len(parsed.warnings) == 1 and "first at line 5" in parsed.warnings[0]


@pytest.mark.parametrize(
    "first",
    [
        b"2025-07-21T18:43:28.089797Z flatview_new 0x1 (root (nil))",  # stamp-first cut
        b"qemu-system-x86_64: (772366:main): flatview_new 0x1 (root (nil))",  # regex capture
    ],
)
def test_unmatched_lines_reach_the_other_dialects_from_every_parse_path(
    tmp_path: Path, first: bytes
) -> None:
    # Each parse path hands over the whole text of the lines it did not match; a line
    # naming no FlatView event is only skipped.
    data = first + b"\n1@1.000002:flatview_destroy_rcu 0x1 (root 0x2)\nbad flatview_x\n"
    parsed = parse_bytes(tmp_path, data)
    assert parsed.events["line"].to_list() == [1, 2]
    assert (parsed.events["view"][1], parsed.events["root"][1]) == (1, 2)
    assert parsed.events["tid"][1] == 1
    assert parsed.lines_skipped == 1
    assert parsed.dialect.startswith("mixed(") and "tid-timestamp" in parsed.dialect
    assert parsed.warnings == []


# ------------------------------------------------------------------------------- compression


def test_compressed_copies_read_identically(tmp_path: Path, qemu10: Path) -> None:
    plain = read_trace(qemu10).events.drop("source")
    raw = qemu10.read_bytes()
    packed = {
        "gz": gzip.compress(raw),
        "zst": zstandard.ZstdCompressor().compress(raw),
        "xz": lzma.compress(raw),
        "bz2": bz2.compress(raw),
    }
    for suffix, data in packed.items():
        path = tmp_path / f"trace.log.{suffix}"
        path.write_bytes(data)
        trace = read_trace(path)
        assert_frame_equal(trace.events.drop("source"), plain)
        assert trace.events["source"].unique().to_list() == [str(path)]
        assert (trace.dialect, trace.lines_skipped, trace.warnings) == ("tid-timestamp", 0, [])


def test_truncated_gzip_keeps_what_it_can_and_warns(tmp_path: Path, qemu10: Path) -> None:
    # Large enough that whole decompressed chunks come out before the cut.
    data = gzip.compress(qemu10.read_bytes() * 40)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(data[: len(data) // 2])
    parsed = parse_file(str(path), selection=FLATVIEW)
    assert 0 < parsed.events.height < 1959 * 40
    # Every line read is a trace line except, perhaps, the last one, cut mid-line.
    assert parsed.events["line"].to_list() == list(range(1, parsed.events.height + 1))
    assert parsed.lines_skipped <= 1
    assert any("truncated" in w for w in parsed.warnings)


# ----------------------------------------------------------------------------- bad input


def test_inputs_without_trace_lines_are_one_line_input_errors(tmp_path: Path) -> None:
    cases = {
        "empty.log": b"",
        "noise.log": ("\n".join(NOISE) + "\n").encode(),
        "random.bin": random.Random(7).randbytes(4096),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError) as caught:
            parse_file(str(path), selection=FLATVIEW)
        message = str(caught.value)
        assert message.startswith(str(path) + ": ") and "\n" not in message
    with pytest.raises(InputError) as caught:
        parse_file(str(tmp_path / "noise.log"), selection=FLATVIEW)
    assert str(caught.value) == f"{tmp_path / 'noise.log'}: no QEMU trace lines found"
    with pytest.raises(InputError) as caught:
        parse_file(str(tmp_path), selection=FLATVIEW)
    assert str(caught.value).startswith(f"{tmp_path}: is a directory")
    with pytest.raises(InputError) as caught:
        read_trace(tmp_path / "missing.log")
    assert str(caught.value) == f"{tmp_path / 'missing.log'}: no such file"


def test_trace_lines_but_none_selected_is_an_empty_table(tmp_path: Path) -> None:
    parsed = parse_bytes(tmp_path, b"1@1.000001:pci_cfg_read a\n1@1.000002:pci_cfg_write b\n")
    assert parsed.events.height == 0
    assert parsed.events.schema == pl.Schema(EVENTS_SCHEMA)
    assert parsed.lines_skipped == 0


def test_parser_module_is_called_directly(qemu10: Path) -> None:
    with open_input(str(qemu10)) as opened:
        parsed = log_text.parse(opened, EventSelection.parse("flatview_destroy*"))
    assert set(parsed.events["event"]) == {"flatview_destroy", "flatview_destroy_rcu"}
    assert parsed.events.height == 1300


# ---------------------------------------------------------------------------- properties

REAL_LINES = [
    b"31546@1795569496.114719:flatview_new 0x563e2c466c50 (root (nil))",
    b"2025-07-21T18:43:28.089797Z flatview_destroy 0x563e2c468170 (root 0x563e2c2b82e0)",
    b"flatview_destroy_rcu 0x563e2c468170 (root 0x563e2c2b82e0)",
    b"qemu-system-x86_64: (772366:main): flatview_new 0x1 (root 0x2)",
    b"4242@1753123408089797123 flatview_new 0x1 (root 0x0)",
    b" qemu-4242 [001] .... 12.5: tracing_mark_write: flatview_destroy 0x1 (root 0x2)",
    b"EAX=00000000 EBX=00000000 ECX=00000000 EDX=00000663",
]


def check_never_crashes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.log"
    path.write_bytes(data)
    try:
        parsed = parse_file(str(path), selection=EVERYTHING)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    events = parsed.events
    assert events["line"].is_sorted() and events["line"].is_unique().all()
    assert events["line"].min() >= 1 and events["line"].max() <= lines
    assert 0 <= parsed.lines_skipped <= lines - events.height


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(tmp_path: Path, data: bytes) -> None:
    check_never_crashes(tmp_path, data)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(REAL_LINES),
            st.integers(0, 90),
            st.integers(0, 4),
            st.binary(max_size=4),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([b"\n", b"\r\n"]),
)
def test_mutated_real_lines_never_crash(
    tmp_path: Path, edits: list[tuple[bytes, int, int, bytes]], newline: bytes
) -> None:
    lines = []
    for line, at, cut, insert in edits:
        at = min(at, len(line))
        lines.append(line[:at] + insert + line[at + cut :])
    check_never_crashes(tmp_path, newline.join(lines) + newline)
