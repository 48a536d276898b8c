"""A worker that dies (native crash, OOM kill) costs one artifact, never the batch."""

from __future__ import annotations

import os
from pathlib import Path

from qtrace.batch.artifact import Artifact, Part
from qtrace.batch.engines import WORKER_DIED, run_local
from qtrace.batch.task import Outcome, TaskOptions


def crash_on_deadly(index: int, artifact: Artifact, options: TaskOptions) -> Outcome:
    """Stands in for run_task: a worker process dies on the artifact named deadly."""
    if artifact.name.endswith("deadly"):
        os._exit(70)  # as a segfault or the OOM killer would end it: no exception, no cleanup
    return Outcome(index, artifact.name, [artifact.name])


def test_a_dying_worker_fails_only_its_artifact(tmp_path: Path) -> None:
    names = ["a", "b", "deadly", "c", "d", "e"]
    work = [(i, Artifact(n, (Part(n, n),))) for i, n in enumerate(names)]
    outcomes: list[Outcome] = []
    options = TaskOptions(limit_bytes=100, dashboard_dir=None, scratch_dir=str(tmp_path))
    run_local(work, options, 2, outcomes.append, task=crash_on_deadly)
    by_name = {o.name: o.error for o in outcomes}
    assert sorted(by_name) == sorted(names)  # each exactly once
    assert len(outcomes) == len(names)
    assert by_name.pop("deadly") == f"could not be analyzed ({WORKER_DIED})"
    assert set(by_name.values()) == {None}
    assert list(tmp_path.iterdir()) == []  # the running markers are gone
