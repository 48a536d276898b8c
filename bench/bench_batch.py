"""Batch benchmark: what ``qtrace batch`` adds per artifact on top of analyzing it alone.

Builds N small artifacts (about 100 KB each) cut from the real QEMU 10 log at rotating
offsets, every tenth one gzip-compressed, then measures:

- single-file time: one artifact read and analyzed in this process (warm), averaged;
- batch time per artifact, with ``--jobs 1`` (one worker process) and with a pool of reused
  workers (``--jobs`` cores); the overhead is batch time x jobs / N minus the single time
  (and minus the tasks' own mean time inside the workers, which shared cores slow down too).

    python bench/bench_batch.py --count 1000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "traces" / "qemu10-pc-bridges-ts.log"


def build_artifacts(directory: Path, count: int, size_bytes: int, sample: Path = SAMPLE) -> int:
    """Write ``count`` artifacts of about ``size_bytes`` each; return their total size."""
    lines = sample.read_bytes().splitlines(keepends=True)
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for index in range(count):
        start = (index * 97) % max(1, len(lines) // 3)
        chunk: list[bytes] = []
        taken = 0
        for line in lines[start:] + lines[:start]:
            if taken >= size_bytes:
                break
            chunk.append(line)
            taken += len(line)
        data = b"".join(chunk)
        if index % 10 == 9:
            path = directory / f"job-{index:05d}" / "trace.log.gz"
            data = gzip.compress(data, compresslevel=1)
        else:
            path = directory / f"job-{index:05d}" / "trace.log"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    return total


def single_file_seconds(paths: list[Path], repeats: int, dashboards: bool, scratch: Path) -> float:
    """Mean time to read and analyze one artifact here, as a batch task does (warm).

    Measured over ``repeats`` artifacts spread across the set (their contents differ).
    """
    from qtrace.batch.artifact import Artifact, Part
    from qtrace.batch.task import TaskOptions, run_task

    dash = scratch / "single-dash"
    dash.mkdir(exist_ok=True)
    options = TaskOptions(
        limit_bytes=1 << 31,
        dashboard_dir=str(dash) if dashboards else None,
        scratch_dir=str(scratch),
    )
    artifacts = [
        Artifact(str(path), (Part(str(path), str(path)),))
        for path in paths[:: max(1, len(paths) // repeats)][:repeats]
    ]
    run_task(0, artifacts[0], options)  # warm-up: imports, caches
    times = []
    for artifact in artifacts:
        started = time.perf_counter()
        outcome = run_task(0, artifact, options)
        times.append(time.perf_counter() - started)
        assert outcome.error is None, outcome.error
    return statistics.fmean(times)


def batch_seconds(inputs: Path, out: Path, jobs: int, dashboards: bool) -> tuple[float, float, int]:
    """Wall time of the whole batch, mean task time inside the workers, unreadable count."""
    from qtrace.batch import run_batch

    started = time.perf_counter()
    result = run_batch([str(inputs)], out, jobs=jobs, progress=False, dashboards=dashboards)
    elapsed = time.perf_counter() - started
    task_mean_s = statistics.fmean(float(r["seconds"]) for r in result.records)
    return elapsed, task_mean_s, int(result.totals["unreadable"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--dashboards", action="store_true", help="also write dashboards")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="qtrace-bench-batch-"))
    try:
        inputs = scratch / "artifacts"
        total_bytes = build_artifacts(inputs, args.count, args.size_kb * 1024)
        paths = sorted(inputs.glob("job-*/*"))
        single_s = single_file_seconds(paths, args.repeats, args.dashboards, scratch)
        figures: dict[str, float | int] = {
            "artifacts": args.count,
            "input_mb": round(total_bytes / 1e6, 1),
            "single_file_ms": round(single_s * 1e3, 2),
        }
        for jobs in sorted({1, args.jobs}):
            wall_s, task_s, unreadable = batch_seconds(
                inputs, scratch / f"out-{jobs}", jobs, args.dashboards
            )
            assert unreadable == 0, f"{unreadable} artifacts unreadable"
            per_artifact_s = wall_s * jobs / args.count
            figures[f"jobs{jobs}_wall_s"] = round(wall_s, 2)
            figures[f"jobs{jobs}_per_artifact_ms"] = round(per_artifact_s * 1e3, 2)
            figures[f"jobs{jobs}_task_ms"] = round(task_s * 1e3, 2)
            # Against the single-file time measured alone, and against the same tasks' own
            # time inside the busy workers (which shared cores slow down as much as the batch).
            figures[f"jobs{jobs}_overhead_ms"] = round((per_artifact_s - single_s) * 1e3, 2)
            figures[f"jobs{jobs}_overhead_vs_task_ms"] = round((per_artifact_s - task_s) * 1e3, 2)
        if args.json:
            print(json.dumps(figures))
        else:
            for key, value in figures.items():
                print(f"{key:>24}  {value}")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
