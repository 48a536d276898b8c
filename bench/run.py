"""Run every benchmark at the sizes the issues set, one after another.

Each benchmark measures its own baseline in the same run and prints ratios; nothing here
is a pass/fail test. `python bench/run.py log` runs one group; names: log, simple,
analyze, analyze-storm, dashboard, batch, perfetto, source.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = {
    "log": "bench_log",
    "simple": "bench_simple",
    "analyze": "bench_analyze",  # issue 3's sizes; analyze-storm: issue 11's whole commands
    "analyze-storm": "bench_analyze",
    "dashboard": "bench_dashboard",
    "batch": "bench_batch",
    "perfetto": "bench_perfetto",
    "source": "bench_source",
}
ARGUMENTS = {"analyze-storm": ["--storm", "--repeat", "3"]}


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    status = 0
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(BENCHMARKS[name])
        status |= int(module.main(ARGUMENTS.get(name, [])) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
