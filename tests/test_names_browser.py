"""Names in the dashboard, in a real headless Chromium: the QEMU 10 trace with its roots file
and both hazard shapes inserted. Saves build/screenshots/names.png (CI artifact)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser import chromium, open_dashboard
from names_samples import ALIAS_IO, hazard_log
from qtrace.dashboards import marker_events

import qtrace

pytestmark = pytest.mark.slow

SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "screenshots" / "names.png"


def test_lanes_dropdown_hover_and_tables_name_the_roots(
    tmp_path: Path, shared_traces: Path
) -> None:
    log = hazard_log(shared_traces / "qemu10-pc-bridges-ts.log", tmp_path / "hazards.log")
    names = qtrace.read_names(shared_traces / "qemu10-pc-bridges-ts.roots.txt")
    trace = qtrace.read_trace(log, events="flatview_*,memory_region_finalize")
    html = qtrace.write_dashboard(
        qtrace.analyze(trace, names=names),
        tmp_path / "names.html",
        markers=marker_events(trace.events, "memory_region_finalize"),
    )
    label = f"pci_bridge_io (alias) {ALIAS_IO:#x}"
    with chromium() as browser:
        page, _ = open_dashboard(browser, html)
        assert page.console_errors == []
        shown: dict[str, Any] = page.evaluate(
            """(() => {
              const gd = document.getElementById('qtrace-timeline');
              const options = Array.from(document.getElementById('qtrace-root').options);
              const anomalies = gd.data.findIndex(t => t.meta && t.meta.role === 'anomalies');
              const point = gd.data[anomalies].hovertext.findIndex(
                t => t.includes('pinned by rcu_pending'));
              Plotly.Fx.hover(gd, [{curveNumber: anomalies, pointNumber: point}]);
              return {
                options: options.map(o => o.text),
                ticks: gd.layout.yaxis.ticktext,
                tickvals: gd.layout.yaxis.tickvals,
                hover: document.querySelector('.hoverlayer').textContent,
                hazardY: gd.data[anomalies].y[point],
                verdict: document.getElementById('qtrace-verdict').textContent,
                anomalyRows: Array.from(document.querySelectorAll('#qtrace-anomalies tbody tr'))
                  .map(r => r.textContent),
                rootRows: Array.from(document.querySelectorAll('#qtrace-roots tbody tr'))
                  .map(r => r.textContent),
              };
            })()"""
        )
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(SCREENSHOT)
    assert label in shown["options"] and label in shown["ticks"]
    assert "system 0x563e2c2e9c00" in shown["options"]
    # The hazard's marker sits on its root's lane and says what pinned the root.
    assert shown["hazardY"] == shown["tickvals"][shown["ticks"].index(label)]
    assert "pci_bridge_io [alias of pci_bridge_io]" in shown["hover"]
    assert "pinned by rcu_pending" in shown["hover"]
    assert sorted("rcu_pending" in row or "live" in row for row in shown["anomalyRows"]) == [
        True,
        True,
    ]
    assert any(label in row for row in shown["rootRows"])
    assert "1 of 2 finalize hazards removed by the early unref" in shown["verdict"]
