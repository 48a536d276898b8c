"""GitLab outputs: the Code Quality report's entries and fingerprints, and job-log sections."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import qtrace
from qtrace.batch import run_batch
from qtrace.batch.gating import Verdict
from qtrace.batch.gitlab import (
    CODE_QUALITY_JSON,
    ArtifactFindings,
    code_quality,
    job_log_sections,
)

POINTER = re.compile(r"0x[0-9a-f]+")
SECTION = re.compile(
    r"^\x1b\[0Ksection_(start|end):[0-9]+:([A-Za-z0-9_.-]+)(\[collapsed=true\])?\r\x1b\[0K"
)


def _leaky_boot(samples: Path, views: int = 2) -> list[str]:
    """The real pc boot with the destroys of the first ``views`` freed views of one root cut:
    those views stay live after newer views of their root, as a held reference would do."""
    lines = (samples / "pc-boot-ts.log").read_text().splitlines()
    analysis = qtrace.analyze(qtrace.read_trace(samples / "pc-boot-ts.log"))
    freed = analysis.views.filter(pl.col("status") == "freed")
    root = freed["root"][0]
    cut = {f"{v:#x}" for v in freed.filter(pl.col("root") == root)["view"].head(views)}
    kept = []
    for line in lines:
        words = line.split(":", 1)[1].split()
        if words[0] != "flatview_new" and words[1] in cut:
            continue
        kept.append(line)
    return kept


def _rerun(lines: list[str], shift: int) -> list[str]:
    """The same run as a re-run would print it: other pointers (ASLR), other thread ids and
    times, and a line of other output first, so every line number moves too."""

    def moved(match: re.Match[str]) -> str:
        return f"{int(match.group(0), 16) + shift:#x}"

    out = ["qemu-system-x86_64: warning: host doesn't support requested feature"]
    for line in lines:
        head, body = line.split(":", 1)
        tid, stamp = head.split("@")
        out.append(f"{int(tid) + 7}@{float(stamp) + 3600:.6f}:{POINTER.sub(moved, body)}")
    return out


def _report(tmp_path: Path, files: dict[str, list[str]], name: str) -> list[dict[str, Any]]:
    """The Code Quality entries of a batch over ``files``, laid out where a CI job would lay
    each pipeline's artifacts: the same directory every time."""
    base = tmp_path / "artifacts"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    for file, lines in files.items():
        (base / file).parent.mkdir(parents=True, exist_ok=True)
        (base / file).write_text("\n".join(lines) + "\n")
    result = run_batch([str(base)], tmp_path / f"{name}-out", jobs=1, dashboards=False)
    document: list[dict[str, Any]] = json.loads(
        (result.out_dir / CODE_QUALITY_JSON).read_text(encoding="utf-8")
    )
    return document


def test_entries_of_a_real_trace_with_leaks(samples: Path, tmp_path: Path) -> None:
    leaky = _leaky_boot(samples)
    report = _report(tmp_path, {"ci/boot.log": leaky}, "a")
    leaks = [e for e in report if e["check_name"] == "qtrace/leaked"]
    assert len(leaks) == 2
    for entry in leaks:
        assert set(entry) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert entry["severity"] == "major"
        path, line = entry["location"]["path"], entry["location"]["lines"]["begin"]
        assert path.endswith("ci/boot.log")
        # The location is the trace line that built the leaked view.
        view = re.search(r"FlatView (0x[0-9a-f]+)", entry["description"])
        assert view is not None
        assert leaky[line - 1].split(":", 1)[1].startswith(f"flatview_new {view.group(1)} ")
    assert len({e["fingerprint"] for e in report}) == len(report)


def test_fingerprints_survive_a_rerun_but_not_another_finding(
    samples: Path, tmp_path: Path
) -> None:
    leaky = _leaky_boot(samples, views=3)
    first = _report(tmp_path, {"boot.log": leaky}, "first")
    again = _report(tmp_path, {"boot.log": leaky}, "again")
    rerun = _report(tmp_path, {"boot.log": _rerun(leaky, 0x1_0000_0000)}, "rerun")
    assert len(first) == 3
    assert [e["fingerprint"] for e in again] == [e["fingerprint"] for e in first]
    assert [e["fingerprint"] for e in rerun] == [e["fingerprint"] for e in first]
    # Same findings, other pointers and lines: only the text and location moved.
    assert [e["location"]["lines"]["begin"] for e in rerun] == [
        e["location"]["lines"]["begin"] + 1 for e in first
    ]
    assert rerun[0]["description"] != first[0]["description"]
    # Another artifact, or one leak fewer on the root, is another finding.
    other = _report(tmp_path, {"other.log": leaky}, "other")
    assert not {e["fingerprint"] for e in other} & {e["fingerprint"] for e in first}
    fewer = _report(tmp_path, {"boot.log": _leaky_boot(samples, views=2)}, "fewer")
    assert {e["fingerprint"] for e in fewer} < {e["fingerprint"] for e in first}


def test_simple_trace_names_drop_their_pid() -> None:
    leak = {"run": 0, "view": "0x20", "root": "0xa", "source": "x", "line": 3}
    a = code_quality([ArtifactFindings("ci/trace-4242", leaks=[leak])])
    b = code_quality([ArtifactFindings("ci/trace-4250", leaks=[leak])])
    c = code_quality([ArtifactFindings("ci/trace-4250.log", leaks=[leak])])
    assert a[0]["fingerprint"] == b[0]["fingerprint"] != c[0]["fingerprint"]


def test_anomalies_unreadable_and_uncertain_findings() -> None:
    found = ArtifactFindings(
        "run.log",
        anomalies=[
            {"run": 0, "kind": "root_finalized_while_pinned", "root": "0xa", "seq": 8, "line": 9},
            {"run": 0, "kind": "orphan_destroy", "root": "0xb", "seq": 3, "line": 4},
            {"run": 0, "kind": "orphan_destroy", "root": "0xb", "seq": 6, "uncertain": True},
            {"run": 1, "kind": "null_root", "root": "0x0", "seq": 9, "offset": 480},
        ],
        root_keys={(0, 0xA): "rank:0", (0, 0xB): "rank:1"},
    )
    broken = ArtifactFindings("bad.log", error="no QEMU trace lines found")
    entries = code_quality([found, broken])
    by_check = [(e["check_name"], e["severity"]) for e in entries]
    assert by_check == [
        ("qtrace/unreadable", "major"),
        ("qtrace/orphan_destroy", "minor"),
        ("qtrace/orphan_destroy", "info"),
        ("qtrace/root_finalized_while_pinned", "critical"),
        ("qtrace/null_root", "minor"),
    ]
    assert "uncertain" in entries[2]["description"]
    # A binary trace's finding has a byte offset, not a line: the entry says so.
    assert entries[-1]["location"]["lines"]["begin"] == 1
    assert "byte offset 480" in entries[-1]["description"]
    assert len({e["fingerprint"] for e in entries}) == len(entries)


def test_job_log_sections_are_well_formed_and_escaped() -> None:
    hostile = "ci/\x1b[2Jevil\r\nsection_end:1:x.log"
    found = [
        ArtifactFindings(
            hostile,
            leaks=[{"run": 0, "view": "0x2", "root": "0xa", "source": hostile, "line": 2}],
            warnings=["bytes that are not UTF-8\x1b]0;title\x07 were replaced"],
        ),
        ArtifactFindings("clean.log"),
    ]
    verdicts = [Verdict(hostile), Verdict("clean.log")]
    from qtrace.batch.gating import Check

    verdicts[0].checks.append(Check("leaked", 1, True, message="1 leaked view"))
    lines = job_log_sections(found, verdicts, now=lambda: 1_700_000_000.5)
    markers = [(i, SECTION.match(line)) for i, line in enumerate(lines)]
    opened = [(i, m) for i, m in markers if m and m.group(1) == "start"]
    closed = [(i, m) for i, m in markers if m and m.group(1) == "end"]
    assert len(opened) == len(closed) == 2
    assert [m.group(2) for _, m in opened] == [m.group(2) for _, m in closed]
    assert lines[closed[0][0]] == "\x1b[0Ksection_end:1700000000:qtrace_artifact_0\r\x1b[0K"
    # Failing artifacts open expanded, passing ones collapsed.
    assert [bool(m.group(3)) for _, m in opened] == [False, True]
    assert "failing: leaked" in lines[opened[0][0]]
    # Artifact text never carries an escape sequence or line break into the log.
    for i, line in enumerate(lines):
        body = SECTION.sub("", line)
        assert not re.search(r"[\x00-\x1f\x7f]", body), (i, line)


def test_batch_under_gitlab_ci(
    samples: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trace = tmp_path / "boot.log"
    trace.write_text("\n".join(_leaky_boot(samples, views=1)) + "\n")
    monkeypatch.delenv("GITLAB_CI", raising=False)
    run_batch([str(trace)], tmp_path / "plain", jobs=1, dashboards=False)
    assert "section_start" not in capsys.readouterr().out
    assert len(json.loads((tmp_path / "plain" / CODE_QUALITY_JSON).read_text())) == 1
    monkeypatch.setenv("GITLAB_CI", "true")
    result = run_batch([str(trace)], tmp_path / "ci", jobs=1, dashboards=False)
    out = capsys.readouterr().out
    assert result.exit_code == 1
    assert "\x1b[0Ksection_start:" in out and "qtrace_artifact_0\r\x1b[0K" in out
    assert f"qtrace: {trace}: 1 leaked views, 0 anomalies (failing: leaked)" in out


def test_testlog_findings_point_at_the_test(tmp_path: Path) -> None:
    leaky = (
        "flatview_new 0x100 (root (nil))\n"
        "flatview_new 0x200 (root 0xa)\n"
        "flatview_new 0x300 (root 0xa)\n"
    )
    tests = [
        {"name": "qtest-x86_64/clean", "result": "OK", "stdout": "", "stderr": "no trace\n"},
        {"name": "qtest-x86_64/leaky", "result": "OK", "stdout": "", "stderr": "x\n" + leaky},
    ]
    artifact = tmp_path / "testlog.json.gz"
    artifact.write_bytes(gzip.compress("".join(json.dumps(t) + "\n" for t in tests).encode()))
    result = run_batch([str(artifact)], tmp_path / "out", jobs=1, dashboards=False)
    (entry,) = json.loads((result.out_dir / CODE_QUALITY_JSON).read_text())
    # The test's name, not a scratch copy's; the line within that test's output.
    assert entry["location"] == {
        "path": f"{artifact}!qtest-x86_64/leaky",
        "lines": {"begin": 3},
    }
