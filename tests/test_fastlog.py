"""The C fast path of the log parser gives exactly what the polars path gives.

``QTRACE_NO_FASTLOG=1`` forces the polars path (the reference); every comparison reads the
same file both ways and wants equal frames, dialect, clock, skipped count and warnings, or
the same error.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qtrace.parsers import log_fast, log_text
from qtrace.parsers.source import open_input
from test_log_damage import noisy_copy

from qtrace.errors import InputError
from qtrace.events import EVENTS_SCHEMA, MODEL_EVENTS, EventSelection, ParsedInput

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "traces"  # CI lays ../shared beside the clone
REAL_LOGS = sorted(ROOT.glob("samples/*.log")) + sorted(SHARED.glob("*.log"))
TS_LOG = SHARED / "qemu10-pc-bridges-ts.log"
BARE_LOG = ROOT / "samples" / "q35-boot-bare.log"
FLATVIEW = EventSelection()
MODEL = EventSelection(MODEL_EVENTS)  # what analyze reads

NEW = b"31546@1795569496.114719:flatview_new 0x563e2c468170 (root 0x563e2c2b82e0)"
RCU = b"31546@1795569496.276444:flatview_destroy_rcu 0x563e2c468170 (root 0x563e2c2b82e0)"
DESTROY = b"31548@1795569496.276500:flatview_destroy 0x563e2c468170 (root 0x563e2c2b82e0)"
BARE_NEW = b"flatview_new 0x5583a1b2c3d0 (root 0x5583a1b00000)"
BARE_DESTROY = b"flatview_destroy 0x5583a1b2c3d0 (root 0x5583a1b00000)"
ISO_NEW = b"2025-07-21T18:43:28.089797Z flatview_new 0x563e2c468170 (root 0x563e2c2b82e0)"
ISO_RCU = b"2025-07-21T18:43:29Z flatview_destroy_rcu 0x563e2c468170 (root 0x563e2c2b82e0)"


def as_iso8601(line: bytes) -> bytes:
    """A tid-timestamp line as QEMU 10.1 prints it: ``TID@SEC.USEC:name`` -> ISO stamp."""
    head, _, rest = line.partition(b":")
    seconds, _, micros = head.partition(b"@")[2].partition(b".")
    stamp = datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S").encode() + b"." + micros + b"Z " + rest


def _read(
    path: Path, polars_only: bool, selection: EventSelection, split_bytes: int
) -> ParsedInput | str:
    with (
        mock.patch.dict(os.environ, {log_fast.NO_FASTLOG: "1" if polars_only else "0"}),
        mock.patch.object(log_fast, "SPLIT_BYTES", split_bytes),
    ):
        try:
            with open_input(str(path)) as opened:
                return log_text.parse(opened, selection)
        except InputError as exc:
            return f"InputError: {exc}"


def assert_same(path: Path, selection: EventSelection = FLATVIEW) -> ParsedInput | str:
    """Read ``path`` both ways; fail unless everything agrees. Returns the fast result.

    The fast path runs twice: as configured (one thread for small files) and with every
    file split in two halves scanned by two threads, as large files are.
    """
    slow = _read(path, True, selection, log_fast.SPLIT_BYTES)
    results = [_read(path, False, selection, split) for split in (log_fast.SPLIT_BYTES, 1)]
    for fast in results:
        if isinstance(fast, str) or isinstance(slow, str):
            assert fast == slow
            continue
        assert fast.events.schema == slow.events.schema
        assert fast.events.equals(slow.events), (fast.events, slow.events)
        assert (fast.format, fast.dialect, fast.clock) == (slow.format, slow.dialect, slow.clock)
        assert fast.lines_skipped == slow.lines_skipped
        assert fast.warnings == slow.warnings
    return results[0]


def fast_answers(path: Path, selection: EventSelection = FLATVIEW) -> bool:
    with mock.patch.dict(os.environ, {log_fast.NO_FASTLOG: "0"}):
        return log_fast.read(path, selection) is not None


def write(tmp_path: Path, data: bytes, name: str = "t.log") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_the_extension_is_built_here() -> None:
    # CI compiles it (gcc and the Python headers are there): a missing module is a failure.
    from qtrace.parsers import _fastlog

    assert log_fast.available()
    with tempfile.TemporaryFile() as fh:
        assert _fastlog.scan(fh.fileno(), 0) is None
        fh.write(b"a_b\n" + BARE_NEW + b"\n" + BARE_DESTROY)
        fh.flush()
        found = _fastlog.scan(fh.fileno(), fh.tell(), 1)
    assert found is not None and len(found["parts"]) == 2  # split between two threads


@pytest.mark.parametrize("path", REAL_LOGS, ids=lambda p: p.name)
def test_real_logs_read_the_same_both_ways(path: Path) -> None:
    result = assert_same(path)
    assert isinstance(result, ParsedInput) and result.events.height > 0
    # Every real log is one the fast path reads by itself (no fallback hides it), the meson
    # log too: its command lines' -trace 'flatview_*' names no FlatView event, so they are
    # skipped lines, not damage, for both readers.
    assert fast_answers(path)


@pytest.mark.parametrize("garbled", [0, 40], ids=["noise", "noise-and-garbled"])
@pytest.mark.parametrize("clean", [TS_LOG, BARE_LOG], ids=["tid-timestamp", "bare"])
def test_noisy_real_logs_read_the_same_both_ways(tmp_path: Path, clean: Path, garbled: int) -> None:
    """The noisy copies of the damage tests: noise alone (register dumps, libvirt lines, a
    'flatview_x' mention) is read by the scanner itself; with garbled FlatView lines, which
    the reader marks as unreadable rows, it stands aside."""
    path = tmp_path / "noisy.log"
    noisy_copy(clean, path, n_garbled=garbled, n_noise=150, seed=10)
    for selection in (FLATVIEW, MODEL):
        assert_same(path, selection)
        assert fast_answers(path, selection) is (garbled == 0)


def test_fast_result_on_the_real_log_holds_the_expected_values() -> None:
    result = assert_same(TS_LOG)
    assert isinstance(result, ParsedInput)
    first = result.events.row(0, named=True)
    assert first["ts_ns"] == 1795569496114719000
    assert first["tid"] == 31546
    assert first["event"] == "flatview_new"
    assert first["view"] == 0x563E2C466C50
    assert first["root"] == 0
    assert first["args"] is None  # view and root carry a FlatView event's arguments
    assert first["line"] == 1
    assert result.events["seq"].to_list() == list(range(result.events.height))


def test_real_log_printed_as_iso8601_reads_the_same(tmp_path: Path) -> None:
    # The QEMU 10 log as QEMU 10.1 would print it: same events, same times, no thread ids.
    iso = write(tmp_path, b"\n".join(map(as_iso8601, TS_LOG.read_bytes().splitlines())) + b"\n")
    result = assert_same(iso)
    assert isinstance(result, ParsedInput) and result.dialect == "iso8601"
    assert fast_answers(iso)
    original = assert_same(TS_LOG)
    assert isinstance(original, ParsedInput)
    assert result.events["ts_ns"].equals(original.events["ts_ns"])
    assert result.events["tid"].null_count() == result.events.height


EDGE_FILES: dict[str, tuple[bytes, bool]] = {
    # name: (content, whether the fast path must answer it itself)
    "crlf": (b"\r\n".join([NEW, RCU, DESTROY]) + b"\r\n", True),
    "no_trailing_newline": (b"\n".join([NEW, RCU, DESTROY]), True),
    "cr_at_end_without_newline": (b"\n".join([NEW, RCU, DESTROY]) + b"\r", True),
    "two_crs": (NEW + b"\r\r\n" + RCU + b"\n", False),
    "empty_lines": (b"\n\n" + NEW + b"\n\n\n" + RCU + b"\n\n", True),
    "noise_lines": (
        b"EAX=00000000 EBX=00000000\nIN: \ncheck_exception old: 0xffffffff new 0xd\n"
        + NEW
        + b"\nqemu-system-x86_64: terminating on signal 15\n"
        + b"2025-07-21 18:43:28.089+0000: 31540: info : qemuProcessLaunch:7345 : x\n"
        + RCU
        + b"\n31546@1795569496.2:memory_region_ops_read cpu 0 flatview_x\n",
        True,
    ),
    "garbled_flatview_line": (NEW + b"\n31546@17955694flatview_new 0x1 (ro\n" + RCU, False),
    "flatview_mention_in_noise": (NEW + b"\nEAX=0 flatview_x\n" + RCU + b"\n", True),
    "command_line_mention": (
        b"# qemu-system-x86_64 -trace 'flatview_*' -D trace.log\n" + NEW + b"\n" + RCU + b"\n",
        True,
    ),
    "finalize_mention_in_noise": (
        NEW + b"\nEAX=0 memory_region_finalize\n" + RCU + b"\n" + DESTROY + b"\n",
        True,
    ),
    "name_glued_in_noise": (NEW + b"\nEAX=0 xflatview_destroyed\n" + RCU + b"\n", False),
    "cut_args": (NEW + b"\n31546@1795569496.2:flatview_new 0x563e2c4\n", False),
    "bare_flatview_line_in_ts_file": (NEW + b"\n" + BARE_NEW + b"\n", False),
    "ts_line_in_bare_file": (BARE_NEW + b"\n" + NEW + b"\n", False),
    "uppercase": (b"1@2.3:flatview_destroy 0xABCdef (root 0x1)\n", True),
    "nil_view": (
        b"1@2.3:flatview_new (nil) (root (nil))\n1@2.3:flatview_destroy 0xABCdef (root 0x1)\n",
        False,
    ),
    "cut_last_line_inside_a_pointer": (NEW + b"\n" + RCU[:-20], False),
    "cut_last_line_inside_a_name": (NEW + b"\n31546@1795569496.2:flatview_destroy_rc", False),
    "last_line_glued_to_a_name": (b"a" + BARE_NEW, False),
    "message_context": (b"qemu-system-x86_64: (31546:main): " + BARE_NEW + b"\n", False),
    "last_line_whole_without_newline": (NEW + b"\n" + DESTROY + b"\r", True),
    "syslog_with_z_stamps": (
        b"2026-02-13T10:30:08.123456Z host qemu-system-x86_64[7]: flatview_new 0x1 (root 0x2)\n",
        False,
    ),
    "seventeen_hex_digits": (b"1@2.3:flatview_new 0x12345678901234567 (root 0x1)\n", False),
    "plus_in_hex": (b"1@2.3:flatview_new 0x+1 (root 0x1)\n", False),
    "two_root_marks": (b"1@2.3:flatview_new 0x1 (root 0x2) (root 0x3)\n", False),
    "huge_tid": (b"12345678901234567890@2.3:flatview_new 0x1 (root 0x2)\n", False),
    "long_stamp": (b"1@2." + b"5" * 60 + b":flatview_new 0x1 (root 0x2)\n", False),
    "stamp_beyond_int64": (b"1@99999999999.5:flatview_new 0x1 (root 0x2)\n", False),
    "half_microsecond": (b"1@1.0000005:flatview_new 0x1 (root 0x2)\n" + NEW + b"\n", True),
    "name_without_args": (b"1@2.3:flatview_new\n" + NEW + b"\n", False),
    "iso8601": (ISO_NEW + b"\n" + ISO_RCU + b"\n", True),
    "iso8601_nine_digit_fraction": (
        b"2024-02-29T23:59:59.123456789Z flatview_new 0x1 (root 0x2)\n",
        True,
    ),
    "iso8601_ten_digit_fraction": (
        b"2025-07-21T18:43:28.1234567890Z flatview_new 0x1 (root 0x2)\n",
        False,
    ),
    "iso8601_no_such_day": (
        ISO_NEW + b"\n2025-02-29T00:00:00Z flatview_new 0x1 (root 0x2)\n",
        False,
    ),
    "iso8601_leap_second": (
        ISO_NEW + b"\n2016-12-31T23:59:60Z flatview_new 0x1 (root 0x2)\n",
        False,
    ),
    "iso8601_before_1970": (b"1969-12-31T23:59:59Z flatview_new 0x1 (root 0x2)\n", False),
    "iso8601_noise_lines": (
        b"check_exception old: 0xffffffff new 0xd\nIN: \n" + ISO_NEW + b"\nEAX=0\n" + ISO_RCU,
        True,
    ),
    "iso8601_other_event": (ISO_NEW + b"\n2025-07-21T18:43:30Z memory_region_ops_read x\n", True),
    "iso8601_prog_thread": (
        b"2025-07-21T18:43:28.5Z qemu-system-x86_64: (772366:main): flatview_new 0x1 (root 0x2)\n",
        False,
    ),
    "ts_line_in_iso8601_file": (ISO_NEW + b"\n" + NEW + b"\n", False),
    "iso_line_in_ts_file": (NEW + b"\n2025-07-21T18:43:28Z memory_region_ops_read x\n", False),
    "systemtap_line": (NEW + b"\n4242@1753123408089797000 pci_cfg_read x\n", False),
    "prog_thread_line": (NEW + b"\nqemu-system-x86_64: (772366:main): foo_bar x\n", False),
    "ftrace_marker": (NEW + b"\nqemu-4242 [001] .... 1.5: tracing_mark_write: a_b x\n", False),
    "non_ascii": (NEW + b"\nlibvirt: caf\xc3\xa9\n" + RCU + b"\n", False),
    "invalid_utf8": (NEW + b"\nlibvirt: \xff\xfe\n" + RCU + b"\n", False),
    "nul_byte": (NEW + b"\n\x00\x01\n" + RCU + b"\n", False),
    "long_line": (NEW + b"\n" + b"x" * ((1 << 20) + 5) + b"\n" + RCU + b"\n", False),
    # Longer than the scanner's read window (512 KiB), shorter than its limit: read on.
    "line_longer_than_a_window": (NEW + b"\n" + b"x" * (700 << 10) + b"\n" + RCU + b"\n", True),
    # Lines the one-sweep reading of the usual line leaves to the general one.
    "seven_fraction_digits": (b"1@2.1234567:flatview_new 0x1 (root 0x2)\n", True),
    "tid_beyond_int32": (b"2147483648@2.3:flatview_new 0x1 (root 0x2)\n", False),
    "two_spaces_after_the_name": (b"1@2.3:flatview_new  0x1 (root 0x2)\n", False),
    "space_at_the_end": (b"1@2.3:flatview_new 0x1 (root 0x2) \n", False),
    "no_hex_digits": (b"1@2.3:flatview_new 0x (root 0x2)\n", False),
    "longer_event_name": (NEW + b"\n1@2.3:flatview_destroy_rcux 0x1 (root 0x2)\n", True),
    "cr_alone_inside": (NEW + b"\n1@2.3:flatview_new 0x1 (root 0x2)\rx\n", False),
    "iso8601_crlf": (ISO_NEW + b"\r\n" + ISO_RCU + b"\r\n", True),
    "iso8601_without_fraction_at_the_end": (ISO_RCU + b"\n" + ISO_RCU[:-1], False),
    "iso8601_five_digit_year": (b"2" + ISO_NEW + b"\n", False),
    "iso8601_no_space_after_the_stamp": (ISO_NEW.replace(b"Z ", b"Z") + b"\n", False),
    "other_flatview_event": (NEW + b"\n1@2.3:flatview_foo 0x1 (root 0x2)\n", True),
    "bare_prose_and_events": (
        b"char device redirected to /dev/pts/3\n" + BARE_NEW + b"\n" + BARE_DESTROY + b"\n",
        True,
    ),
    "only_noise": (b"EAX=0\nIN: \n", False),
    "flatview_in_noise_only": (b"EAX=0 flatview_\n", False),
}


@pytest.mark.parametrize("name", sorted(EDGE_FILES))
def test_edge_files_read_the_same_both_ways(name: str, tmp_path: Path) -> None:
    data, answered = EDGE_FILES[name]
    path = write(tmp_path, data)
    assert_same(path)
    assert fast_answers(path) is answered
    assert_same(path, MODEL)  # what analyze reads: the same agreement


def test_empty_file_reads_the_same_both_ways(tmp_path: Path) -> None:
    path = write(tmp_path, b"")
    assert isinstance(assert_same(path), str)
    assert not fast_answers(path)


def test_bare_looking_lines_before_the_first_timestamped_one_are_d_output(
    tmp_path: Path,
) -> None:
    # In a run that holds prefixed lines, bare-looking lines are other -d output, however
    # many come first. The scanner stands aside when they are more than it samples.
    bare = b"check_exception old: 0xffffffff new 0xd\n"
    near = write(tmp_path, bare * 70 + NEW + b"\n", "near.log")
    result = assert_same(near)
    assert isinstance(result, ParsedInput) and result.dialect == "tid-timestamp"
    assert result.lines_skipped == 70
    assert fast_answers(near)
    far = write(tmp_path, bare * 100_005 + NEW + b"\n", "far.log")
    result = assert_same(far)
    assert isinstance(result, ParsedInput) and result.dialect == "tid-timestamp"
    assert result.lines_skipped == 100_005 and result.events.height == 1
    assert not fast_answers(far)


def finalize_line(line: bytes, mr: str = "0x563e2d2198b0, pci_bridge_io") -> bytes:
    """A memory_region_finalize line in ``line``'s dialect, at its time."""
    head, _, _ = line.partition(b"flatview_")
    return head + b"memory_region_finalize mr " + mr.encode()


@pytest.mark.parametrize("path", REAL_LOGS, ids=lambda p: p.name)
def test_real_logs_read_the_same_both_ways_with_the_model_selection(path: Path) -> None:
    result = assert_same(path, MODEL)
    assert isinstance(result, ParsedInput) and result.events.height > 0
    assert fast_answers(path, MODEL)


def test_finalize_lines_keep_their_text_on_the_fast_path(tmp_path: Path) -> None:
    lines = TS_LOG.read_bytes().splitlines()
    # The real log with the seed thread's hazard line put in (a debug build's event), a
    # finalize without arguments, and an ISO-stamped copy.
    lines[30:30] = [finalize_line(lines[30]), finalize_line(lines[31], "")[:-4]]
    path = write(tmp_path, b"\n".join(lines) + b"\n")
    result = assert_same(path, MODEL)
    assert isinstance(result, ParsedInput) and fast_answers(path, MODEL)
    found = result.events.filter(pl.col("event") == "memory_region_finalize")
    assert found["args"].to_list() == ["mr 0x563e2d2198b0, pci_bridge_io", ""]
    assert found["view"].null_count() == found["root"].null_count() == 2
    assert found["line"].to_list() == [31, 32]
    iso = write(tmp_path, b"\n".join(map(as_iso8601, lines)) + b"\n", "iso.log")
    assert_same(iso, MODEL)
    assert fast_answers(iso, MODEL)
    # The FlatView selection leaves them out, as the polars path does.
    assert_same(path)


def test_a_file_that_shrinks_while_it_is_read_is_a_one_line_error(tmp_path: Path) -> None:
    from qtrace.parsers import _fastlog

    data = TS_LOG.read_bytes()
    path = write(tmp_path, data * 4)
    with path.open("r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.truncate(size // 3)  # logrotate's copytruncate, between stat and read
        for split in (1 << 30, 1):  # one thread; two halves
            assert _fastlog.scan(fh.fileno(), size, split, True) == {"shrunk": True}


SHRINK_WHILE_READING = """
import os, sys, threading, time
from pathlib import Path
from qtrace.errors import InputError
from qtrace.events import EventSelection, MODEL_EVENTS
from qtrace.parsers import log_fast
path = Path(sys.argv[1])
size = path.stat().st_size
def shrink():
    time.sleep(float(sys.argv[2]))
    os.truncate(path, size // 4)
threading.Thread(target=shrink).start()
try:
    found = log_fast.read(path, EventSelection(MODEL_EVENTS))
    print("read", "none" if found is None else found.events.height)
except InputError as exc:
    print("error", exc)
"""


@pytest.mark.slow
def test_a_file_truncated_under_the_scanner_never_kills_the_process(tmp_path: Path) -> None:
    # A real truncation at some point of the read: either the whole file was read first,
    # or the scanner says the file shrank; never SIGBUS (exit 135) as with a mapped file.
    data = TS_LOG.read_bytes()
    big = data * max(1, (256 << 20) // len(data))
    for delay in ("0", "0.02", "0.1"):
        path = write(tmp_path, big, f"shrink{delay}.log")
        run = subprocess.run(
            [sys.executable, "-c", SHRINK_WHILE_READING, str(path), delay],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith(("read ", "error ")), run.stdout
        if run.stdout.startswith("error"):
            assert "shrank while it was read" in run.stdout


def test_other_selections_take_the_polars_path() -> None:
    for selection in (EventSelection(patterns=("flatview_new",)), EventSelection(patterns=None)):
        assert not fast_answers(TS_LOG, selection)
        assert_same(TS_LOG, selection)


def test_switch_forces_the_polars_path() -> None:
    with mock.patch.dict(os.environ, {log_fast.NO_FASTLOG: "1"}):
        assert not log_fast.available()
        assert log_fast.read(TS_LOG, FLATVIEW) is None


def test_columns_come_in_the_events_schema_types() -> None:
    found = log_fast.read(TS_LOG, FLATVIEW)
    assert found is not None
    assert {c: found.events[c].dtype for c in found.events.columns} == {
        c: EVENTS_SCHEMA[c] for c in found.events.columns
    }
    # FlatView events only, whose arguments view and root hold: no args text.
    assert found.events["args"].null_count() == found.events.height


REAL_LINES = TS_LOG.read_bytes().splitlines()[::40]  # all three events
ISO_LINES = [as_iso8601(line) for line in REAL_LINES]
BYTES = st.sampled_from([*b"0123456789abcdefx@.:_ ()\r\nAZ-T\t", 0xC3, 0xFF])


@st.composite
def mutated_logs(draw: st.DrawFn) -> bytes:
    """Real lines with a few bytes inserted, deleted or replaced, and noise lines mixed in."""
    dialect = draw(st.sampled_from([REAL_LINES, ISO_LINES]))
    lines = list(draw(st.lists(st.sampled_from(dialect), min_size=1, max_size=12)))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        line = bytearray(lines[i])
        at = draw(st.integers(0, len(line)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "noise", "bare"]))
        if op == "insert":
            line[at:at] = bytes([draw(BYTES)])
        elif op == "delete":
            del line[at : at + draw(st.integers(1, 8))]
        elif op == "replace" and at < len(line):
            line[at] = draw(BYTES)
        elif op == "noise":
            lines.insert(i, b"EAX=00000000 flatview_" if at % 2 else b"IN: ")
        elif op == "bare":
            lines.insert(i, BARE_NEW)
        lines[i] = bytes(line)
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return ending.join(lines) + draw(st.sampled_from([b"", ending]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_logs())
def test_mutated_real_lines_read_the_same_both_ways(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(write(Path(tmp), data))
        assert_same(write(Path(tmp), data), MODEL)


def test_a_log_of_many_read_windows_reads_the_same_both_ways(tmp_path: Path) -> None:
    # The scanner reads 512 KiB at a time: lines cut by a window's end are carried into the
    # next. A real log of several runs, repeated past a dozen windows.
    once = ROOT / "samples" / "multi-run.log"
    path = write(tmp_path, once.read_bytes() * 50)  # 7 MB
    result, one = assert_same(path, MODEL), assert_same(once, MODEL)
    assert isinstance(result, ParsedInput) and isinstance(one, ParsedInput)
    assert fast_answers(path, MODEL)
    assert result.events.height == 50 * one.events.height
