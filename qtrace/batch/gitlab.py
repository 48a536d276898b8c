"""GitLab CI outputs: the Code Quality report and collapsible job-log sections.

``gl-code-quality-report.json`` (GitLab's Code Quality format, a subset of Code Climate's)
holds one entry per leaked view, per anomaly and per unreadable artifact. GitLab compares
the entries of a merge request's pipeline with its target's by ``fingerprint`` alone, and
shows only the first entry of a fingerprint, so a fingerprint must name one finding, and the
same finding in every run:

- never a pointer: ASLR moves them between runs of the same QEMU test;
- never a line number or a seq: another interleaving of the threads' lines moves them;
- instead: the artifact's name (QEMU's default simple-trace name ``trace-<pid>`` with the
  pid left out), the check, the run's index in the file, the root as its name when the
  roots table has one, else its rank among the run's roots by first appearance (QEMU builds
  its address spaces in a fixed order), and the finding's rank among the same check's
  findings on that root (the second leaked view of the third root). The same trace file read
  twice gives the same fingerprints; a re-run of the same test gives them too as long as its
  roots appear in the same order and it finds the same number of such findings per root.

Under ``GITLAB_CI`` each artifact's details (findings, warnings, why it could not be read)
go into a collapsible job-log section, collapsed when the artifact passed.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtrace.batch.gating import LEAKS, READABLE, Verdict
from qtrace.batch.task import Outcome

CODE_QUALITY_JSON = "gl-code-quality-report.json"
GITLAB_CI = "GITLAB_CI"
CHECK_PREFIX = "qtrace/"
# What each finding means for QEMU, as GitLab's five levels.
SEVERITIES = {
    LEAKS: "major",  # a reference is held somewhere: memory and the root stay pinned
    READABLE: "major",  # the artifact could not be judged at all
    "root_finalized_while_pinned": "critical",  # the pci-bridge use-after-free shape
    "new_while_live": "major",  # an instance vanished without its destroy events
    "reused_before_destroy": "major",
}
DEFAULT_SEVERITY = "minor"  # the other anomalies: events out of their lifecycle order
UNCERTAIN_SEVERITY = "info"  # the finding spans lost events: it may be an artifact of them
MAX_DETAIL_LINES = 20  # per artifact and kind, in a job-log section
# QEMU's simple backend names its file after the process id: a re-run gets another name.
_PID_FILE = re.compile(r"(^|/)trace-[0-9]+$")
_SECTION_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ArtifactFindings:
    """What one artifact contributes: its findings and how to name its roots stably."""

    artifact: str
    error: str | None = None
    leaks: list[dict[str, Any]] = field(default_factory=list)  # report.LEAK_FIELDS, leaked only
    anomalies: list[dict[str, Any]] = field(default_factory=list)  # report.ANOMALY_FIELDS
    # (run, root pointer) -> the root's stable key: its name, or its rank in the run.
    root_keys: dict[tuple[int, int], str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def findings_of(outcome: Outcome) -> ArtifactFindings:
    """The GitLab view of one batch outcome."""
    keys: dict[tuple[int, int], str] = {}
    if outcome.roots is not None and outcome.roots.height:
        roots = outcome.roots.sort("run", "first_seq", "root")
        rank: Counter[int] = Counter()
        has_name = "name" in roots.columns
        for row in roots.iter_rows(named=True):
            run = int(row["run"])
            name = row.get("name") if has_name else None
            keys[(run, int(row["root"]))] = f"name:{name}" if name else f"rank:{rank[run]}"
            rank[run] += 1
    return ArtifactFindings(
        artifact=outcome.name,
        error=outcome.error,
        leaks=list(outcome.leaks),
        anomalies=list(outcome.anomalies),
        root_keys=keys,
        warnings=list(outcome.warnings),
    )


def _pointer(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def _stable_artifact(name: str) -> str:
    return _PID_FILE.sub(r"\1trace-<pid>", name)


def _fingerprint(*parts: object) -> str:
    text = "\0".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


def _root_key(found: ArtifactFindings, item: dict[str, Any]) -> str:
    root = _pointer(item.get("root"))
    if root is None:
        return "no-root"
    if root == 0:
        return "nil"
    run = item.get("run")
    return found.root_keys.get((int(run) if isinstance(run, int) else -1, root), "unknown-root")


def _location(found: ArtifactFindings, item: dict[str, Any]) -> dict[str, Any]:
    line = item.get("line")
    # GitLab wants a line; a binary trace's finding sits at a byte offset (in the text).
    begin = line if isinstance(line, int) and line >= 1 else 1
    return {"path": str(item.get("source") or found.artifact), "lines": {"begin": begin}}


def _where(item: dict[str, Any]) -> str:
    if isinstance(item.get("line"), int):
        return f"line {item['line']}"
    if isinstance(item.get("offset"), int):
        return f"byte offset {item['offset']}"
    return "an unknown place"


def _entries_of(found: ArtifactFindings) -> Iterator[dict[str, Any]]:
    artifact = _stable_artifact(found.artifact)
    if found.error is not None:
        yield {
            "description": f"{found.artifact}: could not be read: {found.error}",
            "check_name": CHECK_PREFIX + "unreadable",
            "fingerprint": _fingerprint(artifact, READABLE),
            "severity": SEVERITIES[READABLE],
            "location": {"path": found.artifact, "lines": {"begin": 1}},
        }
        return
    ranks: Counter[tuple[str, object, str]] = Counter()

    def entry(check: str, item: dict[str, Any], description: str) -> dict[str, Any]:
        root_key = _root_key(found, item)
        group = (check, item.get("run"), root_key)
        rank = ranks[group]
        ranks[group] += 1
        severity = SEVERITIES.get(check, DEFAULT_SEVERITY)
        if item.get("uncertain"):
            severity = UNCERTAIN_SEVERITY
            description += " (uncertain: events were lost during its life)"
        return {
            "description": description,
            "check_name": CHECK_PREFIX + check,
            "fingerprint": _fingerprint(artifact, check, item.get("run"), root_key, rank),
            "severity": severity,
            "location": _location(found, item),
        }

    for leak in sorted(found.leaks, key=lambda x: (x.get("run") or 0, x.get("new_seq") or 0)):
        yield entry(
            LEAKS,
            leak,
            f"FlatView {leak.get('view')} of root {leak.get('root')} leaked in run "
            f"{leak.get('run')}: still live at the end although a newer view of its root was "
            f"built (generation {leak.get('generation')}, built at {_where(leak)})",
        )
    for anomaly in sorted(found.anomalies, key=lambda x: (x.get("run") or 0, x.get("seq") or 0)):
        kind = str(anomaly.get("kind"))
        yield entry(
            kind,
            anomaly,
            f"{kind} in run {anomaly.get('run')} at {_where(anomaly)}: view "
            f"{anomaly.get('view')}, root {anomaly.get('root')}"
            + (f": {anomaly['detail']}" if anomaly.get("detail") else ""),
        )


def code_quality(artifacts: list[ArtifactFindings]) -> list[dict[str, Any]]:
    """The Code Quality entries of every artifact, in artifact order.

    Examples
    --------
    >>> found = ArtifactFindings("ci/boot.log", leaks=[{"run": 0, "view": "0x200",
    ...     "root": "0xa", "generation": 0, "source": "ci/boot.log", "line": 2}],
    ...     root_keys={(0, 0xA): "rank:0"})
    >>> code_quality([found])[0]["location"]
    {'path': 'ci/boot.log', 'lines': {'begin': 2}}
    """
    return [
        entry
        for found in sorted(artifacts, key=lambda f: f.artifact)
        for entry in _entries_of(found)
    ]


def _log_text(text: str) -> str:
    """Artifact text safe in a job log: no escape sequences, carriage returns or newlines."""
    return _CONTROL.sub("\ufffd", text)


def job_log_sections(
    artifacts: list[ArtifactFindings],
    verdicts: list[Verdict],
    now: Callable[[], float] = time.time,
) -> list[str]:
    """One collapsible section per artifact: its verdict as the header, its details inside.

    Sections of passing artifacts start collapsed. Section names use only the characters
    GitLab allows (letters, digits, ``_``, ``.``, ``-``).
    """
    by_name = {v.artifact: v for v in verdicts}
    lines: list[str] = []
    for index, found in enumerate(sorted(artifacts, key=lambda f: f.artifact)):
        verdict = by_name.get(found.artifact)
        failed = [c.name for c in verdict.failed] if verdict else []
        name = _SECTION_UNSAFE.sub("_", f"qtrace_artifact_{index}")
        if found.error is not None:
            state = "unreadable"
        else:
            state = f"{len(found.leaks)} leaked views, {len(found.anomalies)} anomalies"
        header = f"qtrace: {_log_text(found.artifact)}: {state}"
        if failed:
            header += f" (failing: {', '.join(failed)})"
        collapsed = "" if failed else "[collapsed=true]"
        lines.append(f"\x1b[0Ksection_start:{int(now())}:{name}{collapsed}\r\x1b[0K{header}")
        if found.error is not None:
            lines.append(f"  could not be read: {_log_text(found.error)}")
        for title, items in (("leaked views", found.leaks), ("anomalies", found.anomalies)):
            if not items:
                continue
            lines.append(f"  {title}:")
            for item in items[:MAX_DETAIL_LINES]:
                what = item.get("kind") or f"view {item.get('view')}"
                lines.append(
                    _log_text(
                        f"    {what} (root {item.get('root')}, run {item.get('run')}) at "
                        f"{item.get('source')}: {_where(item)}"
                    )
                )
            if len(items) > MAX_DETAIL_LINES:
                lines.append(
                    f"    ... and {len(items) - MAX_DETAIL_LINES} more ({CODE_QUALITY_JSON})"
                )
        for warning in found.warnings[:MAX_DETAIL_LINES]:
            lines.append(_log_text(f"  warning: {warning}"))
        lines.append(f"\x1b[0Ksection_end:{int(now())}:{name}\r\x1b[0K")
    return lines


def write_gitlab_outputs(
    out_dir: Path, outcomes: list[Outcome], verdicts: list[Verdict], *, in_gitlab_ci: bool
) -> list[str]:
    """Write ``gl-code-quality-report.json``; under GitLab CI print the job-log sections.

    Returns the section lines printed (none outside GitLab CI).
    """
    artifacts = [findings_of(outcome) for outcome in outcomes]
    document = code_quality(artifacts)
    (out_dir / CODE_QUALITY_JSON).write_text(
        json.dumps(document, indent=1) + "\n", encoding="utf-8"
    )
    if not in_gitlab_ci:
        return []
    lines = job_log_sections(artifacts, verdicts)
    for line in lines:
        print(line, flush=True)
    return lines
