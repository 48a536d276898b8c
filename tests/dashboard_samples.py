"""Real traces for the dashboard tests, and real traces made to leak.

A leak is made the way it happens: the flatview_destroy_rcu and flatview_destroy lines of
one view of a real QEMU 10 log are removed, so the view stays live after newer views of
its root were built.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

import qtrace
from qtrace.model import Analysis, analyze

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "traces"
BOOT = SHARED / "pc-boot.simpletrace"
MIXED = SHARED / "pc-bridges-mixed.simpletrace"
QEMU10_LOG = SHARED / "qemu10-pc-bridges-ts.log"
TRACE_EVENTS = SHARED / "trace-events-all"
DATA_RE = re.compile(r'<script type="application/json" id="qtrace-data">(.*?)</script>', re.S)
INSTANCES_RE = re.compile(
    r'<script type="application/octet-stream" id="qtrace-instances">(.*?)</script>', re.S
)


@dataclass(frozen=True)
class LeakSample:
    """A log with one view made to leak, and which view that is."""

    path: Path
    view: int
    root: int
    new_line: int


def make_leak_log(source: Path, target: Path) -> LeakSample:
    """Copy ``source`` without the destroy_rcu and destroy lines of one early freed view.

    The view picked has a pointer QEMU never reused (a reuse would end it as *lost*) and a
    root that gets newer views afterwards (so it is a leak, not the current view).
    """
    trace = qtrace.read_trace(source)
    views = analyze(trace).views
    reused = views.group_by("run", "view").len().filter(pl.col("len") > 1)
    victim = (
        views.join(reused, on=["run", "view"], how="anti")
        .filter((pl.col("status") == "freed") & (pl.col("root") != 0))
        .sort("new_seq")
        .row(10, named=True)
    )
    drop_lines = set(
        trace.events.filter(pl.col("seq").is_in([victim["rcu_seq"], victim["destroy_seq"]]))
        .get_column("line")
        .to_list()
    )
    assert len(drop_lines) == 2
    lines = source.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(text for n, text in enumerate(lines, 1) if n not in drop_lines))
    return LeakSample(target, int(victim["view"]), int(victim["root"]), int(victim["line"]))


def make_bare_log(source: Path, target: Path) -> Path:
    """The same log without ``TID@SEC.USEC:`` prefixes: no clock, as QEMU 6-10 writes by default."""
    text = source.read_text()
    target.write_text(re.sub(r"(?m)^\d+@\d+\.\d+:", "", text))
    return target


def page_data(page: str) -> dict[str, Any]:
    """The JSON the page renders from (figures, lanes, config)."""
    found = DATA_RE.search(page)
    assert found is not None, "the page has no qtrace-data script"
    data: dict[str, Any] = dict(json.loads(found.group(1)))
    return data


def page_instances(page: str) -> str:
    """The page's packed instances (base64), which its zoom script unpacks."""
    found = INSTANCES_RE.search(page)
    assert found is not None, "the page carries no packed instances"
    return found.group(1)


def figure(page: str, div_id: str) -> dict[str, Any]:
    (found,) = [f for f in page_data(page)["figures"] if f["id"] == div_id]
    return found


def load_bench() -> Any:
    """bench/bench_dashboard.py as a module (its repeated real trace makes big inputs)."""
    bench = str(ROOT / "bench")
    if bench not in sys.path:  # its sibling modules, as when it runs as a script
        sys.path.append(bench)
    spec = importlib.util.spec_from_file_location(
        "bench_dashboard", ROOT / "bench" / "bench_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def analyse(path: Path, **kwargs: Any) -> Analysis:
    return analyze(qtrace.read_trace(path, **kwargs))
