"""Analyze benchmark: ingest alone vs ingest + analyze + JSON report, and peak memory.

Builds a simple-backend (v4) trace of N FlatView events by repeating the real boot
``pc-boot.simpletrace`` with pointers and timestamps shifted per copy (each copy keeps its
nil-root view, so the file is a series of QEMU runs, like a qtest log), then times in
child processes, one at a time so each peak RSS is its own:

- ``ingest``:  ``qtrace.read_trace(file)``;
- ``analyze``: ``read_trace`` + ``qtrace.analyze`` + ``render_json`` (the
  ``qtrace analyze --format json`` path);
- ``floor``: ``read_trace`` + the two sorts that any model pairing events by pointer and
  sweeping each root's pins in event order needs (a stable sort of the events by view
  pointer, and a sort of one Int64 key per event), in polars: what analysis cannot go
  below however the rest is written;
- the commands themselves: ``qtrace analyze --format json`` and ``qtrace events -f parquet``
  (the ingest as a command), with their start-up and output.

Target (issue 3): analyze total within 2x ingest; peak RSS linear in events. Wall and CPU
time are both reported: on a shared machine the CPU ratio is the steadier figure.

With ``--log`` (a real QEMU log, e.g. a ~100 MB config-write storm), the whole commands of
issue 11 instead, side by side in one run, on the log and on the log repeated ``--copies``
times (each copy a QEMU run, as a testlog or a restarted domain's log holds):

- ``qtrace analyze BIG --format json`` against ``grep -c flatview_ BIG`` (target <= 4x);
- ``bench/walker.py LOG`` (a plain Python walker of the same rules) against ``qtrace analyze
  LOG`` (target >= 30x), with the floors: ``python -c "import polars"`` and ``qtrace analyze``
  of a 59 KB real log (start-up: the most any whole command could reach);
- ``qtrace events BIG -f parquet`` against ``grep -c`` (target <= 2x);
- analyze's peak RSS per FlatView event (target <= 80 B).

    python bench/bench_analyze.py                 # 1M, 3M and 10M events
    python bench/bench_analyze.py --events 1000000 --repeat 3
    python bench/bench_analyze.py --storm --repeat 3    # makes build/bench/storm.log once
    python bench/bench_analyze.py --log my-qemu.log --copies 10 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from make_storm import make_storm

ROOT = Path(__file__).resolve().parents[1]
STORM_LOG = ROOT / "build" / "bench" / "storm.log"  # made once by make_storm.py (about 95 MiB)
SAMPLE = ROOT.parent / "shared" / "traces" / "pc-boot.simpletrace"
EVENT_IDS = {"flatview_new": 0, "flatview_destroy_rcu": 1, "flatview_destroy": 2}
POINTER_SHIFT = 0x1000_0000  # per copy: well clear of the sample's own pointer spread
RECORD = np.dtype(
    [
        ("type", "<u8"),
        ("event_id", "<u8"),
        ("ts_ns", "<u8"),
        ("length", "<u4"),
        ("pid", "<u4"),
        ("view", "<u8"),
        ("root", "<u8"),
    ]
)

CHILD = """
import json, resource, sys, time
start = time.perf_counter()
import qtrace
from qtrace.ingest import read_trace
trace = read_trace(sys.argv[2])
fv = trace.events.height
if sys.argv[1] == "analyze":
    from qtrace.model import analyze
    from qtrace.report import render_json
    text = render_json(analyze(trace))
    assert text.startswith("{")
if sys.argv[1] == "floor":
    import polars as pl
    key = pl.col("root").cast(pl.Int64) * 16 + pl.col("seq") % 16
    trace.events.select(by_pointer=pl.arg_sort_by("view", maintain_order=True), key=key.sort())
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: ru_maxrss also counts the parent's pages shared at fork time.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mib": int(hwm) / 1024, "events": fv}))
"""


def sample_events(sample: Path = SAMPLE) -> dict[str, np.ndarray]:
    """The real sample's FlatView events as arrays (read with qtrace's own reader)."""
    from qtrace.ingest import read_trace

    events = read_trace(sample).events
    fv = events.filter(events["event"].is_in(list(EVENT_IDS)))
    return {
        "event_id": fv["event"]
        .cast(pl.String)
        .replace_strict(EVENT_IDS, return_dtype=pl.UInt64)
        .to_numpy(),
        "ts_ns": fv["ts_ns"].to_numpy().astype(np.uint64),
        "view": fv["view"].to_numpy().astype(np.uint64),
        "root": fv["root"].to_numpy().astype(np.uint64),
    }


def build_simple_trace(path: Path, n_events: int, base: dict[str, np.ndarray]) -> int:
    """Write ``n_events`` FlatView records; return how many copies of the sample it holds."""
    n0 = len(base["view"])
    copies = -(-n_events // n0)
    copy = np.repeat(np.arange(copies, dtype=np.uint64), n0)[:n_events]
    tile = np.tile(np.arange(n0), copies)[:n_events]
    span_ns = int(base["ts_ns"].max() - base["ts_ns"].min()) + 1_000_000
    records = np.zeros(n_events, dtype=RECORD)
    records["type"] = 1
    records["event_id"] = base["event_id"][tile]
    records["ts_ns"] = base["ts_ns"][tile] + copy * np.uint64(span_ns)
    records["length"] = 24 + 16
    records["pid"] = 4242
    shift = copy * np.uint64(POINTER_SHIFT)
    view, root = base["view"][tile], base["root"][tile]
    records["view"] = np.where(view == 0, view, view + shift)  # (nil) stays (nil)
    records["root"] = np.where(root == 0, root, root + shift)
    with path.open("wb") as out:
        out.write(np.array([2**64 - 1, 0xF2B177CB0AA429B4, 4], dtype="<u8").tobytes())
        for name, event_id in EVENT_IDS.items():
            raw = name.encode()
            out.write(np.array([0, event_id], dtype="<u8").tobytes())
            out.write(np.array([len(raw)], dtype="<u4").tobytes() + raw)
        records.tofile(out)
    return copies


def run_child(mode: str, path: Path) -> dict[str, float]:
    """One measured child process: its wall time, peak RSS and events read."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def run_command(args: list[str]) -> float:
    """Wall time of one ``qtrace`` command (exit 1, findings, is not a failure here)."""
    started = time.perf_counter()
    command = Path(sys.executable).with_name("qtrace")  # the installed console script
    done = subprocess.run([str(command), *args], capture_output=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"qtrace {' '.join(args)}: {done.stderr.decode().strip()}")
    return time.perf_counter() - started


def measure(args: list[str], stdout: Path | None = None) -> dict[str, float]:
    """Wall time, CPU time (user + system, all threads) and peak RSS of one whole command."""
    started = time.perf_counter()
    with open(stdout or os.devnull, "wb") as out:  # grep -c to /dev/null would stop early
        child = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{' '.join(args)}: exit {os.waitstatus_to_exitcode(status)}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
    }


def best(args: list[str], repeat: int, stdout: Path | None = None) -> dict[str, Any]:
    """The fastest of ``repeat`` runs, and the range of their wall times."""
    runs = [measure(args, stdout) for _ in range(repeat)]
    found: dict[str, Any] = dict(min(runs, key=lambda r: r["wall_s"]))
    found["wall_range_s"] = [
        round(min(r["wall_s"] for r in runs), 2),
        round(max(r["wall_s"] for r in runs), 2),
    ]
    return found


def commands(log: Path, copies: int, repeat: int, workdir: Path | None) -> dict[str, Any]:
    """Issue 11's whole-command figures on a real log and on ``copies`` copies of it."""
    qtrace = str(Path(sys.executable).with_name("qtrace"))
    walker = str(Path(__file__).resolve().with_name("walker.py"))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        big = Path(tmp) / "big.log"
        with big.open("wb") as out:
            for _ in range(copies):
                with log.open("rb") as part:
                    shutil.copyfileobj(part, out, 16 << 20)
        count = Path(tmp) / "count.txt"
        grep = best(["grep", "-c", "flatview_", str(big)], repeat, count)
        fv_events = int(count.read_text())
        report = str(Path(tmp) / "r.json")
        analyze_big = best([qtrace, "analyze", str(big), "--format", "json", "-o", report], repeat)
        events = best(
            [qtrace, "events", str(big), "-f", "parquet", "-o", str(Path(tmp) / "e.pq")], repeat
        )
        analyze_small = best(
            [qtrace, "analyze", str(log), "--format", "json", "-o", report], repeat
        )
        walk = best([sys.executable, walker, str(log)], repeat)
        polars_import = best([sys.executable, "-c", "import polars"], repeat)
        cli_import = best([sys.executable, "-c", "import qtrace.cli"], repeat)
        # The floor under analyze: the same command on a 59 KB real log (start-up and the
        # modules it loads); walker / this is the largest ratio any whole command could reach.
        tiny = ROOT / "samples" / "pc-boot-ts.log"
        analyze_tiny = best(
            [qtrace, "analyze", str(tiny), "--format", "json", "-o", report], repeat
        )
    ratio = lambda a, b: round(a["wall_s"] / b["wall_s"], 2)  # noqa: E731
    return {
        "log_mib": round(log.stat().st_size / 2**20, 1),
        "copies": copies,
        "flatview_events_big": fv_events,
        "grep_c_big": grep,
        "analyze_big": analyze_big,
        "events_parquet_big": events,
        "analyze_log": analyze_small,
        "walker_log": walk,
        "import_polars": polars_import,
        "import_qtrace_cli": cli_import,
        "analyze_59kb_log": analyze_tiny,
        "analyze_big_over_grep": ratio(analyze_big, grep),
        "analyze_big_over_grep_cpu": round(analyze_big["cpu_s"] / grep["cpu_s"], 2),
        "walker_over_analyze_log": ratio(walk, analyze_small),
        "walker_over_import_polars": ratio(walk, polars_import),
        "walker_over_analyze_59kb_log": ratio(walk, analyze_tiny),
        "events_parquet_over_grep": ratio(events, grep),
        "analyze_peak_bytes_per_flatview_event": round(analyze_big["peak_mib"] * 2**20 / fv_events),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print one line per size and a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; the best counts")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=None, help="a real log: issue 11's commands")
    parser.add_argument(
        "--storm",
        action="store_true",
        help=f"issue 11's commands on the storm log made by make_storm.py (kept in {STORM_LOG})",
    )
    parser.add_argument("--copies", type=int, default=10, help="copies of --log in the big log")
    args = parser.parse_args(argv)
    if args.storm and args.log is None:
        args.log = STORM_LOG if STORM_LOG.is_file() else make_storm(STORM_LOG)
    if args.log is not None:
        found = commands(args.log, args.copies, args.repeat, args.workdir)
        print(json.dumps({"benchmark": "analyze-commands", **found}, indent=2))
        return 0
    base = sample_events()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in args.events:
            path = Path(tmp) / f"flatview-{n}.simpletrace"
            build_simple_trace(path, n, base)
            ingest = min(
                (run_child("ingest", path) for _ in range(args.repeat)),
                key=lambda r: r["seconds"],
            )
            analyze = min(
                (run_child("analyze", path) for _ in range(args.repeat)),
                key=lambda r: r["seconds"],
            )
            floor = min(run_child("floor", path)["seconds"] for _ in range(args.repeat))
            out = str(Path(tmp) / "out")
            cli_analyze = min(
                run_command(["analyze", "--format", "json", str(path), "-o", out])
                for _ in range(args.repeat)
            )
            cli_events = min(
                run_command(["events", "-f", "parquet", str(path), "-o", out])
                for _ in range(args.repeat)
            )
            row = {
                "events": n,
                "file_mib": round(path.stat().st_size / 2**20, 1),
                "ingest_s": round(ingest["seconds"], 2),
                "analyze_total_s": round(analyze["seconds"], 2),
                "ratio": round(analyze["seconds"] / ingest["seconds"], 2),
                "floor_s": round(floor, 2),
                "floor_ratio": round(floor / ingest["seconds"], 2),
                "cli_analyze_json_s": round(cli_analyze, 2),
                "cli_events_parquet_s": round(cli_events, 2),
                "cli_ratio": round(cli_analyze / cli_events, 2),
                "ingest_cpu_s": round(ingest["cpu_seconds"], 2),
                "analyze_total_cpu_s": round(analyze["cpu_seconds"], 2),
                "cpu_ratio": round(analyze["cpu_seconds"] / ingest["cpu_seconds"], 2),
                "ingest_peak_mib": round(ingest["peak_rss_mib"]),
                "analyze_peak_mib": round(analyze["peak_rss_mib"]),
                "analyze_peak_bytes_per_event": round(analyze["peak_rss_mib"] * 2**20 / n),
            }
            rows.append(row)
            print(
                f"{n:>11,} events  ingest {row['ingest_s']:7.2f}s  "
                f"ingest+analyze+json {row['analyze_total_s']:7.2f}s  ratio {row['ratio']:.2f} "
                f"(floor {row['floor_ratio']:.2f}; commands {row['cli_ratio']:.2f}) "
                f"(cpu {row['ingest_cpu_s']:.1f}s / {row['analyze_total_cpu_s']:.1f}s, "
                f"ratio {row['cpu_ratio']:.2f})  "
                f"peak RSS {row['ingest_peak_mib']} / {row['analyze_peak_mib']} MiB",
                flush=True,
            )
            path.unlink()
    print(json.dumps({"benchmark": "analyze", "target_ratio": 2.0, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
