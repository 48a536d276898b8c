"""Fresh traces from the real Debian QEMU, read back with qtrace: what QEMU 7.2 really writes.

Each module fixture runs QEMU once (a few seconds): a SeaBIOS boot with no guest OS, then QMP
``device_add``, ``system_reset`` and ``device_del`` (acknowledged through the ACPI eject
register, as a guest would). CI installs QEMU (``make system-deps``); without it these tests
fail, on purpose.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from qemu_harness import (
    Boot,
    Plug,
    QemuHarnessError,
    QemuRun,
    Reset,
    Step,
    Unplug,
    qemu_version,
    run_qemu_trace,
)

import qtrace
from qtrace.events import FLATVIEW_DESTROY, FLATVIEW_DESTROY_RCU, FLATVIEW_NEW, Trace

pytestmark = pytest.mark.slow

HOTPLUG_SLOT = 5
# A line of the log backend with -msg timestamp=on (QEMU 6.0 - 10.0): TID@SEC.USEC:name args
TID_TIMESTAMP_LINE = re.compile(r"^(\d+)@(\d+)\.(\d{6}):(\w+) ")
BARE_LINE = re.compile(r"^(\w+) ")
# The log backend reads the clock before it takes the log lock, so two threads can write their
# lines in the other order; never seen in practice, allowed up to this much.
CROSS_THREAD_SLACK_NS = 1_000_000


def _run(
    out: Path, scenario: Sequence[Step], machine: str = "pc", timestamps: bool = True
) -> QemuRun:
    """One QEMU run; a missing or failing QEMU fails the test with QEMU's own words."""
    try:
        return run_qemu_trace(out, machine=machine, timestamps=timestamps, scenario=scenario)
    except QemuHarnessError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def hotplug_run(tmp_path_factory: pytest.TempPathFactory) -> QemuRun:
    scenario = (
        Boot(),
        Plug("e1000", "nic1", slot=HOTPLUG_SLOT),
        Reset(),
        Unplug("nic1", slot=HOTPLUG_SLOT),
        # More churn: with this second reset, 24 of 24 trial runs (two at a time on a loaded
        # 2-core machine) built 7 or more views at reused addresses after the device_add;
        # without it, some runs had only one.
        Reset(),
    )
    return _run(tmp_path_factory.mktemp("qemu") / "hotplug-ts.log", scenario)


@pytest.fixture(scope="module")
def hotplug_trace(hotplug_run: QemuRun) -> Trace:
    return qtrace.read_trace(hotplug_run.log_path, events="flatview_*,pci_update_mappings_*")


@pytest.fixture(scope="module")
def bare_run(tmp_path_factory: pytest.TempPathFactory) -> QemuRun:
    out = tmp_path_factory.mktemp("qemu") / "boot-bare.log"
    return _run(out, (Boot(),), machine="q35", timestamps=False)


def _flatview(trace: Trace) -> pl.DataFrame:
    return trace.events.filter(
        pl.col("event").is_in([FLATVIEW_NEW, FLATVIEW_DESTROY_RCU, FLATVIEW_DESTROY])
    )


def _step(run: QemuRun, prefix: str) -> tuple[int, int]:
    """The wall-clock window of the first step whose name starts with ``prefix``, in ns."""
    step = next(s for s in run.steps if s.name.startswith(prefix))
    return int(step.started_s * 1e9), int(step.ended_s * 1e9)


def test_debian_qemu_is_installed() -> None:
    try:
        version = qemu_version()
    except QemuHarnessError as exc:
        pytest.fail(str(exc))
    assert version.startswith("QEMU emulator version "), version


def test_raw_log_is_tid_timestamp_lines_only(hotplug_run: QemuRun) -> None:
    lines = hotplug_run.log_path.read_text().splitlines()
    assert lines, "QEMU wrote an empty trace"
    bad = [line for line in lines if not TID_TIMESTAMP_LINE.match(line)]
    assert bad == []
    assert lines[0].endswith("(root (nil))")
    assert TID_TIMESTAMP_LINE.match(lines[0])[4] == FLATVIEW_NEW  # type: ignore[index]


def test_timestamped_log_reads_as_tid_timestamp(hotplug_run: QemuRun, hotplug_trace: Trace) -> None:
    assert hotplug_trace.format == "log"
    assert hotplug_trace.dialect == "tid-timestamp"
    assert hotplug_trace.clock == "wall-us"
    assert hotplug_trace.lines_skipped == 0
    # The parser must see every line QEMU wrote: count them independently.
    lines = hotplug_run.log_path.read_text().splitlines()
    raw = Counter(m[4] for m in map(TID_TIMESTAMP_LINE.match, lines) if m is not None)
    parsed = dict(hotplug_trace.events.group_by("event").len().iter_rows())
    assert parsed == dict(raw)


def test_three_flatview_events_and_bar_mappings_are_present(hotplug_trace: Trace) -> None:
    counts = Counter(hotplug_trace.events["event"].to_list())
    assert counts[FLATVIEW_NEW] > 100  # a SeaBIOS boot alone builds a few hundred views
    assert counts[FLATVIEW_NEW] >= counts[FLATVIEW_DESTROY_RCU] >= counts[FLATVIEW_DESTROY] > 0
    assert counts["pci_update_mappings_add"] > 0
    assert counts["pci_update_mappings_del"] > 0


def test_first_view_is_the_immortal_empty_view(hotplug_trace: Trace) -> None:
    views = _flatview(hotplug_trace)
    first = views.row(0, named=True)
    assert first["event"] == FLATVIEW_NEW
    assert first["root"] == 0
    nil_root = views.filter(pl.col("root") == 0)
    assert nil_root.height == 1  # made once per process, and never destroyed
    assert views.filter(pl.col("view") == first["view"]).height == 1


def test_timestamps_are_ordered_and_inside_the_run(
    hotplug_run: QemuRun, hotplug_trace: Trace
) -> None:
    events = hotplug_trace.events
    ts_ns = events["ts_ns"]
    assert ts_ns.null_count() == 0
    assert ts_ns.min() >= int(hotplug_run.started_s * 1e6) * 1000  # type: ignore[operator]
    assert ts_ns.max() <= int(hotplug_run.ended_s * 1e9)  # type: ignore[operator]
    steps_back_ns = events.select(pl.col("ts_ns").diff().fill_null(0).clip(upper_bound=0).neg())
    assert steps_back_ns.max().item() <= CROSS_THREAD_SLACK_NS
    per_thread_back = events.select(
        pl.col("ts_ns").diff().over("tid").fill_null(0).min().alias("worst_step_ns")
    )
    assert per_thread_back.item() >= 0


def test_views_are_built_on_bql_threads_and_freed_on_the_rcu_thread(
    hotplug_run: QemuRun, hotplug_trace: Trace
) -> None:
    views = _flatview(hotplug_trace)
    main_tid = views["tid"][0]
    assert main_tid == hotplug_run.pid  # the empty view is built by the main thread
    destroy_tids = set(views.filter(pl.col("event") == FLATVIEW_DESTROY)["tid"].to_list())
    assert len(destroy_tids) == 1  # one RCU thread per process
    assert main_tid not in destroy_tids
    new_tids = set(views.filter(pl.col("event") == FLATVIEW_NEW)["tid"].to_list())
    assert main_tid in new_tids
    assert len(new_tids) >= 2  # the vCPU thread builds views too (SeaBIOS programming PCI)


def test_view_addresses_are_reused_after_hotplug(
    hotplug_run: QemuRun, hotplug_trace: Trace
) -> None:
    new = hotplug_trace.events.filter(pl.col("event") == FLATVIEW_NEW).with_columns(
        pl.int_range(pl.len()).over("view").alias("generation")
    )
    assert new["generation"].max() >= 1  # type: ignore[operator]
    plugged_ns, _ = _step(hotplug_run, "device_add")
    reused_later = new.filter((pl.col("generation") >= 1) & (pl.col("ts_ns") >= plugged_ns))
    assert reused_later.height >= 1


def test_device_add_and_eject_build_views(hotplug_run: QemuRun, hotplug_trace: Trace) -> None:
    events = hotplug_trace.events
    for step in ("device_add", "device_del"):
        start_ns, end_ns = _step(hotplug_run, step)
        during = events.filter(pl.col("ts_ns").is_between(start_ns, end_ns))
        counts = Counter(during["event"].to_list())
        assert counts[FLATVIEW_NEW] >= 1, step
        assert counts[FLATVIEW_DESTROY_RCU] >= 1, step
    # QEMU 7.2 sends DEVICE_DELETED from the device's finalizer, which runs when the RCU thread
    # frees what still referenced the device: after it started freeing the replaced views.
    start_ns, end_ns = _step(hotplug_run, "device_del")
    freed = events.filter(
        (pl.col("event") == FLATVIEW_DESTROY) & pl.col("ts_ns").is_between(start_ns, end_ns)
    )
    assert freed.height >= 1
    deleted = [e for e in hotplug_run.qmp_events if e["event"] == "DEVICE_DELETED"]
    assert [e["data"].get("device") for e in deleted] == ["nic1"]
    # QMP stamps events with the same wall clock as -msg timestamp=on.
    stamp = deleted[0]["timestamp"]
    deleted_ns = stamp["seconds"] * 1_000_000_000 + stamp["microseconds"] * 1000
    assert freed["ts_ns"].min() <= deleted_ns
    rebuilt = events.filter((pl.col("event") == FLATVIEW_NEW) & (pl.col("ts_ns") > deleted_ns))
    assert rebuilt.height >= 1  # the reset after the unplug rebuilds every view
    # SeaBIOS maps the hotplugged NIC's BARs on the reset: a real guest-visible remap.
    mapped = events.filter(
        (pl.col("event") == "pci_update_mappings_add")
        & pl.col("args").str.starts_with(f"e1000 00:{HOTPLUG_SLOT:02x}.0 ")
    )
    reset_ns, _ = _step(hotplug_run, "system_reset")
    assert mapped.height >= 2
    assert mapped["ts_ns"].min() >= reset_ns  # type: ignore[operator]


def test_bare_log_reads_in_line_order_without_a_clock(bare_run: QemuRun) -> None:
    lines = bare_run.log_path.read_text().splitlines()
    assert all(BARE_LINE.match(line) for line in lines)
    trace = qtrace.read_trace(bare_run.log_path)
    assert trace.dialect == "bare"
    assert trace.clock == "none"
    events = trace.events
    assert events["ts_ns"].null_count() == events.height
    # Only the FlatView events are kept by default; they keep their line numbers and order.
    flatview_lines = [n for n, line in enumerate(lines, start=1) if line.startswith("flatview_")]
    assert len(flatview_lines) > 100
    assert events["line"].to_list() == flatview_lines
    assert trace.lines_skipped == 0  # other events are not damage
    assert events.row(0, named=True)["root"] == 0
    assert events.filter(pl.col("root") == 0).height == 1


def _load_make_samples(samples: Path) -> ModuleType:
    """samples/make_samples.py as a module (it is a script, outside any package)."""
    if "make_samples" in sys.modules:
        return sys.modules["make_samples"]
    spec = importlib.util.spec_from_file_location("make_samples", samples / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_samples_readme_table_matches_the_files(samples: Path) -> None:
    make_samples = _load_make_samples(samples)
    readme = (samples / "README.md").read_text()
    for sample in make_samples.SAMPLES:
        assert make_samples.table_row(sample) in readme, f"{sample.file}: rerun make_samples.py"
    total_bytes = sum((samples / s.file).stat().st_size for s in make_samples.SAMPLES)
    assert total_bytes < make_samples.MAX_TOTAL_BYTES


def test_qtrace_counts_every_sample_as_an_independent_reading_does(samples: Path) -> None:
    make_samples = _load_make_samples(samples)
    for sample in make_samples.SAMPLES:
        path = samples / sample.file
        runs, non_trace_lines = make_samples.run_stats(path.read_text().splitlines())
        expected: Counter[str] = sum((run.events for run in runs), Counter())
        trace = qtrace.read_trace(path, events="flatview_*,pci_update_mappings_*")
        assert Counter(trace.events["event"].to_list()) == expected, sample.file
        assert trace.dialect == ("tid-timestamp" if sample.runs[0].timestamps else "bare")
        assert (trace.lines_skipped > 0) == (non_trace_lines > 0), sample.file
        nil_roots = trace.events.filter(
            (pl.col("event") == FLATVIEW_NEW) & (pl.col("root") == 0)
        ).height
        assert nil_roots == len(sample.runs), sample.file
