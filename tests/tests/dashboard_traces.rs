//! The dashboard's Traces view in headless Chromium over real writers:
//! the recent list from `/traces` (filtered by a root regex and a minimum
//! duration), a click on a row drawing that trace's timeline with its spans
//! nested, a bad regex's 400 said on the page, and a hostile root name
//! shown as text.

use std::time::Duration;

use serde_json::Value;
use stats_pipe_tests::calls::{HOSTILE_TASK, assert_page_clean, run, start_calls_writer};
use stats_pipe_tests::live::{Browser, TempDir, artifacts_dir, wait_for};
use stats_pipe_tests::serve::Aggregator;

const READ_LIST: &str = r##"
    return {
      rows: Array.from(document.querySelectorAll("#traces tbody tr[data-pid]")).map((r) => ({
        pid: Number(r.dataset.pid), id: Number(r.dataset.id),
        root: r.querySelector(".task-name").textContent,
        cells: Array.from(r.children).map((c) => c.textContent) })),
      error: document.getElementById("traces-error").hidden ? null : document.getElementById("traces-error").textContent,
      images: document.querySelectorAll("#view-traces img").length,
      window_shown: document.getElementById("window").getBoundingClientRect().width > 0,
    };
"##;

const READ_DETAIL: &str = r##"
    const rows = Array.from(document.querySelectorAll("#trace-detail .span-row"));
    return {
      title: (document.querySelector("#trace-detail .card-title") || {}).textContent || null,
      spans: rows.map((r) => ({ name: r.querySelector(".span-name").textContent,
        depth: Number(r.dataset.depth), width: parseFloat(r.querySelector(".bar").style.width),
        left: parseFloat(r.querySelector(".bar").style.left) })),
    };
"##;

fn rows(state: &Value) -> Vec<Value> {
    state["rows"].as_array().cloned().unwrap_or_default()
}

/// Waits until the list shows `count` rows; the page's state then.
fn wait_for_rows(browser: &Browser, count: usize, what: &str) -> Value {
    wait_for(what, Duration::from_secs(60), || {
        let state = browser.execute(READ_LIST);
        if rows(&state).len() == count {
            Ok(state)
        } else {
            Err(state.to_string())
        }
    })
}

#[test]
fn traces_view_lists_filters_and_draws_a_timeline() {
    let dir = TempDir::new("dashboard-traces");
    let (rq, db, cache) = ("request", "db.query", "cache");
    let mut a = start_calls_writer(dir.path());
    let mut b = start_calls_writer(dir.path());
    for writer in [&mut a, &mut b] {
        writer.send(&["sample\t1".to_owned()]);
    }
    a.send(&[
        run("success", 1, &[rq, db, cache]),
        run("error", 30, &[rq, db, cache]),
    ]);
    b.send(&[
        run("success", 1, &[rq, cache]),
        run("success", 1, &[HOSTILE_TASK, db]),
        run("success", 1, &["batch.job"]),
    ]);
    let aggregator = Aggregator::serve(dir.path(), &["--interval", "250ms"]);
    let browser = Browser::start();
    browser.navigate(&format!("http://{}/#view=traces", aggregator.addr()));

    // Every root run is listed, newest first within a process.
    let all = wait_for_rows(&browser, 5, "5 traces listed");
    let roots_of = |pid: u32| -> Vec<String> {
        rows(&all)
            .iter()
            .filter(|r| r["pid"].as_u64() == Some(u64::from(pid)))
            .map(|r| r["root"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(roots_of(a.pid()), [rq, rq], "{all}");
    assert_eq!(roots_of(b.pid()), ["batch.job", HOSTILE_TASK, rq], "{all}");
    assert_eq!(all["images"], 0, "the hostile root is text: {all}");
    assert_eq!(
        all["window_shown"], false,
        "the Stats view's time window does nothing here: {all}"
    );

    // The filters go to the server: a root regex and a minimum duration.
    browser.execute(
        r#"const t = document.getElementById("traces-task"); t.value = "^req";
           t.dispatchEvent(new Event("input"));
           const m = document.getElementById("traces-min"); m.value = "20ms";
           m.dispatchEvent(new Event("input")); return null;"#,
    );
    let slow = wait_for_rows(&browser, 1, "the filtered list");
    let row = &rows(&slow)[0];
    assert_eq!(row["root"], rq);
    assert_eq!(row["pid"].as_u64(), Some(u64::from(a.pid())));
    assert!(
        row["cells"][4].as_str().is_some_and(|c| c == "error"),
        "{row}"
    );

    // A click draws its timeline: request > db.query > cache, nested, the
    // children within their parents.
    browser
        .execute(r##"document.querySelector("#traces tbody tr[data-pid]").click(); return null;"##);
    let detail = wait_for("the timeline", Duration::from_secs(30), || {
        let state = browser.execute(READ_DETAIL);
        if state["spans"].as_array().is_some_and(|s| s.len() == 3) {
            Ok(state)
        } else {
            Err(state.to_string())
        }
    });
    assert_eq!(detail["title"], rq);
    let spans = detail["spans"].as_array().unwrap();
    let shape: Vec<(&str, u64)> = spans
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["depth"].as_u64().unwrap()))
        .collect();
    assert_eq!(shape, [(rq, 0), (db, 1), (cache, 2)]);
    let end = |s: &Value| s["left"].as_f64().unwrap() + s["width"].as_f64().unwrap();
    for pair in spans.windows(2) {
        assert!(pair[1]["left"].as_f64() >= pair[0]["left"].as_f64());
        assert!(end(&pair[1]) <= end(&pair[0]) + 0.5, "{detail}");
    }
    // The 30 ms sleep is in the innermost span: most of the root's width.
    assert!(spans[2]["width"].as_f64().unwrap() > 50.0, "{detail}");

    // A regex the server refuses is said on the page, not thrown.
    browser.execute(
        r#"const t = document.getElementById("traces-task"); t.value = "(";
           t.dispatchEvent(new Event("input")); return null;"#,
    );
    wait_for("the bad regex message", Duration::from_secs(30), || {
        let state = browser.execute(READ_LIST);
        match state["error"].as_str() {
            Some(message) if message.contains("HTTP 400") => Ok(()),
            _ => Err(state.to_string()),
        }
    });

    let png = browser.screenshot();
    let path = artifacts_dir().join("dashboard-traces.png");
    std::fs::write(&path, &png).expect("save the screenshot");
    eprintln!("Traces view screenshot: {}", path.display());
    // The 400 above is logged in the console as a failed resource.
    assert_page_clean(&browser, &["status of 400"]);
    a.exit();
    b.exit();
}
