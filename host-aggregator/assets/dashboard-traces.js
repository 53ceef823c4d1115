// The Traces view (appstats' index and detail pages): the recent traces of
// every process from /traces?task=&min=&limit=, newest first, refreshed
// every 2 s while "live" is ticked; a click on a row loads the full record
// from /traces/<pid>/<id> and draws its timeline here, one bar per span,
// indented by nesting (the same record as an SVG is linked beside it).
"use strict";

(function () {
  const V = window.StatsPipeViews;
  const { el, $, POLL_MS } = V;
  let generation = 0;
  let selected = null; // { pid, id }
  let detailGeneration = 0;
  let loaded = false; // the list was shown once (then "live" decides)

  function listUrl() {
    const params = new URLSearchParams();
    const task = $("traces-task").value.trim();
    const min = $("traces-min").value.trim();
    if (task) params.set("task", task);
    if (min) params.set("min", min);
    params.set("limit", $("traces-limit").value);
    return "/traces?" + params.toString();
  }

  async function refresh(force) {
    if (!force && loaded && !$("traces-live").checked) return;
    const asked = ++generation;
    try {
      const body = await V.getJson(listUrl());
      if (asked !== generation) return;
      V.showError("traces-error", null);
      loaded = true;
      renderList(Array.isArray(body.traces) ? body.traces : []);
    } catch (error) {
      if (asked !== generation) return;
      V.showError("traces-error", new Error("cannot list traces: " + error.message));
    }
  }

  function outcomeBadge(outcome) {
    const cls = outcome === "success" ? "ok" : outcome === "error" ? "warn" : "bad";
    return el("span", { class: "badge " + cls }, outcome === null || outcome === undefined ? "running" : outcome);
  }

  function isKey(pid, id) { return Number.isInteger(pid) && Number.isInteger(id) && pid >= 0 && id >= 0; }

  function renderList(traces) {
    const rows = traces.filter((t) => isKey(t.pid, t.id)).map((t) => {
      const isSelected = selected && selected.pid === t.pid && selected.id === t.id;
      return el("tr", { class: "trace-row" + (isSelected ? " selected" : ""), dataset: { pid: t.pid, id: t.id } },
        el("td", null, V.fmtClockMs(t.start)),
        el("td", null, t.pid),
        el("td", { class: "task" }, el("span", { class: "task-name" }, String(t.root))),
        el("td", null, V.fmtNs(t.duration_ns)),
        el("td", null, outcomeBadge(t.outcome)),
        el("td", null, V.fmtCount(t.spans) + (t.dropped_spans > 0 ? " (+" + t.dropped_spans + " dropped)" : "")));
    });
    const body = $("traces").querySelector("tbody");
    if (rows.length) body.replaceChildren(...rows);
    else body.replaceChildren(el("tr", null, el("td", { colspan: 6, class: "muted center" }, "no trace matches")));
    $("traces-summary").textContent = rows.length + (rows.length === 1 ? " trace" : " traces");
  }

  async function open(pid, id) {
    selected = { pid, id };
    for (const row of $("traces").querySelectorAll("tbody tr[data-pid]")) {
      row.classList.toggle("selected", Number(row.dataset.pid) === pid && Number(row.dataset.id) === id);
    }
    const asked = ++detailGeneration;
    const detail = $("trace-detail");
    detail.replaceChildren(el("p", { class: "muted" }, "loading trace " + id + " of pid " + pid + "…"));
    try {
      const trace = await V.getJson("/traces/" + pid + "/" + id);
      if (asked === detailGeneration) renderDetail(trace, pid, id);
    } catch (error) {
      if (asked !== detailGeneration) return;
      const gone = error.status === 404 ? " (the process no longer keeps it)" : "";
      detail.replaceChildren(el("p", { class: "error" }, "cannot load trace " + id + " of pid " + pid + ": " + error.message + gone));
    }
  }

  // Depth of each span: its parent's plus one; a parent that is missing or
  // not earlier in the list (a malformed record) counts as the root.
  function depths(spans) {
    const depth = [];
    spans.forEach((span, i) => {
      const p = span.parent;
      depth.push(Number.isInteger(p) && p >= 0 && p < i ? depth[p] + 1 : 0);
    });
    return depth;
  }

  function renderDetail(trace, pid, id) {
    const spans = Array.isArray(trace.spans) ? trace.spans : [];
    const total = Math.max(1, Number(trace.duration_ns) || 0,
      ...spans.map((s) => (Number(s.offset_ns) || 0) + (Number(s.duration_ns) || 0)));
    const depth = depths(spans);
    const base = "/traces/" + pid + "/" + id;
    const head = el("div", { class: "detail-head" },
      el("div", { class: "card-title" }, String(trace.root)),
      el("div", { class: "raw small" }, el("a", { href: base, target: "_blank" }, "JSON"), " · ",
        el("a", { href: base + ".svg", target: "_blank" }, "SVG")));
    const tags = trace.tags && typeof trace.tags === "object" ? Object.entries(trace.tags) : [];
    const meta = el("div", { class: "muted small" },
      "pid " + pid + " · trace " + id + " · started " + V.fmtClockMs(trace.start) + " · " + V.fmtNs(trace.duration_ns) + " · ",
      outcomeBadge(trace.outcome),
      tags.length ? " · " + tags.map(([k, v]) => k + "=" + v).join(", ") : null,
      trace.dropped_spans > 0 ? " · " + trace.dropped_spans + " spans not kept" : null);
    const timeline = el("div", { class: "timeline" });
    spans.forEach((span, i) => {
      const offset = Number(span.offset_ns) || 0;
      const running = typeof span.duration_ns !== "number";
      const duration = running ? total - offset : span.duration_ns;
      const bar = el("div", {
        class: "bar " + (running ? "running" : String(span.outcome)),
        title: span.name + ": " + (running ? "still running when the root ended" : V.fmtNs(duration)) +
          " at +" + V.fmtNs(offset) + (span.outcome ? " (" + span.outcome + ")" : ""),
      });
      bar.style.left = (offset / total * 100).toFixed(3) + "%";
      bar.style.width = Math.max(0.3, duration / total * 100).toFixed(3) + "%";
      const label = el("div", { class: "span-label", title: span.name }, el("span", { class: "span-name" }, String(span.name)));
      label.style.paddingLeft = (depth[i] * 14 + 4) + "px";
      timeline.append(el("div", {
        class: "span-row",
        dataset: { span: i, depth: depth[i], parent: Number.isInteger(span.parent) ? span.parent : "" },
      }, label, el("div", { class: "lane" }, bar),
      el("div", { class: "span-time" }, running ? "running" : V.fmtNs(duration))));
    });
    $("trace-detail").replaceChildren(head, meta, timeline);
  }

  $("traces").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-pid]");
    if (row) open(Number(row.dataset.pid), Number(row.dataset.id));
  });
  let debounce = null;
  const refilter = () => { clearTimeout(debounce); debounce = setTimeout(() => refresh(true), 300); };
  $("traces-task").addEventListener("input", refilter);
  $("traces-min").addEventListener("input", refilter);
  $("traces-limit").addEventListener("change", () => refresh(true));
  $("traces-live").addEventListener("change", () => refresh(true));

  V.register("traces", V.poller(() => refresh(false), POLL_MS, () => { generation++; }));
})();
