//! The `#span` line of the binary's stdin grammar: a task run that ended
//! elsewhere (a step of a shell pipeline), reported once it is over.
//!
//! ```text
//! span    = "#span" SP name SP duration *(SP option)
//! option  = "outcome=" ("success" | "error" | "panic")     default success
//!         | "parent=" name                                  the caller's task
//! name    = word | quoted         a stat name as in FORMAT.md (tags allowed)
//! word    = one or more characters but space, tab and `"`
//! quoted  = `"` *(char but `"` and `\` | `\"` | `\\`) `"`
//! duration = number unit          unit: ns, us, µs, ms, s, m, h
//! ```
//!
//! `#` starts no stat name (FORMAT.md reserves it for metadata), so no line
//! that set or incremented a stat before means something else now. Words
//! are separated by spaces or tabs; a name with spaces is quoted:
//! `#span "nightly backup" 2.5s outcome=error`.

use std::borrow::Cow;
use std::time::Duration;

use stats_core::Outcome;
use stats_core::name::validate;

use super::InputError;

/// The longest duration a span may report: a year.
pub const MAX_SPAN: Duration = Duration::from_secs(365 * 24 * 3600);

/// A parsed `#span` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanLine<'a> {
    /// The task's name.
    pub name: Cow<'a, str>,
    /// How long it ran.
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// The task that called it, if any: the run is then that task's child
    /// (a call edge; part of its trace once the parent's own span line
    /// comes). Without one it is a root: a trace of its own.
    pub parent: Option<Cow<'a, str>>,
}

/// `text` after `#span`, if the line is a span line at all.
pub(crate) fn strip_keyword(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("#span")?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

fn bad(message: impl Into<String>) -> InputError {
    InputError::BadSpan(message.into())
}

/// Parses what follows `#span` (see the module docs).
pub(crate) fn parse(rest: &str) -> Result<SpanLine<'_>, InputError> {
    let words = words(rest)?;
    let mut words = words.into_iter();
    let name = words
        .next()
        .ok_or_else(|| bad("expected `#span NAME DURATION [outcome=..] [parent=..]`"))?;
    validate(&name).map_err(InputError::BadName)?;
    let duration = words
        .next()
        .ok_or_else(|| bad("no duration (e.g. 12ms, 1.5s)"))?;
    let duration = parse_duration(&duration)?;
    let (mut outcome, mut parent) = (None, None);
    for word in words {
        if let Some(value) = strip(&word, "outcome=") {
            if outcome.is_some() {
                return Err(bad("outcome= given twice"));
            }
            outcome =
                Some(Outcome::from_label(&value).ok_or_else(|| {
                    bad(format!("outcome {value:?} is not success, error or panic"))
                })?);
        } else if let Some(value) = strip(&word, "parent=") {
            if parent.is_some() {
                return Err(bad("parent= given twice"));
            }
            validate(&value).map_err(InputError::BadName)?;
            parent = Some(value);
        } else {
            return Err(bad(format!(
                "unexpected {word:?} (want outcome=... or parent=...)"
            )));
        }
    }
    Ok(SpanLine {
        name,
        duration,
        outcome: outcome.unwrap_or(Outcome::Success),
        parent,
    })
}

/// `word` without `prefix`, keeping it borrowed when it was.
fn strip<'a>(word: &Cow<'a, str>, prefix: &str) -> Option<Cow<'a, str>> {
    match word {
        Cow::Borrowed(w) => w.strip_prefix(prefix).map(Cow::Borrowed),
        Cow::Owned(w) => w.strip_prefix(prefix).map(|v| Cow::Owned(v.to_owned())),
    }
}

/// Splits on spaces and tabs, as a shell does with double quotes: a
/// quoted part (`"..."`, with `\"` and `\\`) may hold spaces and joins the
/// text around it, so `parent="nightly run"` is one word.
fn words(text: &str) -> Result<Vec<Cow<'_, str>>, InputError> {
    let mut out = Vec::new();
    let mut rest = text.trim_start_matches([' ', '\t']);
    while !rest.is_empty() {
        if out.len() == 4 {
            return Err(bad(
                "too many words (at most NAME DURATION outcome=.. parent=..)",
            ));
        }
        let end = rest.find([' ', '\t', '"']).unwrap_or(rest.len());
        if !rest[end..].starts_with('"') {
            out.push(Cow::Borrowed(&rest[..end]));
            rest = rest[end..].trim_start_matches([' ', '\t']);
            continue;
        }
        let mut word = String::new();
        let mut chars = rest.char_indices().peekable();
        let mut quoted = false;
        let mut used = rest.len();
        while let Some((i, c)) = chars.next() {
            match (quoted, c) {
                (false, ' ' | '\t') => {
                    used = i;
                    break;
                }
                (_, '"') => quoted = !quoted,
                (true, '\\') => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => word.push(e),
                    _ => return Err(bad("in quotes, `\\` escapes only `\"` and `\\`")),
                },
                (_, c) => word.push(c),
            }
        }
        if quoted {
            return Err(bad("a quoted word has no closing `\"`"));
        }
        out.push(Cow::Owned(word));
        rest = rest[used..].trim_start_matches([' ', '\t']);
    }
    Ok(out)
}

/// `12ms`, `1.5s`, `250us`, `3µs`, `800ns`, `2m`, `1h`: a non-negative
/// number and a unit, up to [`MAX_SPAN`].
pub fn parse_duration(text: &str) -> Result<Duration, InputError> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(bad(format!(
                "duration {text:?} has no unit of ns, us, µs, ms, s, m or h"
            )));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| bad(format!("duration {text:?} is not a number and a unit")))?;
    Duration::try_from_secs_f64(value * seconds_per)
        .ok()
        .filter(|d| *d <= MAX_SPAN)
        .ok_or_else(|| bad(format!("duration {text:?} is longer than a year")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span<'a>(
        name: &'a str,
        ms: u64,
        outcome: Outcome,
        parent: Option<&'a str>,
    ) -> Result<SpanLine<'a>, InputError> {
        Ok(SpanLine {
            name: Cow::Borrowed(name),
            duration: Duration::from_millis(ms),
            outcome,
            parent: parent.map(Cow::Borrowed),
        })
    }

    #[test]
    fn grammar_table() {
        use Outcome::*;
        let cases: &[(&str, Result<SpanLine<'_>, InputError>)] = &[
            (" db.query 12ms", span("db.query", 12, Success, None)),
            (
                "\tcache 3ms  outcome=error parent=db.query",
                span("cache", 3, Error, Some("db.query")),
            ),
            (
                " job[queue=a] 2s parent=\"nightly run\" outcome=panic",
                span("job[queue=a]", 2000, Panic, Some("nightly run")),
            ),
            (
                " \"say \\\"hi\\\" \\\\ bye\" 1ms",
                span("say \"hi\" \\ bye", 1, Success, None),
            ),
            (
                "",
                Err(bad(
                    "expected `#span NAME DURATION [outcome=..] [parent=..]`",
                )),
            ),
            (" x", Err(bad("no duration (e.g. 12ms, 1.5s)"))),
            (
                " x 12",
                Err(bad(
                    "duration \"12\" has no unit of ns, us, µs, ms, s, m or h",
                )),
            ),
            (
                " x -1s",
                Err(bad(
                    "duration \"-1s\" has no unit of ns, us, µs, ms, s, m or h",
                )),
            ),
            (
                " x 1.2.3s",
                Err(bad("duration \"1.2.3s\" is not a number and a unit")),
            ),
            (
                " x 9000000h",
                Err(bad("duration \"9000000h\" is longer than a year")),
            ),
            (
                " x 1s outcome=maybe",
                Err(bad("outcome \"maybe\" is not success, error or panic")),
            ),
            (
                " x 1s outcome=error outcome=error",
                Err(bad("outcome= given twice")),
            ),
            (
                " x 1s colour=red",
                Err(bad(
                    "unexpected \"colour=red\" (want outcome=... or parent=...)",
                )),
            ),
            (" x 1s parent=a parent=b", Err(bad("parent= given twice"))),
            (
                " x 1s a b c",
                Err(bad(
                    "too many words (at most NAME DURATION outcome=.. parent=..)",
                )),
            ),
            (" \"x 1s", Err(bad("a quoted word has no closing `\"`"))),
            (" \"x\"y 1s", span("xy", 1000, Success, None)),
            (
                " \"x\\n\" 1s",
                Err(bad("in quotes, `\\` escapes only `\"` and `\\`")),
            ),
            (" x\"y 1s", Err(bad("a quoted word has no closing `\"`"))),
            (
                " #pid 1s",
                Err(InputError::BadName(stats_core::name::NameError::Reserved)),
            ),
            (
                " \"\" 1s",
                Err(InputError::BadName(stats_core::name::NameError::Empty)),
            ),
            (
                " x 1s parent=",
                Err(InputError::BadName(stats_core::name::NameError::Empty)),
            ),
        ];
        for (rest, expected) in cases {
            assert_eq!(&parse(rest), expected, "line {rest:?}");
        }
    }

    #[test]
    fn durations_in_every_unit() {
        for (text, nanos) in [
            ("800ns", 800),
            ("1.5us", 1500),
            ("2µs", 2000),
            ("12ms", 12_000_000),
            ("0.25s", 250_000_000),
            ("2m", 120_000_000_000),
            ("1h", 3_600_000_000_000),
            ("0s", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_nanos(nanos)),
                "{text}"
            );
        }
    }

    #[test]
    fn only_the_keyword_and_a_space_make_a_span_line() {
        assert_eq!(strip_keyword("#span x 1s"), Some(" x 1s"));
        assert_eq!(strip_keyword("  #span\tx 1s"), Some("\tx 1s"));
        assert_eq!(strip_keyword("#span"), Some(""));
        assert_eq!(strip_keyword("#spanner: 1"), None);
        assert_eq!(strip_keyword("span x: 1"), None);
    }
}
