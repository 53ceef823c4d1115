//! The `/history` query string: which stats (globs), which process, since
//! when.

use crate::glob::Glob;

/// Most `stat=` globs in one `/history` query.
pub const MAX_QUERY_GLOBS: usize = 32;

/// What `/history` returns: which stats and processes, since when.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// Stat name globs (`*`, `?`); any match selects a stat. Empty: all.
    pub stats: Vec<String>,
    /// `stats` compiled.
    globs: Vec<Glob>,
    /// Only this PID's series (the host-wide total is still given).
    pub pid: Option<u32>,
    /// Only points collected after this time, Unix seconds.
    pub since: Option<f64>,
    /// Leave out the per-process series.
    pub totals_only: bool,
    /// Add every source of the latest pass with its status and its
    /// process's figures (memory, CPU, threads, descriptors, uptime).
    pub sources: bool,
}

impl Query {
    /// Reads a query string (`stat=a*&stat=b&pid=12&since=1763780000.5`;
    /// `name` is taken as `stat`, `totals=1` sets [`Query::totals_only`]).
    /// Unknown keys are ignored.
    ///
    /// # Errors
    /// A message naming the key whose value is not a number, a glob too
    /// long to match in bounded time (see [`Glob`]), or more than
    /// [`MAX_QUERY_GLOBS`] globs.
    pub fn parse(query: &str) -> Result<Query, String> {
        let mut parsed = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "stat" | "name" => {
                    if parsed.stats.len() == MAX_QUERY_GLOBS {
                        return Err(format!("more than {MAX_QUERY_GLOBS} stat globs"));
                    }
                    let glob = Glob::new(&value).map_err(|e| format!("bad stat glob: {e}"))?;
                    parsed.globs.push(glob);
                    parsed.stats.push(value);
                }
                "pid" => {
                    parsed.pid = Some(value.parse().map_err(|_| format!("bad pid {value:?}"))?);
                }
                "since" => {
                    let since: f64 = value
                        .parse()
                        .map_err(|_| format!("bad since {value:?}: expected Unix seconds"))?;
                    parsed.since = Some(since);
                }
                "totals" => parsed.totals_only = value != "0",
                "sources" => parsed.sources = value != "0",
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// Whether the query asks for stat `name`.
    pub fn selects(&self, name: &str) -> bool {
        self.globs.is_empty() || self.globs.iter().any(|glob| glob.matches(name))
    }
}

/// Decodes `%XX` escapes and `+` (a space) in a query-string value; a bad
/// escape is kept as it is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_globs() {
        let query =
            Query::parse("stat=http.*&name=load%20avg&pid=12&since=17.5&totals=1&x=y").unwrap();
        assert_eq!(query.stats, ["http.*", "load avg"]);
        assert_eq!(query.pid, Some(12));
        assert_eq!(query.since, Some(17.5));
        assert!(query.totals_only);
        assert!(Query::parse("pid=x").is_err());
        assert!(Query::parse("since=yesterday").is_err());
        assert!(query.selects("http.x") && query.selects("load avg") && !query.selects("load"));
        // Globs are bounded in length (with a wildcard) and in number.
        let long = format!("stat=*{}b", "a".repeat(100_000));
        let error = Query::parse(&long).unwrap_err();
        assert!(error.contains("at most 127"), "{error}");
        let many = vec!["stat=a*"; MAX_QUERY_GLOBS + 1].join("&");
        assert!(Query::parse(&many).unwrap_err().contains("more than 32"));
        assert_eq!(percent_decode("a%2Cb+c%zz%"), "a,b c%zz%");
    }
}
