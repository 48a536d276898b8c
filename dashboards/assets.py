"""The pages' style sheet and scripts: small, inline, and loading nothing from the network.

``STYLE`` and ``SORT_SCRIPT`` serve every qtrace page (dashboard, diff, batch fleet page);
``SCRIPT`` is the dashboard's own.
"""

from __future__ import annotations

STYLE = """
:root { --fg: #1d2329; --muted: #5b6670; --line: #d9dee3; --bg-alt: #f5f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "DejaVu Sans", sans-serif; color: var(--fg); background: #fff; }
header { padding: 14px 24px 10px; border-bottom: 1px solid var(--line); background: var(--bg-alt); }
h1 { font-size: 18px; margin: 0 0 6px; font-weight: 600; word-break: break-all; }
h2 { font-size: 15px; margin: 0 0 4px; font-weight: 600; }
.verdict { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 4px 0 8px; }
.badge { border-radius: 4px; padding: 2px 9px; font-weight: 600; font-size: 13px;
  border: 1px solid transparent; }
.bad { background: #fde2e1; color: #9b1c1c; border-color: #f4b4b1; }
.warn { background: #fff1d6; color: #7a4b00; border-color: #f1cf8a; }
.good { background: #dff3e4; color: #1e6b34; border-color: #a9d9b6; }
.facts { display: flex; flex-wrap: wrap; gap: 2px 22px; margin: 0; color: var(--muted);
  font-size: 13px; }
.facts div { display: flex; gap: 6px; }
.facts dt { font-weight: 600; color: var(--fg); }
.facts dd { margin: 0; }
.facts code, td code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
nav { position: sticky; top: 0; z-index: 10; background: #fff; padding: 8px 24px;
  border-bottom: 1px solid var(--line); display: flex; gap: 12px; align-items: center;
  font-size: 13px; }
nav select { font: inherit; padding: 2px 6px; }
nav a { color: #2b5d8a; text-decoration: none; }
section { padding: 12px 24px 4px; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0 6px; }
.aggregated { background: #fff7e0; border-left: 3px solid #e0a100; padding: 4px 10px; }
.plot { width: 100%; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 900px) { .pair { grid-template-columns: 1fr; } }
.table-wrap { max-height: 420px; overflow: auto; border: 1px solid var(--line); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 10px; text-align: left; border-bottom: 1px solid #eceff2;
  white-space: nowrap; }
td:last-child { white-space: normal; }
th { position: sticky; top: 0; background: var(--bg-alt); cursor: pointer; user-select: none; }
th.num, td.num { text-align: right; }
th[data-dir="asc"]::after { content: " \\25B2"; }
th[data-dir="desc"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafbfc; }
tr[hidden] { display: none; }
td.ptr { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
td.src { color: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; padding: 12px 24px 24px; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("qtrace-data").textContent);
  function byId(id) { return document.getElementById(id); }

  // The x range both time figures show: null for the whole trace.
  function wholeOrRange(range) {
    var full = cfg.fullXRange, slack = (full[1] - full[0]) * 1e-9;
    if (range[0] <= full[0] + slack && range[1] >= full[1] - slack) { return null; }
    return [Number(range[0]), Number(range[1])];
  }

  function linkTimeAxes(onRange) {
    var linked = cfg.timeAxes.map(byId);
    var syncing = false;
    linked.forEach(function (src) {
      src.on("plotly_relayout", function (ev) {
        if (syncing) { return; }
        var update = {}, keys = Object.keys(ev), i, m;
        for (i = 0; i < keys.length; i += 1) {
          m = /^xaxis[0-9]*\.(range\[0\]|range|autorange)$/.exec(keys[i]);
          if (m === null) { continue; }
          if (m[1] === "range[0]") {
            update["xaxis.range"] = [ev[keys[i]], ev[keys[i].replace("[0]", "[1]")]];
          } else if (m[1] === "range") {
            update["xaxis.range"] = ev[keys[i]];
          } else if (ev[keys[i]]) {
            update["xaxis.range"] = cfg.fullXRange;
          }
          break;
        }
        if (!("xaxis.range" in update)) { return; }
        onRange(wholeOrRange(update["xaxis.range"]));
        syncing = true;
        var others = linked.filter(function (gd) { return gd !== src; });
        Promise.all(others.map(function (gd) { return Plotly.relayout(gd, update); }))
          .then(function () { syncing = false; }, function () { syncing = false; });
      });
    });
  }

  function focusRoot(lane) {
    var all = lane === "";
    var timeline = byId(cfg.timeline);
    Plotly.relayout(timeline, {"yaxis.range": all ? cfg.fullYRange : cfg.laneRanges[lane]});
    // Roots without traces of their own are drawn among "other roots" (lane -2) and
    // counted in the all-roots histograms (lane -1).
    var own = all || cfg.ownLanes.indexOf(lane) >= 0;
    var conc = byId(cfg.concurrency);
    Plotly.restyle(conc, {visible: conc.data.map(function (t) {
      return all || String(t.meta.lane) === (own ? lane : "-2");
    })});
    cfg.histograms.forEach(function (id) {
      var gd = byId(id);
      var want = all || !own ? "-1" : lane;
      Plotly.restyle(gd, {visible: gd.data.map(function (t) {
        return String(t.meta.lane) === want;
      })});
    });
    document.querySelectorAll("tr[data-lane]").forEach(function (tr) {
      tr.hidden = !all && tr.getAttribute("data-lane") !== lane;
    });
  }

  // An aggregated timeline redraws for the visible window (zoom_script.py); it first fits
  // the whole-trace buckets to the plot's width.
  var zoom = cfg.zoom ? qtraceZoom(cfg, byId) : null;
  window.qtraceZoom = zoom;
  Promise.all(cfg.figures.map(function (f) {
    return Plotly.newPlot(f.id, f.data, f.layout, cfg.plotlyConfig);
  })).then(function () {
    linkTimeAxes(function (range) { if (zoom !== null) { zoom.request(range); } });
    var select = byId("qtrace-root");
    select.addEventListener("change", function () { focusRoot(select.value); });
    if (zoom !== null) { zoom.drawn(); }
    window.qtraceRenderedMs = performance.now();
    document.body.setAttribute("data-rendered", "true");
  }, function (err) {
    console.error("qtrace: a figure failed to render: " + err);
  });
})();
"""


# Click (or Enter on) a header of a ``table.sortable`` to sort by it; ``th.num`` columns sort
# by their cells' ``data-v`` numbers, the others by text.
SORT_SCRIPT = """
(function () {
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    function sort() {
      var table = th.closest("table");
      var body = table.tBodies[0];
      var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-dir"); });
      th.setAttribute("data-dir", dir);
      var index = th.cellIndex;
      var numeric = th.classList.contains("num");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[index], y = b.cells[index], order;
        if (numeric) {
          order = Number(x.getAttribute("data-v") || "NaN") -
            Number(y.getAttribute("data-v") || "NaN");
          if (isNaN(order)) { order = 0; }
        } else {
          order = x.textContent.localeCompare(y.textContent);
        }
        return dir === "asc" ? order : -order;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { sort(); } });
  });
})();
"""
