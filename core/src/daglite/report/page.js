// The daglite report page: draws the data embedded in #daglite-data. No network, no library.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("daglite-data").textContent);
  var COLORS = { "succeeded": "#2da44e", "cached": "#54aeff", "failed": "#cf222e",
    "retried": "#d4a72c", "timed out": "#8250df", "running": "#8c959f" };
  var ROW = 18, GAP = 5, LEVELS = ["debug", "info", "warning", "error", "critical"];
  var state = null;

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function dur(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1) return (ms * 1000).toFixed(0) + " µs";
    if (ms < 1000) return ms.toFixed(ms < 10 ? 2 : 1) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    return Math.floor(ms / 60000) + " min " + ((ms % 60000) / 1000).toFixed(0) + " s";
  }
  function num(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
  function bytes(n) {
    if (n === null || n === undefined) return "–";
    var units = ["B", "KB", "MB", "GB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  function table(node, head, rows, numeric) {
    clear(node);
    node.appendChild(el("thead", null, [el("tr", null, head.map(function (h, i) {
      return el("th", { text: h, cls: numeric && numeric[i] ? "num" : "" });
    }))]));
    var body = el("tbody");
    rows.forEach(function (row) {
      body.appendChild(el("tr", row.attrs || null, row.cells.map(function (c, i) {
        var td = el("td", { cls: numeric && numeric[i] ? "num" : "" });
        if (c instanceof Node) td.appendChild(c); else td.textContent = c;
        return td;
      })));
    });
    node.appendChild(body);
  }

  // -- header, notes, footer ------------------------------------------------------------
  function header(s) {
    $("title").textContent = s.entry || (s.command ? "session" : "session " + s.id);
    var status = $("status");
    status.textContent = s.status;
    status.className = "badge " + s.status;
    var facts = clear($("facts"));
    var started = new Date(s.started * 1000);
    [["started", started.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")],
     ["duration", dur(s.duration)], ["backend", s.backend || "–"],
     ["host", (s.host || "–") + (s.pid ? " (pid " + s.pid + ")" : "")],
     ["command", s.command ? el("code", { text: s.command.join(" ") }) : "–"],
     ["session", s.id]].concat(s.error ? [["error", s.error]] : []).forEach(function (f) {
      facts.appendChild(el("dt", { text: f[0] }));
      facts.appendChild(el("dd", { "data-fact": f[0] }, [f[1]]));
    });
    var counts = clear($("counts"));
    [["calls", "task calls"], ["succeeded", "succeeded"], ["cached", "cached"],
     ["failed", "failed"], ["retried", "retried"], ["timed out", "timed out"],
     ["running", "unfinished"]].forEach(function (c) {
      if (c[0] === "running" && !s.counts.running) return;
      counts.appendChild(el("li", { "data-count": c[0] }, [el("b", { text: num(s.counts[c[0]]) }), c[1]]));
    });
  }
  function notes(s) {
    var box = clear($("notes"));
    var all = DATA.notes.concat(s ? s.notes : []);
    box.hidden = all.length === 0;
    all.forEach(function (n) { box.appendChild(el("p", { cls: "note", text: "⚠ " + n })); });
  }

  // -- timeline ---------------------------------------------------------------------------
  function pack(spans) {  // greedy rows for overlapping spans (workflows, maps)
    var ends = [];
    return spans.map(function (sp) {
      for (var r = 0; r < ends.length; r++) if (ends[r] <= sp.start) break;
      ends[r] = sp.end;
      return r;
    });
  }
  function layout(s) {
    var b = s.bars, rows = [], labels = [], y = 0;
    function addRow(label, cls, levels, title) {
      labels.push({ label: label, cls: cls, top: y, height: levels * ROW + GAP, title: title });
      var top = y; y += levels * ROW + GAP; return top;
    }
    var flowRows = pack(s.workflows), mapRows = pack(s.maps);
    var flowTop = s.workflows.length ?
      addRow("workflows", "special", Math.max.apply(null, flowRows) + 1) : 0;
    var mapTop = s.maps.length ? addRow("maps", "special", Math.max.apply(null, mapRows) + 1) : 0;
    var depth = s.lanes.map(function () { return 0; });
    for (var i = 0; i < b.s.length; i++) depth[b.l[i]] = Math.max(depth[b.l[i]], b.z[i]);
    var laneTop = s.lanes.map(function (lane, li) {
      return addRow(lane.label, "worker", depth[li] + 1, lane.label);
    });
    for (i = 0; i < b.s.length; i++) rows.push(laneTop[b.l[i]] + b.z[i] * ROW);
    return { height: y, labels: labels, barTop: rows, flowTop: flowTop, flowRows: flowRows,
      mapTop: mapTop, mapRows: mapRows };
  }
  function timeline(s) {
    var canvas = $("gantt"), labels = clear($("lane-labels"));
    var lay = layout(s);
    lay.labels.forEach(function (l) {
      labels.appendChild(el("div", { cls: "lane " + l.cls, title: l.title || l.label,
        style: "height:" + l.height + "px", "data-lane": l.label }, [l.label]));
    });
    var full = Math.max(s.duration, 1);
    state = { s: s, lay: lay, t0: 0, t1: full, full: full, canvas: canvas };
    canvas.setAttribute("data-bars", String(s.bars.s.length));
    canvas.setAttribute("data-lanes", String(s.lanes.length));
    draw();
  }
  function draw() {
    if (!state) return;
    var c = state.canvas, s = state.s, lay = state.lay, b = s.bars;
    var width = c.parentNode.clientWidth || 800, ratio = window.devicePixelRatio || 1;
    var height = Math.max(lay.height, ROW);
    c.width = Math.round(width * ratio); c.height = Math.round(height * ratio);
    c.style.height = height + "px";
    var g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    var t0 = state.t0, scale = width / (state.t1 - state.t0);
    state.width = width; state.scale = scale;
    g.fillStyle = "#eaeef2";
    lay.labels.forEach(function (l) { g.fillRect(0, l.top + l.height - 1, width, 1); });
    function bar(start, length, top, h, color, least) {
      // whole pixels: crisp edges, and a short call stays visible (`least` px wide)
      var x = Math.floor((start - t0) * scale), w = Math.max(Math.ceil(length * scale), least || 1);
      if (x > width || x + w < 0) return;
      g.fillStyle = color; g.fillRect(x, top + 1, w, h - 2);
    }
    s.workflows.forEach(function (f, i) {
      bar(f.start, f.end - f.start, lay.flowTop + lay.flowRows[i] * ROW, ROW,
        f.status === "failure" ? COLORS.failed : "#6e7781");
    });
    s.maps.forEach(function (m, i) {
      bar(m.start, m.end - m.start, lay.mapTop + lay.mapRows[i] * ROW, ROW, "#0969da");
    });
    // successes first, then what went wrong on top, so a short failure is never hidden
    for (var pass = 0; pass < 2; pass++) {
      for (var i = 0; i < b.s.length; i++) {
        var plain = b.o[i] <= 1;  // succeeded or cached
        if (plain === (pass === 0)) {
          bar(b.s[i], b.d[i], lay.barTop[i], ROW, COLORS[b.outcomes[b.o[i]]], plain ? 1 : 3);
        }
      }
    }
    axis(width);
  }
  function axis(width) {
    var node = clear($("axis")), span = state.t1 - state.t0;
    var step = Math.pow(10, Math.floor(Math.log10(span / 6)));
    if (span / step > 12) step *= 5; else if (span / step > 6) step *= 2;
    for (var t = Math.ceil(state.t0 / step) * step; t <= state.t1; t += step) {
      node.appendChild(el("span", { style: "left:" + ((t - state.t0) * state.scale) + "px",
        text: t === 0 ? "0" : dur(t) }));
    }
    void width;
  }
  function zoom(factor, atX) {
    var span = state.t1 - state.t0, at = state.t0 + (atX === undefined ? state.width / 2 : atX) / state.scale;
    var next = Math.min(Math.max(span * factor, 0.01), state.full);
    var t0 = at - (at - state.t0) * (next / span);
    t0 = Math.min(Math.max(t0, 0), state.full - next);
    state.t0 = t0; state.t1 = t0 + next; draw();
  }
  function hit(x, y) {
    var s = state.s, lay = state.lay, b = s.bars, t = state.t0 + x / state.scale;
    var slack = 2 / state.scale;
    // the bar drawn on top wins: what went wrong first, then the latest drawn
    for (var pass = 0; pass < 2; pass++) {
      for (var i = b.s.length - 1; i >= 0; i--) {
        if ((b.o[i] <= 1) !== (pass === 1) || y < lay.barTop[i] || y >= lay.barTop[i] + ROW) continue;
        var x0 = Math.floor((b.s[i] - state.t0) * state.scale);
        var x1 = x0 + Math.max(Math.ceil(b.d[i] * state.scale), b.o[i] <= 1 ? 1 : 3);
        if (x >= x0 - (pass ? 2 : 0) && x <= x1 + (pass ? 2 : 0)) return { bar: i };
      }
    }
    function span(list, top, rowsOf) {
      for (var j = 0; j < list.length; j++) {
        var r = top + rowsOf[j] * ROW;
        if (y >= r && y < r + ROW && t >= list[j].start - slack && t <= list[j].end + slack) return j;
      }
      return -1;
    }
    var f = s.workflows.length ? span(s.workflows, lay.flowTop, lay.flowRows) : -1;
    if (f >= 0) return { flow: s.workflows[f] };
    var m = s.maps.length ? span(s.maps, lay.mapTop, lay.mapRows) : -1;
    return m >= 0 ? { map: s.maps[m] } : null;
  }
  function tip(found) {
    var s = state.s, b = s.bars, lines = [];
    if (found.bar !== undefined) {
      var i = found.bar;
      lines = [["task", b.names[b.n[i]]], ["map index", b.i[i] === null ? "–" : b.i[i]],
        ["outcome", b.outcomes[b.o[i]]], ["attempts", b.a[i]], ["duration", dur(b.d[i])],
        ["started at", dur(b.s[i])], ["where", s.lanes[b.l[i]].label]];
      if (b.k[i] >= 0) lines.push(["cache key", b.keys[b.k[i]]]);
    } else if (found.flow) {
      var f = found.flow;
      lines = [["workflow", f.name], ["status", f.status], ["duration", dur(f.end - f.start)]];
    } else {
      var m = found.map;
      lines = [["map of", m.name], ["backend", m.backend], ["items", num(m.ran)],
        ["failures", num(m.failures)], ["duration", dur(m.end - m.start)]];
    }
    return lines.map(function (l) { return el("div", null, [el("b", { text: l[0] + ": " }), String(l[1])]); });
  }
  function wireTimeline() {
    var c = $("gantt"), tooltip = $("tooltip"), drag = null;
    c.addEventListener("wheel", function (e) {
      if (!state) return;
      e.preventDefault();
      zoom(e.deltaY < 0 ? 0.8 : 1.25, e.offsetX);
    }, { passive: false });
    c.addEventListener("mousedown", function (e) { drag = { x: e.clientX, t0: state.t0 }; });
    window.addEventListener("mouseup", function () { drag = null; });
    c.addEventListener("mousemove", function (e) {
      if (!state) return;
      if (drag) {
        var span = state.t1 - state.t0;
        var t0 = drag.t0 - (e.clientX - drag.x) / state.scale;
        state.t0 = Math.min(Math.max(t0, 0), state.full - span); state.t1 = state.t0 + span;
        tooltip.hidden = true; draw(); return;
      }
      var found = hit(e.offsetX, e.offsetY);
      if (!found) { tooltip.hidden = true; return; }
      clear(tooltip); tip(found).forEach(function (n) { tooltip.appendChild(n); });
      tooltip.hidden = false;
      tooltip.style.left = Math.min(e.clientX + 14, window.innerWidth - 430) + "px";
      tooltip.style.top = (e.clientY + 14) + "px";
    });
    c.addEventListener("mouseleave", function () { tooltip.hidden = true; });
    c.addEventListener("dblclick", function () { state.t0 = 0; state.t1 = state.full; draw(); });
    $("zoom-in").addEventListener("click", function () { zoom(0.5); });
    $("zoom-out").addEventListener("click", function () { zoom(2); });
    $("zoom-reset").addEventListener("click", function () { state.t0 = 0; state.t1 = state.full; draw(); });
    window.addEventListener("resize", draw);
    var legend = $("legend");
    Object.keys(COLORS).forEach(function (k) {
      legend.appendChild(el("li", null, [el("i", { style: "background:" + COLORS[k] }), k]));
    });
  }

  // -- tables -----------------------------------------------------------------------------
  function tasks(s) {
    table($("tasks"), ["task", "calls", "ran", "cached", "failed", "retries", "total time",
      "p50", "p90", "p99", "max", "cache hit rate", "slowest calls"],
      s.tasks.map(function (t) {
        return { attrs: { "data-task": t.name }, cells: [t.name, num(t.count), num(t.ran),
          num(t.cached), num(t.failed), num(t.retries), dur(t.total), dur(t.p50), dur(t.p90),
          dur(t.p99), dur(t.max), t.hit_rate === null ? "–" : (t.hit_rate * 100).toFixed(1) + " %",
          t.slowest.map(function (c) {
            return dur(c.duration) + (c.map_index === null ? "" : " (item " + c.map_index + ")");
          }).join(", ")] };
      }), [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    if (!s.tasks.length) $("tasks").appendChild(el("caption", { cls: "empty", text: "No task calls." }));
  }
  function spark(values) {
    var w = 300, h = 60, max = Math.max.apply(null, values.concat([1e-9]));
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("preserveAspectRatio", "none");
    var step = w / Math.max(values.length, 1);
    values.forEach(function (v, i) {
      var r = document.createElementNS(ns, "rect"), bh = v / max * (h - 4);
      r.setAttribute("x", (i * step).toFixed(2)); r.setAttribute("width", Math.max(step - 1, 1).toFixed(2));
      r.setAttribute("y", (h - bh).toFixed(2)); r.setAttribute("height", bh.toFixed(2));
      r.setAttribute("fill", "#0969da");
      var title = document.createElementNS(ns, "title");
      title.textContent = v.toFixed(1) + " items/s"; r.appendChild(title);
      svg.appendChild(r);
    });
    return svg;
  }
  function maps(s) {
    var box = clear($("maps")); box.className = "maps";
    if (!s.maps.length) { box.appendChild(el("p", { cls: "empty", text: "No map_tasks or gather_tasks in this session." })); return; }
    s.maps.forEach(function (m) {
      var batches = m.batches.length ? m.batches.map(function (b) { return b[1] + " × " + b[0]; }).join(", ")
        : "none (items ran one by one)";
      box.appendChild(el("div", { cls: "map", "data-map": m.name }, [
        el("h3", { text: m.name + " · " + m.backend }),
        el("div", { text: num(m.ran) + (m.total !== null ? " of " + num(m.total) : "") + " items, " +
          num(m.failures) + " failed, " + dur(m.end - m.start) + ", " + m.items_per_s.toFixed(1) + " items/s" }),
        el("div", { cls: "hint", text: "items finished per second over the map's run:" }),
        spark(m.throughput),
        el("div", { cls: "batches", text: "batches (count × size): " + batches })]));
    });
  }
  function failures(s) {
    var box = clear($("failures"));
    if (!s.failures.length) { box.appendChild(el("p", { cls: "empty", text: "No failures." })); return; }
    s.failures.forEach(function (f) {
      var args = Object.keys(f.arguments);
      var parts = [
        el("summary", { text: f.name + (f.map_index === null ? "" : " [item " + f.map_index + "]") +
          " — " + (f.error_type || "error") + ": " + (f.error_message || "") }),
        el("div", { text: (f.outcome === "timed out" ? "timed out" : "failed") + " after " +
          f.attempts + " attempt(s), at " + dur(f.t) + ", on " + f.lane })];
      if (args.length) {
        var t = el("table", { cls: "args" });
        table(t, ["argument", "value"], args.map(function (a) { return { cells: [a, f.arguments[a]] }; }));
        parts.push(el("h4", { text: "arguments" }), t);
      }
      if (f.retries.length) {
        parts.push(el("h4", { text: "retries before it" }), el("ol", { cls: "retries" }, f.retries.map(function (r) {
          return el("li", { text: "attempt " + r.attempt + ": " + r.error_type + ": " + r.error_message +
            " (retried after " + dur((r.delay || 0) * 1000) + ")" });
        })));
      }
      if (f.traceback) parts.push(el("h4", { text: "traceback (where it ran)" }), el("pre", { text: f.traceback }));
      box.appendChild(el("details", { cls: "failure", "data-failure": f.name }, parts));
    });
  }
  function datasets(s) {
    table($("datasets"), ["", "key", "store", "format", "size", "duration", "at"],
      s.datasets.map(function (d) {
        return { attrs: { "data-dataset": d.key }, cells: [d.op, d.key, d.store || "–",
          d.format || "–", bytes(d.size), dur((d.duration || 0) * 1000), dur(d.t)] };
      }), [0, 0, 0, 0, 1, 1, 1]);
    if (!s.datasets.length) $("datasets").appendChild(el("caption", { cls: "empty", text: "No datasets saved or loaded." }));
  }
  function logs(s) {
    var filters = clear($("log-filters")), shown = {};
    var present = {};
    s.logs.forEach(function (r) { present[r.level] = (present[r.level] || 0) + 1; });
    LEVELS.forEach(function (level) {
      shown[level] = true;
      var box = el("input", { type: "checkbox", "data-level": level });
      box.checked = true;
      box.addEventListener("change", function () { shown[level] = box.checked; apply(); });
      filters.appendChild(el("label", { cls: "level-" + level }, [box, " " + level + " (" + (present[level] || 0) + ")"]));
    });
    var search = el("input", { type: "search", placeholder: "filter text", id: "log-search" });
    search.addEventListener("input", apply);
    filters.appendChild(search);
    table($("logs"), ["at", "level", "task", "message", "fields"], s.logs.map(function (r) {
      return { attrs: { "data-level": r.level, cls: "level-" + r.level },
        cells: [dur(r.t), r.level, (r.name || "–") + (r.map_index === null || r.map_index === undefined ? "" : " [" + r.map_index + "]"),
          r.message, Object.keys(r.fields).map(function (k) { return k + "=" + JSON.stringify(r.fields[k]); }).join(" ")] };
    }), [1, 0, 0, 0, 0]);
    if (!s.logs.length) $("logs").appendChild(el("caption", { cls: "empty", text: "No log records." }));
    function apply() {
      var text = search.value.toLowerCase();
      Array.prototype.forEach.call($("logs").querySelectorAll("tbody tr"), function (tr) {
        tr.hidden = !shown[tr.getAttribute("data-level")] ||
          (text && tr.textContent.toLowerCase().indexOf(text) < 0);
      });
    }
  }

  function show(index) {
    var s = DATA.sessions[index];
    notes(s);
    if (!s) { $("title").textContent = "daglite report: no session"; return; }
    header(s); timeline(s); tasks(s); maps(s); failures(s); datasets(s); logs(s);
  }
  function main() {
    wireTimeline();
    $("footer").textContent = "Built by daglite " + DATA.version + " from " + DATA.source +
      " · self-contained: this page loads nothing from the network.";
    var select = $("session-select");
    DATA.sessions.forEach(function (s, i) {
      select.appendChild(el("option", { value: String(i), text: (s.entry || "session") + " · " + s.id + " · " + s.status }));
    });
    $("session-pick").hidden = DATA.sessions.length < 2;
    select.addEventListener("change", function () { show(Number(select.value)); });
    var last = DATA.sessions.length - 1;
    select.value = String(Math.max(last, 0));
    show(last);
    // For tools and tests: where bar `i` of the shown session is drawn (viewport pixels).
    window.dagliteReport = { data: DATA,
      view: function () { return { start: state.t0, end: state.t1 }; },
      barBox: function (i) {
      var box = state.canvas.getBoundingClientRect(), b = state.s.bars;
      var x0 = Math.floor((b.s[i] - state.t0) * state.scale);
      var w = Math.max(Math.ceil(b.d[i] * state.scale), b.o[i] <= 1 ? 1 : 3);
      return { x: box.left + x0 + w / 2, y: box.top + state.lay.barTop[i] + ROW / 2, width: w };
    } };
    document.body.setAttribute("data-drawn-ms", String(Math.round(performance.now())));
    document.body.setAttribute("data-ready", "1");
  }
  main();
})();
