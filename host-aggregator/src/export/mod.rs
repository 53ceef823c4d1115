//! Renderings of a read pass for the outside world: JSON (pipestatic's
//! `/stats` shape and the per-source views), `name: value` text,
//! Prometheus text exposition and InfluxDB line protocol.
//!
//! Every output format is one module with a type implementing [`Format`]
//! (its name, its content type, the path it is served at, and how it
//! renders a pass and one source), listed once in [`FORMATS`]: `serve`
//! routes each format's path and `dump --format` offers each name from
//! that table, so a new format is one new file plus one line there (see
//! `docs/ARCHITECTURE.md`).
//!
//! Every renderer appends to a `Vec<u8>` and never fails: whatever a writer
//! sent (odd names, NaN, huge integers) comes out as valid output.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use host_aggregator::Pass;
//! use host_aggregator::export::{json, prometheus};
//! use stats_core::Snapshot;
//!
//! let (merged, _) = Snapshot::parse(b"requests: 7\nload avg: 0.75\nratio: nan\n", 4096);
//! let pass = Pass {
//!     started: UNIX_EPOCH + Duration::from_millis(1_763_780_000_250),
//!     duration: Duration::from_millis(3),
//!     sources: Vec::new(),
//!     merged,
//!     kinds: Default::default(),
//! };
//! assert_eq!(
//!     String::from_utf8(json::stats(&pass)).unwrap(),
//!     r#"{"stats":{"load avg":0.75,"ratio":"NaN","requests":7},"timestamp":1763780000.25,"sources":{"total":0,"ok":0}}"#
//! );
//! assert_eq!(
//!     String::from_utf8(prometheus::render_snapshot(&pass.merged)).unwrap(),
//!     concat!(
//!         "# HELP load_avg stat load avg\n# TYPE load_avg untyped\nload_avg 0.75\n",
//!         "# HELP ratio stat ratio\n# TYPE ratio untyped\nratio NaN\n",
//!         "# HELP requests stat requests\n# TYPE requests untyped\nrequests 7\n",
//!     )
//! );
//! ```

pub mod influx;
pub mod json;
pub mod prometheus;
pub mod text;

use std::time::{SystemTime, UNIX_EPOCH};

// Every format writes numbers as the wire format does, with its own
// spellings for NaN and the infinities.
#[cfg(test)]
use stats_core::Value;
use stats_core::format::write_number;

use crate::{Pass, Source};

/// What a format is, apart from how it renders: the one place its
/// name, help line, path and content type are written.
#[derive(Debug)]
pub struct FormatInfo {
    /// Its name for `dump --format` (lower case, one word).
    pub name: &'static str,
    /// One line for `dump --help`.
    pub about: &'static str,
    /// The path `serve` answers it at, if it is served.
    pub path: Option<&'static str>,
    /// The HTTP `Content-Type` of its output.
    pub content_type: &'static str,
}

/// One output format of a read pass: what every module here offers.
pub trait Format: Sync {
    /// Its name, help line, path and content type.
    fn info(&self) -> &'static FormatInfo;
    /// The host-wide view of `pass`.
    fn render(&self, pass: &Pass) -> Vec<u8>;
    /// One source of `pass` (`dump --pid`).
    fn render_source(&self, pass: &Pass, source: &Source) -> Vec<u8>;

    /// [`FormatInfo::name`].
    fn name(&self) -> &'static str {
        self.info().name
    }
    /// [`FormatInfo::about`].
    fn about(&self) -> &'static str {
        self.info().about
    }
    /// [`FormatInfo::path`].
    fn path(&self) -> Option<&'static str> {
        self.info().path
    }
    /// [`FormatInfo::content_type`].
    fn content_type(&self) -> &'static str {
        self.info().content_type
    }
}

/// Every output format, in the order `dump --help` lists them. The one
/// table `serve`'s routes and `dump --format` read.
pub static FORMATS: &[&dyn Format] = &[
    &json::Json,
    &text::Text,
    &prometheus::Prometheus,
    &influx::INFLUX,
];

/// The format named `name` in [`FORMATS`].
pub fn format(name: &str) -> Option<&'static dyn Format> {
    FORMATS.iter().copied().find(|format| format.name() == name)
}

/// Formats are told apart by name (routes compare them).
impl PartialEq for dyn Format {
    fn eq(&self, other: &dyn Format) -> bool {
        self.name() == other.name()
    }
}

impl Eq for dyn Format {}

impl std::fmt::Debug for dyn Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Format({})", self.name())
    }
}

/// Unix seconds of `time` as a float; a time before 1970 reads as `0.0`.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// How many bytes of `bytes` from `at` on make a control character: 1 for
/// a C0 control (NUL, TAB, LF, VT, CR, ...) or DEL, 2 for a C1 control
/// (U+0080 to U+009F, `0xC2 0x80..=0x9F` in UTF-8), 0 for anything else.
///
/// The reader refuses stat names that hold one (`LineError::ControlInName`,
/// issue 12), but the text formats here must never carry one raw whatever
/// a future source of names lets through, so their escapers replace each
/// with `_` (defence in depth; JSON escapes them as `\u00XX` instead).
fn control_len(bytes: &[u8], at: usize) -> usize {
    match bytes[at] {
        0..0x20 | 0x7f => 1,
        0xc2 if bytes
            .get(at + 1)
            .is_some_and(|next| (0x80..0xa0).contains(next)) =>
        {
            2
        }
        _ => 0,
    }
}

/// Appends `text` byte by byte: `escape(buf, bytes, at)` writes the
/// format's escape for the byte at `at` and returns `true`, or returns
/// `false` to leave it to the default, which copies the byte, or writes
/// `_` for a whole control character ([`control_len`]). The one walker
/// behind the Prometheus and InfluxDB escapers, so neither can let a raw
/// control through.
#[inline]
fn escape_with(
    buf: &mut Vec<u8>,
    text: &str,
    mut escape: impl FnMut(&mut Vec<u8>, &[u8], usize) -> bool,
) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if escape(buf, bytes, at) {
            at += 1;
            continue;
        }
        match control_len(bytes, at) {
            0 => {
                buf.push(bytes[at]);
                at += 1;
            }
            control => {
                buf.push(b'_');
                at += control;
            }
        }
    }
}

/// Test helper: whether `bytes` holds a byte below 0x20 other than `\n`,
/// DEL, or a C1 control.
#[cfg(test)]
fn holds_raw_control(bytes: &[u8]) -> bool {
    (0..bytes.len()).any(|at| bytes[at] != b'\n' && control_len(bytes, at) > 0)
}

/// Test helper: a snapshot of `(name, value)` pairs.
#[cfg(test)]
fn snapshot(pairs: &[(&str, Value)]) -> stats_core::Snapshot {
    stats_core::Snapshot::from_entries(pairs.iter().map(|(name, value)| stats_core::Entry {
        name: (*name).into(),
        value: *value,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    /// A toy format, as a new one would be added: this type in its own
    /// file, plus its line in [`FORMATS`]. Here it is put in a table of
    /// its own, the way the routes and `dump` read [`FORMATS`].
    struct Count;

    impl Format for Count {
        fn info(&self) -> &'static FormatInfo {
            &FormatInfo {
                name: "count",
                about: "How many stats.",
                path: Some("/count"),
                content_type: "text/plain",
            }
        }
        fn render(&self, pass: &Pass) -> Vec<u8> {
            format!("{}\n", pass.merged.len()).into_bytes()
        }
        fn render_source(&self, _: &Pass, source: &Source) -> Vec<u8> {
            format!("{}\n", source.snapshot.len()).into_bytes()
        }
    }

    static COUNT: Count = Count;

    #[test]
    fn a_registered_format_is_routed_and_rendered() {
        let table: Vec<&'static dyn Format> =
            FORMATS.iter().copied().chain([&COUNT as _]).collect();
        let route = crate::routes::route_in("/count", &table);
        let export = |format| crate::routes::Route::Pass(crate::routes::PassRoute::Export(format));
        assert_eq!(route, Some(export(&COUNT)));
        assert_eq!(crate::routes::route_in("/count", FORMATS), None);
        let pass = Pass {
            started: UNIX_EPOCH,
            duration: std::time::Duration::ZERO,
            sources: Vec::new(),
            merged: snapshot(&[("a", Value::Int(1)), ("b", Value::Int(2))]),
            kinds: Default::default(),
        };
        let Some(crate::routes::Route::Pass(crate::routes::PassRoute::Export(format))) = route
        else {
            panic!("not a format route");
        };
        assert_eq!(format.render(&pass), b"2\n");
        assert_eq!(format.content_type(), "text/plain");
    }

    #[test]
    fn the_built_in_formats_have_distinct_names_and_paths() {
        let names: Vec<&str> = FORMATS.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["json", "text", "prometheus", "influx"]);
        let paths: Vec<&str> = FORMATS.iter().filter_map(|f| f.path()).collect();
        assert_eq!(paths, ["/stats", "/metrics", "/influx"]);
        assert_eq!(format("prometheus").map(|f| f.name()), Some("prometheus"));
        assert!(format("xml").is_none());
    }
}
