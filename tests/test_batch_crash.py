"""A worker that dies (native crash, OOM kill) costs one artifact, never the batch."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

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


def abort_on_deadly(index: int, artifact: Artifact, options: TaskOptions) -> Outcome:
    """Stands in for run_task: the worker aborts, as polars does when it cannot allocate."""
    if artifact.name.endswith("deadly"):
        os.kill(os.getpid(), signal.SIGABRT)
    return Outcome(index, artifact.name, [artifact.name])


def test_one_job_runs_in_a_worker_so_an_abort_costs_one_artifact(tmp_path: Path) -> None:
    # With --jobs 1 the tasks ran in the batch's own process: an abort took the batch, and
    # its summary.json and junit.xml, with it (here it would take pytest).
    names = ["a", "deadly", "b"]
    work = [(i, Artifact(n, (Part(n, n),))) for i, n in enumerate(names)]
    outcomes: list[Outcome] = []
    options = TaskOptions(limit_bytes=100, dashboard_dir=None, scratch_dir=str(tmp_path))
    run_local(work, options, 1, outcomes.append, task=abort_on_deadly)
    by_name = {o.name: o.error for o in outcomes}
    assert by_name == {"a": None, "b": None, "deadly": f"could not be analyzed ({WORKER_DIED})"}
    assert len(outcomes) == len(names)


@pytest.mark.slow
def test_a_gzip_of_zeros_under_a_memory_cap_still_gets_its_outputs(tmp_path: Path) -> None:
    # The case from the field: 1 GiB of zeros, 1 MB on disk, passes the 2 GiB input limit;
    # under an 8 GiB address-space cap the reader of its one 1 GiB line may abort. The batch
    # must write every output either way, with the artifact unreadable.
    bomb = tmp_path / "zeros.log.gz"
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    with bomb.open("wb") as out:
        for _ in range(1024):
            out.write(packer.compress(zeros))
        out.write(packer.flush())
    qtrace_bin = Path(sys.executable).parent / "qtrace"
    out_dir = tmp_path / "out"
    command = [str(qtrace_bin), "batch", str(bomb), "--out", str(out_dir), "-j", "1"]
    cap = 8 << 30
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TMPDIR": str(scratch)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)),
    )
    assert done.returncode == 3, done.stderr
    for name in ("summary.json", "junit.xml", "summary.md", "index.html", "views.parquet"):
        assert (out_dir / name).is_file(), name
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    [record] = summary["artifacts"]
    assert record["artifact"] == str(bomb) and record["error"]
    assert list(scratch.iterdir()) == []  # no 1 GiB decoded copy left behind by a dead worker
