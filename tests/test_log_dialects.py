"""QEMU's other line forms give the same events as the classic log form of the same trace.

Real QEMU logs are printed again in each form (``log_forms``); the events table must be the
one the classic form gives, times, thread and process ids aside where the form lacks them.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable
from pathlib import Path

import log_forms
import polars as pl
import pytest
from log_forms import PID, TraceLine
from polars.testing import assert_frame_equal
from qtrace.parsers import parse_file

import qtrace
from qtrace.events import EventSelection, ParsedInput

ROOT = Path(__file__).resolve().parents[1]
REAL_TS_LOGS = [
    ROOT / "samples" / "pc-boot-ts.log",
    ROOT / "samples" / "pc-bridges-ts.log",
    ROOT.parent / "shared" / "traces" / "qemu10-pc-bridges-ts.log",
]
FLATVIEW = EventSelection()
SAME = ["event", "view", "root", "args", "line"]  # what every form must give alike


def read(tmp_path: Path, data: bytes, name: str = "form.log") -> ParsedInput:
    path = tmp_path / name
    path.write_bytes(data)
    parsed: ParsedInput = parse_file(str(path), selection=FLATVIEW)
    return parsed


@pytest.fixture(scope="module", params=REAL_TS_LOGS, ids=lambda p: p.name)
def real(request: pytest.FixtureRequest) -> tuple[list[TraceLine | str], ParsedInput]:
    path: Path = request.param
    classic = parse_file(str(path), selection=FLATVIEW)
    assert classic.dialect == "tid-timestamp" and classic.events.height > 700
    return log_forms.read_lines(path.read_text()), classic


def converted(
    tmp_path: Path,
    real: tuple[list[TraceLine | str], ParsedInput],
    form: Callable[[TraceLine], str],
) -> tuple[ParsedInput, pl.DataFrame]:
    lines, classic = real
    parsed = read(tmp_path, log_forms.write(lines, form))
    assert_frame_equal(parsed.events.select(SAME), classic.events.select(SAME))
    assert parsed.lines_skipped == classic.lines_skipped and parsed.warnings == []
    return parsed, classic.events


COMBINATIONS = list(
    itertools.product([False, True], ["fish food", None], [False, True], [False, True])
)


@pytest.mark.parametrize(
    ("timestamp", "guest", "program", "thread_info"),
    [c for c in COMBINATIONS if c[1:] != (None, False, False)],  # else it is iso8601 or bare
)
def test_message_context_every_combination(
    tmp_path: Path,
    real: tuple[list[TraceLine | str], ParsedInput],
    timestamp: bool,
    guest: str | None,
    program: bool,
    thread_info: bool,
) -> None:
    names = log_forms.thread_names(real[0])
    form = log_forms.message_context(
        names, timestamp=timestamp, guest=guest, program=program, thread_info=thread_info
    )
    parsed, classic = converted(tmp_path, real, form)
    expected = ("iso8601-message-context", "wall-us") if timestamp else ("message-context", "none")
    assert (parsed.dialect, parsed.clock) == expected
    events = parsed.events
    if timestamp:
        assert events["ts_ns"].equals(classic["ts_ns"])
    else:
        assert events["ts_ns"].null_count() == events.height
    if thread_info:
        assert events["tid"].equals(classic["tid"])
        threads = events.select(pl.col("thread").cast(pl.String))["thread"]
        assert threads.to_list() == [names[t] for t in classic["tid"]]
        # flatview_destroy runs on the RCU thread, as its name now says.
        destroy = events.filter(pl.col("event") == "flatview_destroy")
        assert set(destroy["thread"].cast(pl.String)) == {"call_rcu"}
    else:
        assert events["tid"].null_count() == events["thread"].null_count() == events.height


def test_message_context_thread_names_hold_spaces_slashes_and_parentheses(tmp_path: Path) -> None:
    body = "flatview_new 0x55d0c3a1b2c0 (root 0x55d0c39f8000)"
    lines = [
        f"qemu-system-x86_64: (1184284:CPU 0/TCG): {body}",
        f"[guest with ] in it] qemu-system-x86_64: (1184285:IO mon_iothread): {body}",
        f"(1184286:worker (pool)): {body}",
        f"2026-02-11T15:24:41Z [fish food] qemu-system-x86_64: (1184287:call_rcu): {body}",
        "qemu-system-x86_64: (1184284:main): terminating on signal 15 from pid 1 (systemd)",
        "2026-02-11T15:24:41Z qemu-system-x86_64: warning: host doesn't support feature",
    ]
    parsed = read(tmp_path, ("\n".join(lines) + "\n").encode())
    events = parsed.events
    assert events["line"].to_list() == [1, 2, 3, 4]
    assert events["thread"].cast(pl.String).to_list() == [
        "CPU 0/TCG",
        "IO mon_iothread",
        "worker (pool)",
        "call_rcu",
    ]
    assert events["tid"].to_list() == [1184284, 1184285, 1184286, 1184287]
    assert events["ts_ns"][3] == 1770823481 * 10**9  # no fraction: exactly the second
    assert parsed.lines_skipped == 2  # QEMU's own messages carry the prefix too: prose


@pytest.mark.parametrize("offset_minutes", [0, 60, -420, 330])
def test_syslog_rfc3339_with_any_offset_reads_utc(
    tmp_path: Path, real: tuple[list[TraceLine | str], ParsedInput], offset_minutes: int
) -> None:
    parsed, classic = converted(tmp_path, real, log_forms.syslog_rfc3339(offset_minutes))
    assert (parsed.dialect, parsed.clock) == ("syslog-rfc3339", "wall-us")
    assert parsed.events["ts_ns"].equals(classic["ts_ns"])
    assert parsed.events["pid"].unique().to_list() == [PID]
    assert parsed.events["tid"].null_count() == parsed.events.height


def test_syslog_rfc3339_without_a_colon_or_with_z(
    tmp_path: Path, real: tuple[list[TraceLine | str], ParsedInput]
) -> None:
    # journalctl -o short-iso-precise prints +0100; a Z would read as an event "HOST" in
    # QEMU's own iso8601 form: the syslog form wins.
    parsed, classic = converted(tmp_path, real, log_forms.syslog_rfc3339(60, colon=False))
    assert parsed.events["ts_ns"].equals(classic["ts_ns"])

    def with_z(line: TraceLine) -> str:
        return log_forms.syslog_rfc3339(0)(line).replace("+00:00 ", "Z ", 1)

    parsed, classic = converted(tmp_path, real, with_z)
    assert parsed.dialect == "syslog-rfc3339"
    assert parsed.events["ts_ns"].equals(classic["ts_ns"])


def test_syslog_classic_seconds_of_an_unknown_year(
    tmp_path: Path, real: tuple[list[TraceLine | str], ParsedInput]
) -> None:
    parsed, classic = converted(tmp_path, real, log_forms.syslog_classic)
    assert (parsed.dialect, parsed.clock) == ("syslog", "local-no-year")
    events = parsed.events
    assert events["pid"].unique().to_list() == [PID]
    # Whole seconds, counted from 1 January 00:00 of a year read as a leap year.
    first = datetime.datetime.fromtimestamp(classic["ts_ns"][0] // 10**9, datetime.UTC)
    leap = datetime.datetime(2000, first.month, first.day, first.hour, first.minute, first.second)
    assert events["ts_ns"][0] == (leap - datetime.datetime(2000, 1, 1)).total_seconds() * 10**9
    seconds = classic["ts_ns"] // 10**9
    assert (events["ts_ns"] - events["ts_ns"][0]).equals((seconds - seconds[0]) * 10**9)


def test_syslog_classic_year_wrap_and_padded_days(tmp_path: Path) -> None:
    body = "flatview_new 0x5614d2e0c3f0 (root 0x5614d2c8e000)"
    data = (
        f"Dec 31 23:59:59 h qemu-system-x86_64[7]: {body}\n"
        f"Jan  1 00:00:01 h qemu-system-x86_64[7]: {body}\n"
        f"Jan  9 00:00:01 h qemu-system-x86_64[7]: {body}\n"
        f"Feb 30 00:00:01 h qemu-system-x86_64[7]: {body}\n"
    ).encode()
    parsed = read(tmp_path, data)
    ts = parsed.events["ts_ns"].to_list()
    assert ts[1] - ts[0] == 2 * 10**9  # the next year's 1 January, two seconds later
    assert ts[2] - ts[1] == 8 * 86_400 * 10**9
    assert ts[3] is None  # no such date: warned about and counted
    assert any("1 trace lines have a timestamp out of range" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("options", "dialect", "clock"),
    [
        ({}, "babeltrace2", "local-no-date"),
        ({"delta": False, "host": False}, "babeltrace2", "local-no-date"),
        ({"context": True, "root_first": True}, "babeltrace2", "local-no-date"),
        ({"clock": "date"}, "babeltrace2-date", "wall-ns"),
        ({"clock": "seconds", "context": True}, "babeltrace2-date", "wall-ns"),
    ],
    ids=["default", "no-delta-no-host", "context-fields-root-first", "clock-date", "clock-seconds"],
)
def test_babeltrace2_text_of_the_ust_backend(
    tmp_path: Path,
    real: tuple[list[TraceLine | str], ParsedInput],
    options: dict[str, bool | str],
    dialect: str,
    clock: str,
) -> None:
    form = log_forms.babeltrace(**options)  # type: ignore[arg-type]
    parsed, classic = converted(tmp_path, real, form)
    assert (parsed.dialect, parsed.clock) == (dialect, clock)
    events = parsed.events
    if clock == "wall-ns":
        assert events["ts_ns"].equals(classic["ts_ns"])
    else:  # nanoseconds since the first line's midnight
        day_ns = 86_400 * 10**9
        assert events["ts_ns"].equals(classic["ts_ns"] - classic["ts_ns"][0] // day_ns * day_ns)
    if options.get("context"):
        assert events["tid"].equals(classic["tid"])
        assert events["pid"].unique().to_list() == [PID]
        assert events["thread"].cast(pl.String).unique().to_list() == ["qemu-system-x86"]
    else:
        assert events["tid"].null_count() == events.height


def test_babeltrace2_day_wrap_nil_root_and_other_providers(tmp_path: Path) -> None:
    data = (
        b"[23:59:59.900000000] (+?.?????????) h qemu:flatview_new: { cpu_id = 0 }, "
        b"{ view = 0x5614d2e0c3f0, root = 0x0 }\n"
        b"[00:00:00.100000000] (+0.200000000) h qemu:flatview_destroy_rcu: { cpu_id = 1 }, "
        b"{ view = 0x5614d2e0c3f0, root = 0x0 }\n"
        b"[00:00:00.200000000] (+0.100000000) h lttng_ust_statedump:start: { cpu_id = 1 }, { }\n"
        b"[00:00:00.300000000] (+0.100000000) h qemu:flatview_destroy: { cpu_id = 1 }, "
        b"{ view = 0x0, root = 0x0 }\n"
    )
    parsed = read(tmp_path, data)
    events = parsed.events
    assert events["event"].to_list() == [
        "flatview_new",
        "flatview_destroy_rcu",
        "qtrace_unreadable",
    ]
    assert events["root"].to_list()[:2] == [0, 0]  # 0x0 is babeltrace2's nil
    assert events["ts_ns"][1] - events["ts_ns"][0] == 200_000_000  # past midnight
    assert parsed.lines_skipped == 1  # another provider's event is no QEMU trace line


@pytest.mark.parametrize(
    ("form", "dialect"),
    [(log_forms.systemtap, "systemtap"), (log_forms.ftrace, "ftrace"), (log_forms.iso, None)],
    ids=["systemtap", "ftrace", "iso8601"],
)
def test_other_backends_of_the_same_trace(
    tmp_path: Path,
    real: tuple[list[TraceLine | str], ParsedInput],
    form: Callable[[TraceLine], str],
    dialect: str | None,
) -> None:
    if dialect is None:  # QEMU 10.1's stamps

        def form(line: TraceLine) -> str:
            return f"{log_forms.iso(line)} {line.body}"

        dialect = "iso8601"
    parsed, classic = converted(tmp_path, real, form)
    assert parsed.dialect == dialect
    gaps = parsed.events["ts_ns"].diff()
    assert gaps.equals(classic["ts_ns"].diff())


def test_the_model_finds_the_same_in_every_form(
    tmp_path: Path, real: tuple[list[TraceLine | str], ParsedInput]
) -> None:
    lines = real[0]
    names = log_forms.thread_names(lines)
    forms = {
        "classic": log_forms.tid_timestamp,
        "context": log_forms.message_context(
            names, timestamp=True, guest="vm", program=True, thread_info=True
        ),
        "syslog": log_forms.syslog_classic,
        "rfc3339": log_forms.syslog_rfc3339(-300),
        "babeltrace2": log_forms.babeltrace(context=True),
    }
    found = {}
    for name, form in forms.items():
        path = tmp_path / f"{name}.log"
        path.write_bytes(log_forms.write(lines, form))
        analysis = qtrace.analyze(qtrace.read_trace(path))
        found[name] = (analysis.status_counts, analysis.anomalies.height)
    assert len(set(map(repr, found.values()))) == 1, found
