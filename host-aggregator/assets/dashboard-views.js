// Shared by the Calls and Traces views: building elements without HTML
// strings (task names are chosen by the writers, so they only ever become
// text nodes and attribute values, never markup), fetching JSON, formatting
// durations, and switching views by the URL hash (#view=calls), which keeps
// the Stats view's #stat=... selection and shows a header control only on
// the views its data-views names.
"use strict";

window.StatsPipeViews = (function () {
  const views = new Map(); // name -> { start(), stop() }
  const POLL_MS = 2000; // how often a shown view asks again
  const $ = (id) => document.getElementById(id);
  let current = null;

  // el("td", { class: "num", dataset: { task: name } }, "text", child, ...)
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
      else if (key === "title") node.title = String(value);
      else if (key === "href") node.href = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) {
      // The aggregator answers errors as {"error": "..."}.
      let message = "HTTP " + response.status;
      try {
        const body = await response.json();
        if (body && typeof body.error === "string") message += ": " + body.error;
      } catch (_) { /* not JSON: the status says enough */ }
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function isNumber(v) { return typeof v === "number" && Number.isFinite(v); }

  // Nanoseconds as a short duration: 850ns, 12.3µs, 4.56ms, 1.20s.
  function fmtNs(ns) {
    if (!isNumber(ns)) return "–";
    const a = Math.abs(ns);
    if (a < 1e3) return Math.round(ns) + "ns";
    if (a < 1e6) return (ns / 1e3).toFixed(a < 1e4 ? 2 : 1) + "µs";
    if (a < 1e9) return (ns / 1e6).toFixed(a < 1e7 ? 2 : 1) + "ms";
    return (ns / 1e9).toFixed(2) + "s";
  }

  function fmtSeconds(s) { return isNumber(s) ? fmtNs(s * 1e9) : "–"; }

  function fmtCount(v) {
    if (!isNumber(v)) return "–";
    return Number.isInteger(v) ? String(v) : v.toFixed(2);
  }

  function fmtClockMs(unixSeconds) {
    if (!isNumber(unixSeconds)) return "–";
    const d = new Date(unixSeconds * 1000);
    return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function showError(id, error) {
    const node = document.getElementById(id);
    if (!node) return;
    node.hidden = !error;
    node.textContent = error ? String(error.message || error) : "";
  }

  // A view's start/stop that calls `refresh` every `ms` while it is shown;
  // `onStop` runs when it is hidden (to drop answers still on the way).
  function poller(refresh, ms, onStop) {
    let running = 0, timer = null;
    return {
      start() {
        const token = ++running;
        (async function tick() {
          if (token !== running) return;
          await refresh();
          if (token === running) timer = setTimeout(tick, ms);
        })();
      },
      stop() {
        running++;
        clearTimeout(timer);
        if (onStop) onStop();
      },
    };
  }

  // ---- views ----------------------------------------------------------

  function hashParams() { return new URLSearchParams(location.hash.slice(1)); }

  function wanted() {
    const view = hashParams().get("view");
    return views.has(view) || view === "stats" ? view : "stats";
  }

  function show(name) {
    if (name === current) return;
    if (current && views.has(current)) views.get(current).stop();
    current = name;
    for (const tab of document.querySelectorAll("#tabs a[data-view]")) {
      tab.classList.toggle("active", tab.dataset.view === name);
    }
    for (const page of document.querySelectorAll("main[data-view], section[data-view]")) {
      page.hidden = page.dataset.view !== name;
    }
    // Controls that only some views use (the Stats view's time window)
    // name them in data-views; the others hide them.
    for (const control of document.querySelectorAll("[data-views]")) {
      control.hidden = !control.dataset.views.split(" ").includes(name);
    }
    if (views.has(name)) views.get(name).start();
  }

  function register(name, view) {
    views.set(name, view);
    if (wanted() === name) { current = null; show(name); }
  }

  document.getElementById("tabs").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-view]");
    if (!link) return;
    event.preventDefault();
    const params = hashParams();
    params.set("view", link.dataset.view);
    location.hash = params.toString();
  });
  window.addEventListener("hashchange", () => show(wanted()));
  show(wanted());

  return { $, POLL_MS, el, getJson, fmtNs, fmtSeconds, fmtCount, fmtClockMs, showError, register, poller, hashParams };
})();
