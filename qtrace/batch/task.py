"""One batch task: read one artifact, analyze it, and hand back what the batch outputs need.

Runs in a worker process (or a Dask worker); everything it returns pickles. An artifact that
cannot be read ends as an outcome with ``error`` set: a task never raises for bad input.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from qtrace.batch.archive import is_archive_bytes, read_zip_member
from qtrace.batch.artifact import ARCHIVE_SEPARATOR, Artifact, Part, file_stem
from qtrace.batch.limits import LimitExceeded, decompress_limited, head_bytes
from qtrace.dashboards import write_dashboard
from qtrace.errors import QtraceError
from qtrace.findings import DEFAULT_POLICY, FailPolicy, Findings
from qtrace.ingest import read_trace
from qtrace.model import analyze
from qtrace.names import Names, merge_names, names_beside, read_names
from qtrace.parsers.source import sniff_compression
from qtrace.report import to_json

# The analyze-document keys a batch record keeps (``roots`` without its per-root items).
RECORD_KEYS = ("source", "events", "views", "roots", "anomalies", "durations", "verdict")


@dataclass(frozen=True)
class TaskOptions:
    """What every task of one batch shares."""

    limit_bytes: int
    dashboard_dir: str | None  # write each artifact's dashboard here; None: no dashboards
    scratch_dir: str | None = None  # where decoded copies go (None: the system temp dir)
    policy: FailPolicy = DEFAULT_POLICY  # the batch's --fail-on, for each record's verdict
    names_files: tuple[str, ...] = ()  # --names: names files applied to every artifact


@dataclass
class Outcome:
    """What one artifact gave: its summary record, its tables, or why it could not be read."""

    index: int
    name: str
    parts: list[str]
    error: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)  # check -> count (qtrace.findings)
    leaks: list[dict[str, Any]] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)  # the report's anomaly_items
    warnings: list[str] = field(default_factory=list)
    views: pl.DataFrame | None = None
    roots: pl.DataFrame | None = None
    dashboard: str | None = None  # file name inside the dashboard directory
    seconds: float = 0.0


def _plain_copy(part: Part, scratch: Path, limit_bytes: int, warnings: list[str]) -> Path:
    """A local file with the part's decoded bytes, never more than ``limit_bytes`` of them."""
    source = Path(part.path)
    if part.zip_index is not None:
        member = scratch / f"member-{len(list(scratch.iterdir())):04d}"
        with member.open("wb") as out:
            read_zip_member(source, part.zip_index, out, limit_bytes)
        source = member
    if source.stat().st_size > limit_bytes:
        raise LimitExceeded(
            f"is {source.stat().st_size} bytes, over the per-artifact input limit of "
            f"{limit_bytes} bytes (--max-input-bytes); not read"
        )
    with source.open("rb") as fh:
        kind = sniff_compression(fh.read(8))
    if kind is not None:
        plain = scratch / f"plain-{len(list(scratch.iterdir())):04d}"
        with plain.open("wb") as out:
            warning = decompress_limited(kind, source, out, limit_bytes)
        if warning:
            warnings.append(f"{part.name}: {warning}")
        source = plain
    if is_archive_bytes(head_bytes(source, 512)):
        raise QtraceError("is an archive inside an archive or a compressed archive: not opened")
    return source


@contextlib.contextmanager
def _scratch(options: TaskOptions) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="qtrace-task-", dir=options.scratch_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _rename(text: str, names: dict[str, str]) -> str:
    for local, shown in names.items():
        text = text.replace(local, shown)
    return text


def _shown_source(source: str, names: dict[str, str]) -> str:
    for local, shown in names.items():
        if source == local or source.startswith(local + ARCHIVE_SEPARATOR):
            return shown + source[len(local) :]
    return source


def _record(document: dict[str, Any]) -> dict[str, Any]:
    record = {key: document[key] for key in RECORD_KEYS if key in document}
    if isinstance(record.get("roots"), dict):
        record["roots"] = {k: v for k, v in record["roots"].items() if k != "items"}
    return record


def artifact_names(artifact: Artifact, options: TaskOptions, warnings: list[str]) -> Names | None:
    """The --names files and the names file beside each part of the artifact (``trace.names``
    beside ``trace.log``, as ``qtrace record`` leaves them); one that does not read is a
    warning, not a lost artifact."""
    paths = list(options.names_files)
    paths += [
        str(p)
        for part in artifact.parts
        if part.zip_index is None
        if (p := names_beside(part.path)) is not None
    ]
    found = []
    for path in paths:
        try:
            found.append(read_names(path))
        except QtraceError as exc:
            warnings.append(f"names not used: {exc}")
    return merge_names(found) if found else None


def run_task(index: int, artifact: Artifact, options: TaskOptions) -> Outcome:
    """Read, analyze and report one artifact; failures become ``Outcome.error``."""
    started = time.perf_counter()
    outcome = Outcome(index, artifact.name, [part.name for part in artifact.parts])
    try:
        with _scratch(options) as scratch:
            _analyze_into(outcome, artifact, options, scratch)
    except LimitExceeded as exc:
        outcome.error = str(exc)
    except QtraceError as exc:
        outcome.error = str(exc)
    except Exception as exc:
        # A parser bug on hostile bytes must cost one artifact, not the batch: keep the type.
        outcome.error = f"could not be analyzed ({type(exc).__name__}: {exc})"
    if outcome.error is not None:
        outcome.record, outcome.views, outcome.roots, outcome.dashboard = {}, None, None, None
    outcome.seconds = time.perf_counter() - started
    return outcome


def _analyze_into(
    outcome: Outcome, artifact: Artifact, options: TaskOptions, scratch: Path
) -> None:
    local_names: dict[str, str] = {}
    paths: list[str] = []
    for part in artifact.parts:
        try:
            local = _plain_copy(part, scratch, options.limit_bytes, outcome.warnings)
        except (LimitExceeded, QtraceError) as exc:
            raise type(exc)(f"{part.name}: {exc}") from None
        local_names[str(local)] = part.name
        paths.append(str(local))
    try:
        trace = read_trace(paths)
    except QtraceError as exc:
        raise QtraceError(_rename(str(exc), local_names)) from None
    # Reports, tables and annotations must name the artifact, never a scratch copy (nor in
    # ``copy!member`` sources, as a testlog's tests are named).
    sources = trace.events["source"].drop_nulls().unique().cast(pl.String).to_list()
    shown = {source: _shown_source(source, local_names) for source in sources}
    trace.events = trace.events.with_columns(pl.col("source").replace(shown))
    trace.paths = [local_names.get(p, p) for p in trace.paths]
    outcome.warnings.extend(_rename(w, local_names) for w in trace.warnings)
    trace.warnings = outcome.warnings
    analysis = analyze(trace, names=artifact_names(artifact, options, outcome.warnings))
    found = Findings.of(analysis, options.policy)
    document = to_json(analysis, found)
    outcome.record = _record(document)
    # "leaks" also lists lost instances; the leak check and its annotations are the leaked.
    outcome.leaks = [leak for leak in document.get("leaks", []) if leak.get("status") == "leaked"]
    outcome.anomalies = list(document.get("anomaly_items", []))
    span = trace.events.select(pl.col("ts_ns").max() - pl.col("ts_ns").min()).item()
    outcome.record["duration_ns"] = None if span is None else int(span)
    outcome.findings = dict(found.checks)
    artifact_col = pl.lit(artifact.name, pl.String).alias("artifact")
    outcome.views = analysis.views.select(artifact_col, pl.all())
    outcome.roots = analysis.roots.select(artifact_col, pl.all())
    if options.dashboard_dir is not None:
        page = f"{file_stem(outcome.index, artifact.name)}.html"
        try:
            write_dashboard(
                analysis, Path(options.dashboard_dir) / page, plotlyjs="directory", findings=found
            )
        except Exception as exc:
            # The analysis stands without its page: a drawing failure is no unreadable input.
            outcome.warnings.append(f"dashboard not written ({type(exc).__name__}: {exc})")
        else:
            outcome.dashboard = page
