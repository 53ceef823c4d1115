//! `name: value` lines, as a pipe serves them (FORMAT.md), for `dump`.

use stats_core::Snapshot;

use crate::{Pass, Source};

/// `snapshot` as `name: value` lines.
pub fn lines(snapshot: &Snapshot) -> Vec<u8> {
    let mut buf = Vec::new();
    snapshot.render_into(&mut buf);
    buf
}

/// The text format: the merged (or one source's) snapshot in the wire
/// format's own lines. Not served over HTTP.
pub struct Text;

impl super::Format for Text {
    fn name(&self) -> &'static str {
        "text"
    }
    fn about(&self) -> &'static str {
        "`name: value` lines, as a pipe serves them"
    }
    fn path(&self) -> Option<&'static str> {
        None
    }
    fn content_type(&self) -> &'static str {
        "text/plain; charset=utf-8"
    }
    fn render(&self, pass: &Pass) -> Vec<u8> {
        lines(&pass.merged)
    }
    fn render_source(&self, _: &Pass, source: &Source) -> Vec<u8> {
        lines(&source.snapshot)
    }
}
