"""The dashboard's Plotly figures: timeline, concurrency and duration histograms.

Every figure is built from polars tables as a plain Plotly JSON dict (``data``, ``layout``);
values reach Plotly as lists in a fixed order, so the same analysis always gives the same
figure JSON. Plain dicts, not ``plotly.graph_objects``: validating a million-instance page's
lists through graph objects took longer than building them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl
from qtrace.dashboards.aggregate import Grid
from qtrace.dashboards.inputs import TimeAxis, as_float, as_int
from qtrace.dashboards.instances import (
    LIVE_BAR_WIDTH,
    LIVE_CATEGORIES,
    PENDING_BAR_WIDTH,
    PENDING_CATEGORIES,
    source_text,
)

from qtrace.formatting import duration, escape_html, escape_html_column, hex_pointer, scalar

FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
# Tableau 10: distinct, colour-blind friendly enough, and calm on a white page.
LANE_COLOURS = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
MARKER_COLOURS = ("#6a3d9a", "#1f78b4", "#33a02c", "#b15928", "#e31a1c", "#525252")
LANE_GAP = 0.6  # empty slot units between lanes
SLOT_PX = 15  # pixels per slot row of the timeline
MIN_LANE_PX = 8  # the least a lane gets when there are too many for 1,400 px
MAX_MARKERS = 2_000  # vertical marker lines drawn (the rest are counted in the legend)
MAX_ANOMALY_POINTS = 5_000
MAX_LANE_TRACES = 30  # roots with lines (and histograms) of their own
MAX_TICK_LANES = 60  # beyond this many lanes, only the lanes that matter get a tick label


def tick_lanes(placed: pl.DataFrame, lanes: pl.DataFrame) -> list[int] | None:
    """Lanes labelled on the timeline's y axis: all, or past ``MAX_TICK_LANES`` an even
    spread of them plus every lane with a leaked or lost view (``placed``: views with lane)."""
    if lanes.height <= MAX_TICK_LANES:
        return None
    step = -(-lanes.height // (MAX_TICK_LANES // 2))
    spread = lanes.get_column("lane").gather_every(step)
    flagged = placed.filter(pl.col("status").is_in(["leaked", "lost"])).get_column("lane")
    return pl.concat([spread, flagged.drop_nulls()]).unique().sort().to_list()


def own_lanes(placed: pl.DataFrame) -> list[int]:
    """The lanes that get traces of their own: those with leaks first, then the busiest."""
    ranked = (
        placed.filter(pl.col("lane").is_not_null())
        .group_by("lane")
        .agg(
            pl.col("status").is_in(["leaked", "lost"]).sum().alias("flagged"),
            pl.len().alias("instances"),
        )
        .sort(["flagged", "instances", "lane"], descending=[True, True, False])
    )
    return ranked.get_column("lane").head(MAX_LANE_TRACES).sort().to_list()


HIST_BINS_PER_DECADE = 10

TEMPLATE: dict[str, Any] = {
    "layout": {
        "font": {"family": FONT_FAMILY, "size": 12, "color": "#222"},
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "colorway": list(LANE_COLOURS),
        "xaxis": {"gridcolor": "#e6e6e6", "zerolinecolor": "#c8c8c8", "linecolor": "#999"},
        "yaxis": {"gridcolor": "#e6e6e6", "zerolinecolor": "#c8c8c8", "linecolor": "#999"},
        "hoverlabel": {"font": {"family": FONT_FAMILY, "size": 12}, "align": "left"},
    }
}


LEFT_MARGIN_PX = 150  # room for root pointers; the time figures share it so x axes line up
RIGHT_MARGIN_PX = 44  # the vertical mode bar sits here, clear of legends and labels
COLORBAR_MARGIN_PX = 150  # right margin of both time figures when the timeline has a colour bar


def base_layout(height: int, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": TEMPLATE,
        "height": height,
        "autosize": True,
        "margin": {"l": LEFT_MARGIN_PX, "r": RIGHT_MARGIN_PX, "t": 40, "b": 50},
        "hovermode": "closest",
        "modebar": {"orientation": "v"},
        "showlegend": True,
        "legend": {
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 1.01,
            "yanchor": "bottom",
            "font": {"size": 11},
        },
    }
    layout.update(extra)
    return layout


@dataclass(frozen=True)
class LaneGeometry:
    """Where each lane sits on the timeline's y axis (slot units, top lane at 0)."""

    table: pl.DataFrame  # lane, label, y0, height, center
    total: float

    def ranges(self) -> dict[str, list[float]]:
        """Per lane, the reversed y range that focuses it (for the root dropdown)."""
        rows = self.table.select("lane", "y0", "height").rows()
        return {str(lane): [y0 + height + 0.3, y0 - 0.3] for lane, y0, height in rows}


def lane_geometry(lanes: pl.DataFrame, slotted: pl.DataFrame) -> LaneGeometry:
    heights = slotted.group_by("lane").agg((pl.col("slot").max() + 1).alias("height"))
    table = (
        lanes.select("lane", "label")
        .join(heights, on="lane", how="left")
        .sort("lane")
        .with_columns(pl.col("height").fill_null(1).cast(pl.Float64))
        .with_columns(
            ((pl.col("height") + LANE_GAP).cum_sum() - pl.col("height") - LANE_GAP).alias("y0")
        )
        .with_columns((pl.col("y0") + pl.col("height") / 2).alias("center"))
    )
    total = as_float(table.get_column("height").sum()) + LANE_GAP * max(table.height - 1, 0)
    return LaneGeometry(table, total)


def _phase_bars(
    rows: pl.DataFrame,
    axis: TimeAxis,
    start: str,
    end: str,
    width: float,
    name: str,
    colour: str,
    pattern: str,
    category: str,
) -> dict[str, Any]:
    drawn = rows.select(
        axis.to_x(pl.col(start)).alias("base"),
        axis.span_to_x(pl.col(end) - pl.col(start)).alias("length"),
        (pl.col("y0") + pl.col("slot") + 0.5).alias("y"),
        "hover",
    )
    return {
        "type": "bar",
        "orientation": "h",
        "base": drawn.get_column("base").to_list(),
        "x": drawn.get_column("length").to_list(),
        "y": drawn.get_column("y").to_list(),
        "width": width,
        "name": f"{name} · {rows.height:,}",
        "legendgroup": category,
        "marker": bar_marker(colour, pattern),
        "hovertext": drawn.get_column("hover").to_list(),
        "hovertemplate": "%{hovertext}<extra></extra>",
        "meta": {"role": "instances", "category": category},
    }


def bar_marker(colour: str, pattern: str) -> dict[str, Any]:
    """How a phase category's bars are filled (the page's script draws zoomed bars alike)."""
    marker: dict[str, Any] = {"color": colour, "line": {"color": colour, "width": 0.6}}
    if pattern:
        marker["pattern"] = {"shape": pattern, "fgcolor": "#ffffff", "size": 6, "solidity": 0.3}
    return marker


def _lane_shading(geometry: LaneGeometry) -> list[dict[str, Any]]:
    """A pale band behind every other lane, so slots read as belonging to a root."""
    shapes = []
    for index, (y0, height) in enumerate(geometry.table.select("y0", "height").rows()):
        if index % 2 == 0 and index < 200:
            shapes.append(
                {
                    "type": "rect",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "yref": "y",
                    "y0": y0 - LANE_GAP / 2,
                    "y1": y0 + height + LANE_GAP / 2,
                    "fillcolor": "#f3f5f8",
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
    return shapes


# The aggregated timeline, per lane and bucket, drawn like the bars it stands for: a thick
# upper row for the live phase (coloured by views born in the bucket, log scale; a pale
# tone where views stay live but none is born) over a thin lower row for the RCU-pending
# phase (coloured by the peak backlog). Fractions of the lane's first slot, top-down.
AGGREGATE_ROWS = {"born": (0.06, 0.6), "pending": (0.64, 0.94)}
BORN_SCALE = [
    [0.0, "#bfd3ea"],  # live, none born: pale, still plainly not white
    [0.199, "#bfd3ea"],
    [0.2, "#6baed6"],  # one view born: a clear mid blue, so a lone birth is seen
    [0.6, "#2171b5"],
    [1.0, "#08306b"],
]
PENDING_SCALE = [[0.0, "#fdae6b"], [1.0, "#a63603"]]
LIVE_ONLY_BAND = 0.2  # the share of the born scale the "live, none born" tone takes


def born_range(max_born: int) -> tuple[float, float]:
    """(zmin, zmax) of the born scale: z is log10(views born); zmin is the live-only tone.

    zmin sits so that z = 0 (one view born) falls at ``LIVE_ONLY_BAND`` of the scale.
    """
    top = max(1.0, math.log10(max(max_born, 1)))
    return -top * LIVE_ONLY_BAND / (1 - LIVE_ONLY_BAND), top


DECADE_LABELS = ("1", "10", "100", "1k", "10k", "100k", "1M", "10M", "100M", "1G")


def born_colour_bar(zmin: float, zmax: float) -> dict[str, Any]:
    decades = list(range(0, min(math.floor(zmax), len(DECADE_LABELS) - 1) + 1))
    labels = [DECADE_LABELS[d] for d in decades]
    return {
        "title": {"text": "views born<br>per bucket", "font": {"size": 11}},
        "thickness": 12,
        "x": 1.01,
        "xanchor": "left",
        "y": 1,
        "yanchor": "top",
        "len": 0.55,
        "tickmode": "array",
        "tickvals": [round(zmin / 2, 4), *decades],
        "ticktext": ["live, none born", *labels],
    }


def pending_colour_bar(zmax: int) -> dict[str, Any]:
    return {
        "title": {"text": "RCU pending<br>(peak)", "font": {"size": 11}},
        "thickness": 12,
        "x": 1.01,
        "xanchor": "left",
        "y": 0,
        "yanchor": "bottom",
        "len": 0.38,
        **({"dtick": 1} if zmax <= 6 else {"tickformat": ",d"}),
    }


def _rows_with_gaps(
    geometry: LaneGeometry, per_lane: list[list[Any]], fractions: tuple[float, float]
) -> tuple[list[float], list[list[Any]]]:
    """Heatmap rows for a row kind of every lane, a transparent gap row between lanes.

    The rows fill a lane's first slot (the bars drawn one by one sit in the slots below).
    Plotly takes y as row edges when it has one more value than z has rows, and a gap row
    of nulls stays transparent.
    """
    top, bottom = fractions
    edges: list[float] = []
    z: list[list[Any]] = []
    for index, (y0, row) in enumerate(
        zip(geometry.table.get_column("y0").to_list(), per_lane, strict=True)
    ):
        if index:
            z.append([None] * len(row))
        edges.extend([round(y0 + top, 4), round(y0 + bottom, 4)])
        z.append(row)
    return edges, z


def aggregate_traces(
    activity: pl.DataFrame, geometry: LaneGeometry, buckets: Grid, bucket_label: str
) -> list[dict[str, Any]]:
    """The aggregated timeline: a born/live heatmap and an RCU-pending heatmap.

    ``activity`` is ``aggregate.bucket_activity`` (every bucket of every lane). A bucket in
    which anything happened is coloured; only buckets where nothing at all was live,
    pending or born stay white.
    """
    if activity.height == 0:
        return []
    max_born = as_int(activity.get_column("births").max())
    max_pending = as_int(activity.get_column("pending").max())
    zmin, zmax = born_range(max_born)
    births, live, pending = pl.col("births"), pl.col("live"), pl.col("pending")
    cells = activity.sort("lane", "bucket").select(
        "lane",
        pl.when(births > 0)
        .then(births.cast(pl.Float64).log10().round(3))
        .when(live > 0)
        .then(pl.lit(round(zmin, 4)))
        .alias("born"),
        pl.when(births + live + pending > 0)
        .then(pl.concat_list(births, live, pending, pl.col("pinning")))
        .alias("custom"),
        pl.when(pending > 0).then(pending).alias("pending"),
    )
    per_lane = cells.group_by("lane", maintain_order=True).agg(pl.all())
    x = buckets.edges()
    born_y, born_z = _rows_with_gaps(geometry, per_lane["born"].to_list(), AGGREGATE_ROWS["born"])
    _, custom = _rows_with_gaps(geometry, per_lane["custom"].to_list(), AGGREGATE_ROWS["born"])
    pending_y, pending_z = _rows_with_gaps(
        geometry, per_lane["pending"].to_list(), AGGREGATE_ROWS["pending"]
    )
    born_trace = {
        "type": "heatmap",
        "x": x,
        "y": born_y,
        "z": born_z,
        "customdata": custom,
        "zmin": round(zmin, 4),
        "zmax": round(zmax, 4),
        "colorscale": BORN_SCALE,
        "colorbar": born_colour_bar(zmin, zmax),
        "hoverongaps": False,
        "hovertemplate": (
            "<b>%{customdata[0]:,} views born</b><br>peak live %{customdata[1]:,} · "
            "RCU pending %{customdata[2]:,} · pinning %{customdata[3]:,}"
            f"<extra>bucket of {bucket_label}</extra>"
        ),
        "name": "views born, live (aggregated)",
        "showlegend": False,
        "meta": {"role": "aggregate", "row": "born"},
    }
    top_pending = max(max_pending, 2)
    pending_trace = {
        "type": "heatmap",
        "x": x,
        "y": pending_y,
        "z": pending_z,
        "zmin": 1,
        "zmax": top_pending,
        "colorscale": PENDING_SCALE,
        "colorbar": pending_colour_bar(top_pending),
        "hoverongaps": False,
        "hovertemplate": (
            f"<b>%{{z:,}} RCU-pending views</b> at most<extra>bucket of {bucket_label}</extra>"
        ),
        "name": "RCU pending (aggregated)",
        "showlegend": False,
        "meta": {"role": "aggregate", "row": "pending"},
    }
    return [born_trace, pending_trace]


def timeline_figure(
    detail: pl.DataFrame,
    geometry: LaneGeometry,
    axis: TimeAxis,
    *,
    anomalies: pl.DataFrame,
    lanes: pl.DataFrame,
    markers: pl.DataFrame | None,
    aggregates: list[dict[str, Any]],
    labelled: list[int] | None = None,
) -> dict[str, Any]:
    """One lane per root, each instance a thick live bar with a thin RCU-pending tail.

    With ``aggregates`` (an aggregated timeline), the bars are the detail instances drawn on
    top of them.
    """
    rows = detail.join(geometry.table.select("lane", "y0"), on="lane", how="left")
    traces: list[dict[str, Any]] = list(aggregates)
    # Pending tails first, so the live bars are drawn over them.
    phases = (
        ("pending_cat", PENDING_CATEGORIES, "live_end_raw", "pending_end_raw", PENDING_BAR_WIDTH),
        ("live_cat", LIVE_CATEGORIES, "start_raw", "live_end_raw", LIVE_BAR_WIDTH),
    )
    for column, categories, start, end, width in phases:
        for category, (name, colour, pattern) in categories.items():
            part = rows.filter(pl.col(column) == category)
            if part.height:
                traces.append(
                    _phase_bars(part, axis, start, end, width, name, colour, pattern, category)
                )
    traces.extend(_anomaly_points(anomalies, lanes, geometry, axis))
    traces.extend(_marker_lines(markers, geometry, axis))
    ticked = geometry.table
    if ticked.height > MAX_TICK_LANES and labelled is not None:
        # Hundreds of tick labels make Plotly take seconds to lay the axis out: label only
        # the lanes that matter; hover and the root dropdown name every lane.
        ticked = ticked.filter(pl.col("lane").is_in(labelled))
    tick_rows = ticked.select("center", "label").rows()
    # Tall enough for every slot, up to 1,400 px; past that, still 8 px a lane: a qtest log of
    # hundreds of QEMU runs keeps every lane visible (the page scrolls).
    lanes_high = geometry.table.height * MIN_LANE_PX + 130
    height = int(min(max(geometry.total * SLOT_PX + 130, 300), max(1400, lanes_high)))
    layout = base_layout(
        height,
        barmode="overlay",
        bargap=0,
        shapes=_lane_shading(geometry),
        xaxis={"title": {"text": axis.title}, "showspikes": True, "spikemode": "across"},
        yaxis={
            "range": [geometry.total + 0.3, -0.3],
            "tickmode": "array",
            "tickvals": [c for c, _ in tick_rows],
            "ticktext": [escape_html(label) for _, label in tick_rows],
            "showgrid": False,
            "zeroline": False,
            "tickfont": {"family": "ui-monospace, 'DejaVu Sans Mono', monospace", "size": 11},
        },
    )
    return {"data": traces, "layout": layout}


def _anomaly_points(
    anomalies: pl.DataFrame, lanes: pl.DataFrame, geometry: LaneGeometry, axis: TimeAxis
) -> list[dict[str, Any]]:
    raw = pl.col("ts_ns") if axis.has_clock else pl.col("seq")
    placed = (
        anomalies.join(
            lanes.select("run", "root", "lane", "root_label"), on=["run", "root"], how="left"
        )
        .join(geometry.table.select("lane", "center"), on="lane", how="left")
        .filter(raw.is_not_null())
        .sort("seq", "kind")
        .head(MAX_ANOMALY_POINTS)
    )
    if placed.height == 0:
        return []
    hover = pl.concat_str(
        [
            pl.format("<b>anomaly: {}</b>", escape_html_column(pl.col("kind"))),
            escape_html_column(pl.col("detail")),
            pl.when(pl.col("view").is_not_null()).then(
                pl.format("view {} · generation {}", hex_pointer("view"), pl.col("generation"))
            ),
            pl.when(pl.col("root").is_not_null()).then(pl.format("root {}", hex_pointer("root"))),
            escape_html_column(pl.col("root_label")),
            # A finalize hazard: what pinned the root (the early unref removes rcu_pending ones).
            pl.when(pl.col("pinned_by").is_not_null()).then(
                pl.format("pinned by {}", pl.col("pinned_by"))
            ),
            pl.format(
                "{} · seq {}",
                _raw_text(axis, raw),
                pl.col("seq"),
            ),
            pl.format("source {}", source_text()),
        ],
        separator="<br>",
        ignore_nulls=True,
    )
    drawn = placed.select(
        axis.to_x(raw).alias("x"),
        pl.col("center").fill_null(-0.15).alias("y"),
        hover.alias("hover"),
    )
    return [
        {
            "type": "scatter",
            "x": drawn.get_column("x").to_list(),
            "y": drawn.get_column("y").to_list(),
            "mode": "markers",
            "name": f"anomaly · {anomalies.height:,}",
            "marker": {
                "symbol": "x-thin",
                "size": 11,
                "color": "#111",
                "line": {"width": 2, "color": "#111"},
            },
            "hovertext": drawn.get_column("hover").to_list(),
            "hovertemplate": "%{hovertext}<extra></extra>",
            "meta": {"role": "anomalies"},
        }
    ]


def _raw_text(axis: TimeAxis, raw: pl.Expr) -> pl.Expr:
    if axis.has_clock:
        return pl.format("+{} ns", raw - axis.origin)
    return pl.format("seq {}", raw)


def marker_note(markers: pl.DataFrame | None) -> str | None:
    """The sentence saying which markers were left out, when some were."""
    if markers is None or markers.height <= MAX_MARKERS:
        return None
    names = markers.get_column("event").n_unique()
    per_name = max(MAX_MARKERS // max(names, 1), 1)
    return (
        f"{markers.height:,} marker events match: the first {per_name:,} of each of the "
        f"{names:,} event names are drawn (the legend gives each name's total)."
    )


def _marker_lines(
    markers: pl.DataFrame | None, geometry: LaneGeometry, axis: TimeAxis
) -> list[dict[str, Any]]:
    """Other trace events as vertical lines across all lanes, one trace per event name."""
    if markers is None or markers.height == 0:
        return []
    raw = pl.col("ts_ns") if axis.has_clock else pl.col("seq")
    # Plain strings (the table's are categorical) for the hover text built from them.
    kept = (
        markers.filter(raw.is_not_null())
        .sort("seq")
        .with_columns(pl.col("event", "source").cast(pl.String))
    )
    names = sorted(kept.get_column("event").unique().to_list())
    per_name = max(MAX_MARKERS // max(len(names), 1), 1)
    traces = []
    top, bottom = -0.3, geometry.total + 0.3
    for index, name in enumerate(names):
        rows = kept.filter(pl.col("event") == name)
        shown = rows.head(per_name)
        hover = pl.concat_str(
            [
                pl.format(
                    "<b>{}</b> {}",
                    escape_html_column(pl.col("event")),
                    escape_html_column(pl.col("args")),
                ),
                pl.format("{} · seq {}", _raw_text(axis, raw), pl.col("seq")),
                pl.format("source {}", source_text()),
            ],
            separator="<br>",
            ignore_nulls=True,
        )
        # Each marker is a vertical segment: x twice, then a null to break the line.
        drawn = shown.select(
            pl.concat_list(axis.to_x(raw), axis.to_x(raw), pl.lit(None, pl.Float64)).alias("x"),
            pl.concat_list(
                pl.lit(top, pl.Float64), pl.lit(bottom, pl.Float64), pl.lit(None, pl.Float64)
            ).alias("y"),
            pl.concat_list(hover, hover, pl.lit(None, pl.String)).alias("hover"),
        ).explode("x", "y", "hover")
        count = (
            f"{rows.height:,}"
            if shown.height == rows.height
            else f"{shown.height:,} of {rows.height:,}"
        )
        traces.append(
            {
                "type": "scatter",
                "x": drawn.get_column("x").to_list(),
                "y": drawn.get_column("y").to_list(),
                "mode": "lines",
                "name": f"{escape_html(name)} · {count}",
                "line": {
                    "color": MARKER_COLOURS[index % len(MARKER_COLOURS)],
                    "width": 1,
                    "dash": "dot",
                },
                "opacity": 0.7,
                "hovertext": drawn.get_column("hover").to_list(),
                "hovertemplate": "%{hovertext}<extra></extra>",
                "meta": {"role": "markers"},
            }
        )
    return traces


# Rows of the concurrency figure, top-down: (key, axis title, what the hover says).
CONCURRENCY_ROWS = {
    "pinning": ("pinning", "views pin the root"),
    "live": ("live", "live views"),
    "pending": ("RCU pending", "RCU-pending views"),
}


def _step_trace(
    xs: list[float | None],
    ys: list[int | None],
    *,
    row: int,
    row_key: str,
    name: str,
    lane: int,
    colour: str,
    dash: str,
    showlegend: bool,
    hover: str,
    legendgroup: str,
    merged: list[int] | None = None,
) -> dict[str, Any]:
    """One step line; ``merged``: the lanes a shared "other roots" line (lane -2) holds."""
    axis_suffix = "" if row == 1 else str(row)
    meta: dict[str, Any] = {"role": "concurrency", "lane": lane, "row": row_key}
    meta["replay"] = dash != "solid"
    if merged is not None:
        meta["lanes"] = merged
    return {
        "type": "scatter",
        "x": xs,
        "y": ys,
        "xaxis": f"x{axis_suffix}",
        "yaxis": f"y{axis_suffix}",
        "mode": "lines",
        "line": {"shape": "hv", "color": colour, "dash": dash, "width": 1.6 if lane >= 0 else 1},
        "name": name,
        "legendgroup": legendgroup,
        "showlegend": showlegend,
        "hovertemplate": hover,
        "meta": meta,
    }


Series = dict[int, tuple[list[float], dict[str, list[int]]]]


def _lane_series(
    steps: pl.DataFrame | None,
    axis: TimeAxis,
    levels: pl.DataFrame | None,
    buckets: Grid | None,
) -> Series:
    """Per lane: x and the live, pending and pinning levels, closed at the end of the trace.

    With ``levels`` (``aggregate.bucket_levels``), the peak of each bucket; else every step.
    """
    series: Series = {}
    if levels is not None and buckets is not None:
        edges = buckets.edges()
        parts = levels.partition_by("lane", as_dict=True, maintain_order=True)
        for (lane,), part in parts.items():
            rows = {k: part.get_column(k).to_list() for k in ("live", "pending", "pinning")}
            series[int(lane)] = (edges, {k: [*v, v[-1]] for k, v in rows.items()})
        return series
    if steps is None:
        return series
    end_x = (axis.end - axis.origin) / axis.per_unit
    for (lane,), part in steps.partition_by("lane", as_dict=True, maintain_order=True).items():
        xs = part.select(axis.to_x(pl.col("raw"))).to_series().to_list()
        rows = {
            "live": part.get_column("live").to_list(),
            "pending": part.get_column("pending").to_list(),
            "pinning": (part.get_column("live") + part.get_column("pending")).to_list(),
        }
        series[int(lane)] = ([*xs, end_x], {k: [*v, v[-1]] for k, v in rows.items()})
    return series


def concurrency_figure(
    steps: pl.DataFrame | None,
    lanes: pl.DataFrame,
    axis: TimeAxis,
    *,
    levels: pl.DataFrame | None = None,
    buckets: Grid | None = None,
    replay: bool = False,
    replay_steps: pl.DataFrame | None = None,
    replay_levels: pl.DataFrame | None = None,
    ranking: list[int] | None = None,
) -> dict[str, Any]:
    """Views of each root over time as step lines, in rows that share the time axis.

    Live and RCU-pending views get a row each: a pile of pending views (normal after a
    topology change) would otherwise flatten the live counts, where leaks show. With a
    replay, a first row compares what pins the root when it is released at destroy (solid)
    and at destroy_rcu (dashed). With ``levels`` (and ``buckets``), each line is the peak
    per time bucket. Past ``MAX_LANE_TRACES`` roots, the first ones of ``ranking`` get lines
    of their own and the rest share one grey "other roots" line per row (a browser slows
    down with thousands of traces).
    """
    labels = dict(lanes.select("lane", "label").rows())
    main = _lane_series(steps, axis, levels, buckets)
    replayed = _lane_series(replay_steps, axis, replay_levels, buckets) if replay else {}
    rows = ["pinning", "live", "pending"] if replay else ["live", "pending"]
    row_of = {key: index + 1 for index, key in enumerate(rows)}
    # (lane, row, replay) -> (x, y): every line the figure could draw, in drawing order.
    lines: dict[tuple[int, str, bool], tuple[list[float], list[int]]] = {}
    for lane in sorted(set(main) | set(replayed)):
        for row in rows:
            if lane in main:
                xs, levels_of = main[lane]
                lines[(lane, row, False)] = (xs, levels_of[row])
            if row == "pinning" and lane in replayed:
                xs, levels_of = replayed[lane]
                lines[(lane, row, True)] = (xs, levels_of["pinning"])
    drawn = sorted(set(main) | set(replayed))
    order = [lane for lane in (ranking or drawn) if lane in set(drawn)]
    own = set(order[:MAX_LANE_TRACES]) if len(drawn) > MAX_LANE_TRACES else set(drawn)
    # Colours go to the lanes that have lines (the nil root has none), in lane order.
    colours = {
        lane: LANE_COLOURS[index % len(LANE_COLOURS)] for index, lane in enumerate(sorted(own))
    }
    traces = []
    legend_done: set[int] = set()
    others: dict[tuple[str, bool], tuple[list[float | None], list[int | None]]] = {}
    for (lane, row, is_replay), (xs, ys) in lines.items():
        if lane not in own:
            merged_x, merged_y = others.setdefault((row, is_replay), ([], []))
            merged_x.extend([*xs, None])
            merged_y.extend([*ys, None])
            continue
        what = CONCURRENCY_ROWS[row][1]
        if row == "pinning":
            what += " (replay: release at destroy_rcu)" if is_replay else " (release at destroy)"
        traces.append(
            _step_trace(
                list(xs),
                list(ys),
                row=row_of[row],
                row_key=row,
                name=escape_html(str(labels[lane])) + (" (replay)" if is_replay else ""),
                lane=lane,
                colour=colours[lane],
                dash="dash" if is_replay else "solid",
                showlegend=lane not in legend_done and not is_replay,
                hover=f"%{{y}} {what}<br>%{{fullData.name}}<extra></extra>",
                legendgroup=f"lane{lane}",
            )
        )
        legend_done.add(lane)
    for (row, is_replay), (xs_other, ys_other) in sorted(
        others.items(), key=lambda item: (rows.index(item[0][0]), item[0][1])
    ):
        traces.append(
            _step_trace(
                xs_other,
                ys_other,
                row=row_of[row],
                row_key=row,
                name=f"other roots ({len(drawn) - len(own):,})",
                lane=-2,
                colour="#9a9a9a",
                dash="dash" if is_replay else "solid",
                showlegend=row == rows[0] and not is_replay,
                hover=f"%{{y}} {CONCURRENCY_ROWS[row][1]}<br>one of the other roots<extra></extra>",
                legendgroup="other",
                merged=[lane for lane in drawn if lane not in own],
            )
        )
    highest = dict.fromkeys(rows, 0)
    for (_, row, _), (_, ys) in lines.items():
        highest[row] = max(highest[row], *(y for y in ys if y is not None))
    gap = 0.08
    band = (1 - gap * (len(rows) - 1)) / len(rows)
    axes: dict[str, Any] = {}
    for index, row in enumerate(rows):
        suffix = "" if index == 0 else str(index + 1)
        top = 1 - index * (band + gap)
        last = index == len(rows) - 1
        axes[f"yaxis{suffix}"] = {
            "domain": [round(max(top - band, 0.0), 6), round(min(top, 1.0), 6)],
            "title": {"text": CONCURRENCY_ROWS[row][0], "font": {"size": 11}},
            "rangemode": "tozero",
            "anchor": f"x{suffix}",
            # Counts are whole numbers: no 0.5 ticks on rows with small counts.
            **({"dtick": 1} if highest[row] <= 6 else {"tickformat": ",d"}),
        }
        axes[f"xaxis{suffix}"] = {
            "anchor": f"y{suffix}",
            "showticklabels": last,
            "showspikes": True,
            "spikemode": "across",
            **({"title": {"text": axis.title}} if last else {}),
            **({"matches": "x"} if index else {}),
        }
    layout = base_layout(130 * len(rows) + 110, **axes)
    return {"data": traces, "layout": layout}


def _decade_label(exponent: int, in_events: bool = False) -> str:
    if in_events:
        return f"{10**exponent:,}" if exponent >= 0 else f"1e{exponent}"
    if exponent >= 0:
        return str(scalar(duration, 10**exponent, pl.Int64))
    return f"1e{exponent} ns"


def histogram_figure(
    placed: pl.DataFrame,
    lanes: pl.DataFrame,
    column: str,
    *,
    what: str,
    colour: str,
    in_events: bool = False,
    own_lanes: set[int] | None = None,
) -> dict[str, Any]:
    """Counts of ``column`` (ns) in log-spaced bins, for all roots and for each root.

    Bins are computed here, not in the browser, so a million instances cost a few hundred
    numbers. The x axis is log10 of the duration, labelled in time units. Only lanes in
    ``own_lanes`` (default: all) get a histogram of their own. ``placed``: views with lane.
    """
    binned = placed.filter(pl.col(column).is_not_null()).select(
        "lane",
        (pl.col(column).clip(1).cast(pl.Float64).log10() * HIST_BINS_PER_DECADE)
        .floor()
        .cast(pl.Int64)
        .alias("bin"),
    )
    all_counts = binned.group_by("bin").agg(pl.len().alias("count")).sort("bin")
    per_lane = binned.group_by("lane", "bin").agg(pl.len().alias("count")).sort("lane", "bin")
    width = 1 / HIST_BINS_PER_DECADE

    def bars(counts: pl.DataFrame, name: str, lane: int | None, visible: bool) -> dict[str, Any]:
        lo = counts.select((pl.col("bin") / HIST_BINS_PER_DECADE).alias("lo"))
        low = (10 ** (pl.col("bin") / HIST_BINS_PER_DECADE)).round(0).cast(pl.Int64)
        high = (10 ** ((pl.col("bin") + 1) / HIST_BINS_PER_DECADE)).round(0).cast(pl.Int64)
        if in_events:
            bounds = (low.cast(pl.String), pl.format("{} events", high))
        else:
            bounds = (duration(low), duration(high))
        hover = counts.select(
            pl.format("{} to {}: {} instances", *bounds, pl.col("count"))
        ).to_series()
        return {
            "type": "bar",
            "x": [v + width / 2 for v in lo.to_series().to_list()],
            "y": counts.get_column("count").to_list(),
            "width": width * 0.92,
            "name": name,
            "marker": {"color": colour},
            "visible": visible,
            "hovertext": hover.to_list(),
            "hovertemplate": "%{hovertext}<extra>" + name + "</extra>",
            "meta": {"role": "histogram", "lane": -1 if lane is None else lane},
            "showlegend": False,
        }

    traces = [bars(all_counts, "all roots", None, True)]
    labels = dict(lanes.select("lane", "label").rows())
    for (lane,), part in per_lane.partition_by("lane", as_dict=True, maintain_order=True).items():
        if lane is not None and (own_lanes is None or lane in own_lanes):
            traces.append(bars(part, escape_html(str(labels[lane])), int(lane), False))
    bins = binned.get_column("bin")
    lo_decade = math.floor(as_int(bins.min()) / HIST_BINS_PER_DECADE)
    hi_decade = math.ceil((as_int(bins.max()) + 1) / HIST_BINS_PER_DECADE)
    decades = list(range(lo_decade, max(hi_decade, lo_decade + 1) + 1))
    layout = base_layout(
        300,
        bargap=0,
        showlegend=False,
        margin={"l": 60, "r": RIGHT_MARGIN_PX, "t": 20, "b": 50},
        xaxis={
            "title": {"text": f"{what} (log scale)"},
            "tickmode": "array",
            "tickvals": decades,
            "ticktext": [_decade_label(d, in_events) for d in decades],
            "range": [decades[0] - 0.05, decades[-1] + 0.05],
        },
        yaxis={"title": {"text": "view instances"}, "rangemode": "tozero"},
    )
    return {"data": traces, "layout": layout}
