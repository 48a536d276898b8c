"""Perfetto writer benchmark: time and peak memory of ``write_perfetto`` against the analysis.

Builds the same simple-backend trace as ``bench_analyze.py`` (the real boot
``pc-boot.simpletrace`` repeated with pointers and stamps shifted per copy; about a third of
the events are instances), then runs, in child processes one at a time so each peak RSS is
its own:

- ``analyze``: ``read_trace`` + ``analyze`` (the summaries only: what reports read);
- ``json``: the same + ``render_json`` (the ``qtrace analyze --format json`` report);
- ``tables``: ``analyze`` + building the views and concurrency tables (the model builds
  them when first read; every per-instance output needs them);
- ``perfetto``: ``analyze`` + ``write_perfetto`` (which reads those two tables).

Target (issue 12): the document is written in batches, so the peak RSS of ``perfetto``
stays near ``tables``' however large the document is (a 1 GB log's 4M instances): the
writer's own share is the difference. Time is reported as the writer's share over ``tables``.

    python bench/bench_perfetto.py                       # 3M and 12M events
    python bench/bench_perfetto.py --events 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_analyze import build_simple_trace, sample_events

CHILD = """
import json, resource, sys, time
start = time.perf_counter()
import qtrace
trace = qtrace.read_trace(sys.argv[2])
analysis = qtrace.analyze(trace)
analyzed = time.perf_counter()
written = {}
if sys.argv[1] == "tables":
    assert analysis.views.height and analysis.concurrency.height
if sys.argv[1] == "json":
    assert qtrace.render_json(analysis).startswith("{")
if sys.argv[1] == "perfetto":
    written = qtrace.write_perfetto(analysis, sys.argv[3])
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(json.dumps({"seconds": seconds, "output_seconds": seconds - (analyzed - start),
                  "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mib": int(hwm) / 1024, "instances": analysis.views.height,
                  "written": written}))
"""


def run_child(mode: str, trace: Path, out: Path) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(trace), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def _best(mode: str, trace: Path, out: Path, repeat: int) -> dict[str, object]:
    runs = [run_child(mode, trace, out) for _ in range(repeat)]
    return min(runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print one line per size and a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[3_000_000, 12_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; the best counts")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    base = sample_events()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in args.events:
            trace = Path(tmp) / f"flatview-{n}.simpletrace"
            out = Path(tmp) / "trace.perfetto.json"
            build_simple_trace(trace, n, base)
            analyze = _best("analyze", trace, out, args.repeat)
            report = _best("json", trace, out, args.repeat)
            tables = _best("tables", trace, out, args.repeat)
            perfetto = _best("perfetto", trace, out, args.repeat)
            row = {
                "events": n,
                "instances": analyze["instances"],
                "analyze_s": round(float(analyze["seconds"]), 2),  # type: ignore[arg-type]
                "json_report_s": round(float(report["output_seconds"]), 2),  # type: ignore[arg-type]
                "tables_s": round(float(tables["output_seconds"]), 2),  # type: ignore[arg-type]
                "perfetto_write_s": round(float(perfetto["output_seconds"]), 2),  # type: ignore[arg-type]
                "perfetto_mib": round(out.stat().st_size / 2**20),
                "analyze_peak_mib": round(float(analyze["peak_rss_mib"])),  # type: ignore[arg-type]
                "json_peak_mib": round(float(report["peak_rss_mib"])),  # type: ignore[arg-type]
                "tables_peak_mib": round(float(tables["peak_rss_mib"])),  # type: ignore[arg-type]
                "perfetto_peak_mib": round(float(perfetto["peak_rss_mib"])),  # type: ignore[arg-type]
                "written": perfetto["written"],
            }
            row["write_s"] = round(row["perfetto_write_s"] - row["tables_s"], 2)  # type: ignore[operator]
            row["writer_peak_mib"] = row["perfetto_peak_mib"] - row["tables_peak_mib"]  # type: ignore[operator]
            rows.append(row)
            print(
                f"{n:>11,} events, {row['instances']:,} instances: analyze {row['analyze_s']}s, "
                f"json report +{row['json_report_s']}s, tables +{row['tables_s']}s, perfetto "
                f"+{row['perfetto_write_s']}s ({row['perfetto_mib']} MiB); peak RSS analyze "
                f"{row['analyze_peak_mib']} / json {row['json_peak_mib']} / tables "
                f"{row['tables_peak_mib']} / perfetto {row['perfetto_peak_mib']} MiB",
                flush=True,
            )
            trace.unlink()
            out.unlink()
    print(json.dumps({"benchmark": "perfetto", "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
