//! InfluxDB line protocol: one line per stat, the base name as measurement,
//! `[k=v]` tags plus `host` as tags, and the value in the field `value`
//! (`3i` for an integer, `3.0` for a float, so the types hold).
//!
//! ```text
//! http.requests,code=200,host=web1 value=4000i 1763780000250000000
//! load\ avg,host=web1 value=0.5 1763780000250000000
//! ```
//!
//! Mapping decisions (documented in `docs/ARCHIVE.md`):
//! - a stat's own `host` tag is renamed `exported_host` (Prometheus' rule for
//!   the same clash); a repeated tag key keeps its last value; tags with an
//!   empty value are left out (line protocol has no empty tag value), so
//!   `a[k=]` and `a` share a series;
//! - NaN and infinities have no line-protocol spelling: those stats are
//!   skipped and counted;
//! - InfluxDB refuses a write whose field type differs from the one already
//!   stored in the shard (Telegraf #1978), so an [`Influx`] remembers every
//!   stat it ever wrote as a float and keeps writing it as one, even if a
//!   restarted writer sends it as an integer again;
//! - a backslash that line protocol would read as an escape (before a space,
//!   comma or `=`, or at the end of a name) is written as `_`;
//! - a control character (C0, DEL, C1; the reader already refuses names
//!   holding one) is written as `_`: line protocol cannot spell it.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use stats_core::{Snapshot, Value};

use crate::{Pass, Source};

/// The field key holding every stat's value.
pub const FIELD: &str = "value";

/// The tag naming the host.
pub const HOST_TAG: &str = "host";

/// The HTTP content type of line protocol.
pub const CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The line-protocol format, served at `/influx`: this host's name as
/// `host` (and the PID as `pid` for one source), and one float memory
/// ([`Influx`]) for the whole process, so a stat keeps its field type for
/// as long as the server runs.
pub struct InfluxFormat {
    memory: OnceLock<Mutex<Influx>>,
    host: OnceLock<String>,
}

/// The one [`InfluxFormat`], listed in [`super::FORMATS`].
pub static INFLUX: InfluxFormat = InfluxFormat {
    memory: OnceLock::new(),
    host: OnceLock::new(),
};

impl InfluxFormat {
    fn host(&self) -> &str {
        self.host.get_or_init(crate::procfs::local_host_name)
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Influx> {
        self.memory
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl super::Format for InfluxFormat {
    fn info(&self) -> &'static super::FormatInfo {
        &super::FormatInfo {
            name: "influx",
            about: "InfluxDB line protocol (tags `host`, and `pid` with --pid)",
            path: Some("/influx"),
            content_type: CONTENT_TYPE,
        }
    }
    fn render(&self, pass: &Pass) -> Vec<u8> {
        self.memory().pass(pass, self.host())
    }
    fn render_source(&self, pass: &Pass, source: &Source) -> Vec<u8> {
        let pid = source.pid.map(|pid| pid.to_string()).unwrap_or_default();
        let tags = [(HOST_TAG, self.host()), ("pid", pid.as_str())];
        let mut buf = Vec::new();
        self.memory()
            .render(&mut buf, &source.snapshot, &tags, pass.started);
        buf
    }
}

/// What a render wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Lines written.
    pub lines: u64,
    /// Stats skipped because line protocol cannot spell them (NaN, ±inf).
    pub skipped: u64,
}

/// A line-protocol renderer that remembers which stats were ever floats, so
/// a stat keeps one field type for as long as this value lives (keep one
/// per server; a one-shot `dump` uses a fresh one).
#[derive(Clone, Debug, Default)]
pub struct Influx {
    floats: HashSet<String>,
}

impl Influx {
    /// A renderer that has seen no float yet.
    pub fn new() -> Influx {
        Influx::default()
    }

    /// The host-wide sums of `pass`, tagged `host=<host>`, stamped with the
    /// pass start.
    pub fn pass(&mut self, pass: &Pass, host: &str) -> Vec<u8> {
        let mut buf = Vec::with_capacity(pass.merged.len() * 64);
        self.render(&mut buf, &pass.merged, &[(HOST_TAG, host)], pass.started);
        buf
    }

    /// Appends one line per stat of `snapshot`, with `tags` added to each
    /// stat's own tags (they win a clash by renaming the stat's tag to
    /// `exported_<key>`).
    pub fn render(
        &mut self,
        buf: &mut Vec<u8>,
        snapshot: &Snapshot,
        tags: &[(&str, &str)],
        time: SystemTime,
    ) -> Rendered {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let mut stamp = itoa::Buffer::new();
        let stamp = stamp.format(nanos);
        let mut rendered = Rendered::default();
        for (name, value) in snapshot.iter() {
            if let Value::Float(f) = value
                && !f.is_finite()
            {
                rendered.skipped += 1;
                continue;
            }
            let float = if value.is_float() {
                if !self.floats.contains(name) {
                    self.floats.insert(name.to_owned());
                }
                true
            } else {
                self.floats.contains(name)
            };
            let split = stats_core::tags::split(name);
            let (base, own) = if split.base.is_empty() {
                (name, Vec::new())
            } else {
                (split.base, split.tags)
            };
            let mut all_tags: Vec<(String, &str)> = Vec::with_capacity(own.len() + tags.len());
            for (key, value) in &own {
                let clash = tags.iter().any(|(ours, _)| ours == key);
                let key = if clash {
                    format!("exported_{key}")
                } else {
                    key.clone()
                };
                all_tags.push((key, value.as_str()));
            }
            all_tags.extend(tags.iter().map(|(key, value)| ((*key).to_owned(), *value)));
            // Stable sort, then keep the last of each key: "later wins".
            all_tags.sort_by(|a, b| a.0.cmp(&b.0));
            all_tags.dedup_by(|later, earlier| {
                if later.0 == earlier.0 {
                    earlier.1 = later.1;
                    true
                } else {
                    false
                }
            });

            escape_into(buf, base, b", ");
            for (key, value) in &all_tags {
                if value.is_empty() {
                    continue;
                }
                buf.push(b',');
                escape_into(buf, key, b", =");
                buf.push(b'=');
                escape_into(buf, value, b", =");
            }
            buf.push(b' ');
            buf.extend_from_slice(FIELD.as_bytes());
            buf.push(b'=');
            match value {
                Value::Int(i) if float => {
                    buf.extend_from_slice(ryu::Buffer::new().format_finite(i as f64).as_bytes());
                }
                Value::Int(i) => {
                    buf.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                    buf.push(b'i');
                }
                Value::Float(f) => {
                    buf.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes())
                }
            }
            buf.push(b' ');
            buf.extend_from_slice(stamp.as_bytes());
            buf.push(b'\n');
            rendered.lines += 1;
        }
        rendered
    }
}

/// Appends `text` with a backslash before each byte in `special`. A
/// backslash that the reader would take as an escape (before a special byte
/// or at the end) cannot be written literally and becomes `_`.
///
/// A control character (C0, DEL, C1) becomes `_` too: line protocol has no
/// escape for a newline or any other control in a measurement or a tag, and
/// a raw `\n` would end the line (see [`super::control_len`]).
fn escape_into(buf: &mut Vec<u8>, text: &str, special: &[u8]) {
    super::escape_with(buf, text, |buf, bytes, at| {
        let byte = bytes[at];
        if special.contains(&byte) {
            buf.extend_from_slice(&[b'\\', byte]);
        } else if byte == b'\\' && bytes.get(at + 1).is_none_or(|next| special.contains(next)) {
            buf.push(b'_');
        } else {
            return false;
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn render(influx: &mut Influx, text: &str) -> (String, Rendered) {
        let (snapshot, errors) = Snapshot::parse(text.as_bytes(), 4096);
        assert_eq!(errors.count(), 0);
        let mut buf = Vec::new();
        let time = UNIX_EPOCH + Duration::from_millis(1_500);
        let rendered = influx.render(&mut buf, &snapshot, &[("host", "web 1")], time);
        (String::from_utf8(buf).unwrap(), rendered)
    }

    #[test]
    fn spells_types_tags_and_escapes() {
        let (text, rendered) = render(
            &mut Influx::new(),
            "http.requests[code=200,method=GET]: 4000\n\
             load avg: 0.5\n\
             a,b=c: 3.0\n\
             odd[host=x,k=a b,e=]: -2\n\
             gone: nan\n\
             back\\: 1\n\
             [k=v]: 7\n",
        );
        assert_eq!(
            text,
            "[k=v],host=web\\ 1 value=7i 1500000000\n\
             a\\,b=c,host=web\\ 1 value=3.0 1500000000\n\
             back_,host=web\\ 1 value=1i 1500000000\n\
             http.requests,code=200,host=web\\ 1,method=GET value=4000i 1500000000\n\
             load\\ avg,host=web\\ 1 value=0.5 1500000000\n\
             odd,exported_host=x,host=web\\ 1,k=a\\ b value=-2i 1500000000\n"
        );
        assert_eq!(
            rendered,
            Rendered {
                lines: 6,
                skipped: 1
            }
        );
    }

    #[test]
    fn once_float_stays_float() {
        let mut influx = Influx::new();
        assert!(render(&mut influx, "x: 2\n").0.contains("value=2i "));
        assert!(render(&mut influx, "x: 2.5\n").0.contains("value=2.5 "));
        // A restarted writer sends it as an integer again: still a float.
        assert!(render(&mut influx, "x: 3\n").0.contains("value=3.0 "));
    }

    #[test]
    fn a_pass_is_tagged_with_its_host() {
        let pass = Pass {
            started: UNIX_EPOCH + Duration::from_secs(2),
            duration: Duration::ZERO,
            sources: Vec::new(),
            merged: Snapshot::parse(b"n: 1\n", 4096).0,
            kinds: Default::default(),
        };
        let text = Influx::new().pass(&pass, "h");
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "n,host=h value=1i 2000000000\n"
        );
    }

    /// Names the reader refuses (issue 12) still come out as one line each
    /// if a snapshot holds them, every control character written as `_`.
    #[test]
    fn control_characters_never_reach_the_output() {
        let snapshot = super::super::snapshot(&[
            ("m\ta[k=v\x0bw\nx]", Value::Int(1)),
            ("cr\r\0[t\u{85}ag=\x7f]", Value::Float(0.5)),
        ]);
        let mut buf = Vec::new();
        let time = UNIX_EPOCH + Duration::from_secs(1);
        let rendered = Influx::new().render(&mut buf, &snapshot, &[("host", "h\tx")], time);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "cr__,host=h_x,t_ag=_ value=0.5 1000000000\n\
             m_a,host=h_x,k=v_w_x value=1i 1000000000\n"
        );
        assert_eq!(rendered.lines, 2);
    }

    proptest::proptest! {
        /// Whatever the names, every stat is one line and the text holds no
        /// byte below 0x20 but the line ends, no DEL and no C1 control.
        #[test]
        fn no_raw_control_byte_for_any_name(
            names in proptest::collection::vec(
                "[a-z \\x00-\\x1f\\x7f\\u{80}-\\u{a0}\\[\\]=,\\\\\"#]{0,16}|\\PC{0,8}|(?s:.{0,8})",
                1..6,
            )
        ) {
            let pairs: Vec<(&str, Value)> = names.iter().map(|n| (n.as_str(), Value::Int(1))).collect();
            let snapshot = super::super::snapshot(&pairs);
            let mut buf = Vec::new();
            let rendered = Influx::new().render(&mut buf, &snapshot, &[("host", "h")], UNIX_EPOCH);
            proptest::prop_assert!(
                !super::super::holds_raw_control(&buf),
                "{:?}",
                String::from_utf8_lossy(&buf)
            );
            let newlines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
            proptest::prop_assert_eq!(newlines, rendered.lines);
            proptest::prop_assert_eq!(rendered.lines, snapshot.len() as u64);
        }
    }
}
