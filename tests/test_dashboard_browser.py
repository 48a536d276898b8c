"""Dashboards opened in a real headless Chromium (Debian's /usr/bin/chromium over DevTools).

Checks what only a browser can: the page renders with no console error and no network,
every figure holds its traces, hover shows a known instance, the leak table lists the leak,
zooming the timeline zooms the concurrency figure, the root dropdown focuses every view,
and a file name with markup stays text. Saves build/screenshots/dashboard.png (CI artifact).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from browser import Chromium, Page, chromium, open_dashboard
from dashboard_samples import (
    BOOT,
    MIXED,
    QEMU10_LOG,
    TRACE_EVENTS,
    LeakSample,
    analyse,
    load_bench,
    make_leak_log,
    page_data,
)
from model_traces import trace as model_trace
from qtrace.dashboards import marker_events, write_dashboard

import qtrace
from qtrace.events import conform
from qtrace.model import analyze

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "build" / "screenshots" / "dashboard.png"
PLOT_IDS = ("qtrace-timeline", "qtrace-concurrency", "qtrace-live-hist", "qtrace-grace-hist")


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def leak(tmp_path_factory: pytest.TempPathFactory) -> LeakSample:
    return make_leak_log(QEMU10_LOG, tmp_path_factory.mktemp("leak") / "qemu10-leak.log")


@pytest.fixture(scope="module")
def leak_page(
    browser: Chromium, leak: LeakSample, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Page, Path]:
    trace = qtrace.read_trace(leak.path)
    html = write_dashboard(
        analyze(trace),
        tmp_path_factory.mktemp("pages") / "leak.html",
        replay=analyze(trace, root_release="destroy_rcu"),
    )
    page, _ = open_dashboard(browser, html)
    return page, html


def rendered_trace_counts(page: Page) -> dict[str, int]:
    counts: dict[str, int] = page.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('.plot'))"
        ".map(d => [d.id, d.data ? d.data.length : -1]))"
    )
    return counts


def drawn_bars(page: Page) -> int:
    """SVG bar paths Plotly actually drew in the timeline."""
    count: int = page.evaluate(
        "document.querySelectorAll('#qtrace-timeline .barlayer .point').length"
    )
    return count


def assert_clean(page: Page) -> None:
    assert page.console_errors == []
    assert page.dialogs == []
    # Offline: the page itself is the only thing loaded.
    assert all(url.startswith(("file://", "data:", "about:")) for url in page.requests), (
        page.requests
    )


def test_sample_page_renders_every_figure_offline(browser: Chromium, tmp_path: Path) -> None:
    analysis = analyse(BOOT)
    html = write_dashboard(analysis, tmp_path / "boot.html")
    page, _ = open_dashboard(browser, html)
    assert_clean(page)
    expected = {f["id"]: len(f["data"]) for f in page_data(html.read_text())["figures"]}
    assert rendered_trace_counts(page) == expected
    assert set(expected) == set(PLOT_IDS) and all(n > 0 for n in expected.values())
    # Every instance's live bar (and every freed one's RCU tail) was drawn.
    assert drawn_bars(page) == analysis.views.height + 253


def test_hovering_a_known_instance_shows_its_pointer_and_exact_times(
    browser: Chromium, tmp_path: Path
) -> None:
    analysis = analyse(BOOT)
    live_ns = analysis.views.filter(pl.col("view") == 0x56181CEF0260)["live_ns"].item()
    html = write_dashboard(analysis, tmp_path / "boot.html")
    page, _ = open_dashboard(browser, html)
    where: dict[str, Any] = page.evaluate(
        """(() => {
          const gd = document.getElementById('qtrace-timeline');
          for (let c = 0; c < gd.data.length; c++) {
            const texts = gd.data[c].hovertext || [];
            for (let p = 0; p < texts.length; p++) {
              if (texts[p] && texts[p].includes('view 0x56181cef0260') &&
                  gd.data[c].name.startsWith('live (')) {
                return {curve: c, point: p, text: texts[p]};
              }
            }
          }
          return null;
        })()"""
    )
    assert where is not None and "generation 0" in where["text"]
    shown: str = page.evaluate(
        f"""(() => {{
          const gd = document.getElementById('qtrace-timeline');
          Plotly.Fx.hover(gd, [{{curveNumber: {where["curve"]}, pointNumber: {where["point"]}}}]);
          return document.querySelector('.hoverlayer').textContent;
        }})()"""
    )
    assert "view 0x56181cef0260" in shown and f"live {live_ns} ns" in shown
    assert page.console_errors == []


def test_leak_table_lists_the_leaked_view_with_its_source_line(
    leak_page: tuple[Page, Path], leak: LeakSample
) -> None:
    page, _ = leak_page
    assert_clean(page)
    rows: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('#qtrace-leaks tbody tr')).map(r => r.innerText)"
    )
    assert len(rows) == 1
    assert f"0x{leak.view:x}" in rows[0] and f"qemu10-leak.log:{leak.new_line}" in rows[0]
    verdict: str = page.evaluate("document.getElementById('qtrace-verdict').innerText")
    assert "1 leaked view" in verdict


def test_zooming_the_timeline_zooms_the_concurrency_figure(
    leak_page: tuple[Page, Path],
) -> None:
    page, _ = leak_page
    before = page.evaluate(
        "document.getElementById('qtrace-concurrency').layout.xaxis.range.slice()"
    )
    page.evaluate(
        "Plotly.relayout(document.getElementById('qtrace-timeline'),"
        " {'xaxis.range': [0.5, 0.75]}).then(() => true)"
    )
    page.drain(0.5)
    after = page.evaluate(
        "[document.getElementById('qtrace-concurrency').layout.xaxis.range.slice(),"
        " document.getElementById('qtrace-concurrency')._fullLayout.xaxis3.range.slice()]"
    )
    assert after[0] == [0.5, 0.75] != before
    assert after[1] == [0.5, 0.75]  # the shared axis of the lower rows follows too
    # And back: zooming the concurrency figure moves the timeline.
    page.evaluate(
        "Plotly.relayout(document.getElementById('qtrace-concurrency'),"
        " {'xaxis.range': [1, 2]}).then(() => true)"
    )
    page.drain(0.5)
    assert page.evaluate(
        "document.getElementById('qtrace-timeline').layout.xaxis.range.slice()"
    ) == [1, 2]
    assert page.console_errors == []


def test_root_dropdown_focuses_every_view(leak_page: tuple[Page, Path], leak: LeakSample) -> None:
    page, html = leak_page
    data = page_data(html.read_text())
    lane: str = page.evaluate(
        f"""(() => {{
          const select = document.getElementById('qtrace-root');
          const option = Array.from(select.options).find(o => o.text === '0x{leak.root:x}');
          select.value = option.value;
          select.dispatchEvent(new Event('change'));
          return option.value;
        }})()"""
    )
    page.drain(0.5)
    state: dict[str, Any] = page.evaluate(
        """(() => {
          const conc = document.getElementById('qtrace-concurrency');
          const hist = document.getElementById('qtrace-live-hist');
          return {
            yrange: document.getElementById('qtrace-timeline').layout.yaxis.range,
            concLanes: conc.data.filter(t => t.visible !== false).map(t => String(t.meta.lane)),
            histLanes: hist.data.filter(t => t.visible !== false).map(t => String(t.meta.lane)),
            leakRows: document.querySelectorAll('#qtrace-leaks tbody tr:not([hidden])').length,
            rootRows: document.querySelectorAll('#qtrace-roots tbody tr:not([hidden])').length,
          };
        })()"""
    )
    assert state["yrange"] == data["laneRanges"][lane]
    assert state["concLanes"] and set(state["concLanes"]) == {lane}
    assert state["histLanes"] == [lane]
    assert state["leakRows"] == 1 and state["rootRows"] == 1
    page.evaluate(
        "(() => { const s = document.getElementById('qtrace-root'); s.value = '';"
        " s.dispatchEvent(new Event('change')); return true; })()"
    )
    page.drain(0.3)
    assert page.evaluate("document.querySelectorAll('#qtrace-roots tbody tr[hidden]').length") == 0


def test_clicking_a_header_sorts_the_table(leak_page: tuple[Page, Path]) -> None:
    page, _ = leak_page

    def column() -> list[int]:
        values: list[int] = page.evaluate(
            "Array.from(document.querySelectorAll('#qtrace-roots tbody tr'))"
            ".map(r => Number(r.cells[1].getAttribute('data-v')))"
        )
        return values

    page.evaluate("document.querySelectorAll('#qtrace-roots th')[1].click() || true")
    ascending = column()
    assert ascending == sorted(ascending) and len(set(ascending)) > 1
    page.evaluate("document.querySelectorAll('#qtrace-roots th')[1].click() || true")
    assert column() == sorted(ascending, reverse=True)


def test_markers_and_replay_render(browser: Chromium, tmp_path: Path) -> None:
    trace = qtrace.read_trace(
        MIXED, events="flatview_*,pci_update_mappings_*", trace_events=TRACE_EVENTS
    )
    html = write_dashboard(
        analyze(trace),
        tmp_path / "mixed.html",
        replay=analyze(trace, root_release="destroy_rcu"),
        markers=marker_events(trace.events, "pci_update_mappings_*"),
    )
    page, _ = open_dashboard(browser, html)
    assert_clean(page)
    names: list[str] = page.evaluate(
        "document.getElementById('qtrace-timeline').data.map(t => t.name)"
    )
    assert "pci_update_mappings_add · 13" in names
    lines = page.evaluate(
        "document.querySelectorAll('#qtrace-timeline .scatterlayer .trace .js-line').length"
    )
    assert lines == 14  # one vertical line per pci_update_mappings_add/del event


def test_file_name_with_markup_shows_as_text(browser: Chromium, tmp_path: Path) -> None:
    evil_dir = tmp_path / "<script>alert(1)<"
    evil_dir.mkdir()
    evil = evil_dir / "script>.log"
    shutil.copy(QEMU10_LOG, evil)
    html = write_dashboard(analyse(evil), tmp_path / "evil.html")
    page, _ = open_dashboard(browser, html)
    assert_clean(page)
    title: str = page.evaluate("document.querySelector('h1').textContent")
    assert title.endswith("<script>alert(1)</script>.log")
    # plotly.js, the data, the sort script and the page script: none from the file name.
    assert page.evaluate("document.querySelectorAll('script').length") == 4


def test_aggregated_big_trace_renders(browser: Chromium, tmp_path: Path) -> None:
    events = conform(load_bench().repeated_trace(MIXED, 12_000))
    html = write_dashboard(analyze(events), tmp_path / "big.html")
    page, _ = open_dashboard(browser, html)
    assert_clean(page)
    types: list[str] = page.evaluate(
        "document.getElementById('qtrace-timeline').data.map(t => t.type)"
    )
    assert "heatmap" in types
    assert page.evaluate("document.querySelectorAll('#qtrace-timeline .hm image').length") == 1


def test_screenshot_of_the_leak_sample(browser: Chromium, leak_page: tuple[Page, Path]) -> None:
    _, html = leak_page
    page, _ = open_dashboard(browser, html)  # a fresh page: other tests zoomed the shared one
    assert_clean(page)
    shot = page.screenshot(SCREENSHOT)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 800)


def test_focusing_a_root_without_lines_of_its_own_shows_the_other_roots(
    browser: Chromium, tmp_path: Path
) -> None:
    lines = []
    for run in range(40):  # 40 runs with two roots each: more roots than get lines of their own
        base = run * 16 + 1
        lines += [f"new {base:x} nil", f"new {base + 1:x} 10", f"new {base + 2:x} 20"]
    html = write_dashboard(analyze(model_trace("\n".join(lines))), tmp_path / "runs.html")
    data = page_data(html.read_text())
    page, _ = open_dashboard(browser, html)
    assert_clean(page)
    lane = next(
        str(lane)
        for lane in range(120)
        if str(lane) not in data["ownLanes"] and lane % 3  # not a nil-root lane
    )
    state: dict[str, Any] = page.evaluate(
        f"""(() => {{
          const select = document.getElementById('qtrace-root');
          select.value = '{lane}';
          select.dispatchEvent(new Event('change'));
          const conc = document.getElementById('qtrace-concurrency');
          const hist = document.getElementById('qtrace-grace-hist');
          return {{
            conc: conc.data.filter(t => t.visible !== false).map(t => t.meta.lane),
            hist: hist.data.filter(t => t.visible !== false).map(t => t.meta.lane),
          }};
        }})()"""
    )
    assert state["conc"] and set(state["conc"]) == {-2}
    assert state["hist"] == [-1]
    assert page.console_errors == []
