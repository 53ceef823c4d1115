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
    fn info(&self) -> &'static super::FormatInfo {
        &super::FormatInfo {
            name: "text",
            about: "`name: value` lines, as a pipe serves them",
            path: None,
            content_type: "text/plain; charset=utf-8",
        }
    }
    fn render(&self, pass: &Pass) -> Vec<u8> {
        lines(&pass.merged)
    }
    fn render_source(&self, _: &Pass, source: &Source) -> Vec<u8> {
        lines(&source.snapshot)
    }
}
