//! The dashboard's Calls view in headless Chromium over three real writer
//! processes running nested tasks (request → db.query → cache, with errors
//! and a panic): the view shows the host-wide counts and call edges that
//! the processes made, one process with the PID filter, and a hostile task
//! name as text.

use std::time::Duration;

use serde_json::Value;
use stats_pipe_tests::calls::{HOSTILE_TASK, assert_page_clean, run, start_calls_writer};
use stats_pipe_tests::live::{Browser, TempDir, artifacts_dir, wait_for};
use stats_pipe_tests::serve::Aggregator;

/// The Calls table as the page shows it: per task, its cells' text and its
/// edges (`callers` / `callees`: name → [success, errors, panics]).
const READ_CALLS: &str = r##"
    const rows = {};
    for (const row of document.querySelectorAll("#calls tbody tr[data-task]")) {
      const edges = (role) => {
        const out = {};
        for (const li of row.querySelectorAll("li[data-" + role + "]")) {
          out[li.dataset[role]] = [Number(li.dataset.success), Number(li.dataset.errors), Number(li.dataset.panics)];
        }
        return out;
      };
      rows[row.dataset.task] = {
        cells: Array.from(row.children).slice(0, 9).map((c) => c.textContent),
        name_text: row.querySelector(".task-name").textContent,
        callers: edges("caller"), callees: edges("callee"),
      };
    }
    // Shown for real: laid out with a size, not only un-hidden.
    const table = document.getElementById("calls").getBoundingClientRect();
    return { rows, visible: table.height > 0 && table.width > 0 && document.getElementById("tabs").offsetParent !== null,
             stats_hidden: document.getElementById("view-stats").hidden,
             window_shown: document.getElementById("window").getBoundingClientRect().width > 0,
             summary: document.getElementById("calls-summary").textContent,
             images: document.querySelectorAll("#calls img").length,
             pids: Array.from(document.querySelectorAll("#calls-pid option")).map((o) => o.value) };
"##;

fn edge(row: &Value, role: &str, name: &str) -> Vec<u64> {
    row[role][name]
        .as_array()
        .unwrap_or_else(|| panic!("no {role} {name:?} in {row}"))
        .iter()
        .map(|v| v.as_u64().expect("a count"))
        .collect()
}

/// Cells: task, current, highwater, success, errors, panics, p50, p90, p99.
fn cells(row: &Value) -> Vec<String> {
    row["cells"]
        .as_array()
        .unwrap_or_else(|| panic!("no cells in {row}"))
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn calls_view_shows_the_host_call_graph_of_three_processes() {
    let dir = TempDir::new("dashboard-calls");
    let (rq, db, cache) = ("request", "db.query", "cache");
    let mut a = start_calls_writer(dir.path());
    let mut b = start_calls_writer(dir.path());
    let mut c = start_calls_writer(dir.path());
    let mut commands = vec![run("success", 1, &[rq, db, cache]); 4];
    commands.push(run("error", 1, &[rq, db, cache]));
    commands.push(run("panic", 1, &[rq, db]));
    a.send(&commands);
    b.send(&[
        run("success", 2, &[rq, db, cache]),
        run("success", 2, &[rq, db, cache]),
        run("success", 0, &[HOSTILE_TASK, db]),
    ]);
    c.send(&vec![run("success", 3, &[rq, cache]); 3]);

    let aggregator = Aggregator::serve(dir.path(), &["--interval", "250ms"]);
    // What the browser should show, checked first with an independent
    // parser: the graph sums the three processes.
    let graph: Value = aggregator.get("/funcs.json").json();
    let edges = graph["edges"].as_array().expect("edges");
    let db_from_request = edges
        .iter()
        .find(|e| e["caller"] == rq && e["callee"] == db)
        .unwrap_or_else(|| panic!("{graph}"));
    assert_eq!(
        (
            &db_from_request["success"],
            &db_from_request["errors"],
            &db_from_request["panics"]
        ),
        (&Value::from(6), &Value::from(1), &Value::from(1))
    );

    let browser = Browser::start();
    browser.navigate(&format!("http://{}/#view=calls", aggregator.addr()));
    let shown = wait_for(
        "the Calls view to list 4 tasks",
        Duration::from_secs(60),
        || {
            let state = browser.execute(READ_CALLS);
            let rows = state["rows"].as_object().map_or(0, |r| r.len());
            if rows == 4 && state["pids"].as_array().is_some_and(|p| p.len() == 4) {
                Ok(state)
            } else {
                Err(state.to_string())
            }
        },
    );
    assert_eq!(shown["visible"], true, "{shown}");
    assert_eq!(shown["stats_hidden"], true, "one view at a time: {shown}");
    assert_eq!(
        shown["window_shown"], false,
        "the Stats view's time window does nothing here: {shown}"
    );
    let rows = &shown["rows"];

    // request: 4 + 2 + 3 successes, 1 error, 1 panic; never more than one
    // at once in a process; nothing running now; timings shown.
    let request = cells(&rows[rq]);
    assert_eq!(request[0], rq);
    assert_eq!(&request[1..6], ["0", "1", "9", "1", "1"], "{request:?}");
    for quantile in &request[6..9] {
        assert!(
            quantile.ends_with("ms") || quantile.ends_with("µs"),
            "{request:?}"
        );
    }
    assert!(rows[rq]["callers"].as_object().unwrap().is_empty());
    assert_eq!(edge(&rows[rq], "callees", db), [6, 1, 1]);
    assert_eq!(edge(&rows[rq], "callees", cache), [3, 0, 0]);

    // db.query: called by request and by the hostile task; calls cache.
    assert_eq!(&cells(&rows[db])[1..6], ["0", "1", "7", "1", "1"]);
    assert_eq!(edge(&rows[db], "callers", rq), [6, 1, 1]);
    assert_eq!(edge(&rows[db], "callers", HOSTILE_TASK), [1, 0, 0]);
    assert_eq!(edge(&rows[db], "callees", cache), [6, 1, 0]);

    // cache: called from two places.
    assert_eq!(&cells(&rows[cache])[1..6], ["0", "1", "9", "1", "0"]);
    assert_eq!(edge(&rows[cache], "callers", db), [6, 1, 0]);
    assert_eq!(edge(&rows[cache], "callers", rq), [3, 0, 0]);

    // The hostile name is text: shown as typed, no element made of it.
    assert_eq!(rows[HOSTILE_TASK]["name_text"], HOSTILE_TASK);
    assert_eq!(edge(&rows[HOSTILE_TASK], "callees", db), [1, 0, 0]);
    assert_eq!(shown["images"], 0, "{shown}");
    assert!(
        shown["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("4 of 4 tasks, 4 edges")),
        "{shown}"
    );

    // One process: c ran only request → cache.
    let pid = c.pid();
    browser.execute(&format!(
        r#"const s = document.getElementById("calls-pid"); s.value = "{pid}";
           s.dispatchEvent(new Event("change")); return null;"#
    ));
    let one = wait_for("the PID filter", Duration::from_secs(30), || {
        let state = browser.execute(READ_CALLS);
        let rows = state["rows"].as_object().map_or(0, |r| r.len());
        if rows == 2
            && state["summary"]
                .as_str()
                .is_some_and(|s| s.ends_with(&format!("pid {pid}")))
        {
            Ok(state)
        } else {
            Err(state.to_string())
        }
    });
    assert_eq!(&cells(&one["rows"][rq])[1..6], ["0", "1", "3", "0", "0"]);
    assert_eq!(edge(&one["rows"][rq], "callees", cache), [3, 0, 0]);
    assert!(one["rows"].get(db).is_none(), "{one}");

    // Typing in the filter narrows the rows, client-side.
    browser.execute(
        r#"const s = document.getElementById("calls-pid"); s.value = "";
           s.dispatchEvent(new Event("change"));
           const f = document.getElementById("calls-search"); f.value = "CACHE";
           f.dispatchEvent(new Event("input")); return null;"#,
    );
    let filtered = wait_for("the name filter", Duration::from_secs(30), || {
        let state = browser.execute(READ_CALLS);
        let names: Vec<String> = state["rows"]
            .as_object()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        if names == [cache]
            && state["summary"]
                .as_str()
                .is_some_and(|s| s.ends_with("all processes"))
        {
            Ok(state)
        } else {
            Err(state.to_string())
        }
    });
    assert_eq!(&cells(&filtered["rows"][cache])[3..6], ["9", "1", "0"]);

    let png = browser.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    let path = artifacts_dir().join("dashboard-calls.png");
    std::fs::write(&path, &png).expect("save the screenshot");
    eprintln!("Calls view screenshot: {}", path.display());
    assert_page_clean(&browser, &[]);

    // Back on the Stats view, its time window is shown again.
    browser
        .execute(r##"document.querySelector("#tabs a[data-view=stats]").click(); return null;"##);
    wait_for(
        "the window selector on Stats",
        Duration::from_secs(30),
        || {
            let state = browser.execute(READ_CALLS);
            if state["window_shown"] == true && state["visible"] == false {
                Ok(())
            } else {
                Err(state.to_string())
            }
        },
    );
    for writer in [a, b, c] {
        writer.exit();
    }
}
