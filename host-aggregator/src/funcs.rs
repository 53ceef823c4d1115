//! The call graph (monkit's `/funcs`): tasks and call edges read back from
//! a merged snapshot (FORMAT.md, "Tasks" and "Call edges"), so the host's
//! graph is the sum over processes; rendered as a text tree, JSON and a
//! Graphviz dot graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use stats_core::{Snapshot, Value, tags};

use crate::export::json;

/// One task of the graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Func {
    /// Runs in progress (summed over processes).
    pub current: f64,
    /// The most runs at once in one process.
    pub highwater: f64,
    /// Completed runs by outcome.
    pub success: f64,
    /// Runs that failed.
    pub errors: f64,
    /// Runs that panicked.
    pub panics: f64,
    /// p50, p90, p99 of successful runs' durations, seconds.
    pub success_quantiles: [Option<f64>; 3],
    /// p50, p90, p99 of failed runs' durations, seconds.
    pub error_quantiles: [Option<f64>; 3],
}

/// Calls from one task to another, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Calls {
    /// Calls that succeeded.
    pub success: f64,
    /// Calls that failed.
    pub errors: f64,
    /// Calls that panicked.
    pub panics: f64,
}

impl Calls {
    /// All calls.
    pub fn total(&self) -> f64 {
        self.success + self.errors + self.panics
    }
}

/// Tasks by name and edges by (caller, callee).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Every task, by full name (tags included).
    pub funcs: BTreeMap<String, Func>,
    /// Call counts by (caller, callee).
    pub edges: BTreeMap<(String, String), Calls>,
}

fn number(value: Value) -> f64 {
    match value {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
    }
}

/// A name's tags as the pairs [`tags::join`] takes.
fn pairs<'a>(split: &'a tags::Tagged<'_>) -> Vec<(&'a str, &'a str)> {
    split
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A task's stats (FORMAT.md, "Tasks") by suffix, and the field each fills.
type Field = fn(&mut Func) -> &mut f64;
const FIELDS: [(&str, Field); 5] = [
    (".highwater", |f| &mut f.highwater),
    (".current", |f| &mut f.current),
    (".success", |f| &mut f.success),
    (".errors", |f| &mut f.errors),
    (".panics", |f| &mut f.panics),
];

/// `base` with `suffix` cut off, and the tags put back.
fn strip(base: &str, suffix: &str, pairs: &[(&str, &str)]) -> Option<String> {
    base.strip_suffix(suffix).map(|b| tags::join(b, pairs))
}

impl Graph {
    /// Reads the tasks and edges out of `snapshot`.
    pub fn of(snapshot: &Snapshot) -> Graph {
        let mut graph = Graph::default();
        for (name, value) in snapshot.iter() {
            let split = tags::split(name);
            let all = pairs(&split);
            let without = |drop: &[&str]| -> Vec<(&str, &str)> {
                all.iter()
                    .copied()
                    .filter(|(k, _)| !drop.contains(k))
                    .collect()
            };
            let tag = |key: &str| all.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            let v = number(value);
            if let (Some(caller), Some(outcome)) = (tag("caller"), tag("outcome"))
                && let Some(callee) = strip(split.base, ".calls", &without(&["caller", "outcome"]))
            {
                let calls = graph.edges.entry((caller.to_owned(), callee)).or_default();
                match outcome {
                    "success" => calls.success += v,
                    "error" => calls.errors += v,
                    "panic" => calls.panics += v,
                    _ => {}
                }
                continue;
            }
            for (suffix, field) in FIELDS {
                if let Some(task) = strip(split.base, suffix, &all) {
                    *field(graph.funcs.entry(task).or_default()) = v;
                }
            }
            if let Some(outcome) = tag("outcome") {
                for (q, suffix) in [".duration.p50", ".duration.p90", ".duration.p99"]
                    .iter()
                    .enumerate()
                {
                    if let Some(task) = strip(split.base, suffix, &without(&["outcome"])) {
                        let func = graph.funcs.entry(task).or_default();
                        match outcome {
                            "success" => func.success_quantiles[q] = Some(v),
                            "error" => func.error_quantiles[q] = Some(v),
                            _ => {}
                        }
                    }
                }
            }
        }
        // Only tasks (they all have `.highwater`) are kept: a plain stat
        // named `x.success` is not one.
        let tasks: BTreeSet<String> = snapshot
            .iter()
            .filter_map(|(name, _)| {
                let split = tags::split(name);
                strip(split.base, ".highwater", &pairs(&split))
            })
            .collect();
        graph.funcs.retain(|name, _| tasks.contains(name));
        graph
    }

    /// Root runs of `task`: its runs minus the calls into it.
    pub fn root_runs(&self, task: &str) -> f64 {
        let Some(func) = self.funcs.get(task) else {
            return 0.0;
        };
        let called: f64 = self
            .edges
            .iter()
            .filter(|((_, callee), _)| callee == task)
            .map(|(_, calls)| calls.total())
            .sum();
        (func.success + func.errors + func.panics - called).max(0.0)
    }

    /// The graph as JSON: `{"funcs": [{"name", "current", "highwater",
    /// "success", "errors", "panics", "roots", "success_p50", ...}],
    /// "edges": [{"caller", "callee", "success", "errors", "panics"}]}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut buf = b"{\"funcs\":[".to_vec();
        for (i, (name, f)) in self.funcs.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"name\":");
            json::write_string(&mut buf, name);
            let mut rest = format!(
                ",\"current\":{},\"highwater\":{},\"success\":{},\"errors\":{},\"panics\":{},\"roots\":{}",
                f.current,
                f.highwater,
                f.success,
                f.errors,
                f.panics,
                self.root_runs(name)
            );
            for (label, qs) in [
                ("success", &f.success_quantiles),
                ("error", &f.error_quantiles),
            ] {
                for (q, value) in ["p50", "p90", "p99"].iter().zip(qs.iter()) {
                    match value {
                        Some(v) if v.is_finite() => {
                            let _ = write!(rest, ",\"{label}_{q}\":{v}");
                        }
                        _ => {
                            let _ = write!(rest, ",\"{label}_{q}\":null");
                        }
                    }
                }
            }
            buf.extend_from_slice(rest.as_bytes());
            buf.push(b'}');
        }
        buf.extend_from_slice(b"],\"edges\":[");
        for (i, ((caller, callee), c)) in self.edges.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"caller\":");
            json::write_string(&mut buf, caller);
            buf.extend_from_slice(b",\"callee\":");
            json::write_string(&mut buf, callee);
            let _ = write!(
                Vecw(&mut buf),
                ",\"success\":{},\"errors\":{},\"panics\":{}}}",
                c.success,
                c.errors,
                c.panics
            );
        }
        buf.extend_from_slice(b"]}");
        buf
    }

    /// The graph as a text tree from the root tasks down (monkit's
    /// `/funcs`): each task once in full, a task seen again on the way is
    /// named with `(see above)`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut shown = BTreeSet::new();
        let roots: Vec<&String> = self
            .funcs
            .keys()
            .filter(|name| {
                self.root_runs(name) > 0.0 || !self.edges.keys().any(|(_, callee)| callee == *name)
            })
            .collect();
        for root in roots {
            self.text_node(root, None, 0, &mut shown, &mut out);
        }
        out
    }

    fn text_node(
        &self,
        name: &str,
        via: Option<&Calls>,
        depth: usize,
        shown: &mut BTreeSet<String>,
        out: &mut String,
    ) {
        let indent = "  ".repeat(depth);
        let _ = write!(out, "{indent}{name}");
        if let Some(calls) = via {
            let _ = write!(
                out,
                "  [calls: {} ok, {} errors, {} panics]",
                calls.success, calls.errors, calls.panics
            );
        }
        if !shown.insert(name.to_owned()) {
            out.push_str("  (see above)\n");
            return;
        }
        out.push('\n');
        if let Some(f) = self.funcs.get(name) {
            let q = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{:.6}s", s));
            let _ = writeln!(
                out,
                "{indent}  current {}, highwater {}, success {}, errors {}, panics {}; success p50 {} p90 {} p99 {}",
                f.current,
                f.highwater,
                f.success,
                f.errors,
                f.panics,
                q(f.success_quantiles[0]),
                q(f.success_quantiles[1]),
                q(f.success_quantiles[2])
            );
        }
        let children: Vec<(&String, &Calls)> = self
            .edges
            .iter()
            .filter(|((caller, _), _)| caller == name)
            .map(|((_, callee), calls)| (callee, calls))
            .collect();
        for (callee, calls) in children {
            self.text_node(callee, Some(calls), depth + 1, shown, out);
        }
    }

    /// The graph in Graphviz's dot language: a node per task (label with
    /// its counts), an edge per caller → callee (label with its calls).
    pub fn to_dot(&self) -> String {
        let mut out =
            String::from("digraph funcs {\n  node [shape=box, fontname=\"monospace\"];\n");
        let ids: BTreeMap<&String, usize> =
            self.funcs.keys().enumerate().map(|(i, n)| (n, i)).collect();
        for (name, f) in &self.funcs {
            let label = format!(
                "{name}\ncurrent {} highwater {}\nsuccess {} errors {} panics {}",
                f.current, f.highwater, f.success, f.errors, f.panics
            );
            let _ = writeln!(out, "  f{} [label={}];", ids[name], dot_string(&label));
        }
        for ((caller, callee), c) in &self.edges {
            let (Some(a), Some(b)) = (ids.get(caller), ids.get(callee)) else {
                continue;
            };
            let label = format!("{} ok / {} err / {} panic", c.success, c.errors, c.panics);
            let _ = writeln!(out, "  f{a} -> f{b} [label={}];", dot_string(&label));
        }
        out.push_str("}\n");
        out
    }
}

/// A dot string: quoted, with `"` and `\` escaped and newlines as `\n`.
fn dot_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `fmt::Write` into a byte buffer.
struct Vecw<'a>(&'a mut Vec<u8>);

impl Write for Vecw<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_reads_back_as_its_call_graph() {
        let r = stats_core::Registry::new();
        let (req, db, cache) = (r.task("request"), r.task("db[shard=1]"), r.task("cache"));
        for i in 0..4 {
            let _ = req.run(|| db.run(|| cache.run(|| if i == 0 { Err(()) } else { Ok(()) })));
        }
        let graph = Graph::of(&r.snapshot());
        assert_eq!(graph.funcs.len(), 3);
        assert_eq!(graph.funcs["db[shard=1]"].errors, 1.0);
        let calls = graph.edges[&("db[shard=1]".to_owned(), "cache".to_owned())];
        assert_eq!((calls.success, calls.errors), (3.0, 1.0));
        assert_eq!(graph.root_runs("request"), 4.0);
        assert_eq!(graph.root_runs("cache"), 0.0);
        let text = graph.to_text();
        assert!(text.starts_with("request\n"), "{text}");
        assert!(
            text.contains("\n    cache  [calls: 3 ok, 1 errors, 0 panics]\n"),
            "{text}"
        );
        let dot = graph.to_dot();
        assert!(
            dot.contains("f2 -> f1") && dot.contains("f1 -> f0"),
            "{dot}"
        );
        let parsed: serde_json::Value = serde_json::from_slice(&graph.to_json()).unwrap();
        assert_eq!(parsed["edges"].as_array().unwrap().len(), 2);
    }
}

/// How `/funcs` is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `/funcs`: the text tree.
    Text,
    /// `/funcs.json`.
    Json,
    /// `/funcs.dot`: Graphviz.
    Dot,
}

/// `pid=N` from a query string, if given: `Err` names a bad value.
fn pid_param(query: &str) -> Result<Option<u32>, String> {
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("pid=") {
            return value
                .parse()
                .map(Some)
                .map_err(|_| format!("pid={value} is not a process ID"));
        }
    }
    Ok(None)
}

impl Format {
    /// The `Content-Type` of this rendering.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => crate::export::json::CONTENT_TYPE,
            Format::Text => "text/plain; charset=utf-8",
            Format::Dot => "text/vnd.graphviz; charset=utf-8",
        }
    }
}

/// The call graph of `pass` (only process `pid`'s, if given) rendered in
/// `format`: what `/funcs*` serve and `host-aggregator funcs` prints.
///
/// # Errors
/// A message naming the PID when the pass has no pipe for it.
pub fn render(format: Format, pass: &crate::Pass, pid: Option<u32>) -> Result<Vec<u8>, String> {
    let graph = match pid {
        None => Graph::of(&pass.merged),
        Some(pid) => match pass.source(pid) {
            Some(source) => Graph::of(&source.snapshot),
            None => return Err(format!("no stats pipe for PID {pid}")),
        },
    };
    Ok(match format {
        Format::Json => graph.to_json(),
        Format::Text => graph.to_text().into_bytes(),
        Format::Dot => graph.to_dot().into_bytes(),
    })
}

/// The answer to a `/funcs` route from the shared pass.
pub(crate) fn answer(
    format: Format,
    query: &str,
    cached: &crate::pass_cache::CachedPass,
) -> crate::reply::Reply {
    use crate::reply::Reply;
    let pass = match &cached.result {
        Ok(pass) => pass,
        Err(error) => return Reply::error(503, &error.to_string()),
    };
    let pid = match pid_param(query) {
        Err(message) => return Reply::error(400, &message),
        Ok(pid) => pid,
    };
    let mut reply = match render(format, pass, pid) {
        Ok(body) => Reply {
            content_type: format.content_type(),
            ..Reply::json(200, body)
        },
        Err(message) => Reply::error(404, &message),
    };
    reply.pass = Some(cached.number);
    reply
}
