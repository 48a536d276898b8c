"""The page's zoom script: it redraws the timeline and concurrency for the visible window.

It unpacks the instances ``packing.py`` wrote and, for a window, either draws the
instances one by one (at most ``maxDetail`` in view, with exact hovers and exact
concurrency steps) or re-buckets them (births, peak live, RCU-pending and pinning levels per
bucket, one bucket per pixel column at most). Its arithmetic is the Python side's: at the
whole-trace range it computes exactly the buckets ``aggregate.bucket_activity`` did, which
the browser tests check. Zooming back out restores the page's own whole-trace figures.

A page too large to carry its instances carries finer levels of its buckets instead
(``pyramid.py``): a window is then drawn from the coarsest level that gives one bucket per
pixel column, or the finest there is, stretched.
"""

from __future__ import annotations

ZOOM_SCRIPT = r"""
function qtraceZoom(cfg, byId) {
  "use strict";
  var Z = cfg.zoom;
  var timeline = byId(cfg.timeline), conc = byId(cfg.concurrency);
  var entries = {};
  cfg.figures.forEach(function (f) { entries[f.id] = f; });
  var lanes = Z.lanes, L = lanes.y0.length;
  var stateNode = byId("qtrace-zoom-state");
  var home = {timeline: null, concurrency: null, text: stateNode.textContent, factor: 1};
  var unpacked = null, finer = null, current = "home", wanted = null, busy = false, serial = 0;
  var shownRange = null;

  function clone(value) { return JSON.parse(JSON.stringify(value)); }
  // The timeline as the page wrote it (whole-trace buckets, bars, anomalies, markers).
  var original = clone(entries[cfg.timeline].data);
  // The plot's width in pixels; before the first draw, the page's width less the margins.
  function plotWidth() {
    var size = timeline._fullLayout && timeline._fullLayout._size;
    if (size) { return Math.max(50, Math.floor(size.w)); }
    var margin = entries[cfg.timeline].layout.margin || {};
    return Math.max(50, timeline.clientWidth - (margin.l || 80) - (margin.r || 80));
  }
  function fmt(value) { return Math.round(value).toLocaleString("en-US"); }
  // As qtrace.formatting's significant: three significant figures (polars' round_sig_figs),
  // no ".0" on a whole number.
  function significant(value) {
    if (value === 0) { return "0"; }
    var scale = Math.pow(10, 2 - Math.floor(Math.log10(Math.abs(value))));
    return String(Math.round(value * scale) / scale);
  }
  // As qtrace.formatting's duration. polars divides by multiplying with the reciprocal,
  // which rounds some halves down: so does this.
  function duration(ns) {
    var units = [[1e9, "s"], [1e6, "ms"], [1e3, "\u00b5s"]];
    for (var u = 0; u < units.length; u += 1) {
      if (Math.abs(ns) >= units[u][0]) {
        return significant(ns * (1 / units[u][0])) + " " + units[u][1];
      }
    }
    return significant(ns) + " ns";
  }
  // A bucket's width: a duration, or a number of events for a trace without a clock.
  function short(raw) { return Z.clock ? duration(raw) : significant(raw) + " events"; }
  // As qtrace.formatting's escape_html.
  function escapeText(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&#34;").replace(/'/g, "&#39;");
  }
  function round(value, places) { var f = Math.pow(10, places); return Math.round(value * f) / f; }

  // ---- unpacking (packing.py) ----
  function inflate(base64) {
    var text = atob(base64), bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i += 1) { bytes[i] = text.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }
  function unzig(v) { return v % 2 === 0 ? v / 2 : -(v + 1) / 2; }
  function unpack() {
    if (unpacked !== null) { return unpacked; }
    var P = Z.packed, n = P.count;
    var text = document.getElementById("qtrace-instances").textContent;
    unpacked = inflate(text.trim()).then(function (bytes) {
      function column(name) {
        var spec = P.columns[name], out = new Float64Array(n), scale = 1, p, i, base;
        for (p = 0; p < spec[1]; p += 1, scale *= 256) {
          base = spec[0] + p * n;
          for (i = 0; i < n; i += 1) { out[i] += bytes[base + i] * scale; }
        }
        return out;
      }
      var d = {n: n}, i, a, b;
      d.start = column("start"); d.seq = column("seq");
      for (i = 0, a = 0, b = 0; i < n; i += 1) {
        a += d.start[i]; d.start[i] = a;
        b += unzig(d.seq[i]); d.seq[i] = b;
      }
      function optional(name, base, signed) {
        var v = column(name);
        for (var k = 0; k < n; k += 1) {
          v[k] = v[k] === 0 ? NaN : base[k] + (signed ? unzig(v[k] - 1) : v[k] - 1);
        }
        return v;
      }
      d.rcu = optional("rcu", d.start, true); d.rcuSeq = optional("rcuSeq", d.seq, false);
      d.destroy = optional("destroy", d.start, true);
      d.destroySeq = optional("destroySeq", d.seq, false);
      d.lost = optional("lost", d.start, true); d.lostSeq = optional("lostSeq", d.seq, false);
      d.lane = Int32Array.from(column("lane")); d.flags = Int32Array.from(column("flags"));
      d.generation = column("generation"); d.source = Int32Array.from(column("source"));
      d.viewHi = column("viewHi"); d.viewLo = column("viewLo"); d.line = column("line");
      for (i = 0, a = 0, b = 0; i < n; i += 1) {
        a += unzig(d.viewHi[i]); d.viewHi[i] = a;
        b += unzig(d.viewLo[i]); d.viewLo[i] = b;
      }
      for (i = 0, a = 0; i < n; i += 1) {
        a += unzig(d.line[i]); d.line[i] = a - 1 < 0 ? NaN : a - 1;
      }
      // Where each instance's life ends (the trace end when open), its pin end, and which
      // instances live long: the rest are found by a binary search on their start.
      d.finish = new Float64Array(n); d.pinEnd = new Float64Array(n);
      d.pinEndSeq = new Float64Array(n); d.reach = new Float64Array(n);
      var longs = [], longest = Z.spanRaw / Z.buckets, reach = -Infinity;
      for (i = 0; i < n; i += 1) {
        var life = (d.flags[i] >> 4) & 3, pin = (d.flags[i] >> 6) & 3;
        var end = eventAt(d, life, i);
        d.finish[i] = isNaN(end) ? Z.endRaw : end;
        d.pinEnd[i] = eventAt(d, pin, i); d.pinEndSeq[i] = eventSeq(d, pin, i);
        if (d.finish[i] - d.start[i] > longest) { longs.push(i); } else if (d.finish[i] > reach) {
          reach = d.finish[i];
        }
        d.reach[i] = reach;
      }
      d.longs = Int32Array.from(longs);
      d.isLong = new Uint8Array(n);
      for (i = 0; i < longs.length; i += 1) { d.isLong[longs[i]] = 1; }
      return d;
    });
    return unpacked;
  }
  function eventAt(d, kind, i) {
    return kind === 1 ? d.rcu[i] : kind === 2 ? d.destroy[i] : kind === 3 ? d.lost[i] : NaN;
  }
  function eventSeq(d, kind, i) {
    return kind === 1 ? d.rcuSeq[i] : kind === 2 ? d.destroySeq[i] :
      kind === 3 ? d.lostSeq[i] : NaN;
  }

  // ---- the instances of a window ----
  function firstAtLeast(values, target) {
    var lo = 0, hi = values.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (values[mid] < target) { lo = mid + 1; } else { hi = mid; }
    }
    return lo;
  }
  function firstAbove(values, target) {
    var lo = 0, hi = values.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (values[mid] <= target) { lo = mid + 1; } else { hi = mid; }
    }
    return lo;
  }
  // Instances whose life [start, finish] meets [A, B] (raw units since the origin).
  function query(d, A, B) {
    var lo = firstAtLeast(d.reach, A), hi = firstAbove(d.start, B), out = [], i;
    for (i = lo; i < hi; i += 1) {
      if (!d.isLong[i] && d.finish[i] >= A) { out.push(i); }
    }
    for (i = 0; i < d.longs.length; i += 1) {
      var j = d.longs[i];
      if (d.start[j] <= B && d.finish[j] >= A) { out.push(j); }
    }
    return out;
  }

  // The pin levels of every lane through [A, B): levels entering A, then after each event
  // (all changes of one event applied together), as the model's concurrency table has them.
  function sweep(d, idx, A, B, record) {
    var enterLive = new Int32Array(L), enterPending = new Int32Array(L);
    var cap = idx.length * 3, m = 0;
    var seqs = new Float64Array(cap), times = new Float64Array(cap);
    var laneOf = new Int32Array(cap), dLive = new Int8Array(cap), dPending = new Int8Array(cap);
    var seqBase = Infinity, seqTop = -Infinity;
    function add(seq, time, lane, dl, dp) {
      if (time < A) { enterLive[lane] += dl; enterPending[lane] += dp; return; }
      if (time >= B) { return; }
      seqs[m] = seq; times[m] = time; laneOf[m] = lane; dLive[m] = dl; dPending[m] = dp;
      if (seq < seqBase) { seqBase = seq; }
      if (seq > seqTop) { seqTop = seq; }
      m += 1;
    }
    for (var k = 0; k < idx.length; k += 1) {
      var i = idx[k], lane = d.lane[i];
      if (lanes.nil[lane]) { continue; }  // nil-root views pin nothing
      var pinKind = (d.flags[i] >> 6) & 3, pinEnd = d.pinEnd[i], pinSeq = d.pinEndSeq[i];
      var rcu = d.rcu[i];
      var pending = !isNaN(rcu) && (isNaN(pinEnd) || pinSeq > d.rcuSeq[i]);
      add(d.seq[i], d.start[i], lane, 1, 0);
      if (pending) {
        add(d.rcuSeq[i], rcu, lane, -1, 1);
        if (pinKind) { add(pinSeq, pinEnd, lane, 0, -1); }
      } else if (pinKind) {
        add(pinSeq, pinEnd, lane, -1, 0);
      }
    }
    // Sort the changes by seq: one native sort of (seq - base) * m + index.
    var order = new Float64Array(m), j;
    var packed = (seqTop - seqBase + 1) * m < 9e15;
    for (j = 0; j < m; j += 1) { order[j] = packed ? (seqs[j] - seqBase) * m + j : j; }
    if (packed) { order.sort(); } else {
      var byIndex = Array.from(order).sort(function (x, y) { return seqs[x] - seqs[y]; });
      order = Float64Array.from(byIndex);
    }
    var live = Int32Array.from(enterLive), pendingLevel = Int32Array.from(enterPending);
    var mark = new Int32Array(L).fill(-1), r = 0, group = 0;
    function at(position) {
      return packed ? order[position] - Math.floor(order[position] / m) * m : order[position];
    }
    while (r < m) {
      var first = at(r), seq = seqs[first], time = times[first], touched = [];
      for (; r < m && seqs[at(r)] === seq; r += 1) {
        j = at(r);
        var lane2 = laneOf[j];
        live[lane2] += dLive[j]; pendingLevel[lane2] += dPending[j];
        if (mark[lane2] !== group) { mark[lane2] = group; touched.push(lane2); }
      }
      group += 1;
      for (var t = 0; t < touched.length; t += 1) {
        record(touched[t], time, live[touched[t]], pendingLevel[touched[t]]);
      }
    }
    return {live: enterLive, pending: enterPending};
  }

  // ---- buckets ----
  function bucketer(A, W, N) {
    return function (raw) { return Math.min(N - 1, Math.max(0, Math.floor((raw - A) * N / W))); };
  }
  function aggregate(d, idx, A, W, N) {
    var size = L * N, bucket = bucketer(A, W, N);
    var cells = {births: new Int32Array(size), live: new Int32Array(size),
      pending: new Int32Array(size), pinning: new Int32Array(size)};
    var lastLive = new Int32Array(size), lastPending = new Int32Array(size);
    var stepped = new Uint8Array(size), k, cell;
    for (k = 0; k < idx.length; k += 1) {
      var s = d.start[idx[k]];
      if (s >= A && s < A + W) { cells.births[d.lane[idx[k]] * N + bucket(s)] += 1; }
    }
    var entering = sweep(d, idx, A, A + W, function (lane, time, live, pending) {
      cell = lane * N + bucket(time);
      if (!stepped[cell]) {
        stepped[cell] = 1; cells.live[cell] = live; cells.pending[cell] = pending;
        cells.pinning[cell] = live + pending;
      } else {
        cells.live[cell] = Math.max(cells.live[cell], live);
        cells.pending[cell] = Math.max(cells.pending[cell], pending);
        cells.pinning[cell] = Math.max(cells.pinning[cell], live + pending);
      }
      lastLive[cell] = live; lastPending[cell] = pending;
    });
    // A bucket without a change carries the level the previous change left.
    for (var lane = 0; lane < L; lane += 1) {
      var carriedLive = entering.live[lane], carriedPending = entering.pending[lane];
      for (var b = 0; b < N; b += 1) {
        cell = lane * N + b;
        cells.live[cell] = Math.max(cells.live[cell], carriedLive);
        cells.pending[cell] = Math.max(cells.pending[cell], carriedPending);
        cells.pinning[cell] = Math.max(cells.pinning[cell], carriedLive + carriedPending);
        if (stepped[cell]) { carriedLive = lastLive[cell]; carriedPending = lastPending[cell]; }
      }
    }
    return cells;
  }
  // Whole-trace cells read back from the page's own heatmap (its customdata), to merge.
  function homeCells(bornTrace) {
    var N = bornTrace.x.length - 1, size = L * N;
    var cells = {births: new Int32Array(size), live: new Int32Array(size),
      pending: new Int32Array(size), pinning: new Int32Array(size)};
    for (var lane = 0; lane < L; lane += 1) {
      var row = bornTrace.customdata[2 * lane];
      for (var b = 0; b < N; b += 1) {
        var c = row[b];
        if (c) {
          var cell = lane * N + b;
          cells.births[cell] = c[0]; cells.live[cell] = c[1];
          cells.pending[cell] = c[2]; cells.pinning[cell] = c[3];
        }
      }
    }
    return {cells: cells, N: N};
  }
  // Neighbouring buckets merged by ``factor``: births add up, peaks take the highest.
  function merge(cells, N, factor) {
    var M = Math.ceil(N / factor), size = L * M;
    var out = {births: new Int32Array(size), live: new Int32Array(size),
      pending: new Int32Array(size), pinning: new Int32Array(size)};
    for (var lane = 0; lane < L; lane += 1) {
      for (var b = 0; b < N; b += 1) {
        var from = lane * N + b, to = lane * M + Math.floor(b / factor);
        out.births[to] += cells.births[from];
        out.live[to] = Math.max(out.live[to], cells.live[from]);
        out.pending[to] = Math.max(out.pending[to], cells.pending[from]);
        out.pinning[to] = Math.max(out.pinning[to], cells.pinning[from]);
      }
    }
    return {cells: out, N: M};
  }

  // The two heatmaps of figures.aggregate_traces, for cells over the x edges given.
  function heatmaps(cells, N, edges, label) {
    var maxBorn = 1, maxPending = 0, i;
    for (i = 0; i < cells.births.length; i += 1) {
      if (cells.births[i] > maxBorn) { maxBorn = cells.births[i]; }
      if (cells.pending[i] > maxPending) { maxPending = cells.pending[i]; }
    }
    var top = Math.max(1, Math.log10(maxBorn)), zmin = -top * Z.liveOnlyBand / (1 - Z.liveOnlyBand);
    var bornY = [], bornZ = [], custom = [], pendingY = [], pendingZ = [];
    var rows = Z.rows, gap = new Array(N).fill(null);
    for (var lane = 0; lane < L; lane += 1) {
      var y0 = lanes.y0[lane];
      if (lane) { bornZ.push(gap); custom.push(gap); pendingZ.push(gap); }
      bornY.push(round(y0 + rows.born[0], 4), round(y0 + rows.born[1], 4));
      pendingY.push(round(y0 + rows.pending[0], 4), round(y0 + rows.pending[1], 4));
      var zRow = new Array(N), cRow = new Array(N), pRow = new Array(N);
      for (var b = 0; b < N; b += 1) {
        var c = lane * N + b, born = cells.births[c], live = cells.live[c], pend = cells.pending[c];
        zRow[b] = born > 0 ? round(Math.log10(born), 3) : live > 0 ? round(zmin, 4) : null;
        cRow[b] = born + live + pend > 0 ? [born, live, pend, cells.pinning[c]] : null;
        pRow[b] = pend > 0 ? pend : null;
      }
      bornZ.push(zRow); custom.push(cRow); pendingZ.push(pRow);
    }
    var template = withRole(original, "aggregate");
    var born = clone(template[0]), pending = clone(template[1]);
    var decades = [];
    for (i = 0; i <= Math.floor(top); i += 1) { decades.push(i); }
    born.x = edges; born.y = bornY; born.z = bornZ; born.customdata = custom;
    born.zmin = round(zmin, 4); born.zmax = round(top, 4);
    decades = decades.slice(0, Z.decadeLabels.length);
    born.colorbar.tickvals = [round(zmin / 2, 4)].concat(decades);
    born.colorbar.ticktext = ["live, none born"].concat(decades.map(function (e) {
      return Z.decadeLabels[e];
    }));
    born.hovertemplate = born.hovertemplate.replace(/bucket of [^<]*/, "bucket of " + label);
    var pendingTop = Math.max(maxPending, 2);
    pending.x = edges; pending.y = pendingY; pending.z = pendingZ; pending.zmax = pendingTop;
    delete pending.colorbar.dtick; delete pending.colorbar.tickformat;
    if (pendingTop <= 6) {
      pending.colorbar.dtick = 1;
    } else {
      pending.colorbar.tickformat = ",d";
    }
    pending.hovertemplate = pending.hovertemplate.replace(/bucket of [^<]*/, "bucket of " + label);
    return [born, pending];
  }

  // ---- instances one by one ----
  var CATS = Z.categories;
  function liveCategory(d, i) {
    var status = Z.packed.statuses[d.flags[i] & 7];
    if (status === "leaked" || status === "current" || status === "immortal") { return status; }
    return status === "lost" && isNaN(d.rcu[i]) ? "lost" : "live";
  }
  function pendingCategory(d, i) {
    if (isNaN(d.rcu[i]) || ((d.flags[i] >> 4) & 3) === 1) { return null; }
    var status = Z.packed.statuses[d.flags[i] & 7];
    if (status === "lost") { return "pending_lost"; }
    return status === "rcu_pending" ? "pending_at_end" : "pending";
  }
  function hex(hi, lo) {
    if (!hi) { return "0x" + lo.toString(16); }
    return "0x" + hi.toString(16) + ("0000000" + lo.toString(16)).slice(-8);
  }
  function when(label, raw, seq) {
    if (isNaN(seq)) { return null; }
    return Z.clock ? label + " +" + raw + " ns (seq " + seq + ")" : label + " seq " + seq;
  }
  // As instances.hover_text.
  function hover(d, i) {
    var lane = d.lane[i], status = Z.packed.statuses[d.flags[i] & 7];
    var lines = [
      "<b>view " + hex(d.viewHi[i], d.viewLo[i]) + "</b> \u00b7 generation " + d.generation[i],
      "root " + lanes.root[lane] + " \u00b7 run " + lanes.run[lane],
      lanes.rootLabel[lane],
      "status " + status + ((d.flags[i] >> 3) & 1 ? " (uncertain)" : ""),
      when("new", d.start[i], d.seq[i]),
      when("destroy_rcu", d.rcu[i], d.rcuSeq[i]),
      when("destroy", d.destroy[i], d.destroySeq[i]),
    ];
    if (!isNaN(d.lostSeq[i])) {
      lines.push("pointer reused by a flatview_new at seq " + d.lostSeq[i]);
    }
    if (Z.clock) {
      var liveEnd = !isNaN(d.rcu[i]) ? d.rcu[i] : !isNaN(d.destroy[i]) ? d.destroy[i] : d.lost[i];
      if (!isNaN(liveEnd)) {
        var liveNs = liveEnd - d.start[i];
        lines.push("live " + liveNs + " ns (" + duration(liveNs) + ")");
      }
      if (!isNaN(d.destroy[i]) && !isNaN(d.rcu[i])) {
        var grace = d.destroy[i] - d.rcu[i];
        lines.push("RCU grace " + grace + " ns (" + duration(grace) + ")");
      }
    }
    var source = escapeText(Z.packed.sources[d.source[i]] || "");
    lines.push("source " + source + (isNaN(d.line[i]) ? "" : ":" + d.line[i]));
    return lines.filter(function (x) { return x !== null; }).join("<br>");
  }
  function singles(d, idx) {
    var order = idx.slice().sort(function (a, b) {
      return d.lane[a] - d.lane[b] || d.start[a] - d.start[b] || d.seq[a] - d.seq[b];
    });
    var slot = new Int32Array(order.length), slots = new Int32Array(L);
    var k, lane = -1, busy = [], free = [];
    for (k = 0; k < order.length; k += 1) {
      var i = order[k], liveEnd = !isNaN(d.rcu[i]) ? d.rcu[i] : d.finish[i];
      if (d.lane[i] !== lane) { lane = d.lane[i]; busy = []; free = []; }
      busy.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
      while (busy.length && busy[0][0] <= d.start[i]) { free.push(busy.shift()[1]); }
      free.sort(function (a, b) { return a - b; });
      var s = free.length ? free.shift() : slots[lane]++;
      busy.push([Math.max(liveEnd, d.start[i]), s]);
      slot[k] = s;
    }
    var groups = {};
    for (k = 0; k < order.length; k += 1) {
      var j = order[k], ln = d.lane[j], h = lanes.height[ln];
      var slotH = Math.min(1, h / Math.max(slots[ln], 1));
      var y = lanes.y0[ln] + (slot[k] + 0.5) * slotH, text = hover(d, j);
      var end = !isNaN(d.rcu[j]) ? d.rcu[j] : d.finish[j];
      var phases = [
        [liveCategory(d, j), d.start[j], end], [pendingCategory(d, j), end, d.finish[j]],
      ];
      for (var p = 0; p < 2; p += 1) {
        var cat = phases[p][0];
        if (cat === null) { continue; }
        var g = groups[cat] || (groups[cat] = {base: [], x: [], y: [], width: [], hovertext: []});
        g.base.push(phases[p][1] / Z.perUnit); g.x.push((phases[p][2] - phases[p][1]) / Z.perUnit);
        g.y.push(y); g.width.push(CATS[cat].width * slotH); g.hovertext.push(text);
      }
    }
    var traces = [];
    Z.categoryOrder.forEach(function (cat) {
      var g = groups[cat];
      if (!g) { return; }
      traces.push({type: "bar", orientation: "h", base: g.base, x: g.x, y: g.y, width: g.width,
        name: CATS[cat].name + " \u00b7 " + fmt(g.x.length) + " in view", legendgroup: cat,
        marker: CATS[cat].marker, hovertext: g.hovertext,
        hovertemplate: "%{hovertext}<extra></extra>",
        meta: {role: "zoom-instances", category: cat}});
    });
    return traces;
  }

  // ---- concurrency lines ----
  // Every line of the page's concurrency figure, its points recomputed: a lane's own line
  // by its meta.lane, the grey "other roots" line from the lanes its meta lists.
  function lineTraces(series) {
    return home.concurrency.map(function (t, index) {
      var meta = t.meta || {};
      if (meta.role !== "concurrency") { return t; }
      var copy = Object.assign({}, t), key = meta.replay ? "live" : meta.row;
      // Keep what the root focus (the dropdown) shows.
      if (conc.data[index] && conc.data[index].visible !== undefined) {
        copy.visible = conc.data[index].visible;
      }
      var merged = meta.lane >= 0 ? [meta.lane] : meta.lanes;
      copy.x = []; copy.y = [];
      merged.forEach(function (lane) {
        var s = series(lane);
        if (meta.lane < 0) {
          copy.x = copy.x.concat(s.x, [null]); copy.y = copy.y.concat(s[key], [null]);
        } else {
          copy.x = s.x; copy.y = s[key];
        }
      });
      return copy;
    });
  }
  function bucketLines(cells, N, edges) {
    return lineTraces(function (lane) {
      var s = {x: edges};
      ["live", "pending", "pinning"].forEach(function (key) {
        var ys = Array.prototype.slice.call(cells[key].subarray(lane * N, lane * N + N));
        ys.push(ys[N - 1]);
        s[key] = ys;
      });
      return s;
    });
  }
  function stepLines(d, idx, A, B) {
    var byLane = [];
    for (var lane = 0; lane < L; lane += 1) {
      byLane.push({x: [], live: [], pending: [], pinning: []});
    }
    function push(lane, raw, live, pending) {
      var s = byLane[lane];
      s.x.push(raw / Z.perUnit); s.live.push(live); s.pending.push(pending);
      s.pinning.push(live + pending);
    }
    var points = [];
    var entering = sweep(d, idx, A, B, function (lane, time, live, pending) {
      points.push([lane, time, live, pending]);
    });
    for (lane = 0; lane < L; lane += 1) {
      push(lane, A, entering.live[lane], entering.pending[lane]);
    }
    points.forEach(function (p) { push(p[0], p[1], p[2], p[3]); });
    for (lane = 0; lane < L; lane += 1) {
      var s = byLane[lane], last = s.x.length - 1;
      push(lane, B, s.live[last], s.pending[last]);
    }
    return lineTraces(function (l) { return byLane[l]; });
  }

  // ---- a page without its instances: finer levels of the page's buckets (pyramid.py) ----
  function levels() {
    if (finer !== null) { return finer; }
    var text = document.getElementById("qtrace-pyramid").textContent;
    finer = inflate(text.trim()).then(function (bytes) {
      return Z.pyramid.levels.map(function (level) {
        var out = {N: level.count};
        ["births", "live", "pending", "pinning"].forEach(function (key) {
          var spec = level.columns[key];
          out[key] = new Int32Array(bytes.buffer, bytes.byteOffset + spec[0], spec[1]);
        });
        return out;
      });
    });
    return finer;
  }
  // The window's buckets, from the coarsest level that gives a bucket per pixel column.
  function levelWindow(all, A, B) {
    var width = Math.max(1, Math.min(Z.buckets, plotWidth())), level = all[all.length - 1];
    for (var k = 0; k < all.length; k += 1) {
      if ((B - A) * all[k].N / Z.spanRaw >= width) { level = all[k]; break; }
    }
    var N = level.N, first = Math.max(0, Math.min(N - 1, Math.floor(A * N / Z.spanRaw)));
    var last = Math.max(first + 1, Math.min(N, Math.ceil(B * N / Z.spanRaw))), n = last - first;
    var cells = {}, born = 0;
    ["births", "live", "pending", "pinning"].forEach(function (key) {
      cells[key] = new Int32Array(L * n);
      for (var lane = 0; lane < L; lane += 1) {
        cells[key].set(level[key].subarray(lane * N + first, lane * N + last), lane * n);
      }
    });
    for (var i = 0; i < cells.births.length; i += 1) { born += cells.births[i]; }
    var factor = Math.max(1, Math.ceil(n / width)), merged = merge(cells, n, factor);
    var edges = [], unit = Z.spanRaw / N / Z.perUnit;
    for (var e = 0; e < merged.N; e += 1) { edges.push((first + e * factor) * unit); }
    edges.push(last * unit);
    return {cells: merged.cells, N: merged.N, edges: edges, born: born,
      label: short(Z.spanRaw * factor / N), finest: short(Z.spanRaw / all[all.length - 1].N)};
  }
  function showLevels(A, B) {
    return levels().then(function (all) {
      var w = levelWindow(all, A, B);
      return draw(timelineData(heatmaps(w.cells, w.N, w.edges, w.label), []),
        bucketLines(w.cells, w.N, w.edges),
        span(A, B) + ": " + fmt(w.born) + " view instances born in " + fmt(w.N) +
        " buckets of " + w.label + " per root. The page holds buckets down to " + w.finest +
        " (zoomed further, they are stretched); a dashboard of a window (--begin/--end) " +
        "draws single views.", "levels", w.born, w.N);
    });
  }

  // ---- drawing a window ----
  function withRole(traces, role) {
    return traces.filter(function (t) { return (t.meta && t.meta.role) === role; });
  }
  function timelineData(heat, bars) {
    var rest = original.filter(function (t) {
      var role = t.meta && t.meta.role;
      return role !== "aggregate" && role !== "instances";
    });
    var staticBars = withRole(original, "instances").map(function (t) {
      var copy = Object.assign({}, t);
      copy.visible = bars.length === 0;
      return copy;
    });
    return heat.concat(staticBars, bars, rest);
  }
  function draw(timelineTraces, concTraces, text, mode, count, buckets) {
    stateNode.textContent = text;
    stateNode.setAttribute("data-mode", mode);
    stateNode.setAttribute("data-instances", String(count));
    stateNode.setAttribute("data-buckets", String(buckets));
    return Promise.all([
      Plotly.react(timeline, timelineTraces, timeline.layout),
      Plotly.react(conc, concTraces, conc.layout),
    ]);
  }
  // The window, in seconds since the start with as many decimals as its width needs.
  function span(A, B) {
    if (!Z.clock) {
      return "Events " + fmt(Math.max(A, 0) + Z.originRaw) + " to " + fmt(B + Z.originRaw);
    }
    var digits = Math.min(9, Math.max(0, 2 - Math.floor(Math.log10(Math.max(B - A, 1) / 1e9))));
    return "From " + (A / 1e9).toFixed(digits) + " s to " + (B / 1e9).toFixed(digits) + " s";
  }
  function show(range) {
    shownRange = range;
    if (range === null) {
      return draw(home.timeline, home.concurrency, home.text, "home", Z.instances, home.buckets);
    }
    if (!Z.packed) { return showLevels(range[0] * Z.perUnit, range[1] * Z.perUnit); }
    return unpack().then(function (d) {
      var A = range[0] * Z.perUnit, B = range[1] * Z.perUnit, idx = query(d, A, B);
      if (idx.length <= Z.maxDetail) {
        return draw(timelineData([], singles(d, idx)), stepLines(d, idx, A, B),
          span(A, B) + ": " + fmt(idx.length) + " view instances, each drawn with its exact " +
          "times (hover a bar); the concurrency lines are exact steps.", "singles", idx.length, 0);
      }
      var N = Math.max(1, Math.min(Z.buckets, plotWidth())), W = B - A, edges = [];
      for (var i = 0; i <= N; i += 1) { edges.push((A + W * i / N) / Z.perUnit); }
      var cells = aggregate(d, idx, A, W, N), label = short(W / N);
      return draw(timelineData(heatmaps(cells, N, edges, label), []),
        bucketLines(cells, N, edges),
        span(A, B) + ": " + fmt(idx.length) + " view instances in " + fmt(N) +
        " buckets of " + label + " per root; zoom in to " + fmt(Z.maxDetail) +
        " or fewer to see them one by one.", "aggregate", idx.length, N);
    });
  }
  // One redraw at a time; the last range asked for wins. data-serial counts the requests
  // answered (a range already shown answers at once), so a test can wait for one.
  function settle() {
    if (busy || wanted === null) { return; }
    var next = wanted.range, key = next === null ? "home" : next.join(",");
    wanted = null;
    function done() {
      busy = false; serial += 1; stateNode.setAttribute("data-serial", String(serial)); settle();
    }
    busy = true;
    if (key === current) { done(); return; }
    current = key;
    show(next).then(done, function (err) {
      busy = false; console.error("qtrace: zoom failed: " + err);
    });
  }

  // The whole-trace figures ("home"): the page's heatmap merged down to one bucket per
  // pixel column at most (Plotly drops bricks narrower than a pixel). Made before the first
  // draw, and again when the window's width changes the merge.
  function makeHome() {
    var born = withRole(original, "aggregate")[0];
    var buckets = born ? born.x.length - 1 : 0;
    var factor = born ? Math.max(1, Math.ceil(buckets / plotWidth())) : 1;
    home.factor = factor;
    home.buckets = buckets;
    home.timeline = clone(original);
    home.text = Z.homeText.replace("{buckets}", fmt(buckets)).replace("{width}",
      short(Z.spanRaw / Math.max(buckets, 1)));
    if (factor === 1) { return; }
    var whole = homeCells(born), merged = merge(whole.cells, whole.N, factor), edges = [];
    for (var e = 0; e < merged.N; e += 1) { edges.push(born.x[e * factor]); }
    edges.push(born.x[born.x.length - 1]);
    var label = short(Z.spanRaw * factor / whole.N);
    home.timeline = timelineData(heatmaps(merged.cells, merged.N, edges, label), []);
    home.buckets = merged.N;
    home.text = Z.homeText.replace("{buckets}", fmt(merged.N)).replace("{width}", label);
  }
  makeHome();
  home.concurrency = clone(entries[cfg.concurrency].data);
  entries[cfg.timeline].data = clone(home.timeline);
  stateNode.textContent = home.text;
  stateNode.setAttribute("data-mode", "home");
  stateNode.setAttribute("data-instances", String(Z.instances));
  stateNode.setAttribute("data-buckets", String(home.buckets));
  // After a resize (and once drawn, when the estimate was off), merge again if the width
  // asks for another factor, and redraw what is shown.
  function refit() {
    var before = home.factor;
    makeHome();
    if (home.factor === before) { return; }
    current = null;
    if (shownRange === null) {
      draw(home.timeline, home.concurrency, home.text, "home", Z.instances, home.buckets);
      current = "home";
    } else {
      wanted = {range: shownRange}; settle();
    }
  }
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(refit, 200);
  });
  return {
    // Once the figures are drawn: check the merge against the plot's real width.
    drawn: function () { refit(); },
    // range: [start, end] in axis units, or null for the whole trace.
    request: function (range) {
      if (Z.packed || Z.pyramid) { wanted = {range: range}; settle(); }
    },
    // For tests and the curious: the bars a window would get, however many.
    singles: function (range) {
      return unpack().then(function (d) {
        return singles(d, query(d, range[0] * Z.perUnit, range[1] * Z.perUnit));
      });
    },
    wholeCells: function () {
      return unpack().then(function (d) {
        var all = query(d, 0, Z.spanRaw), N = Z.buckets;
        return aggregate(d, all, 0, Z.spanRaw, N);
      });
    },
  };
}
"""
