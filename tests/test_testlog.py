"""The meson ``testlog.json`` reader: a real ``meson test`` of Debian's QEMU, and edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from meson_harness import Case, MesonHarnessError, MesonRun, run_meson_tests
from qtrace.parsers import parse_file
from typer.testing import CliRunner

import qtrace
from qtrace.cli import app
from qtrace.errors import InputError
from qtrace.events import MODEL_EVENTS, EventSelection

MODEL = EventSelection(MODEL_EVENTS)
SAME = ["event", "view", "root", "args", "tid", "ts_ns", "line"]
CASES = [
    Case("qtest-x86_64/boot-pc"),
    Case("qtest-x86_64/boot-q35", machine="q35"),
    Case("qtest-x86_64/boot-pc-ts", timestamps=True),
    Case("unit/no-qemu", machine=None),
]


@pytest.fixture(scope="module")
def meson(tmp_path_factory: pytest.TempPathFactory) -> MesonRun:
    try:
        return run_meson_tests(tmp_path_factory.mktemp("meson"), CASES)
    except MesonHarnessError as exc:
        pytest.fail(str(exc))


@pytest.mark.slow
def test_real_meson_testlog_gives_each_test_s_log(meson: MesonRun) -> None:
    parsed = parse_file(str(meson.testlog), selection=MODEL)
    assert parsed.format == "testlog"
    assert parsed.dialect == "mixed(bare,tid-timestamp)"
    assert parsed.warnings == []
    events = parsed.events
    assert events["seq"].to_list() == list(range(events.height))
    by_test = events.partition_by("source", as_dict=True, maintain_order=True)
    # meson names a test "project:name" in its log.
    source = {name: f"{meson.testlog}!qtrace-qtests:{name}" for name in meson.logs}
    assert {key[0] for key in by_test} == set(source.values())
    for name, log in meson.logs.items():
        mine = by_test[(source[name],)]
        classic = parse_file(str(log), selection=MODEL).events
        # Line numbers are the lines of the test's own output, as in its log file.
        assert mine.select(SAME).equals(classic.select(SAME)), name
        assert mine.height > 500
    timestamped = by_test[(source["qtest-x86_64/boot-pc-ts"],)]
    assert timestamped["ts_ns"].null_count() == 0 and timestamped["tid"].null_count() == 0


@pytest.mark.slow
def test_each_test_s_qemu_is_a_run(meson: MesonRun) -> None:
    analysis = qtrace.analyze(qtrace.read_trace(meson.testlog))
    assert analysis.runs == 3
    sources = analysis.views.group_by("run").agg(pl.col("source").unique())
    assert sorted(len(s) for s in sources["source"]) == [1, 1, 1]
    result = CliRunner().invoke(app, ["analyze", str(meson.testlog), "-f", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["source"]["format"] == "testlog" and report["runs"] == 3


def _testlog(tmp_path: Path, tests: list[dict[str, Any] | str]) -> Path:
    path = tmp_path / "testlog.json"
    path.write_text("".join((t if isinstance(t, str) else json.dumps(t)) + "\n" for t in tests))
    return path


BOOT = "flatview_new 0x1 (root (nil))\nflatview_new 0x2 (root 0x5)\n"


def test_repeated_names_both_streams_and_a_cut_last_test(tmp_path: Path) -> None:
    full = {"name": "t", "result": "OK", "stdout": "", "stderr": BOOT}
    path = _testlog(
        tmp_path,
        [
            full,
            full,  # meson test --repeat 2
            {"name": "both", "result": "OK", "stdout": "hi\n" + BOOT, "stderr": BOOT},
            {"name": "quiet", "result": "OK", "stdout": "1 test passed\n", "stderr": ""},
            json.dumps(full)[:40],  # the artifact was cut here
        ],
    )
    parsed = parse_file(str(path), selection=MODEL)
    sources = parsed.events["source"].cast(pl.String).unique(maintain_order=True).to_list()
    assert sources == [
        f"{path}!t",
        f"{path}!t#2",
        f"{path}!both [stdout]",
        f"{path}!both [stderr]",
    ]
    both = parsed.events.filter(pl.col("source") == f"{path}!both [stdout]")
    assert both["line"].to_list() == [2, 3]
    assert parsed.warnings == [
        f"{path}: 1 lines are not JSON test objects (cut or garbled?); skipped with their "
        "output, first at line 5"
    ]
    # The cut line, "quiet"'s one line and "both"'s "hi" are the lines not read as trace.
    assert parsed.lines_skipped == 3


def test_not_a_trace_and_forced_format(tmp_path: Path) -> None:
    quiet = _testlog(tmp_path, [{"name": "q", "result": "OK", "stdout": "ok\n", "stderr": ""}])
    with pytest.raises(InputError, match="a meson testlog with no QEMU trace lines"):
        parse_file(str(quiet), selection=MODEL)
    # A testlog whose first line is damaged is not recognised; --input-format says it.
    cut = _testlog(tmp_path, ["{cut", {"name": "t", "stdout": BOOT}])
    parsed = parse_file(str(cut), selection=MODEL, input_format="testlog")
    assert parsed.events["view"].to_list() == [1, 2]
