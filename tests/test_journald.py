"""The ``journalctl -o json`` reader: a real journal of Debian's QEMU, and the edge cases.

The real capture (tests/journal_harness.py) runs its own systemd-journald in a private mount
namespace: QEMU's stderr reaches it through ``systemd-cat`` (and a file, through ``tee``),
and one run again through ``logger`` as syslog messages, the syslog backend's form.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_harness import JournalCapture, JournalHarnessError, capture_journal
from qtrace.parsers import parse_file
from typer.testing import CliRunner

import qtrace
from qtrace.cli import app
from qtrace.errors import InputError
from qtrace.events import MODEL_EVENTS, UNREADABLE, EventSelection

MODEL = EventSelection(MODEL_EVENTS)
EVERYTHING = EventSelection.parse("*")
# The columns a journal and the classic log both carry (ts, pid and tid differ by form).
SAME = ["event", "view", "root", "args"]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> JournalCapture:
    try:
        return capture_journal(tmp_path_factory.mktemp("journal"))
    except JournalHarnessError as exc:
        pytest.fail(str(exc))


@pytest.mark.slow
def test_real_journal_gives_the_classic_log_s_events(capture: JournalCapture) -> None:
    parsed = parse_file(str(capture.journal_json), selection=MODEL)
    assert (parsed.format, parsed.dialect, parsed.clock) == ("journald", "bare", "wall-us")
    assert parsed.warnings == []
    events = parsed.events
    # Two runs through systemd-cat, the first again through logger: three processes.
    pids = events["pid"].unique(maintain_order=True).to_list()
    assert len(pids) == 3 and None not in pids
    logs = [parse_file(str(log), selection=MODEL).events for log in capture.logs]
    for pid, log in zip(pids, [*logs, logs[0]], strict=True):
        mine = events.filter(pl.col("pid") == pid)
        assert mine.height > 500
        assert mine.select(SAME).equals(log.select(SAME))
    # journald's receive time, within the capture; never before the previous entry's.
    stamps = events["ts_ns"]
    assert stamps.null_count() == 0 and stamps.is_sorted()
    assert capture.started_s * 1e9 <= stamps[0] and stamps[-1] <= capture.ended_s * 1e9
    # The kernel's messages, QEMU's "terminating on signal" lines: skipped and counted.
    exported = capture.journal_json.read_text().splitlines()
    assert parsed.lines_skipped == len(exported) - events.height > 2
    # Line numbers are the entries' lines in the export.
    first = json.loads(exported[events["line"][0] - 1])
    assert first["MESSAGE"].startswith(f"flatview_new {events['view'][0]:#x} (root (nil))")
    assert int(first["_PID"]) == pids[0]


@pytest.mark.slow
def test_real_journal_runs_and_reports(capture: JournalCapture, tmp_path: Path) -> None:
    analysis = qtrace.analyze(qtrace.read_trace(capture.journal_json))
    assert analysis.runs == 3
    assert analysis.status_counts["leaked"] == 0
    out = tmp_path / "journal.perfetto.json"
    qtrace.write_perfetto(analysis, out)
    names = [
        e["args"]["name"]
        for e in json.loads(out.read_text())["traceEvents"]
        if e.get("name") == "process_name"
    ]
    assert len(names) == 3 and all("(QEMU pid " in name for name in names)
    result = CliRunner().invoke(app, ["analyze", str(capture.journal_json), "-f", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"]["format"] == "journald"


def _journal(tmp_path: Path, entries: list[dict[str, Any] | str], name: str = "j.json") -> Path:
    path = tmp_path / name
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries))
    return path


def _entry(
    message: Any, pid: int = 4242, t_us: int = 1_700_000_000_000_000, **more: Any
) -> dict[str, Any]:
    return {
        "__CURSOR": f"s=1;i={t_us}",
        "__REALTIME_TIMESTAMP": str(t_us),
        "_PID": str(pid),
        "_COMM": "qemu-system-x86",
        "SYSLOG_IDENTIFIER": "qemu-system-x86_64",
        "MESSAGE": message,
        **more,
    }


def test_byte_array_messages_and_json_seq(tmp_path: Path) -> None:
    raw = b"flatview_new 0x10 (root 0x20)"
    path = _journal(
        tmp_path,
        [
            "\x1e" + json.dumps(_entry("flatview_new 0x1 (root (nil))")),
            # journald exports a message that is not UTF-8 as its bytes.
            _entry(list(raw)),
            _entry(list(b"flatview_new 0x30 (root 0x20) \xff\xfe"), t_us=1_700_000_000_000_009),
            _entry("[not an array] flatview_new 0x40 (root 0x20)"),
        ],
    )
    parsed = parse_file(str(path), selection=MODEL)
    events = parsed.events
    assert events["view"].head(2).to_list() == [0x1, 0x10]
    assert events["ts_ns"].head(2).to_list() == [1_700_000_000_000_000_000] * 2
    # The damaged message is read and found garbled: a hole, never a view.
    damaged = events.row(2, named=True)
    assert damaged["view"] is None and damaged["line"] == 3
    assert any("not '%p (root %p)'" in w or "garbled" in w for w in parsed.warnings)
    assert events.height == 3 and parsed.lines_skipped == 1


def test_damaged_lines_and_rate_limited_messages_are_holes(tmp_path: Path) -> None:
    good = json.dumps(_entry("flatview_new 0x1 (root (nil))"))
    path = _journal(
        tmp_path,
        [
            good,
            good[: good.index("(root")],  # cut inside a FlatView event's message
            "{garbage",  # names nothing wanted
            _entry(
                "Suppressed 1234 messages from qemu.service",
                pid=99,
                _COMM="systemd-journal",
                SYSLOG_IDENTIFIER="systemd-journald",
            ),
            _entry("flatview_new 0x2 (root 0x5)", t_us=1_700_000_000_000_100),
        ],
    )
    parsed = parse_file(str(path), selection=MODEL)
    events = parsed.events
    assert events["event"].cast(pl.String).to_list() == [
        "flatview_new",
        UNREADABLE,
        UNREADABLE,
        "flatview_new",
    ]
    holes = events.filter(pl.col("event") == UNREADABLE)
    assert holes["line"].to_list() == [2, 4]
    assert holes["args"][0].startswith("journal line that is not JSON (cut or garbled?): {")
    assert holes["args"][1] == "journald dropped 1234 messages (rate limit) from qemu.service"
    assert holes["view"].null_count() == 2
    assert parsed.warnings == [
        f"{path}: 2 lines are not JSON journal entries (cut or garbled?); skipped, first at line 2"
    ]
    assert events["seq"].to_list() == [0, 1, 2, 3]
    # The model reads the holes: nothing here is a finding.
    analysis = qtrace.analyze(qtrace.read_trace(path))
    assert analysis.anomalies.height == 0


def test_other_programs_are_skipped(tmp_path: Path) -> None:
    path = _journal(
        tmp_path,
        [
            _entry("flatview_new 0x1 (root (nil))"),
            _entry(
                "snd_hda_intel 0000:00:1f.3: codec probe",
                pid=7,
                _COMM="kworker/0:1",
                SYSLOG_IDENTIFIER="kernel",
            ),
            _entry("pci_update_mappings_add d=0x1 00:02.0 0,0xfd000000+0x1000000"),
            _entry("flatview_new 0x2 (root 0x5)"),
        ],
    )
    parsed = parse_file(str(path), selection=EVERYTHING)
    assert parsed.events["event"].cast(pl.String).to_list() == [
        "flatview_new",
        "pci_update_mappings_add",
        "flatview_new",
    ]
    assert parsed.lines_skipped == 1
    assert set(parsed.events["pid"]) == {4242}


def test_interleaved_processes_keep_journal_order_and_their_pid(tmp_path: Path) -> None:
    path = _journal(
        tmp_path,
        [
            _entry("flatview_new 0x1 (root (nil))", pid=100, t_us=1),
            _entry("flatview_new 0x9 (root (nil))", pid=200, t_us=2),
            _entry("flatview_new 0x2 (root 0x5)", pid=100, t_us=3),
            _entry("flatview_new 0xa (root 0x6)", pid=200, t_us=4),
        ],
    )
    events = parse_file(str(path), selection=MODEL).events
    assert events["pid"].to_list() == [100, 200, 100, 200]
    assert events["ts_ns"].to_list() == [1000, 2000, 3000, 4000]
    assert events["line"].to_list() == [1, 2, 3, 4]


def test_a_message_s_own_stamp_wins(tmp_path: Path) -> None:
    # systemd-cat of a QEMU run with -msg timestamp=on: the log backend's own prefix.
    path = _journal(
        tmp_path,
        [
            _entry("4243@1795569496.114719:flatview_new 0x1 (root (nil))", t_us=1),
            _entry("4243@1795569496.114801:flatview_new 0x2 (root 0x5)", t_us=2),
        ],
    )
    parsed = parse_file(str(path), selection=MODEL)
    assert (parsed.dialect, parsed.clock) == ("tid-timestamp", "wall-us")
    assert parsed.events["ts_ns"].to_list() == [1795569496114719000, 1795569496114801000]
    assert parsed.events["tid"].to_list() == [4243, 4243]
    assert parsed.events["pid"].to_list() == [4242, 4242]


def test_a_journal_without_qemu_is_unreadable(tmp_path: Path) -> None:
    path = _journal(tmp_path, [_entry("Started Session 1 of User root.", _COMM="systemd")])
    with pytest.raises(InputError, match=r"a journal export .* with no QEMU trace messages"):
        parse_file(str(path), selection=MODEL)
    result = CliRunner().invoke(app, ["analyze", str(path)])
    assert result.exit_code == 3
    assert "no QEMU trace messages" in result.stderr


def test_input_format_can_be_forced(tmp_path: Path) -> None:
    # The first line is damaged, so detection cannot tell; --input-format can.
    path = _journal(tmp_path, ["{cut", _entry("flatview_new 0x1 (root (nil))")])
    with pytest.raises(InputError):
        parse_file(str(path), selection=MODEL)
    parsed = parse_file(str(path), selection=MODEL, input_format="journald")
    assert parsed.events["view"].to_list() == [1]


MESSAGES = st.sampled_from(
    [
        "flatview_new 0x{v:x} (root 0x5)",
        "flatview_destroy_rcu 0x{v:x} (root 0x5)",
        "Started session {v}.",
        "flatview_new 0x{v:x} (root",  # cut
        "snd_hda_intel 0000:00:1f.{v}: probe",
        "",
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entries=st.lists(
        st.tuples(MESSAGES, st.integers(1, 2**40), st.sampled_from([11, 22]), st.booleans()),
        min_size=1,
        max_size=30,
    )
)
def test_any_journal_reads_exactly_its_qemu_flatview_messages(
    tmp_path: Path, entries: list[tuple[str, int, int, bool]]
) -> None:
    # pid 11 is QEMU by name; pid 22 only when it printed a FlatView event.
    lines: list[dict[str, Any] | str] = []
    for number, (template, value, pid, as_bytes) in enumerate(entries):
        text = template.format(v=value)
        comm = "qemu-system-x86" if pid == 11 else "other"
        message: Any = list(text.encode()) if as_bytes else text
        lines.append(
            _entry(message, pid=pid, t_us=1000 + number, _COMM=comm, SYSLOG_IDENTIFIER=comm)
        )
    path = _journal(tmp_path, lines, name="prop.json")
    texts = [template.format(v=value) for template, value, _, _ in entries]
    full = [(n + 1, t) for n, t in enumerate(texts) if t.endswith("(root 0x5)")]
    cut = [n + 1 for n, t in enumerate(texts) if t.startswith("flatview_") and t.endswith("(root")]
    try:
        events = parse_file(str(path), selection=MODEL).events
    except InputError:
        assert not full and not cut  # nothing QEMU printed reads as a trace line
        return
    read = events.filter(pl.col("view").is_not_null())
    assert read["line"].to_list() == [line for line, _ in full]
    assert read["event"].cast(pl.String).to_list() == [text.split()[0] for _, text in full]
    # A cut FlatView message is never a view: a row without pointers, a hole.
    holes = events.filter(pl.col("view").is_null())
    assert holes["line"].to_list() == cut
    assert set(holes["event"].cast(pl.String)) <= {"flatview_new", UNREADABLE}
