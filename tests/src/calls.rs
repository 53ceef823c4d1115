//! The call-graph and trace tests' writers (`calls_writer` processes running
//! nested tasks) and what their dashboard tests share: checking that the
//! page ran without a script error.

use std::path::Path;

use serde_json::Value;

use crate::kinds::KindsWriter;
use crate::live::Browser;

/// A task name a hostile writer could choose: HTML that would run script
/// if the dashboard ever put a name into markup.
pub const HOSTILE_TASK: &str = "<img src=x onerror=window.__pwned=1>";

/// Starts a `calls_writer` serving in `dir`.
///
/// # Panics
/// As [`KindsWriter::start`].
pub fn start_calls_writer(dir: &Path) -> KindsWriter {
    KindsWriter::start_binary("calls_writer", dir)
}

/// The command that runs `names` nested, the innermost ending with
/// `outcome` after `ms` milliseconds.
pub fn run(outcome: &str, ms: u64, names: &[&str]) -> String {
    format!("run\t{outcome}\t{ms}\t{}", names.join("\t"))
}

/// Asserts the page's own error hook and the browser console saw no error
/// and that no writer-chosen name ran as markup.
///
/// # Panics
/// On any of them.
pub fn assert_page_clean(browser: &Browser) {
    let errors = browser.execute("return window.__dashboardErrors;");
    assert_eq!(
        errors,
        Value::Array(Vec::new()),
        "JavaScript errors on the page"
    );
    let severe: Vec<Value> = browser
        .console_log()
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    let pwned = browser.execute("return window.__pwned === undefined;");
    assert_eq!(pwned, Value::Bool(true), "a task name ran as HTML");
}
