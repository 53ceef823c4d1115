//! A trace as a timeline SVG (monkit's `/trace/svg`, appstats' detail
//! page): one row per span in tree order (a span's children right under
//! it), its label indented by its depth, its bar placed by start offset and
//! sized by duration on one time axis, coloured by outcome. Every text from
//! a writer is escaped, and characters XML 1.0 forbids are replaced, so
//! the document is well-formed whatever the names (`xmllint --noout`).

use std::fmt::Write;
use std::time::Duration;

use stats_core::Outcome;

use super::query::human_ns;
use super::record::Record;

/// Spans drawn at most; the rest are counted in a last line.
pub const MAX_ROWS: usize = 2000;
const ROW: usize = 18;
const LABEL_WIDTH: usize = 320;
const BAR_WIDTH: usize = 760;
const INDENT: usize = 12;
const TOP: usize = 44;

/// The SVG document for `record`.
pub fn render(record: &Record) -> String {
    let order = tree_order(record);
    let shown = order.len().min(MAX_ROWS);
    let hidden = order.len() - shown;
    let height = TOP + (shown + usize::from(hidden > 0)) * ROW + 10;
    let width = LABEL_WIDTH + BAR_WIDTH + 20;
    let total = record.duration_ns.max(1) as f64;
    let mut svg = String::with_capacity(256 + shown * 300);
    let _ = write!(
        svg,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"monospace\" font-size=\"12\">\n"
    );
    let mut title = format!(
        "{} (PID {}, trace {}): {}, {}",
        record.root,
        record.pid,
        record.id,
        human_ns(record.duration_ns),
        record.outcome
    );
    if record.dropped_spans > 0 {
        let _ = write!(title, ", {} spans not kept", record.dropped_spans);
    }
    let _ = writeln!(svg, "<title>{}</title>", escape(&title));
    let _ = writeln!(svg, "<text x=\"4\" y=\"16\">{}</text>", escape(&title));
    // The time axis: 0 and the root's duration.
    let _ = writeln!(
        svg,
        "<text x=\"{LABEL_WIDTH}\" y=\"34\">0</text><text x=\"{}\" y=\"34\" text-anchor=\"end\">{}</text>",
        LABEL_WIDTH + BAR_WIDTH,
        escape(&human_ns(record.duration_ns))
    );
    for (row, &(i, depth)) in order.iter().take(shown).enumerate() {
        let span = &record.spans[i];
        let y = TOP + row * ROW;
        let offset = nanos(span.offset);
        let x = LABEL_WIDTH as f64 + (offset as f64 / total).min(1.0) * BAR_WIDTH as f64;
        let (w, outcome, took) = match span.duration.map(nanos) {
            Some(d) => (
                (d as f64 / total * BAR_WIDTH as f64).max(1.0),
                span.outcome.map_or("unknown", Outcome::label),
                human_ns(d),
            ),
            // Still running when the root ended: drawn to the end.
            None => (
                (LABEL_WIDTH + BAR_WIDTH) as f64 - x,
                "running",
                "still running".to_owned(),
            ),
        };
        let w = w.min((LABEL_WIDTH + BAR_WIDTH) as f64 - x).max(1.0);
        let label = format!("{} {took}", span.name);
        let _ = writeln!(
            svg,
            "<g class=\"span {outcome_class}\"><title>{tip}</title>\
             <rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\" fill=\"{fill}\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{text}</text></g>",
            outcome_class = class(outcome),
            tip = escape(&format!(
                "{}: starts at {}, {took}, {outcome}",
                span.name,
                human_ns(offset)
            )),
            h = ROW - 4,
            fill = colour(outcome),
            tx = 4 + depth.min(20) * INDENT,
            ty = y + ROW - 6,
            text = escape(&label),
        );
    }
    if hidden > 0 {
        let _ = writeln!(
            svg,
            "<text x=\"4\" y=\"{}\">{hidden} more spans not drawn</text>",
            TOP + shown * ROW + ROW - 6
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The spans in tree order (depth first, children in start order), each
/// with its depth. A span whose parent is not an earlier span is drawn at
/// the top level, so bad input can never loop.
fn tree_order(record: &Record) -> Vec<(usize, usize)> {
    let n = record.spans.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut tops = Vec::new();
    for (i, span) in record.spans.iter().enumerate() {
        match span.parent {
            Some(p) if p < i => children[p].push(i),
            _ => tops.push(i),
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<(usize, usize)> = tops.into_iter().rev().map(|i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        order.push((i, depth));
        stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
    }
    order
}

fn colour(outcome: &str) -> &'static str {
    match outcome {
        "success" => "#6cb38a",
        "error" => "#d9534f",
        "panic" => "#8e44ad",
        _ => "#aaaaaa",
    }
}

fn class(outcome: &str) -> &'static str {
    match outcome {
        "success" => "success",
        "error" => "error",
        "panic" => "panic",
        "running" => "running",
        _ => "unknown",
    }
}

/// Escapes text for an XML text node or attribute; characters XML 1.0
/// does not allow at all (most control characters, U+FFFE, U+FFFF)
/// become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A span's time in nanoseconds (a record's times came as `u64`s).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stats_core::trace::Span;

    fn span(name: &str, parent: Option<usize>, offset_ns: u64, d: Option<u64>) -> Span {
        Span {
            name: name.into(),
            parent,
            offset: Duration::from_nanos(offset_ns),
            duration: d.map(Duration::from_nanos),
            outcome: d.map(|_| Outcome::Success),
        }
    }

    #[test]
    fn rows_follow_the_tree_and_text_is_escaped() {
        let record = Record {
            head: super::super::record::Head {
                pid: 1,
                id: 2,
                root: "req<&>\"'\u{1}".into(),
                tags: Vec::new(),
                start: 0.0,
                duration_ns: 1000,
                outcome: "success".into(),
                dropped_spans: 0,
            },
            spans: vec![
                span("req<&>\"'\u{1}", None, 0, Some(1000)),
                span("a", Some(0), 10, Some(100)),
                span("b", Some(0), 200, None),
                span("a.child", Some(1), 20, Some(50)),
                // A parent that is not earlier: top level, no loop.
                span("odd", Some(9), 0, Some(1)),
            ],
            line: String::new(),
        };
        let order: Vec<usize> = tree_order(&record).iter().map(|&(i, _)| i).collect();
        assert_eq!(order, [0, 1, 3, 2, 4]);
        let svg = render(&record);
        assert!(!svg.contains("req<"), "{svg}");
        assert!(
            svg.contains("req&lt;&amp;&gt;&quot;&apos;\u{FFFD}"),
            "{svg}"
        );
        assert_eq!(svg.matches("<rect").count(), 5);
        assert!(svg.contains("still running"), "{svg}");
    }
}
