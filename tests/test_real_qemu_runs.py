"""A qtest-style log made on every CI run: several fresh QEMU processes in one file.

Debian ships no qtests, so this does what a meson testlog.txt with QTEST_TRACE='flatview_*'
holds: real QEMU runs one after another, with the runner's own lines between them. The
model must split it at each nil-root flatview_new and find no leak in any run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from qemu_harness import Boot, Plug, QemuHarnessError, Reset, Unplug, run_qemu_trace

import qtrace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def testlog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """Three real runs (boot; hotplug; bridges) written as one meson-like test log."""
    out = tmp_path_factory.mktemp("qtest")
    scenarios = [
        ("boot", (Boot(),), ()),
        ("hotplug", (Boot(), Plug("e1000", "nic1", slot=5), Reset(), Unplug("nic1", slot=5)), ()),
        ("bridge", (Boot(),), ("-device", "pci-bridge,id=br1,chassis_nr=1")),
    ]
    chunks: list[str] = []
    views_per_run: list[int] = []
    for number, (name, scenario, extra) in enumerate(scenarios, start=1):
        try:
            run = run_qemu_trace(out / f"{name}.log", scenario=scenario, extra_args=extra)
        except QemuHarnessError as exc:
            pytest.fail(str(exc))
        text = run.log_path.read_text()
        views_per_run.append(text.count(":flatview_new "))
        chunks.append(f"==================================== {number}/3 ====\n")
        chunks.append(f"test:         qemu:qtest+qtest-x86_64 / qtest-x86_64/{name}\n")
        chunks.append(text)
        chunks.append(f"ok {number} /x86_64/{name}\n")
    path = out / "testlog.txt"
    path.write_text("".join(chunks))
    return path, views_per_run


def test_testlog_splits_into_its_runs_without_false_leaks(testlog: tuple[Path, list[int]]) -> None:
    path, views_per_run = testlog
    trace = qtrace.read_trace(path)
    assert trace.lines_skipped >= 3 * 3  # the runner's own lines are counted, not fatal
    analysis = qtrace.analyze(trace)
    assert analysis.runs == 3
    per_run = analysis.views.group_by("run").len().sort("run")["len"].to_list()
    assert per_run == views_per_run
    statuses = analysis.views["status"].value_counts()
    counts = dict(zip(statuses["status"].to_list(), statuses["count"].to_list(), strict=True))
    assert counts.get("leaked", 0) == 0
    assert counts["immortal"] == 3  # one empty view per QEMU process
    assert analysis.anomalies.height == 0
