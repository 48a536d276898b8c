"""The dashboard of about a million view instances, as whole commands, and in Chromium.

Two traces of about N instances, written as simple-backend files:

- ``storm`` (default): the issue's shape, a config-write storm on 40 roots over 11 s, each
  view live a few µs and RCU-pending ~25 µs (``storm_trace``);
- ``repeated``: real data made big, the FlatView events of a real QEMU run
  (pc-bridges-mixed.simpletrace) repeated back to back with pointers moved apart and the
  clock shifted (``repeated_trace``).

Measured, one command at a time (wall and CPU time, the child's peak RSS):
``qtrace dashboard TRACE -o page.html`` against two baselines, ``qtrace analyze --format
json TRACE`` (the same read and model, the report instead of the page) and ``tables``: read,
analyze, and build the views and concurrency tables, which any page of every instance reads
and which the model builds only when first read. The page's own share is the difference
with ``tables``. Then the page is opened
in headless Chromium (Debian's /usr/bin/chromium): its render time, and how long zooming
takes (to 1 ms: single views; to 250 ms: re-bucketed; back out).

    .venv/bin/python bench/bench_dashboard.py                  # storm, 1M, 3 runs
    .venv/bin/python bench/bench_dashboard.py --shape repeated --repeat 1

Targets (issue 14): page <= 20 MB, render < 5 s, dashboard command <= 5 s with peak RSS
<= 1 GB. Measured 2026-12-05 on the 2-core box, quiet (load 1.1), ``--repeat 3`` (storm):

    shape (1M instances)  page bytes  command    wall        CPU         peak RSS
    storm                 18,517,828  dashboard  3.3-3.8 s   4.1-4.3 s   788-825 MiB
                                      tables     2.3-2.5 s   2.7-2.9 s   718-749 MiB
                                      analyze    1.6-1.7 s   1.9-2.0 s   679-692 MiB

The page's own share over ``tables``: 1.5 s CPU and 71 MiB. Render in Chromium 2.1 s; zoom
to 1 ms (single views) 0.84 s, to 250 ms (re-bucketed) 0.39 s, back out 0.45 s. Pages are
byte-identical run to run. 4.8 MB of each page is plotly.js itself (``--plotlyjs directory``
shares one copy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
from bench_analyze import EVENT_IDS, RECORD  # the simple-backend record both benchmarks write

from qtrace.events import FLATVIEW_EVENTS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "traces" / "pc-bridges-mixed.simpletrace"
POINTER_STRIDE = 1 << 40  # moves each copy's view pointers into a range of its own
SIZE_LIMIT_BYTES = 20_000_000
RENDER_LIMIT_S = 5.0
BUILD_LIMIT_S = 5.0
PEAK_LIMIT_MB = 1_000


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


# The million-instance shape: 40 roots rebuilt in bursts over 11 s (a config-write
# storm), each view live a few µs, then RCU-pending ~25 µs. Four roots barely change, so a
# lane with one instance in 11 s must still show.
STORM_ROOTS = 40
STORM_SPAN_NS = 11_000_000_000
STORM_QUIET_ROOTS = (1, 3, 12, 40)  # instances of the roots that barely change
STORM_ORIGIN_NS = 1_000_000_000_000  # CLOCK_MONOTONIC-like start


def write_simple(
    path: Path,
    event_id: npt.NDArray[np.uint64],
    ts_ns: npt.NDArray[np.int64],
    view: npt.NDArray[np.uint64],
    root: npt.NDArray[np.uint64],
    *,
    sort: bool = True,
) -> None:
    """A simple-backend (v4) file of FlatView records (ids: EVENT_IDS), in time order
    (``sort``) or in the order given."""
    order = np.lexsort((event_id, ts_ns)) if sort else np.arange(ts_ns.size)
    records = np.zeros(ts_ns.size, dtype=RECORD)
    records["type"] = 1
    records["event_id"] = event_id[order]
    records["ts_ns"] = ts_ns[order] - ts_ns.min() + STORM_ORIGIN_NS
    records["length"] = 24 + 16
    records["pid"] = 4242
    records["view"] = view[order]
    records["root"] = root[order]
    with path.open("wb") as out:
        out.write(np.array([2**64 - 1, 0xF2B177CB0AA429B4, 4], dtype="<u8").tobytes())
        for name, number in EVENT_IDS.items():
            raw = name.encode()
            out.write(np.array([0, number], dtype="<u8").tobytes())
            out.write(np.array([len(raw)], dtype="<u4").tobytes() + raw)
        records.tofile(out)


def write_repeated(path: Path, instances: int) -> None:
    """``repeated_trace`` of the real sample, written as a simple-backend file."""
    events = repeated_trace(SAMPLE, instances)
    codes = events.select(
        pl.col("event").cast(pl.String).replace_strict(EVENT_IDS, return_dtype=pl.UInt64)
    ).to_series()
    write_simple(
        path,
        codes.to_numpy(),
        events.get_column("ts_ns").to_numpy(),
        events.get_column("view").cast(pl.UInt64).to_numpy(),
        events.get_column("root").cast(pl.UInt64).to_numpy(),
        sort=False,  # the real order: a simple trace's records may be out of time order
    )


@dataclass(frozen=True)
class Storm:
    """A storm trace on disk and the instances made to leak or be lost in it."""

    path: Path
    instances: int
    roots: list[int]  # root pointers, busiest first (the quiet ones last)
    leaked: list[int]  # view pointers
    lost: list[int]


def storm_trace(
    path: Path, instances: int, *, seed: int = 14, leaks: int = 1, lost: int = 1
) -> Storm:
    """Write a simple-backend trace of about ``instances`` short-lived views on 40 roots.

    Births follow a burst profile (22 stretches of 0.5 s at 0.05x to 12x the mean rate);
    busy roots share the births 1/k (Zipf), after the quiet roots' few. Each view is live
    2-6 µs and RCU-pending 18-34 µs. The last view of each busy root stays live (its current
    view); the quiet roots' views are all freed (their device went away), so the root with
    one instance has one 30 µs life in 11 s. ``leaks`` views lose their destroy_rcu and
    destroy (leaked), and ``lost`` views have their pointer reused by the next view built
    while they are live (lost). Pointers are otherwise unique. The same arguments write the
    same bytes.
    """
    rng = np.random.default_rng(seed)
    quiet = np.array(STORM_QUIET_ROOTS, dtype=np.int64)
    busy = STORM_ROOTS - len(quiet)
    weights = 1.0 / np.arange(1, busy + 1)
    n_busy = max(instances - 1 - int(quiet.sum()), busy)
    counts = np.floor(weights / weights.sum() * n_busy).astype(np.int64)
    counts[0] += n_busy - counts.sum()
    counts = np.concatenate([counts, quiet])
    n = int(counts.sum())
    root_index = np.repeat(np.arange(STORM_ROOTS), counts)
    edges = np.linspace(0.0, 1.0, 23)
    rate = rng.choice([0.05, 1.0, 4.0, 12.0], size=22, p=[0.3, 0.3, 0.25, 0.15])
    cdf = np.concatenate([[0.0], np.cumsum(rate * np.diff(edges))])
    born = (np.interp(rng.random(n), cdf / cdf[-1], edges) * (STORM_SPAN_NS - 100_000)).astype(
        np.int64
    ) + 1_000
    live = rng.integers(2_000, 6_000, n)
    grace = rng.integers(18_000, 34_000, n)
    order = np.lexsort((root_index, born))
    born, root_index = born[order], root_index[order]
    roots = (0x5600_1000_0000 + np.arange(STORM_ROOTS, dtype=np.uint64) * 0x2000).astype(np.uint64)
    view = (0x7F00_0000_0000 + np.arange(n, dtype=np.uint64) * 0x40).astype(np.uint64)
    ends = np.ones(n, dtype=bool)  # has destroy_rcu and destroy
    last_of_root = np.zeros(n, dtype=bool)
    for k in range(busy):
        last_of_root[np.flatnonzero(root_index == k)[-1]] = True
    ends[last_of_root] = False
    # Leaks and lost views: in the busiest root, in the middle of the trace.
    candidates = np.flatnonzero((root_index == 0) & ~last_of_root)
    middle = candidates[len(candidates) // 2 :]
    leaked_at = middle[: 2 * leaks : 2]
    lost_at = middle[1 : 2 * lost : 2]
    ends[leaked_at] = False
    ends[lost_at] = False
    for at in lost_at:
        view[at + 1] = view[at]  # the next view built reuses the pointer: at is lost
    kinds = [np.zeros(1), np.zeros(n), np.ones(int(ends.sum())), np.full(int(ends.sum()), 2)]
    ts = [np.zeros(1, np.int64), born, (born + live)[ends], (born + live + grace)[ends]]
    views = [np.array([0x7E00_0000_0000], np.uint64), view, view[ends], view[ends]]
    root_of = roots[root_index]
    root_col = [np.zeros(1, np.uint64), root_of, root_of[ends], root_of[ends]]
    write_simple(
        path,
        np.concatenate(kinds).astype(np.uint64),
        np.concatenate(ts),
        np.concatenate(views),
        np.concatenate(root_col),
    )
    return Storm(
        path,
        n + 1,
        [int(r) for r in roots],
        [int(view[at]) for at in leaked_at],
        [int(view[at]) for at in lost_at],
    )


# The floor under any page that shows every instance: read, analyze, and build the views and
# concurrency tables (the model builds them when first read; a JSON report never does).
TABLES = """
import sys, qtrace
analysis = qtrace.analyze(qtrace.read_trace(sys.argv[1]))
assert analysis.views.height and analysis.concurrency.height
"""


def run_command(args: list[str], *, python: bool = False) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one ``qtrace`` command as a user runs
    it (or, with ``python``, of ``python ARGS``). On a shared machine the CPU time is the
    steadier figure."""
    command = sys.executable if python else Path(sys.executable).with_name("qtrace")
    started = time.perf_counter()
    child = subprocess.Popen(
        [str(command), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1: findings (the storm has a leak), not a failure
        stderr = child.stderr.read().decode() if child.stderr else ""
        raise RuntimeError(f"qtrace {' '.join(args)} exited {code}: {stderr.strip()}")
    if child.stderr:
        child.stderr.close()
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


ZOOMS = {"to_1ms": [5.0, 5.001], "to_250ms": [2.0, 2.25], "out": None}


def browse(page: Path, shots: Path) -> dict[str, float | int]:
    """Render time and zoom times of ``page`` in headless Chromium."""
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import chromium, open_dashboard

    figures: dict[str, float | int] = {}
    with chromium() as browser:
        tab, wall_s = open_dashboard(browser, page)
        figures["render_wall_s"] = round(wall_s, 2)
        figures["render_in_page_s"] = round(tab.evaluate("window.qtraceRenderedMs") / 1e3, 2)
        tab.screenshot(shots / "dashboard-1m.png", element="qtrace-timeline")
        for name, window in ZOOMS.items():
            update = {"xaxis.autorange": True} if window is None else {"xaxis.range": window}
            started = time.perf_counter()
            mode = tab.evaluate(
                "new Promise(done => { const s = document.getElementById('qtrace-zoom-state');"
                " const before = s.getAttribute('data-serial');"
                " const seen = new MutationObserver(() => {"
                " if (s.getAttribute('data-serial') !== before) {"
                " seen.disconnect(); done(s.getAttribute('data-mode')); } });"
                " seen.observe(s, {attributes: true});"
                " Plotly.relayout(document.getElementById('qtrace-timeline'), "
                f"{json.dumps(update)}); }})"
            )
            figures[f"zoom_{name}_s"] = round(time.perf_counter() - started, 2)
            figures[f"zoom_{name}_mode"] = mode
            if window is not None:
                tab.screenshot(shots / f"dashboard-1m-{name}.png", element="qtrace-timeline")
        figures["console_errors"] = len(tab.console_errors)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--shape", choices=("storm", "repeated"), default="storm")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command")
    parser.add_argument("--workdir", type=Path, default=None, help="where the trace is written")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium render")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float | int | str | list[float]] = {"shape": args.shape}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        trace = Path(tmp) / f"{args.shape}.simpletrace"
        started = time.perf_counter()
        if args.shape == "storm":
            figures["instances"] = storm_trace(trace, args.instances).instances
        else:
            write_repeated(trace, args.instances)
        figures["make_trace_s"] = round(time.perf_counter() - started, 2)
        figures["trace_mib"] = round(trace.stat().st_size / 2**20, 1)
        page = args.out / f"dashboard-{args.shape}.html"
        runs: dict[str, list[tuple[float, float, float]]] = {
            "analyze": [],
            "tables": [],
            "dashboard": [],
        }
        digests = set()
        for _ in range(args.repeat):
            runs["analyze"].append(
                run_command(["analyze", "--format", "json", str(trace), "-o", f"{tmp}/r.json"])
            )
            runs["tables"].append(run_command(["-c", TABLES, str(trace)], python=True))
            runs["dashboard"].append(run_command(["dashboard", str(trace), "-o", str(page)]))
            digests.add(hashlib.sha256(page.read_bytes()).hexdigest())
    for name, measured in runs.items():
        figures[f"{name}_s"] = sorted(round(s, 2) for s, _, _ in measured)
        figures[f"{name}_cpu_s"] = sorted(round(c, 2) for _, c, _ in measured)
        figures[f"{name}_peak_mib"] = sorted(round(m) for _, _, m in measured)
    best = {name: min(s for s, _, _ in measured) for name, measured in runs.items()}
    cpu = {name: min(c for _, c, _ in measured) for name, measured in runs.items()}
    figures["dashboard_over_analyze"] = round(best["dashboard"] / best["analyze"], 2)
    figures["dashboard_over_analyze_cpu"] = round(cpu["dashboard"] / cpu["analyze"], 2)
    # The page's own share: over the tables it must read.
    figures["page_share_cpu_s"] = round(cpu["dashboard"] - cpu["tables"], 2)
    figures["page_share_peak_mib"] = round(
        min(m for _, _, m in runs["dashboard"]) - min(m for _, _, m in runs["tables"])
    )
    figures["load_average"] = round(os.getloadavg()[0], 1)
    figures["html_bytes"] = page.stat().st_size
    figures["byte_identical_runs"] = len(digests) == 1
    if not args.no_browser:
        figures.update(browse(page, args.out))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>24}: {value}")
    peak_mb = max(m for _, _, m in runs["dashboard"]) * 2**20 / 1e6
    ok = (
        int(figures["html_bytes"]) <= SIZE_LIMIT_BYTES
        and best["dashboard"] <= BUILD_LIMIT_S
        and peak_mb <= PEAK_LIMIT_MB
        and (args.no_browser or float(figures["render_in_page_s"]) < RENDER_LIMIT_S)
    )
    print("within the issue's targets (20 MB, render 5 s, build 5 s, 1 GB):", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
