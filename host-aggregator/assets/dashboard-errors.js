// Collected before the dashboard's own script runs, so even its syntax
// errors are caught (the browser test fails on any of these).
window.__dashboardErrors = [];
window.addEventListener("error", function (e) { window.__dashboardErrors.push(String(e.message || e)); });
window.addEventListener("unhandledrejection", function (e) { window.__dashboardErrors.push("unhandled rejection: " + String(e.reason)); });
