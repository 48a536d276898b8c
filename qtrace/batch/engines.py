"""Where tasks run: in a pool of reused local processes, or on a Dask cluster.

Every engine calls ``on_done`` once per artifact, in completion order, with an ``Outcome``; a
task that dies (a crashed worker, a lost Dask worker) becomes an outcome with an error.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from qtrace.batch.artifact import Artifact
from qtrace.batch.task import Outcome, TaskOptions, run_task
from qtrace.errors import UsageError

ENGINES = ("local", "dask")
DASK_CONNECT_TIMEOUT = "15s"
OnDone = Callable[[Outcome], None]


def _lost(index: int, artifact: Artifact, exc: BaseException) -> Outcome:
    reason = str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
    return Outcome(
        index,
        artifact.name,
        [part.name for part in artifact.parts],
        error=f"could not be analyzed ({reason})",
    )


@contextlib.contextmanager
def _worker_threads(jobs: int) -> Iterator[None]:
    """Share the cores between workers: each worker's polars gets cores/jobs threads.

    Spawned workers read POLARS_MAX_THREADS from the environment they start with; it is set
    only while the pool starts its processes, and never over a user's own setting.
    """
    if "POLARS_MAX_THREADS" in os.environ:
        yield
        return
    os.environ["POLARS_MAX_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    try:
        yield
    finally:
        del os.environ["POLARS_MAX_THREADS"]


Task = Callable[[int, Artifact, TaskOptions], Outcome]
WORKER_DIED = "the worker process died while analyzing it (a crash, or killed for memory)"


def _tracked(
    task: Task, marker_dir: str, index: int, artifact: Artifact, options: TaskOptions
) -> Outcome:
    """Run ``task`` with a marker file present while it runs: who was running when a worker died."""
    marker = Path(marker_dir) / f"running-{index}"
    marker.touch()
    try:
        return task(index, artifact, options)
    finally:
        marker.unlink(missing_ok=True)


def _pool_round(
    work: list[tuple[int, Artifact]],
    options: TaskOptions,
    jobs: int,
    on_done: OnDone,
    task: Task,
    marker_dir: Path,
) -> list[tuple[int, Artifact]]:
    """Run ``work`` in a pool of ``jobs`` reused workers; return what a dead worker took down."""
    broken: list[tuple[int, Artifact]] = []
    # spawn, not fork: forking a process whose polars thread pool is running can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        with _worker_threads(jobs):
            futures: dict[Future[Outcome], tuple[int, Artifact]] = {
                pool.submit(_tracked, task, str(marker_dir), index, artifact, options): (
                    index,
                    artifact,
                )
                for index, artifact in work
            }
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:
                broken.append(futures[future])
                continue
            except Exception as exc:  # e.g. an outcome that would not pickle
                outcome = _lost(*futures[future], exc)
            on_done(outcome)
    return broken


def _take_running(marker_dir: Path) -> set[int]:
    running = set()
    for marker in marker_dir.iterdir():
        running.add(int(marker.name.removeprefix("running-")))
        marker.unlink()
    return running


def run_local(
    work: list[tuple[int, Artifact]],
    options: TaskOptions,
    jobs: int,
    on_done: OnDone,
    task: Task = run_task,
) -> None:
    """Run the tasks in ``jobs`` reused worker processes (one with ``jobs == 1``).

    A worker that dies (a crash in native code, an abort, the kernel's OOM killer) breaks
    the whole pool. The artifacts it was running are then retried alone, each in a fresh
    worker: one that kills its worker again gets a failure record; every other artifact runs
    again in a new pool. So one deadly artifact costs a few worker starts, never the batch.
    Tasks never run in this process, ``jobs == 1`` included: an artifact that makes polars
    abort must not take the batch's outputs with it.
    """
    jobs = max(1, jobs)
    marker_dir = Path(tempfile.mkdtemp(prefix="qtrace-running-", dir=options.scratch_dir))
    try:
        pending = work
        while pending:
            broken = _pool_round(pending, options, jobs, on_done, task, marker_dir)
            running = _take_running(marker_dir)
            suspects = [item for item in broken if item[0] in running] or broken
            for item in suspects:
                for lost in _pool_round([item], options, 1, on_done, task, marker_dir):
                    on_done(_lost(*lost, RuntimeError(WORKER_DIED)))
                _take_running(marker_dir)
            pending = [item for item in broken if item not in suspects]
    finally:
        shutil.rmtree(marker_dir, ignore_errors=True)


def run_dask(
    work: list[tuple[int, Artifact]], options: TaskOptions, scheduler: str, on_done: OnDone
) -> None:
    """Send one task per artifact to the Dask distributed scheduler at ``scheduler``.

    The workers must see the input files and ``--out`` at the same paths (a shared
    filesystem), as for any Dask job that reads files.
    """
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise UsageError(
            "--engine dask needs the optional extra: pip install 'qtrace[dask]'"
        ) from None
    try:
        client = Client(  # type: ignore[no-untyped-call]
            scheduler, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    with client:
        futures = {
            client.submit(run_task, index, artifact, options, pure=False): (index, artifact)
            for index, artifact in work
        }
        for future in dask_completed(list(futures), loop=client.loop):  # type: ignore[no-untyped-call]
            try:
                outcome = future.result()
            except Exception as exc:
                outcome = _lost(*futures[future], exc)
            on_done(outcome)
