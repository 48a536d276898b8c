"""Assemble the dashboard: header, figures, tables and scripts in one HTML page.

Nothing on the page comes from the network, and nothing varies between runs: div ids are
fixed, data is sorted, and no time or random id is written.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl
from plotly.offline import get_plotlyjs
from qtrace.dashboards import aggregate, figures, packing, pyramid, tables
from qtrace.dashboards.assets import SCRIPT
from qtrace.dashboards.html import document_parts
from qtrace.dashboards.inputs import TimeAxis, as_int, lanes, time_axis
from qtrace.dashboards.instances import (
    CATEGORY_ORDER,
    LIVE_BAR_WIDTH,
    LIVE_CATEGORIES,
    PENDING_BAR_WIDTH,
    PENDING_CATEGORIES,
    assign_slots,
    instance_phases,
)
from qtrace.dashboards.zoom_script import ZOOM_SCRIPT

from qtrace.findings import Findings
from qtrace.formatting import (
    duration,
    escape_html,
    escape_html_column,
    hex_pointer,
    scalar,
    significant,
)
from qtrace.model import Analysis
from qtrace.report import to_json

PAGE_LIMIT_BYTES = 20_000_000  # what a page of a million instances may weigh (issue 14)
PAGE_MARGIN_BYTES = 100_000  # what a page made again may weigh more than the first, at most
TIMELINE_ID = "qtrace-timeline"
CONCURRENCY_ID = "qtrace-concurrency"
LIVE_HIST_ID = "qtrace-live-hist"
GRACE_HIST_ID = "qtrace-grace-hist"
PLOTLY_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "responsive": True,
    "typesetMath": False,
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


@cache
def plotly_js() -> str:
    """The bundled plotly.js (the same text every call)."""
    return str(get_plotlyjs())


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no ``</`` or ``<!--`` can end or confuse it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "\\u003c!--")


def _figure_entry(div_id: str, figure: dict[str, Any]) -> dict[str, Any]:
    return {"id": div_id, "data": figure["data"], "layout": figure["layout"]}


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _verdict(report: dict[str, Any]) -> str:
    """The report's verdict (``qtrace.findings``), as a headline, badges and its notes."""
    verdict = report["verdict"]
    leaks, anomalies = int(verdict["leaked"]), int(verdict["anomalies"])
    dropped, unreadable = int(verdict["dropped_events"]), int(verdict["unreadable_places"])
    badges = [
        ("bad" if leaks else "good", _plural(leaks, "leaked view")),
        ("warn" if anomalies else "good", _plural(anomalies, "anomaly", "anomalies")),
        ("warn" if dropped else "good", _plural(dropped, "dropped event")),
    ]
    if unreadable:
        badges.append(("warn", _plural(unreadable, "unreadable place")))
    if int(verdict["uncertain"]):
        badges.append(("warn", f"{int(verdict['uncertain']):,} uncertain"))
    hazards = verdict["hazards"]
    if hazards["live"] or hazards["rcu_pending"]:
        # Root finalized while pinned: which of them the proposed early unref would remove.
        badges.append(
            (
                "bad",
                f"{int(hazards['early_unref_removes']):,} of "
                f"{int(hazards['live']) + int(hazards['rcu_pending']):,} finalize hazards "
                "removed by the early unref",
            )
        )
    if leaks:
        headline = "Leak: a view stayed live after a newer view of its root was built"
    elif not int(verdict["flatview_events"]):
        headline = "Nothing to judge: no FlatView events were read"
    elif anomalies or dropped or unreadable:
        headline = "No leak found, but the trace has findings to check"
    else:
        headline = "Clean: no leaks, no anomalies, no dropped or unreadable events"
    spans = "".join(f'<span class="badge {cls}">{text}</span>' for cls, text in badges)
    notes = "".join(f"<li>{escape_html(str(note))}</li>" for note in verdict["notes"])
    listed = f'<ul class="notes">{notes}</ul>' if notes else ""
    return (
        f'<div class="verdict" id="qtrace-verdict"><strong>{headline}</strong>{spans}{listed}</div>'
    )


def _nonzero(counts: dict[str, Any]) -> str:
    shown = [f"{escape_html(k)} {int(v):,}" for k, v in counts.items() if v]
    return ", ".join(shown) or "none"


def _duration(quantiles: dict[str, int | None]) -> str:
    if not quantiles.get("count"):
        return "none"
    return " · ".join(
        f"{name} {_short_duration(int(value))}"
        for name, value in (("p50", quantiles["p50"]), ("p99", quantiles["p99"]))
        if value is not None
    )


def _short_duration(value_ns: int | float) -> str:
    return str(scalar(duration, float(value_ns), pl.Float64))


def _facts(report: dict[str, Any], axis: TimeAxis) -> str:
    """Input, dialect, clock and the counts of the JSON report (qtrace.analyze/1)."""
    source = report["source"]
    views = report["views"]
    inputs = ", ".join(f"<code>{escape_html(str(p))}</code>" for p in source["paths"])
    facts: list[tuple[str, str]] = [
        ("input", inputs or "(an events table)"),
        ("format", escape_html(str(source["format"] or "table"))),
        ("dialect", escape_html(str(source["dialect"] or "unknown"))),
        ("clock", escape_html(str(source["clock"]))),
        ("lines skipped", f"{int(source['lines_skipped']):,}"),
        ("runs", f"{int(report['runs']):,}"),
        ("root release", escape_html(str(report["root_release"]))),
        ("destroy traced", "yes" if source["destroy_traced"] else "no"),
        ("events", _nonzero(report["events"])),
        ("view instances", f"{int(views['instances']):,}"),
        (
            "by status",
            _nonzero(
                {
                    k: views[k]
                    for k in ("freed", "rcu_pending", "current", "immortal", "leaked", "lost")
                }
            ),
        ),
        ("reused pointers", f"{int(views['reused_pointers']):,}"),
        ("roots", f"{int(report['roots']['distinct']):,}"),
        ("most views of a root at once", f"{int(report['roots']['max_concurrent_views']):,}"),
        ("overlaps", _nonzero({k: v["count"] for k, v in report["overlaps"].items()})),
        ("anomalies", _nonzero(report["anomalies"])),
    ]
    if "durations" in report:
        facts.append(("live", _duration(report["durations"]["live_ns"])))
        facts.append(("RCU grace", _duration(report["durations"]["grace_ns"])))
    if axis.has_clock:
        facts.append(("trace length", _short_duration(axis.end - axis.origin)))
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    return f'<dl class="facts" id="qtrace-facts">{items}</dl>'


def _align_time_axes(
    timeline: dict[str, Any],
    concurrency: dict[str, Any],
    lane_table: pl.DataFrame,
    full_x: list[float],
    *,
    colour_bar: bool,
) -> None:
    """Same x range and side margins in both time figures, so their x axes line up.

    The left margin fits the longest lane label; the heatmap's colour bar takes room on the
    right.
    """
    for fig in (timeline, concurrency):
        fig["layout"]["xaxis"].update(range=full_x, autorange=False)
    longest = as_int(lane_table.get_column("label").str.len_chars().max())
    margin = {"l": max(figures.LEFT_MARGIN_PX, min(24 + 7 * longest, 280))}
    if colour_bar:
        margin["r"] = figures.COLORBAR_MARGIN_PX
    for fig in (timeline, concurrency):
        fig["layout"]["margin"].update(margin)


def _duration_figures(
    placed: pl.DataFrame, lane_table: pl.DataFrame, axis: TimeAxis, own: set[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Histograms of live and RCU grace durations (in events when the trace has no clock)."""
    # Only the columns binned: a filter of the whole views table copies every column.
    if axis.has_clock:
        measured, unit = placed.select("lane", "live_ns", "grace_ns"), ""
    else:
        measured = placed.select(
            "lane",
            (pl.col("rcu_seq") - pl.col("new_seq")).alias("live_ns"),
            (pl.col("destroy_seq") - pl.col("rcu_seq")).alias("grace_ns"),
        )
        unit = ", in events"
    live = figures.histogram_figure(
        measured.select("lane", "live_ns"),
        lane_table,
        "live_ns",
        what=f"live (new → destroy_rcu{unit})",
        colour="#4c78a8",
        in_events=not axis.has_clock,
        own_lanes=own,
    )
    grace = figures.histogram_figure(
        measured.select("lane", "grace_ns"),
        lane_table,
        "grace_ns",
        what=f"RCU grace (destroy_rcu → destroy{unit})",
        colour="#f28e2b",
        in_events=not axis.has_clock,
        own_lanes=own,
    )
    return live, grace


def _bucket_label(axis: TimeAxis, raw_width: float) -> str:
    if axis.has_clock:
        return _short_duration(raw_width)
    return f"{scalar(significant, raw_width, pl.Float64)} events"


@dataclass(frozen=True)
class Drawn:
    """The page's time figures and what the text around them says about them."""

    timeline: dict[str, Any]
    concurrency: dict[str, Any]
    geometry: figures.LaneGeometry
    notes: list[str]
    zoom: dict[str, Any] | None
    zoom_state: str
    packed_data: str | None
    pyramid_data: str | None  # the finer buckets of a page that cannot carry its instances


def _zoom_config(
    analysis: Analysis,
    lane_table: pl.DataFrame,
    geometry: figures.LaneGeometry,
    axis: TimeAxis,
    buckets: aggregate.Grid,
    packed: packing.Packed | None,
    finer: pyramid.Pyramid | None,
    home_text: str,
) -> dict[str, Any]:
    """What the zoom script needs: the axis, the lanes, the drawing styles, the instances."""
    placed = lane_table.join(geometry.table.select("lane", "y0", "height"), on="lane").sort("lane")
    categories = {
        key: {
            "name": name,
            "marker": figures.bar_marker(colour, pattern),
            "width": LIVE_BAR_WIDTH if key in LIVE_CATEGORIES else PENDING_BAR_WIDTH,
        }
        for key, (name, colour, pattern) in {**PENDING_CATEGORIES, **LIVE_CATEGORIES}.items()
    }
    return {
        "clock": axis.has_clock,
        "perUnit": axis.per_unit,
        # Seq numbers fit a browser's doubles; epoch nanoseconds would not (and are not needed).
        "originRaw": 0 if axis.has_clock else axis.origin,
        "spanRaw": buckets.span,
        "endRaw": axis.end - axis.origin,
        "buckets": buckets.count,
        "maxDetail": aggregate.DETAIL_INSTANCES,
        "instances": analysis.views.height,
        "lanes": {
            "y0": placed.get_column("y0").to_list(),
            "height": placed.get_column("height").to_list(),
            "root": placed.select(hex_pointer("root")).to_series().to_list(),
            "run": placed.get_column("run").to_list(),
            # The root's name under its pointer in a hover (escaped for Plotly), or null.
            "rootLabel": placed.select(escape_html_column(pl.col("root_label")))
            .to_series()
            .to_list(),
            "nil": (placed.get_column("root") == 0).to_list(),
        },
        "rows": figures.AGGREGATE_ROWS,
        "liveOnlyBand": figures.LIVE_ONLY_BAND,
        "decadeLabels": list(figures.DECADE_LABELS),
        "categories": categories,
        "categoryOrder": list(CATEGORY_ORDER),
        "packed": packed.to_json() if packed is not None else None,
        "pyramid": finer.to_json() if finer is not None else None,
        "homeText": home_text,
    }


def _time_figures(
    analysis: Analysis,
    replay: Analysis | None,
    markers: pl.DataFrame | None,
    lane_table: pl.DataFrame,
    placed: pl.DataFrame,
    axis: TimeAxis,
    own: list[int],
    *,
    carry_instances: bool = True,
    finer_budget: int = pyramid.BUDGET_BYTES,
) -> Drawn:
    """The timeline and concurrency figures, aggregated (and zoomable) when the trace is big.

    ``placed``: the views with their ``lane``.
    """
    views = analysis.views
    detail, aggregated = aggregate.detail_views(placed, analysis.anomalies)
    slotted = assign_slots(instance_phases(detail, axis))
    if aggregated:
        # Slot 0 of every lane holds its aggregate rows; the bars drawn one by one go below,
        # where they hide none of it.
        slotted = slotted.with_columns(pl.col("slot") + 1)
    geometry = figures.lane_geometry(lane_table, slotted)
    step_count = analysis.concurrency.height
    plan = aggregate.plan(views, detail, aggregated, step_count, lane_table.height)
    buckets = aggregate.grid(axis, lane_table.height)
    label = _bucket_label(axis, buckets.width)
    # Packed first, while the least else is held: the pack is the page's largest transient.
    packed = (
        packing.pack_instances(placed, axis)
        if aggregated and plan.steps_aggregated and carry_instances
        else None
    )
    # Without its instances, the page carries finer levels of its buckets for zooming.
    finer = (
        pyramid.build_pyramid(
            placed, analysis.concurrency, lane_table, axis, buckets, budget=finer_budget
        )
        if aggregated and plan.steps_aggregated and packed is None
        else None
    )
    # Millions of steps are reduced per bucket, never joined or sorted whole.
    steps = levels = replay_steps = replay_levels = None
    if plan.steps_aggregated:
        levels = aggregate.bucket_levels(analysis.concurrency, lane_table, axis, buckets)
        if replay is not None:
            replay_levels = aggregate.bucket_levels(replay.concurrency, lane_table, axis, buckets)
    else:
        steps = aggregate.lane_steps(analysis.concurrency, lane_table, axis)
        if replay is not None:
            replay_steps = aggregate.lane_steps(replay.concurrency, lane_table, axis)
    heat: list[dict[str, Any]] = []
    notes: list[str] = []
    zoom: dict[str, Any] | None = None
    zoom_state = ""
    if aggregated and levels is not None:
        activity = aggregate.bucket_activity(placed, levels, lane_table, axis, buckets)
        heat = figures.aggregate_traces(activity, geometry, buckets, label)
        notes.append(
            f"The trace has {views.height:,} view instances, too many to draw one by one: per "
            "root and time bucket, the thick upper row is coloured by the views born in the "
            "bucket (log scale, light to dark blue; pale grey-blue where views stay live but "
            "none is born), the thin lower row by the peak number of RCU-pending views "
            "(orange). Counts and peaks, never means: a view that lives 3 µs in a 9 ms bucket "
            "still colours it, and only a bucket where nothing was live, pending or born stays "
            f"white. {_plural(detail.height, 'instance')} (leaked, lost, anomalous, the empty "
            "view) drawn one by one on top."
        )
        if packed is not None:
            notes.append(
                "Zoom in (drag across the timeline or the concurrency figure): the page "
                "recomputes the buckets for the window, one per pixel column at most, and once "
                f"the window holds {aggregate.DETAIL_INSTANCES:,} instances or fewer it draws "
                "each one with its exact times in the hover, and exact concurrency steps. The "
                "page carries every instance, so this holds at any zoom level and anywhere in "
                "the trace. Double-click to zoom back out."
            )
        elif finer is not None:
            finest = aggregate.Grid(
                buckets.origin, buckets.span, finer.levels[-1]["count"], buckets.per_unit
            )
            notes.append(
                f"The page cannot carry all {views.height:,} instances within its size budget, "
                "so it carries finer buckets instead: zoom in and the window is drawn from "
                f"them, down to buckets of {_bucket_label(axis, finest.width)}; zoomed further, "
                "those buckets are stretched, and only the instances drawn on top are exact. "
                "A dashboard of a window (--begin/--end) draws up to "
                f"{aggregate.DETAIL_INSTANCES:,} instances one by one."
            )
        else:
            notes.append(
                f"The page cannot carry all {views.height:,} instances within its size budget: "
                "zooming stretches the whole-trace buckets and adds no detail, and only the "
                "instances drawn on top are exact at any zoom level. A dashboard of a window "
                "(--begin/--end) draws up to "
                f"{aggregate.DETAIL_INSTANCES:,} instances one by one."
            )
        home_text = (
            f"Whole trace: {views.height:,} view instances in {{buckets}} buckets of {{width}} "
            "per root."
        )
        zoom_state = home_text.replace("{buckets}", f"{buckets.count:,}").replace("{width}", label)
        zoom = _zoom_config(analysis, lane_table, geometry, axis, buckets, packed, finer, home_text)
    if plan.steps_aggregated:
        notes.append(
            f"Concurrency has {step_count:,} change points: each line shows the peak per time "
            f"bucket ({buckets.count:,} buckets of {label}) instead"
            + (
                f", and exact steps once zoomed to {aggregate.DETAIL_INSTANCES:,} instances "
                "or fewer."
                if zoom is not None and zoom["packed"] is not None
                else "."
            )
        )
    timeline = figures.timeline_figure(
        slotted,
        geometry,
        axis,
        anomalies=analysis.anomalies,
        lanes=lane_table,
        markers=markers,
        aggregates=heat,
        labelled=figures.tick_lanes(placed, lane_table),
    )
    concurrency = figures.concurrency_figure(
        steps,
        lane_table,
        axis,
        levels=levels,
        buckets=buckets if plan.steps_aggregated else None,
        ranking=own,
        replay=replay is not None,
        replay_steps=replay_steps,
        replay_levels=replay_levels,
    )
    full_x = [0.0, (axis.end - axis.origin) / axis.per_unit]
    _align_time_axes(timeline, concurrency, lane_table, full_x, colour_bar=bool(heat))
    data = packed.data if packed is not None else None
    finer_data = finer.data if finer is not None else None
    return Drawn(timeline, concurrency, geometry, notes, zoom, zoom_state, data, finer_data)


def _utf8_size(parts: list[str]) -> int:
    """The bytes of ``parts`` in UTF-8, without an encoded copy of the large ASCII ones."""
    return sum(len(p) if p.isascii() else len(p.encode("utf-8")) for p in parts)


def render_page(
    analysis: Analysis,
    *,
    replay: Analysis | None = None,
    markers: pl.DataFrame | None = None,
    title: str | None = None,
    plotlyjs_src: str | None = None,
    findings: Findings | None = None,
) -> str:
    """The dashboard's HTML; plotly.js inline, or loaded from ``plotlyjs_src`` (relative).

    ``findings``: the verdict to show (default: ``Findings.of(analysis)``). A page that
    would pass ``PAGE_LIMIT_BYTES`` with every instance packed in it is made again without
    them (it says so).
    """
    return "".join(
        render_page_parts(
            analysis,
            replay=replay,
            markers=markers,
            title=title,
            plotlyjs_src=plotlyjs_src,
            findings=findings,
        )
    )


def render_page_parts(
    analysis: Analysis,
    *,
    replay: Analysis | None = None,
    markers: pl.DataFrame | None = None,
    title: str | None = None,
    plotlyjs_src: str | None = None,
    findings: Findings | None = None,
) -> list[str]:
    """``render_page`` as the parts that make the page, in order (to write them one by one)."""
    args = (analysis, replay, markers, title, plotlyjs_src, findings)
    parts = _render(*args, carry_instances=True, finer_budget=pyramid.BUDGET_BYTES)
    size, carried = _utf8_size(parts), _carried_size(parts)
    if size > PAGE_LIMIT_BYTES and carried:
        # Made again without the instances, with finer buckets in the room the rest leaves.
        room = PAGE_LIMIT_BYTES - (size - carried) - PAGE_MARGIN_BYTES
        parts = _render(*args, carry_instances=False, finer_budget=max(0, room))
    return parts


def _carried_size(parts: list[str]) -> int:
    """The bytes of what a page carries for zooming (its instances or its finer buckets)."""
    for opening, carried in itertools.pairwise(parts):
        if opening.endswith(('id="qtrace-instances">', 'id="qtrace-pyramid">')):
            return len(carried)  # base64: one byte a character
    return 0


def _render(
    analysis: Analysis,
    replay: Analysis | None,
    markers: pl.DataFrame | None,
    title: str | None,
    plotlyjs_src: str | None,
    findings: Findings | None,
    *,
    carry_instances: bool,
    finer_budget: int,
) -> list[str]:
    axis = time_axis(analysis)
    report = to_json(analysis, findings)
    lane_table = lanes(analysis)
    views = analysis.views
    # Every instance's lane, found by joining only the keys: the views' own columns are shared,
    # not copied (a million rows).
    lane_of = views.select("run", "root").join(
        lane_table.select("run", "root", "lane", "root_label"),
        on=["run", "root"],
        how="left",
        maintain_order="left",
    )
    placed = views.with_columns(lane_of.get_column("lane"), lane_of.get_column("root_label"))
    del lane_of  # its run and root, a million rows each: not held while the page is drawn
    own = figures.own_lanes(placed)
    drawn = _time_figures(
        analysis,
        replay,
        markers,
        lane_table,
        placed,
        axis,
        own,
        carry_instances=carry_instances,
        finer_budget=finer_budget,
    )
    geometry = drawn.geometry
    full_x = [0.0, (axis.end - axis.origin) / axis.per_unit]
    live_hist, grace_hist = _duration_figures(placed, lane_table, axis, set(own))
    data = {
        "figures": [
            _figure_entry(TIMELINE_ID, drawn.timeline),
            _figure_entry(CONCURRENCY_ID, drawn.concurrency),
            _figure_entry(LIVE_HIST_ID, live_hist),
            _figure_entry(GRACE_HIST_ID, grace_hist),
        ],
        "plotlyConfig": PLOTLY_CONFIG,
        "timeline": TIMELINE_ID,
        "concurrency": CONCURRENCY_ID,
        "histograms": [LIVE_HIST_ID, GRACE_HIST_ID],
        "timeAxes": [TIMELINE_ID, CONCURRENCY_ID],
        "fullXRange": full_x,
        "fullYRange": [geometry.total + 0.3, -0.3],
        "laneRanges": geometry.ranges(),
        "ownLanes": [str(lane) for lane in own],
        # The header's verdict, machine-readable: the same block as the JSON report's.
        "verdict": report["verdict"],
        "zoom": drawn.zoom,
    }
    inputs = [str(p) for p in report["source"]["paths"]]
    page_title = title or ("qtrace · " + ", ".join(inputs) if inputs else "qtrace dashboard")
    options = "".join(
        f'<option value="{lane}">{escape_html(str(label))}</option>'
        for lane, label in lane_table.select("lane", "label").rows()
    )
    marker_note = figures.marker_note(markers)
    all_notes = [*drawn.notes, *([marker_note] if marker_note else [])]
    notes = "".join(f'<p class="note aggregated">{escape_html(n)}</p>' for n in all_notes)
    durations_note = (
        f"Durations are counted in trace events between the phases: {axis.no_clock}."
        if not axis.has_clock
        else "Bins are a tenth of a decade wide."
    )
    replay_note = (
        " Top row: views pinning the root as traced (solid) and if roots were released at"
        " destroy_rcu (dashed, the replay)."
        if replay is not None
        else ""
    )
    zoom_state = (
        f'<p class="note" id="qtrace-zoom-state" data-mode="home">'
        f"{escape_html(drawn.zoom_state)}</p>"
        if drawn.zoom is not None
        else ""
    )
    # The packed instances (base64: nothing in it can end the element).
    instances = (
        [
            '\n<script type="application/octet-stream" id="qtrace-instances">',
            drawn.packed_data,
            "</script>",
        ]
        if drawn.packed_data is not None
        else [
            '\n<script type="application/octet-stream" id="qtrace-pyramid">',
            drawn.pyramid_data,
            "</script>",
        ]
        if drawn.pyramid_data is not None
        else []
    )
    # The roots table reads each root's first view: only those, not a million rows.
    first_seqs = analysis.roots.get_column("first_seq").implode()
    first_views = views.filter(pl.col("new_seq").is_in(first_seqs))
    plotly_tag = (
        [f'<script src="{escape_html(plotlyjs_src)}"></script>']
        if plotlyjs_src is not None
        else ["<script>", plotly_js(), "</script>"]
    )
    body = f"""<header>
<h1>{escape_html(page_title)}</h1>
{_verdict(report)}
{_facts(report, axis)}
</header>
<nav><label for="qtrace-root">Focus root</label>
<select id="qtrace-root"><option value="">all roots</option>{options}</select>
<a href="#timeline">timeline</a><a href="#concurrency">concurrency</a>
<a href="#durations">durations</a><a href="#leaks">leaks</a><a href="#anomalies">anomalies</a>
<a href="#roots">roots</a></nav>
<section id="timeline"><h2>View instances per root</h2>
<p class="note">One lane per root. Thick bar: live (flatview_new → flatview_destroy_rcu);
thin tail: RCU pending (→ flatview_destroy). Hover a bar for exact times.
Zoom here or below: both follow.</p>{notes}{zoom_state}
<div id="{TIMELINE_ID}" class="plot"></div></section>
<section id="concurrency"><h2>Views pinning each root</h2>
<p class="note">Live and RCU-pending views of each root, one colour per root.{replay_note}</p>
<div id="{CONCURRENCY_ID}" class="plot"></div></section>
<section id="durations"><h2>Durations</h2><p class="note">{durations_note}</p>
<div class="pair"><div><h2>Live</h2><div id="{LIVE_HIST_ID}" class="plot"></div></div>
<div><h2>RCU grace</h2><div id="{GRACE_HIST_ID}" class="plot"></div></div></div></section>
<section id="leaks"><h2>Leaked and lost views</h2>
{tables.leaks_table(analysis.flagged_views, lane_table, axis)}</section>
<section id="anomalies"><h2>Anomalies</h2>
{tables.anomalies_table(analysis.anomalies, lane_table, axis)}</section>
<section id="roots"><h2>Roots</h2>
{tables.roots_table(analysis.roots, first_views, lane_table)}</section>
<footer>Made by qtrace. Offline page: plotly.js is {"beside it" if plotlyjs_src else "inside"}.
</footer>"""
    # Parts, never joined here: the packed instances alone are 13 MB of base64.
    data_tag = f'\n<script type="application/json" id="qtrace-data">{script_json(data)}</script>'
    return document_parts(
        page_title,
        [body, data_tag, *instances],
        head=plotly_tag,
        scripts=(ZOOM_SCRIPT + SCRIPT,),
    )
