//! `include/stats_pipe.h`, written from the ABI's tables (`FUNCTIONS`,
//! `TYPES`). The committed header is checked against it by
//! `tests/header.rs`.

use std::fmt::Write;

use super::abi::{CFunction, COpaque};

/// The rules every function keeps, at the top of the header.
const RULES: &str = "\
// stats-pipe's C ABI: each process serves its own stats at
// <dir>/<pid>.stats (dir: STATS_PIPE_DIR, else /tmp/stats-pipe).
//
// Rules every function keeps:
// - every call is thread-safe, and safe in a child of fork(): the child
//   records into its own, empty registry and serves its own pipe;
// - no panic crosses the boundary: a failure is -1 or NULL (or nothing, for
//   a void call) with the reason in stats_pipe_last_error;
// - a `const char *` is NULL or NUL-terminated UTF-8, borrowed for the call
//   only; a NULL or non-UTF-8 name records nothing;
// - a handle (`const StatsPipeCounter *` ...) is NULL or what its
//   constructor returned; it belongs to the library, lives until the
//   process exits (in its children too) and is never freed by the caller;
// - a `StatsPipeRun *` is the caller's from stats_pipe_task_begin until it
//   is given back, once, to stats_pipe_task_end;
// - a `char *buf` is NULL with `len` 0, or `len` writable bytes.
";

/// The header's text for these types and functions.
pub(crate) fn render(types: &[COpaque], functions: &[CFunction]) -> String {
    let mut out = String::from(
        "#ifndef STATS_PIPE_H\n#define STATS_PIPE_H\n\n\
         /* Written from pipe-writer/capi/src/ffi/mod.rs: do not edit. Regenerate with\n   \
         STATS_PIPE_BLESS=1 cargo test -p stats-pipe-capi --test header */\n\n\
         #include <stddef.h>\n#include <stdint.h>\n\n",
    );
    out.push_str(RULES);
    for opaque in types {
        write_opaque(&mut out, opaque);
    }
    out.push_str("\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
    for function in functions {
        write_function(&mut out, function);
    }
    out.push_str("\n#ifdef __cplusplus\n}  // extern \"C\"\n#endif\n\n#endif  // STATS_PIPE_H\n");
    out
}

fn write_docs(out: &mut String, docs: &[&str]) {
    out.push('\n');
    for line in docs {
        out.push_str("//");
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn write_opaque(out: &mut String, opaque: &COpaque) {
    write_docs(out, opaque.docs);
    let _ = writeln!(out, "typedef struct {0} {0};", opaque.name);
}

fn write_function(out: &mut String, function: &CFunction) {
    write_docs(out, function.docs);
    let params: Vec<String> = function
        .params
        .iter()
        .map(|(name, c)| declarator(c, name))
        .collect();
    let params = if params.is_empty() {
        "void".to_string()
    } else {
        params.join(", ")
    };
    let _ = writeln!(
        out,
        "{}({params});",
        declarator(function.returns, function.name)
    );
}

/// `int64_t by`, `const char *name`: a pointer's star stays by the name.
fn declarator(c_type: &str, name: &str) -> String {
    if c_type.ends_with('*') {
        format!("{c_type}{name}")
    } else {
        format!("{c_type} {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_keep_their_star_by_the_name() {
        assert_eq!(declarator("const char *", "name"), "const char *name");
        assert_eq!(declarator("int64_t", "by"), "int64_t by");
    }
}
