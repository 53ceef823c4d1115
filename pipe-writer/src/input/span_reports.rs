//! Spans reported on stdin (`#span` lines, [`crate::span_line`]) put
//! together into traces. Each line ends a run: it counts at once as a run
//! of its task and, with `parent=`, as a call edge, like a run in the
//! library ([`stats_core::Task::record_finished`]). For the trace, a child
//! is reported before its parent (it ends first), so children wait here
//! under their parent's name; when the parent's line comes, those that
//! ran within its time become its spans. A root (no `parent=`) is captured
//! as a trace, one in [`stats_core::Tracer::set_sample_every`] like the
//! library's roots, with every waiting span under it.
//!
//! What waits is bounded: at most [`MAX_WAITING`] spans in all; past that
//! the children of the parent that has waited longest are let go (counted
//! in [`SpanReports::let_go`]). Their stats were counted already.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stats_core::trace::Span;
use stats_core::{Outcome, Registry};

use super::span_line::SpanLine;

/// Most spans that wait for their parent's line at once.
pub const MAX_WAITING: usize = 1000;

/// Clock slack when deciding whether a waiting child ran within its
/// parent: the two lines' durations were measured by other processes.
const SLACK: Duration = Duration::from_millis(5);

/// A reported run and the runs reported under it.
#[derive(Debug)]
struct Reported {
    name: String,
    start: Instant,
    duration: Duration,
    outcome: Outcome,
    children: Vec<Reported>,
}

impl Reported {
    fn size(&self) -> usize {
        1 + self.children.iter().map(Reported::size).sum::<usize>()
    }

    /// Appends its children (depth first) as spans under `parent`, offsets
    /// from `root_start`.
    fn flatten_children(&self, parent: usize, root_start: Instant, out: &mut Vec<Span>) {
        for child in &self.children {
            out.push(Span {
                name: child.name.clone(),
                parent: Some(parent),
                offset: child.start.saturating_duration_since(root_start),
                duration: Some(child.duration),
                outcome: Some(child.outcome),
            });
            let index = out.len();
            child.flatten_children(index, root_start, out);
        }
    }
}

/// The spans waiting for their parent, by the parent's name.
#[derive(Debug, Default)]
pub struct SpanReports {
    waiting: HashMap<String, Vec<Reported>>,
    count: usize,
    let_go: u64,
}

impl SpanReports {
    /// Nothing waiting.
    pub fn new() -> SpanReports {
        SpanReports::default()
    }

    /// Spans let go so far because too many waited.
    pub fn let_go(&self) -> u64 {
        self.let_go
    }

    /// Spans waiting for their parent's line now.
    pub fn waiting(&self) -> usize {
        self.count
    }

    /// Records `span`, which ended `now`: its stats at once, and its place
    /// in a trace (see the module docs).
    pub fn report(&mut self, registry: &Registry, span: &SpanLine<'_>, now: Instant) {
        let task = registry.task(&span.name);
        let caller = span.parent.as_deref().map(|p| registry.task(p));
        task.record_finished(span.duration, span.outcome, caller.as_ref());
        // The registry's spelling: what the trace and the edges show.
        let name = task.name().to_owned();
        let start = now.checked_sub(span.duration).unwrap_or(now);
        let mut children = Vec::new();
        if let Some(waiting) = self.waiting.remove(&name) {
            for child in waiting {
                self.count -= child.size();
                // An earlier run of a task of the same name left these.
                if child.start + SLACK >= start {
                    children.push(child);
                }
            }
        }
        let run = Reported {
            name,
            start,
            duration: span.duration,
            outcome: span.outcome,
            children,
        };
        match caller {
            Some(caller) => {
                self.count += run.size();
                self.waiting
                    .entry(caller.name().to_owned())
                    .or_default()
                    .push(run);
                while self.count > MAX_WAITING {
                    self.let_go_oldest();
                }
            }
            None if registry.tracer().sample_root() => {
                let mut spans = Vec::new();
                run.flatten_children(0, run.start, &mut spans);
                registry.tracer().record_finished(
                    &run.name,
                    run.duration,
                    run.duration,
                    run.outcome,
                    spans,
                );
            }
            None => {}
        }
    }

    /// Lets go of the children of the parent whose first child came
    /// earliest.
    fn let_go_oldest(&mut self) {
        let oldest = self
            .waiting
            .iter()
            .filter_map(|(name, runs)| runs.first().map(|r| (r.start, name.clone())))
            .min();
        let Some((_, name)) = oldest else {
            self.count = 0;
            return;
        };
        if let Some(runs) = self.waiting.remove(&name) {
            let size: usize = runs.iter().map(Reported::size).sum();
            self.count -= size;
            self.let_go += size as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn line<'a>(name: &'a str, ms: u64, outcome: Outcome, parent: Option<&'a str>) -> SpanLine<'a> {
        SpanLine {
            name: Cow::Borrowed(name),
            duration: Duration::from_millis(ms),
            outcome,
            parent: parent.map(Cow::Borrowed),
        }
    }

    /// A registry that traces every root run and the reports made to it,
    /// each at a time in milliseconds from a start.
    struct Reported {
        registry: Registry,
        reports: SpanReports,
        t0: Instant,
    }

    impl Reported {
        fn new() -> Reported {
            let registry = Registry::new();
            registry.tracer().set_sample_every(1);
            Reported {
                registry,
                reports: SpanReports::new(),
                t0: Instant::now() + Duration::from_secs(10),
            }
        }

        /// Reports `name` ending at `at_ms` after running `ms`.
        fn report(
            &mut self,
            at_ms: u64,
            name: &str,
            ms: u64,
            outcome: Outcome,
            parent: Option<&str>,
        ) {
            let at = self.t0 + Duration::from_millis(at_ms);
            self.reports
                .report(&self.registry, &line(name, ms, outcome, parent), at);
        }
    }

    #[test]
    fn children_reported_first_join_their_roots_trace_and_count_edges() {
        let mut r = Reported::new();
        // request 0..100 { db 10..60 { cache 20..30 }, cache 70..80 }
        r.report(30, "cache", 10, Outcome::Success, Some("db"));
        r.report(60, "db", 50, Outcome::Error, Some("request"));
        r.report(80, "cache", 10, Outcome::Success, Some("request"));
        assert_eq!(r.reports.waiting(), 3);
        r.report(100, "request", 100, Outcome::Error, None);
        assert_eq!(r.reports.waiting(), 0);
        let traces = r.registry.tracer().traces();
        assert_eq!(traces.len(), 1);
        let t = &traces[0];
        assert_eq!(
            (t.root.as_str(), t.duration),
            ("request", Duration::from_millis(100))
        );
        let shape: Vec<_> = t
            .spans
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.parent,
                    s.offset.as_millis(),
                    s.duration.map(|d| d.as_millis()),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("request", None, 0, Some(100)),
                ("db", Some(0), 10, Some(50)),
                ("cache", Some(1), 20, Some(10)),
                ("cache", Some(0), 70, Some(10)),
            ]
        );
        let snap = r.registry.snapshot();
        assert_eq!(
            snap.get("db.calls[caller=request,outcome=error]"),
            Some(stats_core::Value::Int(1))
        );
        assert_eq!(snap.get("cache.success"), Some(stats_core::Value::Int(2)));
        assert_eq!(snap.get("request.errors"), Some(stats_core::Value::Int(1)));
        assert_eq!(
            snap.get("request.highwater"),
            Some(stats_core::Value::Int(1))
        );
        assert_eq!(snap.get("request.current"), Some(stats_core::Value::Int(0)));
    }

    #[test]
    fn stale_children_are_dropped_and_waiting_is_bounded() {
        let mut r = Reported::new();
        // A child of an earlier run of `job`, then a later `job` run.
        r.report(1, "step", 1, Outcome::Success, Some("job"));
        r.report(1000, "job", 10, Outcome::Success, None);
        assert_eq!(
            r.registry.tracer().traces()[0].spans.len(),
            1,
            "the stale step is not its child"
        );
        for i in 0..MAX_WAITING as u64 + 10 {
            r.report(2000 + i, "leaf", 1, Outcome::Success, Some("never"));
        }
        assert!(r.reports.waiting() <= MAX_WAITING);
        assert_eq!(
            r.reports.let_go() as usize + r.reports.waiting(),
            MAX_WAITING + 10
        );
    }

    #[test]
    fn roots_are_sampled_like_the_librarys() {
        let registry = Registry::new();
        registry.tracer().set_sample_every(0);
        let mut reports = SpanReports::new();
        reports.report(
            &registry,
            &line("job", 1, Outcome::Success, None),
            Instant::now(),
        );
        assert!(registry.tracer().traces().is_empty());
        assert_eq!(
            registry.snapshot().get("job.success"),
            Some(stats_core::Value::Int(1))
        );
    }
}
