"""Dashboards opened in a real headless Chromium (Debian's /usr/bin/chromium over DevTools).

Checks what only a browser can: the page renders with no console error and no network,
every figure holds its traces, hover shows a known instance, the leak table lists the leak,
zooming the timeline zooms the concurrency figure, the root dropdown focuses every view,
and a file name with markup stays text. On a million-instance storm: every lane with
activity has marks in a screenshot, a 1 ms zoom draws single views with exact hovers, a
wider one is re-bucketed, and zooming out restores the page; on real traces with the
aggregate forced, the browser's buckets and hovers are exactly the Python side's. Saves
screenshots in build/screenshots/ (CI artifacts).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
import polars as pl
import pytest
from browser import Chromium, Page, chromium, open_dashboard, png_pixels
from dashboard_samples import (
    BOOT,
    MIXED,
    QEMU10_LOG,
    TRACE_EVENTS,
    LeakSample,
    analyse,
    load_bench,
    make_bare_log,
    make_leak_log,
    page_data,
)
from model_traces import trace as model_trace
from qtrace.dashboards import aggregate, marker_events, packing, write_dashboard
from qtrace.dashboards.inputs import lanes, time_axis
from qtrace.dashboards.instances import instance_phases

import qtrace
from qtrace.events import conform
from qtrace.model import analyze
from qtrace.names.join import name_analysis

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
SCREENSHOT = SHOTS / "dashboard.png"
SAMPLES = ROOT / "samples"
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


QUOTED_NAME = "io \"q\" & 'x' <b>y</b>"  # quotes, an ampersand and a tag, in a root's name


def test_names_with_quotes_and_markup_read_as_written_in_hovers_and_labels(
    browser: Chromium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one HTML escaper serves Plotly too: Plotly decodes its numeric quote references,
    so a name or file name with quotes, ``&`` and a tag reads as written in a hover, a lane
    label and the root dropdown; the zoom script's hovers escape exactly as Python's."""
    folder = tmp_path / 'it\'s "here" & <i>'
    folder.mkdir()
    log = folder / "qemu10.log"
    shutil.copy(QEMU10_LOG, log)
    roots = QEMU10_LOG.with_name("qemu10-pc-bridges-ts.roots.txt").read_text()
    quoted = roots.replace(
        "0x563e2d163c20 pci_bridge_io", f"0x563e2d163c20 {json.dumps(QUOTED_NAME)}"
    )
    assert quoted != roots
    (tmp_path / "roots.txt").write_text(quoted)
    analysis = qtrace.analyze(
        qtrace.read_trace(log), names=qtrace.read_names(tmp_path / "roots.txt")
    )
    page, _ = open_dashboard(browser, write_dashboard(analysis, tmp_path / "quoted.html"))
    assert_clean(page)
    shown: dict[str, Any] = page.evaluate(
        """(() => {
          const gd = document.getElementById('qtrace-timeline');
          const c = gd.data.findIndex(t => t.name && t.name.startsWith('live (') &&
            (t.hovertext || []).some(h => h.includes('0x563e2d163c20')));
          const p = gd.data[c].hovertext.findIndex(h => h.includes('0x563e2d163c20'));
          Plotly.Fx.hover(gd, [{curveNumber: c, pointNumber: p}]);
          return {
            hover: document.querySelector('#qtrace-timeline .hoverlayer').textContent,
            ticks: Array.from(document.querySelectorAll('#qtrace-timeline .ytick text'))
              .map(t => t.textContent),
            options: Array.from(document.getElementById('qtrace-root').options)
              .map(o => o.text),
          };
        })()"""
    )
    assert QUOTED_NAME in shown["hover"] and f"{folder}/qemu10.log:" in shown["hover"]
    assert "&#" not in shown["hover"] and "&amp;" not in shown["hover"]
    assert f"{QUOTED_NAME} 0x563e2d163c20" in shown["ticks"]
    assert f"{QUOTED_NAME} 0x563e2d163c20" in shown["options"]
    # The zoom script (forced to run on this small trace) writes the same hovers as Python.
    monkeypatch.setattr(aggregate, "DETAIL_INSTANCES", 50)
    html = write_dashboard(analysis, tmp_path / "forced.html")
    page, _ = open_dashboard(browser, html)
    full = page_data(html.read_text())["fullXRange"]
    traces: list[dict[str, Any]] = page.evaluate(
        f"window.qtraceZoom.singles([{full[0] - 1}, {full[1] + 1}])"
    )
    hovers = sorted(h for t in traces if t["meta"]["category"] in LIVE_KEYS for h in t["hovertext"])
    named = analysis.views.join(
        lanes(analysis).select("run", "root", "root_label"), on=["run", "root"], how="left"
    )
    expected = sorted(instance_phases(named, time_axis(analysis)).get_column("hover").to_list())
    assert hovers == expected and any("&#34;q&#34; &amp; &#39;x&#39;" in h for h in hovers)


def test_aggregated_big_trace_renders(browser: Chromium, tmp_path: Path) -> None:
    events = conform(load_bench().repeated_trace(MIXED, 12_000))
    html = write_dashboard(analyze(events), tmp_path / "big.html")
    page, _ = open_dashboard(browser, html)
    assert_clean(page)
    types: list[str] = page.evaluate(
        "document.getElementById('qtrace-timeline').data.map(t => t.type)"
    )
    assert types.count("heatmap") == 2  # views born / live, and RCU pending
    assert page.evaluate("document.querySelectorAll('#qtrace-timeline .hm image').length") == 2


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


# ---- a million instances: the storm (bench_dashboard.storm_trace) ----


@dataclass(frozen=True)
class Million:
    """The storm's page open in Chromium, and what the tests check it against."""

    page: Page
    html: Path
    roots: list[int]
    views: pl.DataFrame  # lane, times relative to the origin, seqs, pointers, durations
    home: str  # the timeline's data as first drawn (JSON)
    end_ns: int  # where open phases stop (relative)
    lane_of: dict[int, int]  # root pointer -> lane


@pytest.fixture(scope="module")
def million(browser: Chromium, tmp_path_factory: pytest.TempPathFactory) -> Million:
    folder = tmp_path_factory.mktemp("million")
    storm = load_bench().storm_trace(folder / "storm.trace", 1_000_000)
    analysis = analyze(qtrace.read_trace(storm.path))
    html = write_dashboard(analysis, folder / "storm.html")
    storm.path.unlink()
    axis, lane_table = time_axis(analysis), lanes(analysis)
    views = analysis.views.join(lane_table.select("run", "root", "lane"), on=["run", "root"])
    views = views.select(
        "lane",
        "view",
        "status",
        "new_seq",
        "live_ns",
        "grace_ns",
        *[
            (pl.col(f"{stem}_ts_ns") - axis.origin).alias(stem)
            for stem in ("new", "rcu", "destroy", "life_end")
        ],
    )
    del analysis
    page, _ = open_dashboard(browser, html, width=1280, height=1800)
    home: str = page.evaluate("JSON.stringify(document.getElementById('qtrace-timeline').data)")
    lane_of = dict(lane_table.select("root", "lane").rows())
    return Million(page, html, storm.roots, views, home, axis.end - axis.origin, lane_of)


def zoom_state(page: Page) -> dict[str, str]:
    state: dict[str, str] = page.evaluate(
        "Object.fromEntries(Array.from(document.getElementById('qtrace-zoom-state').attributes)"
        ".map(a => [a.name, a.value]))"
    )
    return state


def zoom_to(page: Page, x_range: list[float] | None) -> dict[str, str]:
    """Relayout the timeline to ``x_range`` (seconds; None: autorange) and wait for the redraw."""
    before = int(zoom_state(page).get("data-serial", "0"))
    update = {"xaxis.autorange": True} if x_range is None else {"xaxis.range": x_range}
    page.evaluate(
        "Plotly.relayout(document.getElementById('qtrace-timeline'), "
        f"{json.dumps(update)}).then(() => true)"
    )
    started = time.monotonic()
    while int(zoom_state(page).get("data-serial", "0")) <= before:
        assert time.monotonic() - started < 60, page.console_errors
        time.sleep(0.05)
    assert page.console_errors == []
    return zoom_state(page)


def marks(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Pixels that are a mark: coloured, or dark; never white, the lane shading or grid greys."""
    rgb = pixels[..., :3].astype(np.int16)
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
    luma = rgb.mean(axis=-1)
    marked: npt.NDArray[np.bool_] = (chroma > 25) | (luma < 190)
    return marked


def test_million_page_is_small_and_has_a_mark_in_every_active_bucket_of_every_lane(
    million: Million, browser: Chromium
) -> None:
    page = million.page
    assert_clean(page)
    assert million.html.stat().st_size <= 20_000_000
    assert zoom_state(page)["data-mode"] == "home"
    shot = page.screenshot(SHOTS / "dashboard-1m.png", element="qtrace-timeline")
    pixels = marks(png_pixels(browser, shot.read_bytes()))
    # Where Plotly drew each lane's two rows and each bucket, in the screenshot's pixels.
    drawn: dict[str, Any] = page.evaluate(
        """(() => {
          const gd = document.getElementById('qtrace-timeline'), L = gd._fullLayout;
          const row = k => gd.data.find(t => t.meta && t.meta.row === k);
          const born = row('born'), pending = row('pending');
          return {left: L._size.l, top: L._size.t, width: L._size.w,
            born: born.y.map(y => L.yaxis.l2p(y)), pending: pending.y.map(y => L.yaxis.l2p(y)),
            edges: born.x.map(x => L.xaxis.l2p(x)),
            active: born.customdata.filter((_, i) => i % 2 === 0).map(
              (r, lane) => r.map((c, b) => c !== null ||
                pending.z[2 * lane][b] !== null).map(Number))};
        })()"""
    )
    top, left, lanes_drawn = drawn["top"], drawn["left"], len(drawn["active"])
    assert lanes_drawn == 41  # 40 roots and the empty view's
    assert drawn["width"] >= len(drawn["edges"]) - 1  # no bucket narrower than a pixel
    blank = []
    for lane, active in enumerate(drawn["active"]):
        y0 = round(top + min(drawn["born"][2 * lane : 2 * lane + 2]))
        y1 = round(top + max(drawn["pending"][2 * lane : 2 * lane + 2]))
        band = pixels[y0:y1]
        assert active.count(1) > 0 and band.any(), f"lane {lane} is empty"
        for bucket, on in enumerate(active):
            x0 = int(left + drawn["edges"][bucket])
            x1 = max(int(left + drawn["edges"][bucket + 1] + 0.999), x0 + 1)
            if on and not band[:, x0:x1].any():
                blank.append((lane, bucket))
    assert blank == []
    # The quiet root with one instance in 11 s: one active bucket, and it shows.
    quiet = million.lane_of[million.roots[-4]]
    assert million.views.filter(pl.col("lane") == quiet).height == 1
    assert drawn["active"][quiet].count(1) == 1


def test_a_one_millisecond_window_draws_single_views_with_exact_hovers(
    million: Million,
) -> None:
    page = million.page
    views = million.views
    busiest = million.lane_of[million.roots[0]]
    picked = views.filter(
        (pl.col("lane") == busiest)
        & (pl.col("status") == "freed")
        & (pl.col("new") > 5_000_000_000)
    ).row(0, named=True)
    window = [(picked["new"] - 400_000) / 1e9, (picked["new"] + 600_000) / 1e9]
    state = zoom_to(page, window)
    lo, hi = window[0] * 1e9, window[1] * 1e9
    finish = pl.coalesce("life_end", pl.lit(million.end_ns))
    expected = views.filter((pl.col("new") <= hi) & (finish >= lo)).height
    assert state["data-mode"] == "singles"
    assert int(state["data-instances"]) == expected and 0 < expected <= 5_000
    traces: list[dict[str, Any]] = page.evaluate(
        "document.getElementById('qtrace-timeline').data.map(t => ({type: t.type, "
        "role: t.meta && t.meta.role, n: (t.x || []).length, visible: t.visible, "
        "name: t.name}))"
    )
    assert "heatmap" not in {t["type"] for t in traces}
    assert all(t["visible"] is False for t in traces if t["role"] == "instances")
    live_bars = sum(
        t["n"]
        for t in traces
        if t["role"] == "zoom-instances" and "pending" not in t["name"] and "RCU" not in t["name"]
    )
    assert live_bars == expected
    where: dict[str, Any] = page.evaluate(
        f"""(() => {{
          const gd = document.getElementById('qtrace-timeline');
          for (let c = 0; c < gd.data.length; c++) {{
            const t = gd.data[c];
            if (!t.meta || t.meta.role !== 'zoom-instances' || t.meta.category !== 'live') continue;
            const p = t.hovertext.findIndex(h => h.includes('view 0x{picked["view"]:x}<'));
            if (p >= 0) return {{curve: c, point: p}};
          }}
          return null;
        }})()"""
    )
    assert where is not None
    shown: str = page.evaluate(
        f"""(() => {{
          const gd = document.getElementById('qtrace-timeline');
          Plotly.Fx.hover(gd, [{{curveNumber: {where["curve"]}, pointNumber: {where["point"]}}}]);
          return document.querySelector('#qtrace-timeline .hoverlayer').textContent;
        }})()"""
    )
    assert f"new +{picked['new']} ns (seq {picked['new_seq']})" in shown
    assert f"destroy_rcu +{picked['rcu']} ns" in shown
    assert f"live {picked['live_ns']} ns" in shown and f"RCU grace {picked['grace_ns']} ns" in shown
    page.screenshot(SHOTS / "dashboard-1m-1ms.png", element="qtrace-timeline")
    page.evaluate("Plotly.Fx.unhover(document.getElementById('qtrace-timeline')) || true")
    # The concurrency lines are exact steps: the view's birth is a step of its root's line.
    line: dict[str, Any] = page.evaluate(
        "(() => { const t = document.getElementById('qtrace-concurrency').data.find("
        f"t => t.meta.lane === {busiest} && t.meta.row === 'live');"
        " return {x: t.x, y: t.y}; })()"
    )
    at = line["x"].index(picked["new"] / 1e9)
    assert line["y"][at] >= 1 and line["x"][0] == window[0] and line["x"][-1] == window[1]


def test_a_wider_window_is_re_bucketed_for_the_window(million: Million) -> None:
    page = million.page
    window = [2.0, 2.25]
    state = zoom_to(page, window)
    assert state["data-mode"] == "aggregate"
    width = page.evaluate("document.getElementById('qtrace-timeline')._fullLayout._size.w")
    buckets = int(state["data-buckets"])
    assert buckets == min(aggregate.BUCKETS, int(width))
    born: dict[str, Any] = page.evaluate(
        "(() => { const t = document.getElementById('qtrace-timeline').data.find("
        "t => t.meta && t.meta.row === 'born'); return {x: t.x, custom: t.customdata}; })()"
    )
    assert born["x"][0] == window[0] and len(born["x"]) == buckets + 1
    counted = sum(c[0] for row in born["custom"][::2] for c in row if c)
    lo, hi = window[0] * 1e9, window[1] * 1e9
    assert counted == million.views.filter((pl.col("new") >= lo) & (pl.col("new") < hi)).height
    lines = page.evaluate(
        "document.getElementById('qtrace-concurrency').data.filter(t => t.meta.lane >= 0)"
        ".map(t => t.x.length)"
    )
    assert set(lines) == {buckets + 1}
    # Hovering a bucket tells what happened in it.
    shown: list[Any] = page.evaluate(
        """(() => {
          const gd = document.getElementById('qtrace-timeline');
          const c = gd.data.findIndex(t => t.meta && t.meta.row === 'born'), t = gd.data[c];
          const row = 2, col = t.customdata[row].findIndex(x => x && x[0] > 1);
          Plotly.Fx.hover(gd, {xval: (t.x[col] + t.x[col + 1]) / 2,
                               yval: (t.y[row] + t.y[row + 1]) / 2}, 'xy');
          const text = document.querySelector('#qtrace-timeline .hoverlayer').textContent;
          Plotly.Fx.unhover(gd);
          return [text, t.customdata[row][col]];
        })()"""
    )
    text, (born_count, live, pending, pinning) = shown
    assert f"{born_count} views born" in text and "bucket of" in text
    assert f"peak live {live} · RCU pending {pending} · pinning {pinning}" in text
    page.screenshot(SHOTS / "dashboard-1m-250ms.png", element="qtrace-timeline")


def test_a_page_without_its_instances_zooms_into_its_finer_buckets(
    browser: Chromium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trace too large to carry (forced here) carries finer levels of its buckets instead.
    monkeypatch.setattr(packing, "MAX_PACKED_INSTANCES", 0)
    storm = load_bench().storm_trace(tmp_path / "storm.trace", 50_000)
    analysis = analyze(qtrace.read_trace(storm.path))
    html = write_dashboard(analysis, tmp_path / "storm.html")
    zoom = page_data(html.read_text())["zoom"]
    assert zoom["packed"] is None and len(zoom["pyramid"]["levels"]) >= 2
    page, _ = open_dashboard(browser, html, width=1280, height=1200)
    assert_clean(page)
    window = [2.0, 2.05]
    state = zoom_to(page, window)
    assert state["data-mode"] == "levels"
    width = page.evaluate("document.getElementById('qtrace-timeline')._fullLayout._size.w")
    buckets = int(state["data-buckets"])
    assert 0 < buckets <= width
    born: dict[str, Any] = page.evaluate(
        "(() => { const t = document.getElementById('qtrace-timeline').data.find("
        "t => t.meta && t.meta.row === 'born'); return {x: t.x, custom: t.customdata}; })()"
    )
    edges = born["x"]
    assert len(edges) == buckets + 1 and edges[0] <= window[0] < window[1] <= edges[-1]
    # The buckets are the finer level's: finer than the page's own, and they count every
    # view born between their edges (positions relative to the trace start, in seconds).
    assert edges[1] - edges[0] < zoom["spanRaw"] / zoom["buckets"] / 1e9
    origin = time_axis(analysis).origin
    starts = analysis.views.select((pl.col("new_ts_ns") - origin) / 1e9).to_series()
    counted = sum(c[0] for row in born["custom"][::2] for c in row if c)
    inside = int(((starts >= edges[0]) & (starts < edges[-1])).sum())
    assert abs(counted - inside) <= 2  # an instance on an edge may fall either side
    assert counted > 0
    text = page.evaluate("document.getElementById('qtrace-zoom-state').textContent")
    assert "The page holds buckets down to" in text
    page.screenshot(SHOTS / "dashboard-levels-50ms.png", element="qtrace-timeline")
    assert zoom_to(page, None)["data-mode"] == "home"


def test_zooming_back_out_restores_the_whole_trace(million: Million) -> None:
    page = million.page
    zoom_to(page, [3.0, 3.001])
    state = zoom_to(page, None)
    assert state["data-mode"] == "home"
    now: str = page.evaluate("JSON.stringify(document.getElementById('qtrace-timeline').data)")
    assert json.loads(now) == json.loads(million.home)
    assert f"Whole trace: {million.views.height:,} view instances" in page.evaluate(
        "document.getElementById('qtrace-zoom-state').textContent"
    )


def test_a_narrower_window_merges_the_buckets_to_stay_one_per_pixel(million: Million) -> None:
    page = million.page
    try:
        page.set_viewport(700, 1800)
        # A screenshot beyond the viewport can leave Chromium without a resize event of its
        # own: send one, as a window manager would.
        assert page.evaluate("document.documentElement.clientWidth") == 700
        page.evaluate("window.dispatchEvent(new Event('resize')) || true")
        started = time.monotonic()
        while True:
            state = zoom_state(page)
            width = page.evaluate("document.getElementById('qtrace-timeline')._fullLayout._size.w")
            if width < 600 and int(state["data-buckets"]) <= width:
                break
            assert time.monotonic() - started < 30, (state, width)
            time.sleep(0.1)
        assert state["data-mode"] == "home" and int(state["data-buckets"]) < 600
        born: dict[str, Any] = page.evaluate(
            "(() => { const t = document.getElementById('qtrace-timeline').data.find("
            "t => t.meta && t.meta.row === 'born'); return {x: t.x.length, "
            "births: t.customdata.flat().reduce((n, c) => n + (c ? c[0] : 0), 0)}; })()"
        )
        assert born["x"] == int(state["data-buckets"]) + 1
        assert born["births"] == million.views.height  # merged, nothing lost
    finally:
        page.set_viewport(1280, 1800)


def whole_cells(page: Page) -> dict[str, list[int]]:
    cells: dict[str, list[int]] = page.evaluate(
        "window.qtraceZoom.wholeCells().then(c => Object.fromEntries(["
        "'births', 'live', 'pending', 'pinning'].map(k => [k, Array.from(c[k])])))"
    )
    return cells


def page_cells(html: Path) -> dict[str, list[int]]:
    """The page's own whole-trace buckets, from its heatmap as Python wrote it."""
    (timeline,) = [f for f in page_data(html.read_text())["figures"] if f["id"] == TIMELINE]
    (born,) = [t for t in timeline["data"] if t["meta"].get("row") == "born"]
    rows = born["customdata"][::2]
    return {
        key: [(c[index] if c else 0) for row in rows for c in row]
        for index, key in enumerate(("births", "live", "pending", "pinning"))
    }


def test_the_browser_buckets_the_million_exactly_as_the_page(million: Million) -> None:
    assert whole_cells(million.page) == page_cells(million.html)


TIMELINE = "qtrace-timeline"


@pytest.mark.parametrize(
    "name", ["qemu10", "qemu10-named", "pc-boot.simpletrace", "bare", "multi-run.log"]
)
def test_on_real_traces_the_browser_buckets_and_hovers_as_python_does(
    name: str, browser: Chromium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = {
        "qemu10": QEMU10_LOG,
        "qemu10-named": QEMU10_LOG,
        "pc-boot.simpletrace": BOOT,
        "multi-run.log": SAMPLES / "multi-run.log",
    }
    path = sources.get(name) or make_bare_log(QEMU10_LOG, tmp_path / "bare.log")
    trace = qtrace.read_trace(path)
    analysis = analyze(trace)
    if name == "qemu10-named":  # the roots' names go under their pointers in every hover
        names = qtrace.read_names(QEMU10_LOG.with_name("qemu10-pc-bridges-ts.roots.txt"))
        analysis = name_analysis(analysis, trace.events, names)
        assert lanes(analysis).get_column("root_label").drop_nulls().len() > 0
    # A real trace is small: aggregate it anyway, so the zoom script runs on real data.
    monkeypatch.setattr(aggregate, "DETAIL_INSTANCES", 50)
    html = write_dashboard(analysis, tmp_path / "forced.html")
    page, _ = open_dashboard(browser, html)
    assert_clean(page)
    assert whole_cells(page) == page_cells(html)
    full = page_data(html.read_text())["fullXRange"]
    traces: list[dict[str, Any]] = page.evaluate(
        f"window.qtraceZoom.singles([{full[0] - 1}, {full[1] + 1}])"
    )
    go.Figure(data=traces)  # the script's bars are valid Plotly, as the page's are
    hovers = sorted(h for t in traces if t["meta"]["category"] in LIVE_KEYS for h in t["hovertext"])
    named = analysis.views.join(
        lanes(analysis).select("run", "root", "root_label"), on=["run", "root"], how="left"
    )
    expected = instance_phases(named, time_axis(analysis)).get_column("hover")
    assert hovers == sorted(expected.to_list())
    # A window in the middle holds the instances whose life meets it, drawn one by one when
    # few enough.
    axis = time_axis(analysis)
    window = [(full[0] + full[1]) / 2, (full[0] + full[1]) / 2 + (full[1] - full[0]) / 100]
    state = zoom_to(page, window)
    lo, hi = (w * axis.per_unit for w in window)
    meets = analysis.views.filter(
        (axis.point("new") - axis.origin <= hi)
        & (pl.coalesce(axis.point("life_end"), pl.lit(axis.end)) - axis.origin >= lo)
    ).height
    assert int(state["data-instances"]) == meets
    assert state["data-mode"] == ("singles" if meets <= 50 else "aggregate")


LIVE_KEYS = ("live", "current", "immortal", "lost", "leaked")
