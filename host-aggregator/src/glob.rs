//! Stat-name globs (`*` any run of characters, `?` one), matched in time
//! linear in the name: the glob is compiled to a bit-parallel automaton
//! (one bit per glob position in a `u128`), so no glob, however hostile,
//! makes matching backtrack (issue 12: `*aaa…b` against long names took
//! seconds with the backtracking matcher).

use std::fmt;

/// Most characters a glob may have besides its `*`s (runs of `*` count
/// as one): one bit per position, and the end, fit in a `u128`.
pub const MAX_GLOB_POSITIONS: usize = 127;

/// A compiled glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    text: String,
    /// No `*` or `?`: matched by equality, with no length bound.
    exact: bool,
    /// Bit `i`: position `i` is a `*`.
    stars: u128,
    /// Bit `i`: position `i` is a `?`.
    any: u128,
    /// Bit `i` of entry `c`: position `i` is the ASCII character `c`.
    ascii: Box<[u128; 128]>,
    /// The same for other characters.
    other: Vec<(char, u128)>,
    /// The bit of the end position (all positions matched).
    end: u128,
}

/// A glob that cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobTooLong {
    /// Its positions (characters, with runs of `*` as one).
    pub positions: usize,
}

impl fmt::Display for GlobTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "glob has {} positions (at most {MAX_GLOB_POSITIONS}; runs of * count as one)",
            self.positions
        )
    }
}

impl std::error::Error for GlobTooLong {}

impl Glob {
    /// Compiles `text`.
    ///
    /// # Errors
    /// [`GlobTooLong`] past [`MAX_GLOB_POSITIONS`] (a text with no `*` or
    /// `?` is a plain name, of any length).
    pub fn new(text: &str) -> Result<Glob, GlobTooLong> {
        let mut glob = Glob {
            text: text.to_owned(),
            exact: !text.contains(['*', '?']),
            stars: 0,
            any: 0,
            ascii: Box::new([0; 128]),
            other: Vec::new(),
            end: 0,
        };
        if glob.exact {
            return Ok(glob);
        }
        let mut position = 0usize;
        let mut after_star = false;
        for c in text.chars() {
            if c == '*' && after_star {
                continue;
            }
            if position >= MAX_GLOB_POSITIONS {
                return Err(GlobTooLong {
                    positions: positions(text),
                });
            }
            let bit = 1u128 << position;
            match c {
                '*' => glob.stars |= bit,
                '?' => glob.any |= bit,
                c if c.is_ascii() => glob.ascii[c as usize] |= bit,
                c => match glob.other.iter_mut().find(|(o, _)| *o == c) {
                    Some((_, mask)) => *mask |= bit,
                    None => glob.other.push((c, bit)),
                },
            }
            after_star = c == '*';
            position += 1;
        }
        glob.end = 1u128 << position;
        Ok(glob)
    }

    /// The glob as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches: one step of a few word operations per
    /// character of `name`.
    pub fn matches(&self, name: &str) -> bool {
        if self.exact {
            return name == self.text;
        }
        let mut state = self.close(1);
        for c in name.chars() {
            let literal = if c.is_ascii() {
                self.ascii[c as usize]
            } else {
                self.other
                    .iter()
                    .find(|(o, _)| *o == c)
                    .map_or(0, |(_, mask)| *mask)
            };
            let advance = (state & (literal | self.any)) << 1;
            state = self.close(advance | (state & self.stars));
            if state == 0 {
                return false;
            }
        }
        state & self.end != 0
    }

    /// Adds the positions reached past a `*` without consuming a character
    /// (runs of `*` were collapsed, so one step is enough).
    fn close(&self, state: u128) -> u128 {
        state | ((state & self.stars) << 1)
    }
}

/// Characters of `text`, with runs of `*` counted as one.
fn positions(text: &str) -> usize {
    let mut after_star = false;
    text.chars()
        .filter(|&c| {
            let counted = !(c == '*' && after_star);
            after_star = c == '*';
            counted
        })
        .count()
}

/// Whether `name` matches `glob` (`*` any run of characters, `?` one).
/// Compiles `glob` each call: keep a [`Glob`] to match many names. A glob
/// too long to compile matches nothing.
pub fn glob_match(glob: &str, name: &str) -> bool {
    Glob::new(glob).is_ok_and(|glob| glob.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backtracking matcher this replaces, as the oracle.
    fn backtracking(glob: &str, name: &str) -> bool {
        let (glob, name): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
        fn go(g: &[char], n: &[char]) -> bool {
            match g.split_first() {
                None => n.is_empty(),
                Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
                Some((&c, rest)) => {
                    n.first().is_some_and(|&f| c == '?' || c == f) && go(rest, &n[1..])
                }
            }
        }
        go(&glob, &name)
    }

    #[test]
    fn table() {
        let cases = [
            ("http.*", "http.requests[code=200]", true),
            ("*req*", "http.requests", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("http.*", "https", false),
            ("*.count", "a.b.count", true),
            ("**a**", "bab", true),
            ("é?*ü", "éxyü", true),
            ("é?*ü", "éü", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXcYb", false),
        ];
        for (glob, name, want) in cases {
            assert_eq!(glob_match(glob, name), want, "{glob:?} {name:?}");
            assert_eq!(backtracking(glob, name), want, "oracle {glob:?} {name:?}");
        }
    }

    #[test]
    fn agrees_with_backtracking_on_every_small_case() {
        let alphabet = ['a', 'b', '*', '?'];
        let words = |len: usize, letters: &[char]| -> Vec<String> {
            let mut all = vec![String::new()];
            for _ in 0..len {
                all = all
                    .iter()
                    .flat_map(|w| letters.iter().map(move |c| format!("{w}{c}")))
                    .collect();
            }
            all
        };
        for glob_len in 0..=4 {
            for glob in words(glob_len, &alphabet) {
                for name_len in 0..=4 {
                    for name in words(name_len, &['a', 'b']) {
                        assert_eq!(
                            glob_match(&glob, &name),
                            backtracking(&glob, &name),
                            "{glob:?} {name:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn too_long_globs_are_refused_and_runs_of_stars_are_one_position() {
        let longest = "a".repeat(MAX_GLOB_POSITIONS);
        assert!(Glob::new(&longest).unwrap().matches(&longest));
        let error = Glob::new(&format!("*{longest}")).unwrap_err();
        assert!(error.to_string().contains("at most 127"), "{error}");
        let stars = format!("{}a", "*".repeat(10_000));
        assert!(Glob::new(&stars).unwrap().matches("bbba"));
        // A plain name is matched by equality, however long.
        let name = "n".repeat(3968);
        assert!(Glob::new(&name).unwrap().matches(&name));
        assert!(!Glob::new(&name).unwrap().matches("n"));
    }
}
