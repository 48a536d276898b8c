"""Batch outputs carry hostile artifact text only escaped; gating judges against baselines."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from qtrace.dashboards.fleet_page import fleet_page

from qtrace.batch import gating
from qtrace.batch.outputs import (
    annotation,
    github_annotations,
    junit_xml,
    summary_markdown,
)
from qtrace.batch.summary import row_of, totals_of
from qtrace.errors import InputError, UsageError
from qtrace.findings import CHECKS, FailPolicy
from qtrace.formatting import escape_markdown

KINDS = ["new_while_live", "orphan_destroy_rcu"]
HOSTILE = 'ci/<script>alert("x")</script>|a`b*c_d,e:f%g\r\n::error::owned\x00\x1b.log'


def _record(
    name: str, leaked: int = 0, orphan: int = 0, error: str | None = None
) -> dict[str, Any]:
    if error is not None:
        return {"artifact": name, "error": error}
    return {
        "artifact": name,
        "error": None,
        "events": {"flatview_new": 10, "flatview_destroy": 8},
        "views": {"instances": 10, "leaked": leaked},
        "roots": {"distinct": 3, "max_concurrent_views": 2},
        "anomalies": {"new_while_live": 0, "orphan_destroy_rcu": orphan},
        "leaks": leaked,
        "findings": {"leaked": leaked, "new_while_live": 0, "orphan_destroy_rcu": orphan},
        "leaked_views": [
            {
                "view": "0x10",
                "root": "0x20",
                "generation": 0,
                "status": "leaked",
                "source": name,
                "line": 40 + i,
            }
            for i in range(leaked)
        ],
        "duration_ns": 2_500_000_000,
        "dashboard": "artifacts/00001-x.html",
    }


def _judge(records: list[dict[str, Any]], words: str | None = None) -> list[gating.Verdict]:
    policy = FailPolicy.parse(words)
    return [gating.judge(r, policy, None) for r in records]


def test_policy_words() -> None:
    anomalies = set(CHECKS) - {"readable", "leaked"}
    assert FailPolicy.parse(None).checks == set(CHECKS)
    assert FailPolicy.parse("anomalies").checks == anomalies
    assert FailPolicy.parse("any").checks == set(CHECKS)
    assert FailPolicy.parse("none").checks == set()
    assert FailPolicy.parse(["leaked", "unreadable"]).checks == {"leaked", "readable"}
    with pytest.raises(UsageError, match="unknown bogus"):
        FailPolicy.parse("bogus")
    with pytest.raises(UsageError, match="none cannot be combined"):
        FailPolicy.parse("none,leaked")


def test_exit_codes_follow_the_policy() -> None:
    clean, leaky, broken = _record("a"), _record("b", leaked=2), _record("c", error="empty file")
    assert gating.batch_exit_code(_judge([clean])) == 0
    assert gating.batch_exit_code(_judge([clean, leaky, broken])) == 1
    assert gating.batch_exit_code(_judge([clean, broken])) == 3
    assert gating.batch_exit_code(_judge([clean, broken], "leaked")) == 0
    assert gating.batch_exit_code(_judge([leaky], "orphan_destroy_rcu,unreadable")) == 0
    assert gating.batch_exit_code(_judge([_record("d", orphan=1)], "anomalies")) == 1


def test_baseline_fails_only_on_what_got_worse() -> None:
    policy = FailPolicy.parse(None)
    base = {
        "same": _record("same", leaked=2, orphan=1),
        "fixed": _record("fixed", leaked=3),
        "worse": _record("worse", leaked=1),
        "newkind": _record("newkind", orphan=0),
        "morekind": _record("morekind", orphan=1),
        "broke": _record("broke"),
    }
    now = [
        _record("same", leaked=2, orphan=1),
        _record("fixed", leaked=0),
        _record("worse", leaked=4),
        _record("newkind", orphan=2),
        _record("morekind", orphan=5),
        _record("broke", error="gzip stream damaged"),
        _record("unknown-before", leaked=1),
    ]
    verdicts = {r["artifact"]: gating.judge(r, policy, base.get(r["artifact"])) for r in now}
    failing = {name: [c.name for c in v.failed] for name, v in verdicts.items()}
    assert failing == {
        "same": [],
        "fixed": [],
        "worse": ["leaked"],
        "newkind": ["orphan_destroy_rcu"],
        "morekind": [],
        "broke": ["readable"],
        "unknown-before": ["leaked"],  # no baseline: judged by the policy alone
    }
    assert verdicts["fixed"].improved == ["leaked 3 -> 0"]
    assert verdicts["worse"].worse == ["leaked 1 -> 4"]
    assert gating.batch_exit_code(list(verdicts.values())) == 1


def test_baseline_file_must_be_a_batch_summary(tmp_path: Path) -> None:
    good = tmp_path / "summary.json"
    good.write_text(json.dumps({"schema": "qtrace.batch/1", "artifacts": [_record("x")]}))
    assert set(gating.load_baseline(good)) == {"x"}
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"schema": "qtrace.analyze/1"}))
    with pytest.raises(InputError, match="not a qtrace batch summary"):
        gating.load_baseline(bad)
    with pytest.raises(InputError, match="cannot read the baseline"):
        gating.load_baseline(tmp_path / "missing.json")


def test_junit_parses_back_with_one_suite_per_artifact_and_escaped_text() -> None:
    records = [_record(HOSTILE, leaked=2), _record("clean.log"), _record("b.gz", error=HOSTILE)]
    rows = [row_of(r) for r in records]
    verdicts = _judge(records)
    leaks = {r["artifact"]: r.get("leaked_views", []) for r in records}
    root = ET.fromstring(junit_xml(rows, verdicts, leaks))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        HOSTILE.replace("\x00", "\ufffd").replace("\x1b", "\ufffd"),
        "clean.log",
        "b.gz",
    ]
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", -1)) == len(cases)
        assert int(suite.get("failures", -1)) == sum(c.find("failure") is not None for c in cases)
        assert {"name", "classname", "time"} <= set(cases[0].attrib)
    hostile_cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    assert list(hostile_cases) == list(CHECKS)
    failure = hostile_cases["leaked"].find("failure")
    assert failure is not None and "line" not in (failure.get("message") or "x")
    assert failure.text is not None and f"{HOSTILE[:10]}" in failure.text
    assert hostile_cases["readable"].find("failure") is None
    broken = {c.get("name"): c for c in suites[2].findall("testcase")}
    assert broken["readable"].find("failure") is not None
    assert broken["leaked"].find("skipped") is not None
    assert root.get("failures") == "2" and root.get("skipped") == "1"


def test_markdown_cells_cannot_break_the_table_or_inject_html() -> None:
    cell = escape_markdown(HOSTILE)
    assert "\n" not in cell and "<script>" not in cell and "&lt;script&gt;" in cell
    assert "|" not in cell.replace("\\|", "")
    records = [_record(HOSTILE, leaked=1), _record("ok.log")]
    text = summary_markdown([row_of(r) for r in records], _judge(records), 1)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 3  # header and two rows, each one line
    assert all(line.replace("\\|", "").count("|") == 8 for line in table)
    assert text.startswith("### qtrace batch failed: 2 artifacts, 1 with findings")


def test_annotations_are_escaped_as_github_workflow_commands() -> None:
    line = annotation("a:b,c%d.log", 12, "FlatView leak", "line1\r\nline2 50%")
    assert (
        line == "::error file=a%3Ab%2Cc%25d.log,line=12,title=FlatView leak::line1%0D%0Aline2 50%25"
    )
    records = [_record(HOSTILE, leaked=2), _record("broken.log", error="empty\nfile")]
    commands = github_annotations(
        [row_of(r) for r in records],
        _judge(records),
        {r["artifact"]: r.get("leaked_views", []) for r in records},
    )
    assert len(commands) == 3
    assert all(c.startswith("::error file=") and "\n" not in c and "\r" not in c for c in commands)
    # The hostile name's "::" cannot end the properties early.
    assert all(c.count("::") == 2 for c in commands)
    assert ",line=40," in commands[0] and ",line=41," in commands[1]
    assert "\x00" not in commands[0] and "\x1b" not in commands[0]
    assert commands[2] == "::error file=broken.log,title=unreadable trace::empty%0Afile"


def test_fleet_page_escapes_names_and_links_only_chosen_files() -> None:
    records = [_record(HOSTILE, leaked=1), _record("x.log", error="<b>bad</b>")]
    page = fleet_page(
        [row_of(r) for r in records],
        pl.DataFrame({"artifact": ["a"], "grace_ms_median": [1.0], "grace_ms_max": [2.0]}),
        "artifacts/plotly.min.js",
    )
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<b>bad</b>" not in page and "&lt;b&gt;bad&lt;/b&gt;" in page
    assert 'href="artifacts/00001-x.html"' in page
    assert '<script src="artifacts/plotly.min.js"></script>' in page
    assert 'data-status="findings"' in page and 'data-status="unreadable"' in page


def test_totals_sum_readable_artifacts() -> None:
    records = [_record("a", leaked=1), _record("b", orphan=2), _record("c", error="bad")]
    totals = totals_of(records)
    assert totals["artifacts"] == 3 and totals["unreadable"] == 1 and totals["readable"] == 2
    assert totals["with_findings"] == 2 and totals["clean"] == 0 and totals["leaks"] == 1
    assert totals["events"] == {"flatview_new": 20, "flatview_destroy": 16}
    assert totals["roots"] == {"distinct": 6, "max_concurrent_views": 2}
    assert totals["anomalies"]["orphan_destroy_rcu"] == 2
