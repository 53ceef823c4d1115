//! Tag sets: a trailing `[k=v,k2=v2]` on a stat name (exported as
//! Prometheus labels).
//!
//! Inside the brackets a backslash escapes the next character, so keys and
//! values can hold `\\`, `\,`, `\=`, `\[` and `\]`. The tag set is the suffix
//! that starts at the last unescaped `[` and ends the name; it counts only if
//! every comma-separated item is `key=value` with a non-empty key. Anything
//! else (`another[one]`, `x[]`) is part of a plain name.

/// A name split into its base and its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tagged<'a> {
    /// The name without the tag set.
    pub base: &'a str,
    /// `(key, value)` pairs in written order, unescaped.
    pub tags: Vec<(String, String)>,
}

/// Splits `name` into a base name and its tag set. A name with no valid tag
/// set comes back whole, with no tags.
pub fn split(name: &str) -> Tagged<'_> {
    let plain = Tagged {
        base: name,
        tags: Vec::new(),
    };
    if !name.ends_with(']') {
        return plain;
    }
    let Some(open) = last_unescaped_open(name) else {
        return plain;
    };
    match parse_set(&name[open + 1..name.len() - 1]) {
        Some(tags) if !tags.is_empty() => Tagged {
            base: &name[..open],
            tags,
        },
        _ => plain,
    }
}

/// Builds `base[k=v,...]`, escaping what needs it. No tags gives `base`.
///
/// `base` is not escaped: one ending in an odd number of backslashes
/// escapes the `[` after it, so the result reads back as a plain name with
/// no tags (found by fuzzing; `fuzz/fuzz_targets/tags.rs` holds it to that).
pub fn join(base: &str, tags: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(base.len() + 16 * tags.len());
    out.push_str(base);
    if tags.is_empty() {
        return out;
    }
    out.push('[');
    for (i, (key, value)) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        escape_into(&mut out, key);
        out.push('=');
        escape_into(&mut out, value);
    }
    out.push(']');
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '\\' | ',' | '=' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn last_unescaped_open(name: &str) -> Option<usize> {
    let bytes = name.as_bytes();
    (0..bytes.len()).rev().find(|&i| {
        bytes[i] == b'[' && bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
    })
}

fn parse_set(inner: &str) -> Option<Vec<(String, String)>> {
    let mut tags = Vec::new();
    let mut key = String::new();
    let mut value = String::new();
    let mut in_value = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let target = if in_value { &mut value } else { &mut key };
        match c {
            '\\' => target.push(chars.next()?),
            '=' if !in_value => in_value = true,
            ',' => {
                if !in_value || key.is_empty() {
                    return None;
                }
                tags.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                in_value = false;
            }
            '[' | ']' | '=' => return None,
            c => target.push(c),
        }
    }
    if !in_value || key.is_empty() {
        return None;
    }
    tags.push((key, value));
    Some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn split_table() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            ("plain", "plain", &[]),
            ("another[one]", "another[one]", &[]),
            ("x[]", "x[]", &[]),
            ("x[=v]", "x[=v]", &[]),
            (
                "http.requests[code=200]",
                "http.requests",
                &[("code", "200")],
            ),
            (
                "r[code=200,method=GET]",
                "r",
                &[("code", "200"), ("method", "GET")],
            ),
            ("a[b=1][c=2]", "a[b=1]", &[("c", "2")]),
            ("e[k=a\\,b\\=c\\]d\\\\]", "e", &[("k", "a,b=c]d\\")]),
            ("e[k=]", "e", &[("k", "")]),
            ("My Stat[path=/a b]", "My Stat", &[("path", "/a b")]),
            ("bad[k=v,]", "bad[k=v,]", &[]),
            ("bad[k=v=w]", "bad[k=v=w]", &[]),
            ("esc\\[k=v]", "esc\\[k=v]", &[]),
        ];
        for (name, base, want) in cases {
            let got = split(name);
            assert_eq!((got.base, got.tags), (*base, tags(want)), "{name:?}");
        }
    }

    #[test]
    fn join_round_trips() {
        let pairs = [("k", "a,b=c]d\\["), ("method", "GET")];
        let name = join("base", &pairs);
        let got = split(&name);
        assert_eq!(got.base, "base");
        assert_eq!(got.tags, tags(&pairs));
        assert_eq!(join("x", &[]), "x");
    }

    #[test]
    fn a_base_ending_in_a_backslash_escapes_the_tag_set() {
        let name = join("dir\\", &[("k", "v")]);
        assert_eq!(name, "dir\\[k=v]");
        assert_eq!(split(&name).tags, tags(&[]));
        let even = join("dir\\\\", &[("k", "v")]);
        assert_eq!(split(&even).tags, tags(&[("k", "v")]));
    }
}
