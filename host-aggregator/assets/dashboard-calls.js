// The Calls view: the host's call graph from /funcs.json (monkit's /funcs),
// one row per task with its run counts and timings and, beside them, its
// callers and callees with their call counts; optionally one process only
// (/funcs.json?pid=N). Polled every 2 s while shown.
"use strict";

(function () {
  const V = window.StatsPipeViews;
  const { el, $, POLL_MS } = V;
  let generation = 0;
  let graph = null;
  let focused = null; // a task name clicked in an edge list

  function pidQuery() {
    const pid = $("calls-pid").value;
    return /^[0-9]+$/.test(pid) ? "?pid=" + pid : "";
  }

  async function refresh() {
    const asked = ++generation;
    const query = pidQuery();
    try {
      const [body, processes] = await Promise.all([V.getJson("/funcs.json" + query), V.getJson("/processes")]);
      if (asked !== generation) return; // the filter changed meanwhile
      V.showError("calls-error", null);
      renderPids(processes.processes || []);
      graph = body;
      render();
    } catch (error) {
      if (asked !== generation) return;
      V.showError("calls-error", new Error("cannot read the call graph: " + error.message));
    }
    for (const [id, path] of [["calls-text", "/funcs"], ["calls-json", "/funcs.json"], ["calls-dot", "/funcs.dot"]]) {
      $(id).href = path + query;
    }
  }

  function renderPids(processes) {
    const select = $("calls-pid");
    const chosen = select.value;
    const pids = processes.map((p) => p.pid).filter((pid) => Number.isInteger(pid)).sort((a, b) => a - b);
    if (chosen && !pids.includes(Number(chosen))) pids.push(Number(chosen)); // keep a PID that went away
    const have = Array.from(select.options).slice(1).map((o) => o.value).join(",");
    if (have === pids.join(",")) return;
    select.replaceChildren(el("option", { value: "" }, "all (host total)"),
      ...pids.map((pid) => el("option", { value: pid }, "pid " + pid)));
    select.value = chosen;
  }

  // Edges by task: { callers: [{name, success, errors, panics}], callees: [...] }.
  function edgesByTask(edges) {
    const by = new Map();
    const of = (name) => {
      if (!by.has(name)) by.set(name, { callers: [], callees: [] });
      return by.get(name);
    };
    for (const e of edges) {
      const counts = { success: e.success, errors: e.errors, panics: e.panics };
      of(e.callee).callers.push(Object.assign({ name: e.caller }, counts));
      of(e.caller).callees.push(Object.assign({ name: e.callee }, counts));
    }
    return by;
  }

  function edgeList(items, role) {
    if (items.length === 0) return el("span", { class: "muted" }, "–");
    const list = el("ul", { class: "edges" });
    for (const item of items) {
      const total = item.success + item.errors + item.panics;
      list.append(el("li", {
        class: "edge", title: item.name,
        dataset: { [role]: item.name, success: item.success, errors: item.errors, panics: item.panics },
      },
      el("span", { class: "edge-name" }, item.name), " ",
      el("b", null, "×" + V.fmtCount(total)),
      item.errors > 0 ? el("span", { class: "err" }, " (" + V.fmtCount(item.errors) + " err)") : null,
      item.panics > 0 ? el("span", { class: "panic" }, " (" + V.fmtCount(item.panics) + " panic)") : null));
    }
    return list;
  }

  function render() {
    if (!graph) return;
    const funcs = Array.isArray(graph.funcs) ? graph.funcs : [];
    const edges = Array.isArray(graph.edges) ? graph.edges : [];
    const query = $("calls-search").value.trim().toLowerCase();
    const shown = funcs.filter((f) => typeof f.name === "string" && f.name.toLowerCase().includes(query));
    const by = edgesByTask(edges);
    const num = (v) => el("td", null, V.fmtCount(v));
    const rows = shown.map((f) => {
      const links = by.get(f.name) || { callers: [], callees: [] };
      return el("tr", { dataset: { task: f.name }, class: f.name === focused ? "focused" : null },
        el("td", { class: "task" }, el("span", { class: "task-name" }, f.name)),
        num(f.current), num(f.highwater), num(f.success),
        el("td", { class: f.errors > 0 ? "err" : null }, V.fmtCount(f.errors)),
        el("td", { class: f.panics > 0 ? "panic" : null }, V.fmtCount(f.panics)),
        el("td", null, V.fmtSeconds(f.success_p50)),
        el("td", null, V.fmtSeconds(f.success_p90)),
        el("td", null, V.fmtSeconds(f.success_p99)),
        el("td", { class: "edge-cell" }, edgeList(links.callers, "caller")),
        el("td", { class: "edge-cell" }, edgeList(links.callees, "callee")));
    });
    const body = $("calls").querySelector("tbody");
    if (rows.length === 0) {
      body.replaceChildren(el("tr", null, el("td", { colspan: 11, class: "muted center" },
        funcs.length ? "no task matches the filter" : "no tasks yet: writers report them when they run tasks")));
    } else {
      body.replaceChildren(...rows);
    }
    const pid = $("calls-pid").value;
    $("calls-summary").textContent = shown.length + " of " + funcs.length + " tasks, " + edges.length + " edges" +
      (pid ? " · pid " + pid : " · all processes");
  }

  // Clicking a caller or callee brings its own row into view.
  $("calls").addEventListener("click", (event) => {
    const item = event.target.closest("li.edge");
    if (!item) return;
    focused = item.dataset.caller !== undefined ? item.dataset.caller : item.dataset.callee;
    render();
    const row = Array.from($("calls").querySelectorAll("tbody tr[data-task]")).find((r) => r.dataset.task === focused);
    if (row) row.scrollIntoView({ block: "center" });
  });
  $("calls-pid").addEventListener("change", () => { graph = null; refresh(); });
  $("calls-search").addEventListener("input", render);

  V.register("calls", V.poller(refresh, POLL_MS, () => { generation++; }));
})();
