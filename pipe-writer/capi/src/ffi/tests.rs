//! The ABI called from Rust, which its types make safe: the refusals and
//! the buffers. (C calls it in `tests/tests/c_abi.rs`.)

use super::*;

fn last_error_text() -> String {
    let len = stats_pipe_last_error(StatsPipeBuffer::NULL, 0);
    assert!(len > 0, "an error was recorded");
    last_error().expect("the same error, read directly")
}

#[test]
fn a_dir_that_is_not_utf8_is_refused_by_its_name() {
    let dir = c"/tmp/\xff";
    assert_eq!(stats_pipe_start(dir.into()), -1);
    assert_eq!(last_error_text(), "stats_pipe_start: dir is not UTF-8");
}

#[test]
fn a_null_or_bad_name_records_nothing_and_says_why() {
    assert!(stats_pipe_counter(StatsPipeText::NULL).is_none());
    assert_eq!(last_error_text(), "stats_pipe_counter: name is NULL");
    let bad = c"\xc3(";
    assert!(stats_pipe_task(bad.into()).is_none());
    assert_eq!(last_error_text(), "stats_pipe_task: name is not UTF-8");
    assert!(stats_pipe_task_begin(None).is_none());
    stats_pipe_task_end(None, 1);
}

#[test]
fn a_null_buffer_asks_for_the_length_only() {
    stats_pipe_incr(StatsPipeText::NULL, 1);
    let expected = "stats_pipe_incr: name is NULL";
    assert_eq!(
        stats_pipe_last_error(StatsPipeBuffer::NULL, 0),
        expected.len()
    );
    assert_eq!(StatsPipeBuffer::NULL.fill(100, expected), expected.len());
}

#[test]
fn the_table_names_every_function_with_its_c_types() {
    let incr = FUNCTIONS
        .iter()
        .find(|f| f.name == "stats_pipe_incr")
        .unwrap();
    assert_eq!(incr.params, [("name", "const char *"), ("by", "int64_t")]);
    assert_eq!(incr.returns, "void");
    let begin = FUNCTIONS
        .iter()
        .find(|f| f.name == "stats_pipe_task_begin")
        .unwrap();
    assert_eq!(begin.params, [("task", "const StatsPipeTask *")]);
    assert_eq!(begin.returns, "StatsPipeRun *");
    assert_eq!(FUNCTIONS.len(), 21);
    assert!(FUNCTIONS.iter().all(|f| !f.docs.is_empty()));
}

#[test]
fn every_function_and_type_is_declared_once() {
    let header = c_header();
    for function in FUNCTIONS {
        let declared = format!("{}(", function.name);
        let code = header.lines().filter(|l| !l.starts_with("//"));
        let found = code.filter(|l| l.contains(&declared)).count();
        assert_eq!(found, 1, "{declared}");
    }
    for opaque in TYPES {
        let typedef = format!("typedef struct {0} {0};", opaque.name);
        assert_eq!(header.matches(&typedef).count(), 1, "{typedef}");
    }
}
