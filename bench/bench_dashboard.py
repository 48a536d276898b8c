"""Dashboard size and render time for a trace of about a million view instances.

The trace is real data made big: the FlatView events of a real QEMU run
(pc-bridges-mixed.simpletrace, 402 freed instances) repeated back to back with the view
pointers of each copy moved apart and the clock shifted, then analysed by the real model.
The page is rendered in headless Chromium (Debian's /usr/bin/chromium).

    .venv/bin/python bench/bench_dashboard.py --instances 1000000

Measured 2026-11-25 on the CI-like box (2 shared cores, load ~6, Chromium 156 headless):

    instances  HTML bytes   build HTML  render in Chromium  drawn as
    1,007,641  5,066,883    1.6 s       1.7 s               aggregates (1,200 buckets) + 7 bars
        4,861  8,931,732    0.4 s       2.9 s               every instance a bar (detail)

4.8 MB of each page is plotly.js itself (``--plotlyjs directory`` shares one copy).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from qtrace.events import FLATVIEW_EVENTS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "traces" / "pc-bridges-mixed.simpletrace"
POINTER_STRIDE = 1 << 40  # moves each copy's view pointers into a range of its own
SIZE_LIMIT_BYTES = 20_000_000
RENDER_LIMIT_S = 5.0


def repeated_trace(sample: Path, instances: int) -> pl.DataFrame:
    """FlatView events of ``sample`` repeated until about ``instances`` instances exist.

    Copies after the first drop the empty view (a nil-root new starts a new QEMU run). The
    views a copy leaves live at its end are released (destroy_rcu, destroy) right after the
    next copy builds the first new view of their root, as QEMU would on the next topology
    change, so every root always has a live view and no copy leaves leaks behind.
    """
    from qtrace.dashboards.inputs import as_int

    import qtrace
    from qtrace.model import analyze

    trace = qtrace.read_trace(sample)
    events = trace.events.filter(pl.col("event").is_in(FLATVIEW_EVENTS))
    views = analyze(trace).views
    current = views.filter(pl.col("status") == "current").select("view", "root")
    freed_per_copy = views.height - current.height - 1  # nor the empty view
    copies = max(1, -(-instances // freed_per_copy))
    ts = events.get_column("ts_ns")
    span_ns = as_int(ts.max()) - as_int(ts.min()) + 1_000_000
    # Each root's first new view in a copy is the handover point for the view the previous
    # copy left live: destroy_rcu just after it, destroy 0.1 ms later.
    first_new = (
        events.filter((pl.col("event") == "flatview_new") & (pl.col("root") != 0))
        .group_by("root")
        .agg(pl.col("seq").min().alias("at_seq"), pl.col("ts_ns").min().alias("at_ts"))
    )
    steps = pl.DataFrame(
        {
            "event": ["flatview_destroy_rcu", "flatview_destroy"],
            "after": [0.25, 0.5],
            "delay_ns": [1_000, 100_000],
        }
    )
    handover = (
        current.join(first_new, on="root")
        .join(steps, how="cross")
        .select(
            "event",
            "view",
            "root",
            (pl.col("at_ts") + pl.col("delay_ns")).alias("ts_ns"),
            (pl.col("at_seq").cast(pl.Float64) + pl.col("after")).alias("order"),
            pl.lit(str(sample)).alias("source"),
            # The same QEMU process: runs are per pid.
            pl.lit(events.get_column("pid").first(), pl.Int32).alias("pid"),
        )
    )
    template = events.with_columns(pl.col("seq").cast(pl.Float64).alias("order"))
    parts = []
    for copy in range(copies):
        part = (template if copy == 0 else template.filter(pl.col("root") != 0)).with_columns(
            pl.col("view") + copy * POINTER_STRIDE
        )
        if copy:
            released = handover.with_columns(pl.col("view") + (copy - 1) * POINTER_STRIDE)
            part = pl.concat([part, released], how="diagonal_relaxed")
        parts.append(
            part.with_columns(
                pl.col("ts_ns") + copy * span_ns, pl.lit(copy, pl.Int64).alias("copy")
            )
        )
    return (
        pl.concat(parts, how="diagonal_relaxed")
        .sort("copy", "order")
        .drop("copy", "order", "seq")
        .with_row_index("seq")
        .with_columns(pl.col("seq").cast(pl.Int64))
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium render")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    from qtrace.dashboards import write_dashboard

    from qtrace.events import conform
    from qtrace.model import analyze

    figures: dict[str, float | int | str] = {"sample": SAMPLE.name}
    started = time.perf_counter()
    events = conform(repeated_trace(SAMPLE, args.instances))
    figures["events"] = events.height
    figures["make_trace_s"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    analysis = analyze(events)
    figures["analyze_s"] = round(time.perf_counter() - started, 2)
    figures["instances"] = analysis.views.height

    args.out.mkdir(parents=True, exist_ok=True)
    page = args.out / "dashboard-1m.html"
    started = time.perf_counter()
    write_dashboard(analysis, page, title=f"bench: {analysis.views.height:,} view instances")
    figures["build_html_s"] = round(time.perf_counter() - started, 2)
    figures["html_bytes"] = page.stat().st_size

    if not args.no_browser:
        sys.path.insert(0, str(ROOT / "tests"))
        from browser import chromium, open_dashboard

        with chromium() as browser:
            tab, wall_s = open_dashboard(browser, page)
            figures["render_wall_s"] = round(wall_s, 2)
            figures["render_in_page_s"] = round(tab.evaluate("window.qtraceRenderedMs") / 1e3, 2)
            figures["console_errors"] = len(tab.console_errors)
            tab.screenshot(args.out / "dashboard-1m.png")

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value}")
    ok = int(figures["html_bytes"]) <= SIZE_LIMIT_BYTES and (
        args.no_browser or float(figures["render_in_page_s"]) < RENDER_LIMIT_S
    )
    print("within limits (20 MB, 5 s):", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
