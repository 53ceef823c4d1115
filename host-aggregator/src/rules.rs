//! Merge-rule overrides by stat name: `--rule GLOB=sum|min|max|last`.
//!
//! The glob is matched against the whole stat name, tags included (`*` any
//! run of characters, `?` one; see [`crate::glob::glob_match`]). Rules
//! are tried in the order given and the first match wins. An override
//! applies to plain stats (gauges, counters, `max` stats); a histogram's
//! lines always merge as one distribution. A stat an override matches is
//! merged by that rule over the live sources only: no counter retention.

use std::str::FromStr;

use stats_core::merge::Rule;

use crate::error::Error;
use crate::glob::glob_match;

/// What a `--rule` value must look like.
const EXPECTED: &str = "GLOB=sum|min|max|last, e.g. 'queue.depth.*=max'";

/// One `GLOB=RULE` override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeOverride {
    /// The stat-name pattern.
    pub glob: String,
    /// How matching stats merge.
    pub rule: Rule,
}

impl FromStr for MergeOverride {
    type Err = Error;

    /// Splits at the last `=`: a glob may hold `=` (tags are `[k=v]`), a
    /// rule word never does.
    fn from_str(text: &str) -> Result<MergeOverride, Error> {
        let bad = || Error::BadArgument {
            what: "merge rule",
            given: text.to_owned(),
            expected: EXPECTED,
        };
        let (glob, word) = text.rsplit_once('=').ok_or_else(bad)?;
        if glob.is_empty() {
            return Err(bad());
        }
        let rule = word.trim().parse().map_err(|_| bad())?;
        Ok(MergeOverride {
            glob: glob.to_owned(),
            rule,
        })
    }
}

/// Overrides in the order given; the first whose glob matches wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeOverrides {
    rules: Vec<MergeOverride>,
}

impl MergeOverrides {
    /// No overrides: every stat merges by its kind.
    pub fn new() -> MergeOverrides {
        MergeOverrides::default()
    }

    /// These overrides, tried in this order.
    pub fn from_rules(rules: Vec<MergeOverride>) -> MergeOverrides {
        MergeOverrides { rules }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule for `name`, if an override matches it.
    pub fn rule_for(&self, name: &str) -> Option<Rule> {
        self.rules
            .iter()
            .find(|o| glob_match(&o.glob, name))
            .map(|o| o.rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = [
            ("requests=sum", "requests", Rule::Sum),
            ("queue.depth.*=min", "queue.depth.*", Rule::Min),
            ("lat?=max", "lat?", Rule::Max),
            ("x[k=v]=last", "x[k=v]", Rule::Last),
            ("*= max", "*", Rule::Max),
        ];
        for (text, glob, rule) in ok {
            let parsed: MergeOverride = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                parsed,
                MergeOverride {
                    glob: glob.into(),
                    rule
                },
                "{text}"
            );
        }
        for text in ["requests", "=sum", "requests=avg", "requests=", "a=b=c"] {
            let err = text.parse::<MergeOverride>().unwrap_err().to_string();
            assert_eq!(
                err,
                format!("bad merge rule {text:?}: expected {EXPECTED}"),
                "{text}"
            );
        }
    }

    #[test]
    fn first_match_wins_table() {
        let overrides = MergeOverrides::from_rules(
            [
                "queue.*.min=min",
                "queue.*=max",
                "x[k=?]=last",
                "*.ratio=last",
            ]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect(),
        );
        let cases = [
            ("queue.depth.min", Some(Rule::Min)),
            ("queue.depth", Some(Rule::Max)),
            ("queue", None),
            ("x[k=a]", Some(Rule::Last)),
            ("x[k=ab]", None),
            ("hit.ratio", Some(Rule::Last)),
            ("ratio", None),
            ("requests", None),
        ];
        for (name, want) in cases {
            assert_eq!(overrides.rule_for(name), want, "{name}");
        }
        assert!(MergeOverrides::new().rule_for("anything").is_none());
    }
}
