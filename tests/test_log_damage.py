"""Damaged logs: garbled and cut lines are holes, never views; odd encodings and stamps.

The damage is put into real QEMU logs; a noisy log must give exactly the events of the same
log without the noise, plus one ``qtrace_unreadable`` row per garbled FlatView line.
"""

from __future__ import annotations

import codecs
import random
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from qemu_harness import Boot, QemuHarnessError, Reset, run_qemu_trace
from qtrace.parsers import parse_file
from qtrace.parsers.log import reader

import qtrace
from qtrace.events import FLATVIEW_EVENTS, UNREADABLE, EventSelection, ParsedInput

ROOT = Path(__file__).resolve().parents[1]
QEMU10 = ROOT.parent / "shared" / "traces" / "qemu10-pc-bridges-ts.log"
BARE = ROOT / "samples" / "q35-boot-bare.log"
FLATVIEW = EventSelection()
SAME = ["event", "view", "root", "args", "ts_ns", "tid"]
POINTER = re.compile(r"0x[0-9a-f]+")

# Each turns a real FlatView line into a garbled one, as a killed or interleaved writer, a
# bad disk or a hand edit leaves it.
GARBLERS: dict[str, Callable[[str, str], str]] = {
    "bad hex": lambda line, other: POINTER.sub("0xZZZ", line, count=1),
    "17 digits": lambda line, other: POINTER.sub("0x12345678901234567", line, count=1),
    "nil view": lambda line, other: POINTER.sub("(nil)", line, count=1),
    "plus in pointer": lambda line, other: POINTER.sub(
        lambda m: m.group(0)[:6] + "+" + m.group(0)[6:], line, count=1
    ),
    "words": lambda line, other: "flatview_new is not a valid line",
    "two writers": lambda line, other: line[: 2 * len(line) // 3] + other,
    "cut in a pointer": lambda line, other: line[: line.index(" (root") - 5],
    "root name": lambda line, other: line[: line.index("(root") + 6] + "pci_bridge_io)",
}
NOISE = [
    "EAX=00000000 EBX=00000000 ECX=00000000 EDX=00000663",
    "CS =f000 ffff0000 0000ffff 00009b00",
    "char device redirected to /dev/pts/3 (label charserial0)",
    "2026-02-13 10:30:08.089+0000: 31540: info : qemuProcessLaunch:7345 : Building emulator",
    "qemu-system-x86_64: terminating on signal 15 from pid 1234 (/usr/sbin/libvirtd)",
    "check_exception old: 0xffffffff new 0xd",
    "EAX=0 flatview_x",  # mentions flatview_ but no FlatView event: only skipped
]


def read(path: Path, selection: EventSelection = FLATVIEW) -> ParsedInput:
    parsed: ParsedInput = parse_file(str(path), selection=selection)
    return parsed


def noisy_copy(
    clean: Path, out: Path, n_garbled: int, n_noise: int, seed: int
) -> tuple[list[int], list[int]]:
    """``clean`` with garbled FlatView lines and noise inserted; their line numbers."""
    rng = random.Random(seed)
    lines = clean.read_text().splitlines()
    flatview = [x for x in lines if "flatview_" in x]
    inserts = [("garbled", rng.choice(sorted(GARBLERS))) for _ in range(n_garbled)]
    inserts += [("noise", rng.choice(NOISE)) for _ in range(n_noise)]
    rng.shuffle(inserts)
    slots = sorted(rng.sample(range(len(lines) + len(inserts)), len(inserts)))
    out_lines: list[str] = []
    garbled_at: list[int] = []
    noise_at: list[int] = []
    source = iter(lines)
    slot_set = dict(zip(slots, inserts, strict=True))
    for i in range(len(lines) + len(inserts)):
        if i not in slot_set:
            out_lines.append(next(source))
            continue
        kind, what = slot_set[i]
        if kind == "noise":
            out_lines.append(what)
            noise_at.append(i + 1)
        else:
            out_lines.append(GARBLERS[what](rng.choice(flatview), rng.choice(flatview)))
            garbled_at.append(i + 1)
    out.write_text("\n".join(out_lines) + "\n")
    return garbled_at, noise_at


def without(lines: list[int], events: pl.DataFrame) -> pl.DataFrame:
    """``events`` with line numbers as if ``lines`` (sorted) were not in the file."""
    before = pl.Series(lines, dtype=pl.Int64).search_sorted(events["line"]).cast(pl.Int64)
    return events.with_columns(line=events["line"] - before)


@pytest.mark.parametrize("clean", [QEMU10, BARE], ids=["tid-timestamp", "bare"])
def test_a_noisy_real_log_reads_as_the_clean_one_plus_markers(tmp_path: Path, clean: Path) -> None:
    path = tmp_path / "noisy.log"
    garbled_at, noise_at = noisy_copy(clean, path, n_garbled=203, n_noise=150, seed=10)
    parsed = read(path)
    events = parsed.events
    markers = events.filter(pl.col("event") == UNREADABLE)
    assert markers["line"].to_list() == garbled_at
    assert markers["view"].null_count() == markers["root"].null_count() == markers.height
    assert all(a.startswith("garbled flatview_") for a in markers["args"])
    real = events.filter(pl.col("event") != UNREADABLE)
    expected = read(clean).events
    assert_frame_equal(
        without(sorted(garbled_at + noise_at), real).select(*SAME, "line"),
        expected.select(*SAME, "line"),
    )
    # A bare run cannot tell -d output that looks bare from an event: it counts as a trace line.
    looks_bare = path.read_text().count("\ncheck_exception ") if clean == BARE else 0
    assert parsed.lines_skipped == len(noise_at) - looks_bare
    assert parsed.warnings == [
        f"{path}: 203 FlatView lines are garbled or cut; each is a qtrace_unreadable row, "
        f"never a view (first at line {garbled_at[0]})"
    ]


@pytest.mark.slow
def test_a_fresh_qemu_log_with_its_own_d_output_and_garbled_lines(tmp_path: Path) -> None:
    # Debian's QEMU now, with -d cpu_reset's register dumps in the same log: the dumps are
    # skipped, and garbled lines put in are holes, never views.
    try:
        run = run_qemu_trace(
            tmp_path / "fresh.log",
            machine="pc",
            scenario=(Boot(), Reset()),
            extra_args=("-d", "cpu_reset"),
        )
    except QemuHarnessError as exc:  # pragma: no cover - a broken QEMU is a failure
        pytest.fail(str(exc))
    clean = read(run.log_path)
    assert clean.lines_skipped > 0 and clean.warnings == []  # the register dumps
    path = tmp_path / "noisy.log"
    garbled_at, noise_at = noisy_copy(run.log_path, path, n_garbled=60, n_noise=20, seed=7)
    noisy = read(path)
    real = noisy.events.filter(pl.col("event") != UNREADABLE)
    assert_frame_equal(
        without(sorted(garbled_at + noise_at), real).select(*SAME, "line"),
        clean.events.select(*SAME, "line"),
    )
    assert noisy.events.filter(pl.col("event") == UNREADABLE)["line"].to_list() == garbled_at
    found = {p: qtrace.analyze(qtrace.read_trace(p)) for p in (run.log_path, path)}
    assert found[path].status_counts == found[run.log_path].status_counts


def test_garbled_lines_invent_no_leak_and_no_run(tmp_path: Path) -> None:
    # 203 garbled lines once made 88 leaked views in this log; they are holes now.
    path = tmp_path / "noisy.log"
    noisy_copy(QEMU10, path, n_garbled=203, n_noise=0, seed=88)
    noisy = qtrace.analyze(qtrace.read_trace(path))
    clean = qtrace.analyze(qtrace.read_trace(QEMU10))
    assert noisy.status_counts == clean.status_counts
    assert noisy.status_counts["leaked"] == 0
    assert noisy.anomalies.height == clean.anomalies.height
    assert noisy.views["run"].n_unique() == clean.views["run"].n_unique() == 1
    assert noisy.uncertain_views > 0  # findings that span a hole say so


@pytest.mark.parametrize("cut", ["inside a pointer", "inside the name", "after the name"])
def test_a_last_line_cut_mid_write_is_one_unreadable_row(tmp_path: Path, cut: str) -> None:
    data = QEMU10.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1].decode()  # a flatview_destroy line
    end = {
        "inside a pointer": last.index(" (root") - 6,
        "inside the name": last.index("flatview_") + 14,
        "after the name": last.index(" 0x"),
    }[cut]
    path = tmp_path / "killed.log"
    path.write_bytes(data + last[:end].encode())  # no newline: QEMU was killed
    parsed = read(path)
    tail = parsed.events.row(-1, named=True)
    n = data.count(b"\n") + 1
    assert (tail["event"], tail["line"], tail["view"]) == (UNREADABLE, n, None)
    assert tail["args"].endswith(f"line cut at the end of the file: {last[:end]}")
    assert tail["ts_ns"] is not None  # the prefix was whole: the hole has a time
    assert parsed.events.height == read(QEMU10).events.height + 1
    assert parsed.lines_skipped == 0
    assert f"first at line {n}" in parsed.warnings[0]
    trace = qtrace.read_trace(path)
    assert qtrace.analyze(trace).views["run"].n_unique() == 1  # no phantom run
    assert trace.events.filter(pl.col("event") == UNREADABLE).height == 1


def test_a_long_garbled_line_is_quoted_cut(tmp_path: Path) -> None:
    line = "1@1.000002:flatview_new 0x" + "f" * 500 + " (root 0x1)"
    path = tmp_path / "long.log"
    path.write_text("1@1.000001:flatview_new 0x10 (root (nil))\n" + line + "\n")
    args = read(path).events["args"][1]
    assert args == "garbled flatview_new line: " + line[:200] + "..."


def test_without_a_flatview_event_selected_garbled_lines_are_only_skipped(tmp_path: Path) -> None:
    path = tmp_path / "noisy.log"
    noisy_copy(QEMU10, path, n_garbled=20, n_noise=5, seed=3)
    parsed = read(path, EventSelection.parse("pci_*"))
    assert UNREADABLE not in parsed.events["event"].cast(pl.String).to_list()
    assert parsed.warnings == []


# ------------------------------------------------------------------------------ encodings


def test_a_utf8_byte_order_mark_keeps_line_one(tmp_path: Path) -> None:
    path = tmp_path / "bom.log"
    path.write_bytes(codecs.BOM_UTF8 + QEMU10.read_bytes())
    parsed = read(path)
    assert_frame_equal(parsed.events.drop("source"), read(QEMU10).events.drop("source"))
    first = parsed.events.row(0, named=True)
    assert (first["line"], first["root"]) == (1, 0)  # the immortal empty view is there
    assert parsed.warnings == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_logs_read_as_the_utf8_one(tmp_path: Path, encoding: str) -> None:
    # "utf-16" and "utf-32" write a byte-order mark; "utf-16-le/-be" write none.
    path = tmp_path / "wide.log"
    path.write_bytes(QEMU10.read_text().encode(encoding))
    parsed = read(path)
    assert_frame_equal(parsed.events.drop("source"), read(QEMU10).events.drop("source"))
    told = "UTF-32" if encoding == "utf-32" else encoding.upper().replace("UTF-16-", "UTF-16-")
    assert parsed.warnings == [f"{path}: read as {told} text (converted to UTF-8)"]


# ------------------------------------------------------------------------------ time stamps


@pytest.mark.parametrize(
    "stamped",
    [
        "9999-01-01T00:00:00.000001Z flatview_new 0x10 (root 0x20)",
        "2025-02-30T00:00:00Z flatview_new 0x10 (root 0x20)",
        "2016-12-31T23:59:60.5Z flatview_new 0x10 (root 0x20)",
        "1@12345678901234567890.000001:flatview_new 0x10 (root 0x20)",
        "Feb 30 10:30:08 h qemu-system-x86_64[7]: flatview_new 0x10 (root 0x20)",
    ],
    ids=["year-9999", "30-february", "leap-second", "20-digit-seconds", "syslog-30-february"],
)
def test_stamps_of_no_instant_are_null_counted_and_warned(tmp_path: Path, stamped: str) -> None:
    path = tmp_path / "stamps.log"
    good = "2025-07-21T18:43:28.089797Z flatview_new 0x5 (root (nil))"
    path.write_text(f"{good}\n{stamped}\n{stamped.replace('_new', '_destroy')}\n")
    parsed = read(path)
    assert parsed.events["ts_ns"].null_count() == 2
    assert parsed.events["ts_ns"][0] is not None
    assert parsed.events["view"].to_list() == [5, 0x10, 0x10]  # the events themselves read
    assert [w for w in parsed.warnings if "timestamp" in w] == [
        f"{path}: 2 trace lines have a timestamp out of range or of no such date; their "
        "ts_ns is null (first at line 2)"
    ]


def test_a_name_with_a_trailing_newline_is_not_selected() -> None:
    names = pl.DataFrame({"event": ["flatview_new", "flatview_new\n", "flatview_newer"]})
    for selection in (EventSelection(), EventSelection.parse("flatview_n*w")):
        kept = names.filter(reader.selected(selection))["event"].to_list()
        assert kept == ["flatview_new"]


# ------------------------------------------------------------------------------ properties

REAL_LINES = [x for x in QEMU10.read_text().splitlines()[::37]] + [
    x for x in BARE.read_text().splitlines()[::41]
]
WHOLE = re.compile(
    r"^(?:[0-9]+@[0-9]+\.[0-9]+:)?(?P<name>flatview_(?:new|destroy_rcu|destroy)) "
    r"(?P<view>0x[0-9a-f]{1,16}) \(root (?P<root>0x[0-9a-f]{1,16}|\(nil\))\)$"
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(REAL_LINES),
            st.integers(0, 90),
            st.integers(0, 3),
            st.text("0x(): +Z@.nil_", max_size=3),
        ),
        min_size=1,
        max_size=15,
    ),
    st.booleans(),
)
def test_garbage_never_becomes_a_view(
    tmp_path: Path, edits: list[tuple[str, int, int, str]], final_newline: bool
) -> None:
    lines = [line[:at] + insert + line[at + cut :] for line, at, cut, insert in edits]
    path = tmp_path / "fuzz.log"
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""))
    try:
        parsed = read(path)
    except qtrace.QtraceError:
        return
    for row in parsed.events.iter_rows(named=True):
        text = lines[row["line"] - 1]
        if row["event"] in FLATVIEW_EVENTS:
            # A FlatView event comes only from a whole, well-formed FlatView line.
            m = WHOLE.match(text)
            assert m is not None, text
            assert row["view"] == int(m["view"], 16) != 0
            assert row["root"] == (0 if m["root"] == "(nil)" else int(m["root"], 16))
        else:
            assert row["event"] == UNREADABLE and "flatview_" in text
