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

/// Asserts that the page ran without a script error (console entries
/// holding one of `expected` aside, see [`Browser::assert_no_errors`]) and
/// that no writer-chosen name ran as markup.
///
/// # Panics
/// On any of them.
pub fn assert_page_clean(browser: &Browser, expected: &[&str]) {
    browser.assert_no_errors(expected);
    let pwned = browser.execute("return window.__pwned === undefined;");
    assert_eq!(pwned, Value::Bool(true), "a task name ran as HTML");
}
