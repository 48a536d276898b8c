"""``run_batch``: discover artifacts, analyze them in parallel, write every output, judge.

Output files all have names qtrace chose: the fixed names below and, per artifact,
``artifacts/NNNNN-<sanitised name>.html``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from qtrace.batch import gating, gitlab, outputs
from qtrace.batch.artifact import DEFAULT_MAX_INPUT_BYTES, Artifact
from qtrace.batch.discover import discover
from qtrace.batch.engines import ENGINES, run_dask, run_local
from qtrace.batch.summary import SCHEMA, Row, row_of, totals_of
from qtrace.batch.task import Outcome, TaskOptions
from qtrace.dashboards.fleet_page import write_fleet_page
from qtrace.dashboards.page import plotly_js
from qtrace.errors import InputError, UsageError
from qtrace.findings import LEAKED, FailPolicy

SUMMARY_JSON = "summary.json"
VIEWS_PARQUET = "views.parquet"
ROOTS_PARQUET = "roots.parquet"
INDEX_HTML = "index.html"
JUNIT_XML = "junit.xml"
SUMMARY_MD = "summary.md"
DASHBOARD_DIR = "artifacts"
PLOTLY_JS = "plotly.min.js"


@dataclass
class BatchResult:
    """What a batch found, where it wrote it, and the exit code the CLI returns."""

    out_dir: Path
    records: list[dict[str, Any]]
    totals: dict[str, Any]
    verdicts: list[gating.Verdict]
    exit_code: int
    annotations: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[Row]:
        return [row_of(record) for record in self.records]


def _record(outcome: Outcome, dashboard_prefix: str) -> dict[str, Any]:
    record: dict[str, Any] = {"artifact": outcome.name, "error": outcome.error}
    record["parts"] = outcome.parts
    record.update(outcome.record)
    if outcome.error is None:
        record["leaks"] = outcome.findings.get(LEAKED, 0)
        record["leaked_views"] = outcome.leaks
        record["findings"] = outcome.findings
    record["warnings"] = outcome.warnings
    record["dashboard"] = f"{dashboard_prefix}/{outcome.dashboard}" if outcome.dashboard else None
    record["seconds"] = round(outcome.seconds, 6)
    return record


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr when it is a terminal; otherwise nothing at all."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("analyzing artifacts", total=total)
        yield lambda: progress.advance(task)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if not frames:
        return pl.DataFrame({"artifact": pl.Series([], dtype=pl.String)})
    return pl.concat(frames, how="diagonal_relaxed")


def _grace_per_artifact(views: pl.DataFrame) -> pl.DataFrame:
    if "grace_ns" not in views.columns:
        return pl.DataFrame(schema={"artifact": pl.String, "grace_ms_median": pl.Float64})
    return (
        views.group_by("artifact")
        .agg(
            (pl.col("grace_ns").median() / 1e6).alias("grace_ms_median"),
            (pl.col("grace_ns").max() / 1e6).alias("grace_ms_max"),
        )
        .sort("artifact")
    )


def _write_plotly_js(directory: Path) -> None:
    """The one plotly.min.js every page of the batch loads (written before any page)."""
    (directory / PLOTLY_JS).write_text(plotly_js(), encoding="utf-8")


def run_batch(
    inputs: list[str],
    out_dir: Path,
    *,
    jobs: int | None = None,
    fail_on: str | list[str] | None = None,
    baseline: Path | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    group_by: str | None = None,
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    progress: bool = True,
    dashboards: bool = True,
    names_files: tuple[str, ...] = (),
) -> BatchResult:
    """Analyze every artifact the inputs name and write the batch outputs to ``out_dir``.

    Parameters
    ----------
    inputs
        Files, directories (recursive), globs; tar and zip archives count member by member.
    out_dir
        Created if missing. Gets summary.json, views.parquet, roots.parquet, index.html,
        junit.xml, summary.md, gl-code-quality-report.json and artifacts/ (one dashboard per
        artifact).
    jobs
        Worker processes (default: the machine's cores); 1 runs in this process.
    fail_on
        ``--fail-on`` words (``qtrace.findings.FailPolicy``: ``leaked``, an anomaly kind,
        ``anomalies``, ``unreadable``, ``any``, ``none``); default
        ``leaked,anomalies,unreadable``, as ``qtrace analyze``.
    baseline
        A previous summary.json: fail only on what got worse than it.
    engine, scheduler
        ``"local"`` or ``"dask"`` with the address of a Dask distributed scheduler.
    group_by
        Regex joining several files into one run (see ``qtrace.batch.discover.group_key``).
    max_input_bytes
        Per-artifact limit on bytes read after decompression (default 2 GiB).
    progress
        Show a progress bar on stderr when it is a terminal.
    dashboards
        Write one dashboard page per artifact.
    names_files
        Names files applied to every artifact; a ``.names`` file beside a trace (as
        ``qtrace record`` leaves it) is applied to that trace.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> result = run_batch(["samples/pc-boot-ts.log"], out, jobs=1, dashboards=False)
    >>> result.exit_code, result.totals["clean"], (out / "junit.xml").is_file()
    (0, 1, True)
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r} (choose {', '.join(ENGINES)})")
    if engine == "dask" and not scheduler:
        raise UsageError("--engine dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    if max_input_bytes <= 0:
        raise UsageError("--max-input-bytes must be positive")
    policy = FailPolicy.parse(fail_on)
    baseline_records = gating.load_baseline(baseline) if baseline is not None else {}
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: cannot create it ({exc.strerror or exc})") from None
    # Dask workers elsewhere see --out (a shared filesystem), not this machine's /tmp.
    work_dir = Path(
        tempfile.mkdtemp(prefix=".qtrace-work-", dir=out_dir if engine == "dask" else None)
    )
    try:
        return _run(
            inputs,
            out_dir,
            work_dir,
            jobs=jobs,
            engine=engine,
            scheduler=scheduler,
            group_by=group_by,
            limit_bytes=max_input_bytes,
            progress=progress,
            dashboards=dashboards,
            policy=policy,
            baseline_records=baseline_records,
            has_baseline=baseline is not None,
            names_files=names_files,
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run(
    inputs: list[str],
    out_dir: Path,
    work_dir: Path,
    *,
    jobs: int,
    engine: str,
    scheduler: str | None,
    group_by: str | None,
    limit_bytes: int,
    progress: bool,
    dashboards: bool,
    policy: FailPolicy,
    baseline_records: dict[str, dict[str, Any]],
    has_baseline: bool,
    names_files: tuple[str, ...],
) -> BatchResult:
    spill_dir = work_dir / "members"
    spill_dir.mkdir()
    found = discover(
        inputs, spill_dir, limit_bytes=limit_bytes, group_by=group_by, skip_dir=out_dir
    )
    if not found.artifacts and not found.unreadable:
        raise InputError("no files found in the inputs")
    dashboard_dir = out_dir / DASHBOARD_DIR
    dashboard_dir.mkdir(exist_ok=True)
    _write_plotly_js(dashboard_dir)
    options = TaskOptions(
        limit_bytes=limit_bytes,
        dashboard_dir=str(dashboard_dir) if dashboards else None,
        scratch_dir=str(work_dir),
        policy=policy,
        names_files=names_files,
    )
    work: list[tuple[int, Artifact]] = list(enumerate(found.artifacts))
    outcomes: list[Outcome] = []
    with _progress(len(work), progress) as advance:

        def on_done(outcome: Outcome) -> None:
            outcomes.append(outcome)
            advance()

        if engine == "dask":
            assert scheduler is not None
            run_dask(work, options, scheduler, on_done)
        else:
            run_local(work, options, min(jobs, max(1, len(work))), on_done)
    base = len(work)
    outcomes += [
        Outcome(base + i, bad.name, [bad.name], error=bad.error)
        for i, bad in enumerate(found.unreadable)
    ]
    outcomes.sort(key=lambda o: o.name)
    records = [_record(outcome, DASHBOARD_DIR) for outcome in outcomes]
    verdicts = [
        gating.judge(
            record, policy, baseline_records.get(record["artifact"]) if has_baseline else None
        )
        for record in records
    ]
    code = gating.batch_exit_code(verdicts)
    totals = totals_of(records)
    document = {"schema": SCHEMA, "artifacts": records, "totals": totals}
    (out_dir / SUMMARY_JSON).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    views = _concat([o.views for o in outcomes if o.views is not None])
    roots = _concat([o.roots for o in outcomes if o.roots is not None])
    roots.write_parquet(out_dir / ROOTS_PARQUET)
    views.write_parquet(out_dir / VIEWS_PARQUET)
    rows = [row_of(record) for record in records]
    leaks = {str(r["artifact"]): list(r.get("leaked_views", [])) for r in records}
    write_fleet_page(
        out_dir / INDEX_HTML,
        rows,
        _grace_per_artifact(views),
        f"{DASHBOARD_DIR}/{PLOTLY_JS}",
        roots=roots,
    )
    (out_dir / JUNIT_XML).write_bytes(outputs.junit_xml(rows, verdicts, leaks))
    markdown = outputs.summary_markdown(rows, verdicts, code)
    (out_dir / SUMMARY_MD).write_text(markdown, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(markdown)
    commands: list[str] = []
    if os.environ.get("GITHUB_ACTIONS") == "true":
        commands = outputs.github_annotations(rows, verdicts, leaks)
        for command in commands:
            print(command, flush=True)
    in_gitlab = os.environ.get(gitlab.GITLAB_CI) == "true"
    gitlab.write_gitlab_outputs(out_dir, outcomes, verdicts, in_gitlab_ci=in_gitlab)
    return BatchResult(out_dir, records, totals, verdicts, code, commands)
