// The stats-pipe dashboard: polls /stats (the stat list) and /history (the
// charted series and the sources table) every interval, and draws each
// selected stat on a canvas: one line per process plus the host total.
// No libraries, no network but this server: it works offline.
"use strict";

(function () {
  const PALETTE = ["#2f6fed", "#e8590c", "#0ca678", "#ae3ec9", "#f59f00", "#1098ad",
    "#e64980", "#74b816", "#7048e8", "#c92a2a", "#5c940d", "#d6336c"];
  const TOTAL_COLOR = "#1d2433";

  const state = {
    interval: 1000,
    windowSeconds: 300,
    selected: readSelection(),
    modes: {},            // stat -> "rate" | "value"
    times: [],            // collection times, Unix seconds
    stats: new Map(),     // name -> { counter, total: {values, rates}, procs: Map }
    lastTime: null,
    allStats: {},
    cpu: new Map(),       // pid -> [time, cpu seconds]
    sourceOrder: [],
    generation: 0,
  };

  const $ = (id) => document.getElementById(id);

  function readSelection() {
    const params = new URLSearchParams(location.hash.slice(1));
    return params.getAll("stat");
  }

  // Other views keep their own parameters in the hash (#view=calls): only
  // the stat ones are rewritten.
  function writeSelection() {
    const params = new URLSearchParams(location.hash.slice(1));
    params.delete("stat");
    state.selected.forEach((s) => params.append("stat", s));
    history.replaceState(null, "", "#" + params.toString());
  }

  // ---- formatting -------------------------------------------------------

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (typeof v === "string") return v;
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e15 || a < 1e-3)) return v.toExponential(2);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (Number.isInteger(v)) return String(v);
    return v.toLocaleString(undefined, { maximumFractionDigits: 3 });
  }

  function fmtBytes(b) {
    if (b === null || b === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b : b.toFixed(1)) + " " + units[i];
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return Math.round(s) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + Math.round(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function fmtClock(t) {
    const d = new Date(t * 1000);
    return d.toTimeString().slice(0, 8);
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function globToRegExp(glob) {
    const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp("^" + body + "$", "i");
  }

  // ---- data -------------------------------------------------------------

  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  function resetSeries() {
    state.times = [];
    state.stats = new Map();
    state.lastTime = null;
    state.generation++;
  }

  // Appends one /history answer to the series held, keeping every array
  // aligned with state.times (null where a series has no point).
  function merge(body) {
    // Two overlapping requests (a click during a poll) may both bring a
    // point: keep only points newer than the last one held.
    let skip = 0;
    while (skip < body.times.length && state.lastTime !== null && body.times[skip] <= state.lastTime) skip++;
    const cut = (a) => (a ? a.slice(skip) : a);
    const before = state.times.length;
    const added = body.times.length - skip;
    if (added <= 0) return;
    state.times.push(...cut(body.times));
    const seen = new Set();
    for (const stat of body.stats) {
      seen.add(stat.name);
      let held = state.stats.get(stat.name);
      if (!held) {
        held = { counter: stat.counter, total: { values: nulls(before), rates: nulls(before) }, procs: new Map() };
        state.stats.set(stat.name, held);
      }
      held.counter = stat.counter;
      held.total.values.push(...cut(stat.total.values));
      held.total.rates.push(...(cut(stat.total.rates) || nulls(added)));
      const procSeen = new Set();
      for (const p of stat.processes) {
        const key = p.pid + "@" + p.started;
        procSeen.add(key);
        let proc = held.procs.get(key);
        if (!proc) {
          proc = { pid: p.pid, started: p.started, values: nulls(before), rates: nulls(before) };
          held.procs.set(key, proc);
        }
        proc.values.push(...cut(p.values));
        proc.rates.push(...(cut(p.rates) || nulls(added)));
      }
      for (const [key, proc] of held.procs) {
        if (!procSeen.has(key)) { proc.values.push(...nulls(added)); proc.rates.push(...nulls(added)); }
      }
    }
    for (const [name, held] of state.stats) {
      if (seen.has(name)) continue;
      held.total.values.push(...nulls(added));
      held.total.rates.push(...nulls(added));
      for (const proc of held.procs.values()) { proc.values.push(...nulls(added)); proc.rates.push(...nulls(added)); }
    }
    state.lastTime = state.times[state.times.length - 1];
    trim();
  }

  function nulls(n) { return new Array(n).fill(null); }

  // Drops points older than the window, and process lines left empty.
  function trim() {
    const oldest = state.lastTime - state.windowSeconds;
    let cut = 0;
    while (cut < state.times.length && state.times[cut] < oldest) cut++;
    if (cut === 0) return;
    state.times.splice(0, cut);
    for (const held of state.stats.values()) {
      held.total.values.splice(0, cut);
      held.total.rates.splice(0, cut);
      for (const [key, proc] of held.procs) {
        proc.values.splice(0, cut);
        proc.rates.splice(0, cut);
        if (proc.values.every((v) => v === null)) held.procs.delete(key);
      }
    }
  }

  async function refresh() {
    const generation = state.generation;
    try {
      const [list, hist] = await Promise.all([
        getJson("/stats"),
        state.selected.length ? getJson(historyUrl()) : getJson("/history?stat=&sources=1" + sinceParam()),
      ]);
      state.allStats = list.stats || {};
      renderList();
      if (hist.interval) state.interval = Math.max(200, hist.interval * 1000);
      if (generation === state.generation && state.selected.length) merge(hist);
      renderCharts();
      renderSources(hist.sources || []);
      setStatus("live", "live · " + (state.lastTime ? fmtClock(state.lastTime) : fmtClock(Date.now() / 1000)));
    } catch (error) {
      setStatus("error", "cannot reach the aggregator (" + error.message + ")");
    }
  }

  function sinceParam() {
    const since = state.lastTime !== null ? state.lastTime : Date.now() / 1000 - state.windowSeconds;
    return "&since=" + since;
  }

  function historyUrl() {
    const params = state.selected.map((s) => "stat=" + encodeURIComponent(s.replace(/[*?]/g, "?"))).join("&");
    return "/history?" + params + "&sources=1" + sinceParam();
  }

  function setStatus(kind, text) {
    const el = $("status");
    el.dataset.state = kind;
    el.textContent = text;
  }

  // ---- the stat list ----------------------------------------------------

  function renderList() {
    const query = $("search").value.trim();
    const names = Object.keys(state.allStats).sort();
    let match;
    if (/[*?]/.test(query)) { const re = globToRegExp(query); match = (n) => re.test(n); }
    else { const q = query.toLowerCase(); match = (n) => n.toLowerCase().includes(q); }
    const shown = names.filter(match);
    $("stat-count").textContent = shown.length + " of " + names.length + " stats";
    const list = $("stat-list");
    const rows = shown.slice(0, 2000).map((name) => {
      const selected = state.selected.includes(name) ? " selected" : "";
      return '<li class="stat' + selected + '" data-stat="' + escapeHtml(name) + '"><span class="name" title="' +
        escapeHtml(name) + '">' + escapeHtml(name) + '</span><span class="value">' + escapeHtml(fmt(state.allStats[name])) + "</span></li>";
    });
    list.innerHTML = rows.join("");
  }

  function toggle(name) {
    const i = state.selected.indexOf(name);
    if (i >= 0) state.selected.splice(i, 1); else state.selected.push(name);
    writeSelection();
    resetSeries();
    renderList();
    renderCharts();
    refresh();
  }

  // ---- charts -----------------------------------------------------------

  function renderCharts() {
    const charts = $("charts");
    $("no-selection").hidden = state.selected.length > 0;
    const wanted = new Set(state.selected);
    for (const card of Array.from(charts.children)) {
      if (!wanted.has(card.dataset.stat)) card.remove();
    }
    for (const name of state.selected) {
      let card = Array.from(charts.children).find((c) => c.dataset.stat === name);
      if (!card) card = makeCard(name);
      drawCard(card, name);
    }
  }

  function makeCard(name) {
    const card = document.createElement("div");
    card.className = "card";
    card.dataset.stat = name;
    card.innerHTML =
      '<div class="card-head"><div class="card-title"></div><div class="card-actions">' +
      '<button data-mode="rate">rate/s</button><button data-mode="value">value</button>' +
      '<button data-close="1" title="remove">✕</button></div></div>' +
      '<div class="kind"></div><div class="current"><span class="number">–</span><span class="unit"></span></div>' +
      '<canvas class="chart"></canvas><div class="legend"></div>';
    card.querySelector(".card-title").textContent = name;
    card.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      if (button.dataset.close) { toggle(name); return; }
      state.modes[name] = button.dataset.mode;
      drawCard(card, name);
    });
    const canvas = card.querySelector("canvas");
    canvas.addEventListener("mousemove", (event) => hover(event, card, name));
    canvas.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
    $("charts").appendChild(card);
    return card;
  }

  function seriesOf(name) {
    const held = state.stats.get(name);
    if (!held) return { counter: false, mode: "value", lines: [] };
    const mode = held.counter ? (state.modes[name] || "rate") : "value";
    const pick = (s) => (mode === "rate" ? s.rates : s.values);
    const procs = Array.from(held.procs.values()).sort((a, b) => a.pid - b.pid || a.started - b.started);
    const lines = procs.map((p, i) => ({
      key: "pid " + p.pid, pid: p.pid, started: p.started, color: PALETTE[i % PALETTE.length], width: 1.6, points: pick(p),
    }));
    lines.push({ key: "total", pid: null, color: TOTAL_COLOR, width: 2.6, points: pick(held.total) });
    return { counter: held.counter, mode, lines };
  }

  function lastFinite(points) {
    for (let i = points.length - 1; i >= 0; i--) if (points[i] !== null) return points[i];
    return null;
  }

  function drawCard(card, name) {
    const { counter, mode, lines } = seriesOf(name);
    card.dataset.mode = mode;
    card.querySelectorAll("button[data-mode]").forEach((b) => {
      b.classList.toggle("active", b.dataset.mode === mode);
      b.hidden = !counter;
    });
    card.querySelector(".kind").textContent = state.stats.has(name) ? (counter ? "counter" : "gauge") : "waiting for data";
    const total = lines.length ? lastFinite(lines[lines.length - 1].points) : null;
    const number = card.querySelector(".number");
    number.textContent = fmt(total);
    number.dataset.value = total === null ? "" : String(total);
    card.querySelector(".unit").textContent = mode === "rate" ? "/s host total" : "host total";
    const legend = card.querySelector(".legend");
    legend.innerHTML = lines.map((line) =>
      '<span class="' + (line.pid === null ? "total" : "proc") + '" data-series="' + escapeHtml(line.key) + '"' +
      (line.pid === null ? "" : ' data-pid="' + line.pid + '"') + '><i style="background:' + line.color + '"></i>' +
      escapeHtml(line.key) + " <b>" + escapeHtml(fmt(lastFinite(line.points))) + "</b></span>").join("");
    draw(card.querySelector("canvas"), lines);
  }

  function niceStep(range, count) {
    const raw = range / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / power;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * power;
  }

  function geometry(canvas) {
    const width = canvas.clientWidth, height = canvas.clientHeight;
    return { width, height, left: 56, right: 12, top: 10, bottom: 24 };
  }

  function draw(canvas, lines) {
    const dpr = window.devicePixelRatio || 1;
    const g = geometry(canvas);
    if (g.width === 0) return;
    canvas.width = Math.round(g.width * dpr);
    canvas.height = Math.round(g.height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.width, g.height);
    const tMax = state.lastTime !== null ? state.lastTime : Date.now() / 1000;
    // Until the window fills, span the data held (at least 30 s), so a
    // fresh page is not a thin sliver at the right edge.
    const held = state.times.length ? tMax - state.times[0] : 0;
    const span = Math.min(state.windowSeconds, Math.max(30, held));
    const tMin = tMax - span;
    let lo = Infinity, hi = -Infinity;
    for (const line of lines) for (const v of line.points) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (lo > 0 && lo < hi * 0.5) lo = 0;
    if (hi === lo) { hi = lo + Math.max(1, Math.abs(lo) * 0.1); lo = lo - (hi - lo) * 0.5; }
    const step = niceStep(hi - lo, 4);
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;
    const plotW = g.width - g.left - g.right, plotH = g.height - g.top - g.bottom;
    const x = (t) => g.left + ((t - tMin) / (tMax - tMin)) * plotW;
    const y = (v) => g.top + (1 - (v - lo) / (hi - lo)) * plotH;
    canvas._scale = { x, tMin, tMax, g };

    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#6b7487";
    ctx.strokeStyle = "#e3e7ee";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = lo; v <= hi + step / 2; v += step) {
      const py = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(g.left, py); ctx.lineTo(g.width - g.right, py); ctx.stroke();
      ctx.fillText(fmt(Number(v.toPrecision(12))), g.left - 6, py);
    }
    const tStep = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800].find((s) => span / s <= 6) || 3600;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let t = Math.ceil(tMin / tStep) * tStep; t <= tMax; t += tStep) {
      const px = Math.round(x(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(px, g.top); ctx.lineTo(px, g.top + plotH); ctx.stroke();
      ctx.fillText(fmtClock(t), px, g.top + plotH + 6);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(g.left, g.top, plotW, plotH);
    ctx.clip();
    ctx.lineJoin = "round";
    for (const line of lines) {
      ctx.strokeStyle = line.color;
      ctx.lineWidth = line.width;
      ctx.beginPath();
      let pen = false, drawn = 0;
      line.points.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        const px = x(state.times[i]), py = y(v);
        if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        pen = true;
        drawn++;
      });
      ctx.stroke();
      if (drawn === 1) {
        const i = line.points.findIndex((v) => v !== null);
        ctx.fillStyle = line.color;
        ctx.beginPath(); ctx.arc(x(state.times[i]), y(line.points[i]), 2.5, 0, 2 * Math.PI); ctx.fill();
      }
    }
    ctx.restore();
  }

  function hover(event, card, name) {
    const canvas = card.querySelector("canvas");
    const scale = canvas._scale;
    const tip = $("tooltip");
    if (!scale || state.times.length === 0) { tip.hidden = true; return; }
    const rect = canvas.getBoundingClientRect();
    const px = event.clientX - rect.left;
    let best = 0, bestDist = Infinity;
    state.times.forEach((t, i) => { const d = Math.abs(scale.x(t) - px); if (d < bestDist) { bestDist = d; best = i; } });
    const { lines } = seriesOf(name);
    tip.innerHTML = "<b>" + fmtClock(state.times[best]) + "</b><br>" + lines.map((line) =>
      '<span style="color:' + (line.pid === null ? "#fff" : line.color) + '">■</span> ' + escapeHtml(line.key) + ": " +
      escapeHtml(fmt(line.points[best]))).join("<br>");
    tip.style.left = event.clientX + 14 + "px";
    tip.style.top = event.clientY + 14 + "px";
    tip.hidden = false;
  }

  // ---- sources table ----------------------------------------------------

  function renderSources(sources) {
    const now = Date.now() / 1000;
    const rows = sources.map((s) => {
      const p = s.process;
      let cpu = "–";
      if (p && s.pid !== null) {
        const before = state.cpu.get(s.pid);
        if (before && now > before[0] && p.cpu_seconds >= before[1]) {
          cpu = ((p.cpu_seconds - before[1]) / (now - before[0]) * 100).toFixed(1) + "%";
          if (now - before[0] < 0.5) cpu = state.cpu.get("pct:" + s.pid) || cpu;
        }
        if (!before || now - before[0] >= 0.5) { state.cpu.set(s.pid, [now, p.cpu_seconds]); state.cpu.set("pct:" + s.pid, cpu); }
      }
      const cls = s.status === "ok" ? "ok" : (s.status === "stale" || s.status === "timed_out" || s.status === "incomplete") ? "warn" : "bad";
      const seen = s.last_seen === null ? "never" : fmtDuration(Math.max(0, now - s.last_seen)) + " ago";
      return "<tr data-pid=\"" + (s.pid === null ? "" : s.pid) + "\"><td>" + (s.pid === null ? "–" : s.pid) + "</td>" +
        '<td><span class="badge ' + cls + '" title="' + escapeHtml(s.path) + '">' + escapeHtml(s.summary) + "</span>" +
        (s.foreign ? ' <span class="muted small">foreign</span>' : "") + "</td>" +
        "<td>" + seen + "</td><td>" + s.lines + "</td><td>" + s.bad_lines + "</td>" +
        "<td>" + (p ? fmtBytes(p.rss_bytes) : "–") + "</td><td>" + cpu + "</td>" +
        "<td>" + (p ? p.threads : "–") + "</td><td>" + (p && p.open_fds !== null ? p.open_fds : "–") + "</td>" +
        "<td>" + (p ? fmtDuration(p.uptime_seconds) : "–") + "</td></tr>";
    });
    $("sources").querySelector("tbody").innerHTML = rows.length ? rows.join("") :
      '<tr><td colspan="10" class="muted" style="text-align:center">no stats pipes found</td></tr>';
  }

  // ---- wiring -----------------------------------------------------------

  $("stat-list").addEventListener("click", (event) => {
    const item = event.target.closest("li[data-stat]");
    if (item) toggle(item.dataset.stat);
  });
  $("search").addEventListener("input", renderList);
  $("window").addEventListener("change", (event) => {
    state.windowSeconds = Number(event.target.value);
    resetSeries();
    refresh();
  });
  window.addEventListener("hashchange", () => {
    const selected = readSelection();
    if (selected.join("\n") === state.selected.join("\n")) return; // another view's change
    state.selected = selected;
    resetSeries(); renderList(); renderCharts(); refresh();
  });
  window.addEventListener("resize", renderCharts);

  async function loop() {
    await refresh();
    setTimeout(loop, state.interval);
  }
  renderCharts();
  loop();
  window.__dashboardReady = true;
})();
