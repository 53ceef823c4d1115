//! Fuzzes the tag parser (`stats_core::tags::split` and `join`).
//!
//! Input: text. It is used twice:
//! - as a whole name: `split` never panics; the base is a prefix of the
//!   name; with tags, keys are non-empty and `split(join(base, tags))`
//!   gives back the same base and tags;
//! - cut at `\u{1}` into a base and `key\u{2}value` pairs: `join` then
//!   `split` gives back exactly that base and those tags, unless the base
//!   ends in an odd run of backslashes (that escapes the `[`: the name is
//!   then a plain name and `split` must say so).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stats_core::tags::{join, split};

fn as_refs(tags: &[(String, String)]) -> Vec<(&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn ends_in_odd_backslashes(text: &str) -> bool {
    text.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };

    let parsed = split(text);
    assert!(text.starts_with(parsed.base), "base is a prefix");
    if parsed.tags.is_empty() {
        assert_eq!(parsed.base, text, "no tags: the whole name is the base");
    } else {
        assert!(text.ends_with(']'));
        assert!(parsed.tags.iter().all(|(k, _)| !k.is_empty()), "empty key");
        let rejoined = join(parsed.base, &as_refs(&parsed.tags));
        let again = split(&rejoined);
        assert_eq!(
            (again.base, &again.tags),
            (parsed.base, &parsed.tags),
            "{rejoined:?}"
        );
    }

    let mut parts = text.split('\u{1}');
    let base = parts.next().unwrap_or("");
    let tags: Vec<(String, String)> = parts
        .map(|pair| {
            let (k, v) = pair.split_once('\u{2}').unwrap_or((pair, ""));
            (k.to_owned(), v.to_owned())
        })
        .filter(|(k, _)| !k.is_empty())
        .collect();
    let joined = join(base, &as_refs(&tags));
    if tags.is_empty() {
        assert_eq!(joined, base);
        return;
    }
    let got = split(&joined);
    if ends_in_odd_backslashes(base) {
        assert!(
            got.tags.is_empty() || got.base != base,
            "{joined:?} parsed as {got:?}"
        );
    } else {
        assert_eq!((got.base, &got.tags), (base, &tags), "{joined:?}");
    }
});
