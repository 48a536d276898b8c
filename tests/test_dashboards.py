"""The dashboard page: content, offline, deterministic, escaped, and aggregated when big."""

from __future__ import annotations

import base64
import html
import re
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
import polars as pl
import pytest
import qtrace.dashboards as dashboards
from dashboard_samples import (
    BOOT,
    MIXED,
    QEMU10_LOG,
    TRACE_EVENTS,
    analyse,
    figure,
    load_bench,
    make_bare_log,
    make_leak_log,
    page_data,
    page_instances,
)
from model_traces import trace as model_trace
from plotly.offline import get_plotlyjs
from qtrace.dashboards import (
    aggregate,
    build_dashboard,
    marker_events,
    packing,
    pyramid,
    write_dashboard,
)
from qtrace.dashboards import page as page_module
from qtrace.dashboards.inputs import TimeAxis, as_int, lanes, time_axis
from qtrace.dashboards.packing import unpack

import qtrace
from qtrace.errors import InputError, UsageError
from qtrace.events import conform
from qtrace.model import Analysis, analyze

TIMELINE = "qtrace-timeline"
CONCURRENCY = "qtrace-concurrency"


@pytest.fixture(scope="module")
def boot_page() -> str:
    page: str = build_dashboard(analyse(BOOT))
    return page


def bars(fig: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in fig["data"] if t["type"] == "bar"]


def test_public_names() -> None:
    assert sorted(dashboards.__all__) == [
        "PLOTLYJS_MODES",
        "build_dashboard",
        "marker_events",
        "write_dashboard",
    ]


def test_page_carries_plotly_inline_and_loads_nothing_from_the_network(boot_page: str) -> None:
    assert get_plotlyjs() in boot_page
    # No element may pull a resource: every script is inline, no stylesheet or font links.
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", boot_page)
    assert "@import" not in boot_page and "url(" not in boot_page.split("<script>")[0]


def test_same_input_gives_byte_identical_page() -> None:
    first = build_dashboard(analyse(BOOT))
    second = build_dashboard(analyse(BOOT))
    assert first == second
    assert 'id="qtrace-timeline"' in first


def test_header_states_verdict_input_dialect_clock_and_counts(boot_page: str) -> None:
    header = boot_page.split("<nav>")[0]
    assert "Clean: no leaks, no anomalies, no dropped or unreadable events" in header
    assert "0 leaked views" in header and "0 dropped events" in header
    assert html.escape(str(BOOT)) in header
    assert "simple-v4-le" in header and "monotonic-ns" in header
    # The counts of the JSON report: 257 instances, 253 freed, 3 current, 1 immortal.
    assert "257" in header and "freed 253" in header and "current 3" in header
    assert "immortal 1" in header


def test_timeline_has_a_lane_per_root_and_every_instance_as_a_bar(boot_page: str) -> None:
    analysis = analyse(BOOT)
    timeline = figure(boot_page, TIMELINE)
    ticks = timeline["layout"]["yaxis"]["ticktext"]
    assert ticks[0] == "(nil) empty view"
    assert len(ticks) == analysis.roots.height + 1  # the nil root has its own lane
    live = [t for t in bars(timeline) if t["width"] == 0.8]
    pending = [t for t in bars(timeline) if t["width"] != 0.8]
    assert sum(len(t["x"]) for t in live) == analysis.views.height
    freed = analysis.views.filter(pl.col("status") == "freed").height
    assert sum(len(t["x"]) for t in pending) == freed
    assert all(t["orientation"] == "h" and "base" in t for t in bars(timeline))
    names = " ".join(t["name"] for t in bars(timeline))
    assert "immortal (the empty view) · 1" in names and "live at end (current view) · 3" in names


def test_hover_of_a_known_instance_has_exact_times_and_durations(boot_page: str) -> None:
    # pc-boot.simpletrace.txt: 'flatview_new 29.294 pid=27317 view=0x56181cef0260 ...'
    analysis = analyse(BOOT)
    row = analysis.views.filter(pl.col("view") == 0x56181CEF0260).row(0, named=True)
    origin = as_int(qtrace.read_trace(BOOT).events["ts_ns"].min())
    hovers = [h for t in bars(figure(boot_page, TIMELINE)) for h in t["hovertext"]]
    (hover,) = {h for h in hovers if "view 0x56181cef0260" in h}
    assert "generation 0" in hover
    assert f"root 0x{row['root']:x}" in hover
    assert f"new +{row['new_ts_ns'] - origin} ns (seq {row['new_seq']})" in hover
    assert f"destroy_rcu +{row['rcu_ts_ns'] - origin} ns" in hover
    assert f"live {row['live_ns']} ns" in hover and f"RCU grace {row['grace_ns']} ns" in hover
    assert f"source {BOOT}" in hover


def test_bar_positions_are_seconds_since_the_trace_start(boot_page: str) -> None:
    analysis = analyse(BOOT)
    origin = as_int(qtrace.read_trace(BOOT).events["ts_ns"].min())
    row = analysis.views.filter(pl.col("view") == 0x56181CEF0260).row(0, named=True)
    (live,) = [t for t in bars(figure(boot_page, TIMELINE)) if t["name"].startswith("live (")]
    index = next(i for i, h in enumerate(live["hovertext"]) if "view 0x56181cef0260" in h)
    assert live["base"][index] == pytest.approx((row["new_ts_ns"] - origin) / 1e9)
    assert live["x"][index] == pytest.approx(row["live_ns"] / 1e9)


def test_without_a_clock_the_axis_is_the_event_sequence(tmp_path: Path) -> None:
    bare = make_bare_log(QEMU10_LOG, tmp_path / "bare.log")
    analysis = analyse(bare)
    assert not analysis.has_clock
    page = build_dashboard(analysis)
    timeline = figure(page, TIMELINE)
    assert timeline["layout"]["xaxis"]["title"]["text"].startswith("event sequence number")
    hovers = [h for t in bars(timeline) for h in t["hovertext"]]
    assert any(re.search(r"<br>new seq \d+<br>", h) for h in hovers)
    assert not any(" ns (" in h for h in hovers)
    assert "counted in trace events between the phases: the trace has no clock." in page
    hist = figure(page, "qtrace-live-hist")
    (everything,) = [t for t in hist["data"] if t["meta"]["lane"] == -1]
    assert sum(everything["y"]) == analysis.views["rcu_seq"].drop_nulls().len()
    assert "events" in hist["layout"]["xaxis"]["title"]["text"]
    assert "ns" not in " ".join(hist["layout"]["xaxis"]["ticktext"])


def test_concurrency_has_live_and_pending_rows_per_root(boot_page: str) -> None:
    analysis = analyse(BOOT)
    conc = figure(boot_page, CONCURRENCY)
    roots = analysis.concurrency.select("run", "root").unique().height
    assert len(conc["data"]) == 2 * roots
    assert {t["line"]["shape"] for t in conc["data"]} == {"hv"}
    assert {t["yaxis"] for t in conc["data"]} == {"y", "y2"}
    assert conc["layout"]["xaxis2"]["matches"] == "x"
    # The step function ends at the trace's last event: both time figures span the same range.
    timeline = figure(boot_page, TIMELINE)
    assert conc["layout"]["xaxis"]["range"] == timeline["layout"]["xaxis"]["range"]
    peak = max(max(t["y"]) for t in conc["data"] if t["yaxis"] == "y2")
    assert peak == analysis.concurrency["pending"].max()


def test_replay_adds_a_pinning_row_with_dashed_replay_lines() -> None:
    trace = qtrace.read_trace(BOOT)
    page = build_dashboard(analyze(trace), replay=analyze(trace, root_release="destroy_rcu"))
    conc = figure(page, CONCURRENCY)
    replay = [t for t in conc["data"] if t["name"].endswith("(replay)")]
    assert len(replay) == 3 and {t["line"]["dash"] for t in replay} == {"dash"}
    assert {t["yaxis"] for t in conc["data"]} == {"y", "y2", "y3"}
    assert conc["layout"]["yaxis"]["title"]["text"] == "pinning"
    # Released at destroy_rcu, no pending view pins the root: the replay peak is the live one.
    pinned_peak = max(max(t["y"]) for t in conc["data"] if t["yaxis"] == "y")
    assert max(max(t["y"]) for t in replay) < pinned_peak


def test_histograms_count_every_measured_instance(boot_page: str) -> None:
    analysis = analyse(BOOT)
    for div_id, column in (("qtrace-live-hist", "live_ns"), ("qtrace-grace-hist", "grace_ns")):
        hist = figure(boot_page, div_id)
        (everything,) = [t for t in hist["data"] if t["meta"]["lane"] == -1]
        assert sum(everything["y"]) == analysis.views[column].drop_nulls().len()
        per_root = [t for t in hist["data"] if t["meta"]["lane"] != -1]
        assert sum(sum(t["y"]) for t in per_root) == sum(everything["y"])
        assert all(t["visible"] is False for t in per_root)
        assert "ms" in " ".join(hist["layout"]["xaxis"]["ticktext"])


def test_leaked_view_is_red_in_the_timeline_and_listed_with_its_source_line(
    tmp_path: Path,
) -> None:
    leak = make_leak_log(QEMU10_LOG, tmp_path / "leak.log")
    analysis = analyse(leak.path)
    assert analysis.views.filter(pl.col("status") == "leaked").height == 1
    page = build_dashboard(analysis)
    assert '<span class="badge bad">1 leaked view</span>' in page
    assert "Leak: a view stayed live" in page
    table = page.split('id="qtrace-leaks"')[1].split("</table>")[0]
    rows = table.split("<tbody>")[1].count("<tr ")
    assert rows == 1
    assert f"0x{leak.view:x}" in table and f"leak.log:{leak.new_line}" in table
    (leaked,) = [t for t in bars(figure(page, TIMELINE)) if t["name"].startswith("leaked")]
    assert leaked["marker"]["color"] == "#d62728" and len(leaked["x"]) == 1


def test_markers_are_vertical_lines_per_event_name() -> None:
    trace = qtrace.read_trace(
        MIXED, events="flatview_*,pci_update_mappings_*", trace_events=TRACE_EVENTS
    )
    markers = marker_events(trace.events, "pci_update_mappings_*")
    assert markers.height == 14
    page = build_dashboard(analyze(trace), markers=markers)
    lines = [t for t in figure(page, TIMELINE)["data"] if t["meta"]["role"] == "markers"]
    assert [t["name"] for t in lines] == [
        "pci_update_mappings_add · 13",
        "pci_update_mappings_del · 1",
    ]
    add = lines[0]
    assert len(add["x"]) == 3 * 13 and add["x"][2] is None and add["x"][0] == add["x"][1]
    assert any("pci_update_mappings_add" in (h or "") for h in add["hovertext"])


def test_marker_pattern_keeps_only_named_non_flatview_events() -> None:
    events = conform(
        pl.DataFrame(
            {
                "seq": [0, 1, 2, 3],
                "event": [
                    "flatview_new",
                    "memory_region_finalize",
                    "pci_cfg_read",
                    "Dropped_Event",
                ],
            }
        )
    )
    assert marker_events(events, "memory_region_*").get_column("event").to_list() == [
        "memory_region_finalize"
    ]
    assert marker_events(events, "*").get_column("seq").to_list() == [1, 2]


def test_file_names_and_trace_text_are_escaped_everywhere(tmp_path: Path) -> None:
    evil_dir = tmp_path / "<script>alert(1)<"
    evil_dir.mkdir()
    evil = evil_dir / "script>.log"
    shutil.copy(QEMU10_LOG, evil)
    name = str(evil)
    assert name.endswith("<script>alert(1)</script>.log")
    analysis = analyse(evil)
    markers = conform(
        pl.DataFrame(
            {
                "seq": [5],
                "ts_ns": [analysis.views["new_ts_ns"].min()],
                "event": ["memory_region_finalize"],
                "args": ["name=</script><img src=x onerror=alert(2)>"],
                "source": [name],
                "line": [6],
            }
        )
    )
    page = build_dashboard(analysis, markers=markers)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert page.count("</script>") == page.count("<script")  # only the page's own scripts
    assert html.escape("<script>alert(1)</script>.log") in page.split("<nav>")[0]
    # Inside the embedded JSON, Plotly labels hold the name as entities.
    hovers = [h for t in figure(page, TIMELINE)["data"] for h in t.get("hovertext") or []]
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;.log" in (h or "") for h in hovers)
    assert any("&lt;img src=x onerror=alert(2)&gt;" in (h or "") for h in hovers)


def test_anomalies_are_marked_on_the_timeline_and_listed() -> None:
    events = model_trace(
        """
        new 1 nil
        new 2 10
        rcu 2 10
        rcu 2 10    # double destroy_rcu
        destroy 2 10
        new 3 10
        destroy 7 10   # orphan destroy
        """
    )
    analysis = analyze(events)
    assert analysis.anomalies.height == 2
    page = build_dashboard(analysis)
    points = [t for t in figure(page, TIMELINE)["data"] if t["meta"]["role"] == "anomalies"]
    assert len(points) == 1 and len(points[0]["x"]) == 2
    table = page.split('id="qtrace-anomalies"')[1].split("</table>")[0]
    assert "double_destroy_rcu" in table and "orphan_destroy" in table
    assert "t.log:" in table
    assert '<span class="badge warn">2 anomalies</span>' in page


def test_lost_and_pending_at_end_instances_are_drawn_distinctly() -> None:
    events = model_trace(
        """
        new 1 nil
        new 2 10
        new 2 10    # the pointer is reused while live: generation 0 is lost
        new 3 20
        new 4 20
        rcu 4 20
        destroy 4 20
        rcu 3 20    # never destroyed, though destroys are traced: RCU pending at the end
        """
    )
    analysis = analyze(events)
    statuses = dict(analysis.views.group_by("status").len().rows())
    assert statuses["lost"] == 1 and statuses["rcu_pending"] == 1
    timeline = figure(build_dashboard(analysis), TIMELINE)
    by_name = {t["name"]: t for t in bars(timeline)}
    lost = by_name["lost while live · 1"]
    pending_end = by_name["RCU pending at end (no destroy) · 1"]
    assert lost["marker"]["pattern"]["shape"] == "x"
    assert pending_end["marker"]["pattern"]["shape"] == "/"
    assert "pointer reused by a flatview_new at seq 2" in lost["hovertext"][0]
    # Lost views are listed with the leaks, as in the JSON report.
    page = build_dashboard(analysis)
    table = page.split('id="qtrace-leaks"')[1].split("</table>")[0]
    assert table.count("<tr ") == 1 and "<td>lost</td>" in table


def test_dropped_events_make_a_warning_and_uncertain_findings() -> None:
    events = model_trace(
        """
        new 1 nil
        new 2 10
        drop 5
        new 3 10
        """
    )
    page = build_dashboard(analyze(events))
    header = page.split("<nav>")[0]
    assert '<span class="badge warn">5 dropped events</span>' in header
    assert '<span class="badge warn">1 uncertain</span>' in header
    assert "1 finding(s) uncertain: dropped or unreadable events" in header
    assert "No leak found" not in header  # view 2 is leaked (uncertain): the leak headline
    assert "Leak: a view stayed live" in header


def test_roots_table_is_sortable_with_numeric_keys_and_source(boot_page: str) -> None:
    table = boot_page.split('id="qtrace-roots"')[1].split("</table>")[0]
    assert '<th scope="col" tabindex="0" class="num">view instances</th>' in table
    assert '<td class="num" data-v="122">122</td>' in table
    assert f"{BOOT}:" not in table  # binary input: no line numbers, the file itself
    assert str(BOOT) in table


def test_root_dropdown_lists_every_lane_with_its_y_range(boot_page: str) -> None:
    data = page_data(boot_page)
    options = re.findall(r'<option value="(\d+)">([^<]+)</option>', boot_page)
    assert options[0][1] == "(nil) empty view"
    assert sorted(data["laneRanges"]) == sorted(value for value, _ in options)
    low, high = data["laneRanges"]["1"]
    assert low > high  # the timeline's y axis runs top-down


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Analysis, str]:
    """A 20,000-instance storm (bench_dashboard.storm_trace): aggregated, zoomable."""
    made = load_bench().storm_trace(tmp_path_factory.mktemp("storm") / "storm.trace", 20_000)
    analysis = analyze(qtrace.read_trace(made.path))
    return made, analysis, build_dashboard(analysis)


def heatmaps(page: str) -> dict[str, dict[str, Any]]:
    timeline = figure(page, TIMELINE)
    return {t["meta"]["row"]: t for t in timeline["data"] if t["meta"]["role"] == "aggregate"}


def lane_rows(trace: dict[str, Any], key: str) -> list[list[Any]]:
    """Per lane, the heatmap's row (rows alternate lane, gap)."""
    rows: list[list[Any]] = trace[key][::2]
    return rows


def levels_oracle(
    analysis: Analysis, lanes: pl.DataFrame, axis: TimeAxis, grid: aggregate.Grid
) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Peak live, pending and pinning per (lane, bucket), one concurrency row at a time."""
    lane_of = {(run, root): lane for run, root, lane in lanes.select("run", "root", "lane").rows()}
    raw_column = "ts_ns" if axis.has_clock else "seq"
    per_lane: dict[int, list[tuple[int, int, int, int]]] = {}
    for row in analysis.concurrency.sort("run", "root", "seq").iter_rows(named=True):
        bucket = int((row[raw_column] - grid.origin) * grid.count / grid.span)
        per_lane.setdefault(lane_of[(row["run"], row["root"])], []).append(
            (min(max(bucket, 0), grid.count - 1), row["seq"], row["live"], row["pending"])
        )
    peaks = {}
    for lane, steps in per_lane.items():
        in_bucket: dict[int, list[tuple[int, int, int]]] = {}
        for bucket, seq, live, pending in steps:
            in_bucket.setdefault(bucket, []).append((seq, live, pending))
        carried = (0, 0)
        for bucket in range(grid.count):
            found = sorted(in_bucket.get(bucket, []))
            live = max([carried[0], *(f[1] for f in found)])
            pending = max([carried[1], *(f[2] for f in found)])
            pinning = max([sum(carried), *(f[1] + f[2] for f in found)])
            peaks[(lane, bucket)] = (live, pending, pinning)
            if found:
                carried = (found[-1][1], found[-1][2])
    return peaks


@pytest.mark.parametrize("source", [QEMU10_LOG, BOOT, "storm"])
def test_bucket_levels_are_the_peaks_of_the_concurrency_steps(
    source: Path | str, storm: tuple[Any, Analysis, str]
) -> None:
    analysis = storm[1] if source == "storm" else analyse(Path(source))
    lane_table = lanes(analysis)
    axis = time_axis(analysis)
    grid = aggregate.grid(axis, lane_table.height)
    levels = aggregate.bucket_levels(analysis.concurrency, lane_table, axis, grid)
    expected = levels_oracle(analysis, lane_table, axis, grid)
    got = {(r[0], r[1]): (r[2], r[3], r[4]) for r in levels.iter_rows()}
    assert got == expected
    assert any(pinning >= 2 for _, _, pinning in got.values())  # overlaps were seen


def test_bucket_levels_carry_a_level_across_buckets_without_steps() -> None:
    axis = TimeAxis(has_clock=False, origin=0, end=99)
    concurrency = pl.DataFrame(
        {
            "run": [0, 0, 0],
            "root": [16, 16, 16],
            "seq": [0, 25, 75],
            "ts_ns": [None, None, None],
            "live": [1, 2, 1],
            "pending": [0, 0, 1],
        },
        schema_overrides={"root": pl.UInt64, "ts_ns": pl.Int64},
    )
    lane_table = pl.DataFrame({"run": [0], "root": [16], "lane": [0]}).cast({"root": pl.UInt64})
    grid = aggregate.Grid(0, 100, 4, 1)
    levels = aggregate.bucket_levels(concurrency, lane_table, axis, grid)
    # buckets of 25: [0,25) 1; [25,50) 2; [50,75) carried 2; [75,100) 1, but 2 carried in
    assert levels.get_column("live").to_list() == [1, 2, 2, 2]
    assert levels.get_column("pending").to_list() == [0, 0, 0, 1]
    assert levels.get_column("pinning").to_list() == [1, 2, 2, 2]


def test_a_storm_page_aggregates_and_every_active_bucket_is_coloured(
    storm: tuple[Any, Analysis, str],
) -> None:
    made, analysis, page = storm
    data = page_data(page)
    assert len(page.encode()) < 20_000_000
    assert f"The trace has {analysis.views.height:,} view instances" in page
    assert "The page carries every instance" in page
    hot = heatmaps(page)
    born, pending = hot["born"], hot["pending"]
    grid = aggregate.grid(time_axis(analysis), len(data["zoom"]["lanes"]["y0"]))
    assert len(born["x"]) == grid.count + 1 == aggregate.BUCKETS + 1
    lane_table = lanes(analysis)
    axis = time_axis(analysis)
    placed = analysis.views.join(lane_table.select("run", "root", "lane"), on=["run", "root"])
    customs = lane_rows(born, "customdata")
    # Births: each lane's cells add up to its instances, and a cell with a birth is coloured.
    per_lane = dict(placed.group_by("lane").len().rows())
    for lane, row in enumerate(customs):
        assert sum(c[0] for c in row if c) == per_lane.get(lane, 0)
        assert all(
            z is not None
            for z, c in zip(lane_rows(born, "z")[lane], row, strict=True)
            if c and c[0]
        )
    # Every bucket an instance lives or waits for RCU in is coloured in one of the two rows.
    finish = pl.coalesce(axis.point("life_end"), pl.lit(axis.end))
    lived = (
        placed.filter(pl.col("root") != 0)
        .select(
            "lane",
            pl.int_ranges(grid.of(axis.point("new")), grid.of(finish) + 1).alias("bucket"),
        )
        .explode("bucket")
        .unique()
    )
    born_z, pending_z = lane_rows(born, "z"), lane_rows(pending, "z")
    blank = [
        (lane, bucket)
        for lane, bucket in lived.iter_rows()
        if born_z[lane][bucket] is None and pending_z[lane][bucket] is None
    ]
    assert lived.height > 10_000 and blank == []
    # The root with one instance in 11 s: one coloured bucket, one view born in it.
    quiet = lane_table.filter(pl.col("root") == made.roots[-4]).get_column("lane").item()
    assert [c[0] for c in customs[quiet] if c] == [1]


def test_a_storm_page_draws_its_leak_and_lost_view_on_top(storm: tuple[Any, Analysis, str]) -> None:
    made, _, page = storm
    drawn = {t["meta"]["category"]: t for t in bars(figure(page, TIMELINE))}
    assert f"view 0x{made.leaked[0]:x}" in drawn["leaked"]["hovertext"][0]
    assert f"view 0x{made.lost[0]:x}" in drawn["lost"]["hovertext"][0]
    assert set(drawn) == {"leaked", "lost", "immortal"}
    assert '<span class="badge bad">1 leaked view</span>' in page
    # One line per busy root (the 30 busiest), the other roots merged in a grey line.
    lines = figure(page, CONCURRENCY)["data"]
    own = [t for t in lines if t["meta"]["lane"] >= 0]
    assert own and all(len(t["x"]) == aggregate.BUCKETS + 1 for t in own)
    (other_live, other_pending) = [t for t in lines if t["meta"]["lane"] == -2]
    merged = other_live["meta"]["lanes"]
    assert len(other_live["x"]) == len(merged) * (aggregate.BUCKETS + 2) == len(other_pending["x"])
    assert len({t["meta"]["lane"] for t in own}) + len(merged) == 40
    assert "Concurrency has" in page and "exact steps once zoomed" in page


def test_a_storm_page_carries_every_instance_packed(storm: tuple[Any, Analysis, str]) -> None:
    _, analysis, page = storm
    data = page_data(page)
    packed = unpack(data["zoom"]["packed"], page_instances(page))
    axis = time_axis(analysis)
    views = analysis.views.sort("new_ts_ns", "new_seq")
    assert packed.height == views.height == data["zoom"]["packed"]["count"]
    assert packed.get_column("start").to_list() == (views["new_ts_ns"] - axis.origin).to_list()
    assert packed.get_column("seq").to_list() == views["new_seq"].to_list()
    assert packed.get_column("rcuSeq").to_list() == views["rcu_seq"].to_list()
    assert (
        packed.get_column("destroy").to_list() == (views["destroy_ts_ns"] - axis.origin).to_list()
    )
    assert packed.get_column("lostSeq").to_list() == views["lost_seq"].to_list()
    assert packed.get_column("view").to_list() == views["view"].to_list()
    assert packed.get_column("generation").to_list() == views["generation"].to_list()


def test_a_storm_page_s_figures_are_valid_plotly(storm: tuple[Any, Analysis, str]) -> None:
    for entry in page_data(storm[2])["figures"]:
        go.Figure(data=entry["data"], layout=entry["layout"])  # raises on a bad attribute


def test_the_same_storm_gives_the_same_page_bytes(storm: tuple[Any, Analysis, str]) -> None:
    made, _, page = storm
    assert build_dashboard(analyze(qtrace.read_trace(made.path))) == page


def test_a_page_that_would_pass_its_size_limit_is_made_without_the_instances(
    storm: tuple[Any, Analysis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    size = len(storm[2].encode())
    monkeypatch.setattr(page_module, "PAGE_LIMIT_BYTES", size - 1)
    page = build_dashboard(storm[1])
    assert len(page.encode()) < size and 'id="qtrace-instances"' not in page
    assert "cannot carry all 20,000 instances" in page


def test_a_trace_too_big_to_carry_carries_finer_buckets_instead(
    storm: tuple[Any, Analysis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packing, "MAX_PACKED_INSTANCES", 10_000)
    page = build_dashboard(storm[1])
    assert "cannot carry all 20,000 instances within its size budget, so it carries" in page
    zoom = page_data(page)["zoom"]
    assert zoom["packed"] is None and 'id="qtrace-instances"' not in page
    assert heatmaps(page)["born"]["z"]  # the whole-trace buckets are still there
    counts = [level["count"] for level in zoom["pyramid"]["levels"]]
    assert counts[0] == zoom["buckets"] * pyramid.FACTOR and len(counts) >= 2
    assert counts == [counts[0] * pyramid.FACTOR**k for k in range(len(counts))]
    assert 'id="qtrace-pyramid"' in page
    finest = aggregate.Grid(0, zoom["spanRaw"], counts[-1], 1).width
    assert f"down to buckets of {page_module._short_duration(finest)}" in page


def test_without_room_for_finer_buckets_zooming_adds_no_detail(
    storm: tuple[Any, Analysis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packing, "MAX_PACKED_INSTANCES", 10_000)
    monkeypatch.setattr(pyramid, "BUDGET_BYTES", 1_000)
    page = build_dashboard(storm[1])
    assert "zooming stretches the whole-trace buckets and adds no detail" in page
    assert page_data(page)["zoom"]["pyramid"] is None
    assert 'id="qtrace-pyramid"' not in page


def pyramid_levels(page: str) -> list[dict[str, npt.NDArray[np.int32]]]:
    """Each level of a page's finer buckets, as (lanes, buckets) arrays per count."""
    zoom = page_data(page)["zoom"]
    (blob,) = re.findall(r'id="qtrace-pyramid">([^<]*)<', page)
    raw = zlib.decompress(base64.b64decode(blob))
    lanes_drawn = len(zoom["lanes"]["y0"])
    return [
        {
            name: np.frombuffer(raw, "<i4", size, offset).reshape(lanes_drawn, level["count"])
            for name, (offset, size) in level["columns"].items()
        }
        for level in zoom["pyramid"]["levels"]
    ]


def merged(cells: dict[str, npt.NDArray[np.int32]], factor: int) -> dict[str, Any]:
    """Neighbouring buckets merged: births add up, peaks take the highest."""
    return {
        name: (values.reshape(values.shape[0], -1, factor).sum(axis=2) if name == "births"
               else values.reshape(values.shape[0], -1, factor).max(axis=2))
        for name, values in cells.items()
    }  # fmt: skip


def test_each_level_of_finer_buckets_merges_into_the_one_above_and_into_the_page(
    storm: tuple[Any, Analysis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bucketed on their own, each level still says what the coarser one says: a level's
    # buckets are exactly FACTOR of the next's, and the first merges into the page's own.
    monkeypatch.setattr(packing, "MAX_PACKED_INSTANCES", 10_000)
    page = build_dashboard(storm[1])
    levels = pyramid_levels(page)
    rows = lane_rows(heatmaps(page)["born"], "customdata")
    home = {
        name: np.array([[c[index] if c else 0 for c in row] for row in rows])
        for index, name in enumerate(("births", "live", "pending", "pinning"))
    }
    for coarse, fine in zip([home, *levels], levels, strict=False):
        for name, values in merged(fine, pyramid.FACTOR).items():
            assert np.array_equal(values, coarse[name]), name
    assert all(int(level["births"].sum()) == storm[1].views.height for level in levels)


def test_figures_are_valid_plotly(boot_page: str) -> None:
    for entry in page_data(boot_page)["figures"]:
        go.Figure(data=entry["data"], layout=entry["layout"])  # raises on a bad attribute


def test_write_dashboard_inline_and_directory_modes(tmp_path: Path) -> None:
    analysis = analyse(BOOT)
    inline = write_dashboard(analysis, tmp_path / "inline" / "boot.html")
    assert inline.read_text() == build_dashboard(analysis)
    shared = tmp_path / "batch"
    shared.mkdir()
    (shared / "plotly.min.js").write_text("stale")
    first = write_dashboard(analysis, shared / "a.html", plotlyjs="directory")
    write_dashboard(analysis, shared / "b.html", plotlyjs="directory")
    assert (shared / "plotly.min.js").read_text() == get_plotlyjs()
    assert sorted(p.name for p in shared.iterdir()) == ["a.html", "b.html", "plotly.min.js"]
    text = first.read_text()
    assert '<script src="plotly.min.js"></script>' in text
    assert get_plotlyjs()[:2000] not in text
    assert len(text) < 1_000_000


def test_write_dashboard_rejects_bad_targets(tmp_path: Path) -> None:
    analysis = analyse(BOOT)
    with pytest.raises(InputError, match="is a directory"):
        write_dashboard(analysis, tmp_path)
    with pytest.raises(UsageError, match=r"plotly\.js mode"):
        write_dashboard(analysis, tmp_path / "x.html", plotlyjs="cdn")  # type: ignore[arg-type, unused-ignore]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write"):
        write_dashboard(analysis, blocker / "x.html")


def test_each_run_gets_its_own_lanes() -> None:
    events = model_trace(
        """
        new 1 nil
        new 2 10
        new 3 10
        rcu 2 10
        destroy 2 10
        new 4 nil   # a nil-root flatview_new: a second QEMU process starts
        new 5 10
        """
    )
    analysis = analyze(events)
    assert analysis.runs == 2
    ticks = figure(build_dashboard(analysis), TIMELINE)["layout"]["yaxis"]["ticktext"]
    assert ticks == [
        "run 0 · (nil) empty view",
        "run 0 · 0x10",
        "run 1 · (nil) empty view",
        "run 1 · 0x10",
    ]


def test_a_trace_without_flatview_events_still_gives_a_page() -> None:
    events = conform(pl.DataFrame({"seq": [0, 1], "event": ["pci_cfg_read", "pci_cfg_read"]}))
    page = build_dashboard(analyze(events))
    # Nothing was read: never "clean".
    assert "Nothing to judge: no FlatView events were read" in page
    assert "Clean: no leaks" not in page and "No leaked or lost views." in page
    assert [len(f["data"]) for f in page_data(page)["figures"]][:2] == [0, 0]


def test_too_many_markers_are_capped_and_the_page_says_so() -> None:
    analysis = analyse(BOOT)
    first_ts = analysis.views["new_ts_ns"].min()
    markers = conform(
        pl.DataFrame(
            {
                "seq": list(range(2_500)),
                "ts_ns": [first_ts] * 2_500,
                "event": ["memory_region_ops_write"] * 2_500,
                "args": ["addr=0x10"] * 2_500,
            }
        )
    )
    page = build_dashboard(analysis, markers=markers)
    (lines,) = [t for t in figure(page, TIMELINE)["data"] if t["meta"]["role"] == "markers"]
    assert lines["name"] == "memory_region_ops_write · 2,000 of 2,500"
    assert "2,500 marker events match: the first 2,000 of each of the 1 event names" in page


def test_hundreds_of_lanes_keep_the_page_light() -> None:
    # A log of 100 QEMU runs (a qtest testlog), each with two roots: 300 lanes.
    lines = []
    for run in range(100):
        base = run * 16 + 1
        lines += [
            f"new {base:x} nil",
            f"new {base + 1:x} 10",
            f"new {base + 2:x} 10",
            f"rcu {base + 1:x} 10",
            f"destroy {base + 1:x} 10",
            f"new {base + 3:x} 20",
        ]
    lines.append("new 5000 20")  # run 99's root 0x20 now has a leaked view
    analysis = analyze(model_trace("\n".join(lines)))
    page = build_dashboard(analysis)
    timeline = figure(page, TIMELINE)
    ticks = timeline["layout"]["yaxis"]["ticktext"]
    assert len(ticks) <= 31 and "run 99 · 0x20" in ticks  # a spread, plus the leak's lane
    assert timeline["layout"]["height"] >= 300 * 8  # every lane keeps a few pixels
    assert ticks[0] == "run 0 · (nil) empty view"
    conc = figure(page, CONCURRENCY)
    own = [t for t in conc["data"] if t["meta"]["lane"] >= 0]
    assert len({t["meta"]["lane"] for t in own}) == 30
    (other_live, other_pending) = [t for t in conc["data"] if t["meta"]["lane"] == -2]
    assert other_live["name"] == "other roots (170)" and None in other_live["x"]
    assert other_pending["yaxis"] == "y2" and other_pending["showlegend"] is False
    assert len(page_data(page)["ownLanes"]) == 30
    assert len(re.findall(r'<option value="\d+">', page)) == 300
