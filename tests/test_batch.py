"""`qtrace batch` end to end on a mixed directory of real traces, copies, archives and junk."""

from __future__ import annotations

import gzip
import json
import lzma
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import zstandard

from qtrace.batch import BatchResult, run_batch

LOG = "qemu10-pc-bridges-ts.log"
SIMPLE = "pc-boot.simpletrace"
MIXED = "pc-bridges-mixed.simpletrace"  # FlatView events among many others, 4 MB
ROOT = Path(__file__).resolve().parents[1]


def _sample_files() -> list[Path]:
    # The bundled real traces (not the README or the script that made them).
    return sorted(p for p in (ROOT / "samples").glob("*.log") if p.is_file())


def _make_mixed(target: Path, shared: Path) -> dict[str, str]:
    """The mixed CI directory; returns artifact name -> the original it holds (or a reason)."""
    target.mkdir()
    log, simple = (shared / LOG).read_bytes(), (shared / SIMPLE).read_bytes()
    expected: dict[str, str] = {}

    def put(rel: str, data: bytes, original: str) -> None:
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[str(path)] = original

    put("real/" + LOG, log, LOG)
    put("real/" + SIMPLE, simple, SIMPLE)
    put("real/" + MIXED, (shared / MIXED).read_bytes(), MIXED)
    for sample in _sample_files():
        put("samples/" + sample.name, sample.read_bytes(), "sample")
    put("compressed/boot.simpletrace.gz", gzip.compress(simple), SIMPLE)
    put("compressed/bridges.log.zst", zstandard.ZstdCompressor().compress(log), LOG)
    put("compressed/bridges.log.xz", lzma.compress(log), LOG)
    tar_path = target / "archives" / "ci.tar.gz"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w:gz") as archive:
        archive.add(shared / LOG, "job-1/" + LOG)
        archive.add(shared / SIMPLE, "job-2/trace.simpletrace")
    expected[f"{tar_path}!job-1/{LOG}"] = LOG
    expected[f"{tar_path}!job-2/trace.simpletrace"] = SIMPLE
    zip_path = target / "archives" / "ci.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(shared / LOG, "bridges/" + LOG)
        archive.writestr("../../outside.simpletrace.gz", gzip.compress(simple))
    expected[f"{zip_path}!bridges/{LOG}"] = LOG
    expected[f"{zip_path}!../../outside.simpletrace.gz"] = SIMPLE
    put("junk/empty.log", b"", "unreadable")
    put("junk/corrupt.log.gz", b"\x1f\x8b\x08\x00" + b"\xde\xad\xbe\xef" * 64, "unreadable")
    return expected


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, shared_traces: Path) -> dict[str, str]:
    return _make_mixed(tmp_path_factory.mktemp("ci") / "artifacts", shared_traces)


@pytest.fixture(scope="module")
def batch(mixed: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> BatchResult:
    inputs = sorted({str(Path(name.split("!")[0]).parents[0]) for name in mixed})
    out = tmp_path_factory.mktemp("out") / "report"
    return run_batch(inputs, out, jobs=2, progress=False)


def _summary(result: BatchResult) -> dict[str, Any]:
    return json.loads((result.out_dir / "summary.json").read_text())


def _by_name(result: BatchResult) -> dict[str, dict[str, Any]]:
    return {r["artifact"]: r for r in _summary(result)["artifacts"]}


def test_every_artifact_has_a_record_and_broken_ones_do_not_stop_the_batch(
    batch: BatchResult, mixed: dict[str, str]
) -> None:
    summary = _summary(batch)
    assert summary["schema"] == "qtrace.batch/1"
    records = _by_name(batch)
    assert set(records) == set(mixed)
    for name, original in mixed.items():
        record = records[name]
        if original == "unreadable":
            assert record["error"], name
            continue
        assert record["error"] is None, (name, record["error"])
        assert {"source", "events", "views", "roots", "anomalies"} <= set(record)
        assert "items" not in record["roots"]
    assert "empty" in records[str(next(n for n in mixed if n.endswith("empty.log")))]["error"]


def test_copies_and_members_give_the_same_analysis_as_the_originals(
    batch: BatchResult, mixed: dict[str, str]
) -> None:
    records = _by_name(batch)
    reference = {
        original: records[name]
        for name, original in mixed.items()
        if name.endswith(f"real/{original}")
    }
    assert set(reference) == {LOG, SIMPLE, MIXED}
    for name, original in mixed.items():
        if original in reference:
            for key in ("events", "views", "roots", "anomalies"):
                assert records[name][key] == reference[original][key], (name, key)
    # The member named ../../ was read in place: nothing appeared beside the inputs.
    top = Path(next(iter(mixed)).split("!")[0]).parents[1]
    assert not (top.parent / "outside.simpletrace.gz").exists()


def test_totals_sum_the_artifacts(batch: BatchResult) -> None:
    summary = _summary(batch)
    readable = [r for r in summary["artifacts"] if r["error"] is None]
    totals = summary["totals"]
    assert totals["artifacts"] == len(summary["artifacts"])
    assert totals["readable"] == len(readable) and totals["unreadable"] == 2
    assert totals["views"]["instances"] == sum(r["views"]["instances"] for r in readable)
    assert totals["roots"]["max_concurrent_views"] == max(
        r["roots"]["max_concurrent_views"] for r in readable
    )


def test_parquet_tables_read_back_with_an_artifact_column(batch: BatchResult) -> None:
    records = _by_name(batch)
    views = pl.read_parquet(batch.out_dir / "views.parquet")
    roots = pl.read_parquet(batch.out_dir / "roots.parquet")
    assert views.columns[0] == "artifact" and roots.columns[0] == "artifact"
    per_view = dict(views.group_by("artifact").len().iter_rows())
    per_root = dict(roots.group_by("artifact").len().iter_rows())
    for name, record in records.items():
        if record["error"] is None:
            assert per_view.get(name, 0) == record["views"]["instances"], name
            assert per_root.get(name, 0) == record["roots"]["distinct"], name
    assert not set(per_view) - set(records)
    # Views name the artifact's own file, never a scratch copy.
    assert not views.filter(pl.col("source").str.contains("qtrace-task-")).height


def test_junit_xml_parses_back(batch: BatchResult) -> None:
    root = ET.parse(batch.out_dir / "junit.xml").getroot()
    records = _by_name(batch)
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == set(records)
    for name, suite in suites.items():
        cases = {c.get("name"): c for c in suite.iter("testcase")}
        assert "readable" in cases
        failed_readable = cases["readable"].find("failure") is not None
        assert failed_readable == (records[name]["error"] is not None)
    assert int(root.get("tests", 0)) == sum(int(s.get("tests", 0)) for s in suites.values())


def test_fleet_page_links_every_dashboard_and_one_plotly(batch: BatchResult) -> None:
    page = (batch.out_dir / "index.html").read_text()
    records = _by_name(batch)
    for record in records.values():
        if record["error"] is None:
            page_path = batch.out_dir / record["dashboard"]
            assert page_path.is_file() and f'href="{record["dashboard"]}"' in page
            assert page_path.parent == batch.out_dir / "artifacts"
    assert [p.name for p in batch.out_dir.rglob("plotly*.js")] == ["plotly.min.js"]
    assert '<script src="artifacts/plotly.min.js"></script>' in page
    written = {p.relative_to(batch.out_dir).as_posix() for p in batch.out_dir.rglob("*")}
    fixed = {"summary.json", "views.parquet", "roots.parquet", "index.html", "junit.xml"}
    fixed |= {"gl-code-quality-report.json"}
    assert fixed | {"summary.md", "artifacts", "artifacts/plotly.min.js"} <= written
    pages = written - fixed - {"summary.md", "artifacts", "artifacts/plotly.min.js"}
    assert all(p.startswith("artifacts/") and p.endswith(".html") for p in pages)
    assert len(pages) == sum(r["error"] is None for r in records.values())


def test_exit_code_three_when_only_unreadable_inputs_fail(
    batch: BatchResult, tmp_path: Path
) -> None:
    findings = {c.name for v in batch.verdicts for c in v.failed} - {"readable"}
    assert batch.exit_code == (1 if findings else 3)
    out = tmp_path / "only-broken"
    junk = [n for n in (batch.out_dir.parent.parent).rglob("*") if n.name == "empty.log"]
    assert run_batch([str(junk[0])], out, jobs=1).exit_code == 3
    assert run_batch([str(junk[0])], out, jobs=1, fail_on={"leaked"}).exit_code == 0


def test_baseline_of_the_same_run_passes_and_says_nothing_changed(
    batch: BatchResult, mixed: dict[str, str], tmp_path: Path
) -> None:
    inputs = sorted({str(Path(name.split("!")[0]).parents[0]) for name in mixed})
    again = run_batch(
        inputs,
        tmp_path / "again",
        jobs=1,
        baseline=batch.out_dir / "summary.json",
        dashboards=False,
    )
    assert again.exit_code == 0
    assert all(not v.worse and not v.improved for v in again.verdicts)


def test_input_limit_fails_one_artifact_and_the_rest_go_on(
    shared_traces: Path, tmp_path: Path
) -> None:
    result = run_batch(
        [str(shared_traces / LOG), str(shared_traces / SIMPLE)],
        tmp_path / "out",
        jobs=1,
        max_input_bytes=180_000,  # the log is 153 KB, the simple trace 206 KB
        dashboards=False,
    )
    records = _by_name(result)
    assert records[str(shared_traces / LOG)]["error"] is None
    error = records[str(shared_traces / SIMPLE)]["error"]
    assert "--max-input-bytes" in error and "206198 bytes" in error


def test_group_by_joins_per_thread_files_into_one_run(shared_traces: Path, tmp_path: Path) -> None:
    lines = (shared_traces / LOG).read_text().splitlines(keepends=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.101").write_text("".join(lines[0::2]))
    (run / "log.102").write_text("".join(lines[1::2]))
    grouped = run_batch([str(run)], tmp_path / "g", jobs=1, group_by=r"\.\d+$", dashboards=False)
    whole = run_batch([str(shared_traces / LOG)], tmp_path / "w", jobs=1, dashboards=False)
    (record,) = _summary(grouped)["artifacts"]
    assert record["artifact"] == f"{run}/log"
    assert record["parts"] == [f"{run}/log.101", f"{run}/log.102"]
    reference = _summary(whole)["artifacts"][0]
    for key in ("events", "views", "anomalies"):
        assert record[key] == reference[key], key


def test_github_actions_annotations_and_step_summary(
    shared_traces: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    leaky = tmp_path / "leaky.log"
    # Root 0xa has a view that stays live after a newer view of the same root: a leak.
    leaky.write_text(
        "flatview_new 0x100 (root (nil))\n"
        "flatview_new 0x200 (root 0xa)\n"
        "flatview_new 0x300 (root 0xa)\n"
        "flatview_new 0x400 (root 0xa)\n"
        "flatview_destroy_rcu 0x300 (root 0xa)\n"
        "flatview_destroy 0x300 (root 0xa)\n"
    )
    step_summary = tmp_path / "step.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = run_batch([str(leaky)], tmp_path / "out", jobs=1, dashboards=False)
    out = capsys.readouterr().out
    assert result.exit_code == 1
    assert f"::error file={leaky},line=2,title=FlatView leak::view 0x200" in out
    markdown = step_summary.read_text()
    assert markdown.startswith(
        "earlier step\n### qtrace batch failed: 1 artifacts, 1 with findings"
    )
    assert markdown.endswith((result.out_dir / "summary.md").read_text())


def test_local_engine_never_imports_dask(shared_traces: Path, tmp_path: Path) -> None:
    code = (
        "import sys\nfrom pathlib import Path\nfrom qtrace.batch import run_batch\n"
        f"r = run_batch([{str(shared_traces / LOG)!r}], Path({str(tmp_path / 'o')!r}), jobs=2,"
        " dashboards=False)\n"
        "assert r.records[0]['error'] is None, r.records\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_nothing_to_read_is_an_input_error(tmp_path: Path) -> None:
    from qtrace.errors import InputError, UsageError

    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(InputError, match="no files found"):
        run_batch([str(tmp_path / "empty-dir")], tmp_path / "out", jobs=1)
    with pytest.raises(UsageError, match="--scheduler"):
        run_batch([str(tmp_path)], tmp_path / "out", engine="dask")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UsageError, match="cannot create it"):
        run_batch([str(tmp_path)], tmp_path / "a-file", jobs=1)
    with pytest.raises(UsageError, match="unknown engine"):
        run_batch([str(tmp_path)], tmp_path / "out", engine="spark")
