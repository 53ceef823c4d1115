//! `archive --from http://HOST:PORT`: reads a running aggregator's `/stats`
//! (and `/processes` + `/stats/<pid>` per process) with ureq's blocking
//! client, keeping each value's int/float type from the JSON spelling.

use std::time::Duration;

use serde_json::Value as Json;
use stats_core::Value;

use super::{Batch, HOST_PID, Sample};
use crate::Error;
use crate::export::json;

/// Largest response accepted; a host's whole `/stats` is far smaller.
const MAX_RESPONSE: u64 = 256 << 20;

/// A running aggregator to read from.
#[derive(Clone, Debug)]
pub struct Remote {
    /// `host:port` to connect to.
    authority: String,
    /// Path prefix from the URL (empty, or `/prefix` without a trailing `/`).
    prefix: String,
    /// Bearer token for an aggregator bound beyond loopback.
    token: Option<String>,
    /// Connect and read timeout for each request.
    timeout: Duration,
}

impl Remote {
    /// `url` is `http://HOST[:PORT][/prefix]`; the port defaults to 7828.
    ///
    /// # Errors
    /// [`Error::BadArgument`] for another scheme (HTTPS is not spoken: put
    /// the archive on the aggregator's host, or a TLS proxy in front).
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Result<Remote, Error> {
        let rest = Remote::check_url(url)?;
        let rest = rest.strip_prefix("http://").unwrap_or(&rest);
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:7828")
        };
        Ok(Remote {
            authority,
            prefix: prefix.trim_end_matches('/').to_owned(),
            token,
            timeout,
        })
    }

    /// Checks a `--from` value (`http://HOST[:PORT][/prefix]`) and returns
    /// it: the flag's parser, so a bad URL is a usage error before the run.
    ///
    /// # Errors
    /// [`Error::BadArgument`] for another scheme, no scheme (`HOST:PORT`
    /// alone), no host, a bad port or a user and password in the URL (the
    /// token goes in --token-file; the URL is echoed with any password
    /// hidden).
    pub fn check_url(url: &str) -> Result<String, Error> {
        let bad = || Error::BadArgument {
            what: "--from URL",
            given: super::redact(url),
            expected: "http://HOST[:PORT] of a running host-aggregator (HTTPS is not spoken; a token goes in --token-file)",
        };
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        let port_ok = match authority.rsplit_once(':') {
            // An IPv6 literal's colons are inside its brackets.
            Some((host, port)) if !port.contains(']') => {
                !host.is_empty() && port.parse::<u16>().is_ok()
            }
            _ => true,
        };
        if authority.is_empty() || authority.contains('@') || !port_ok {
            return Err(bad());
        }
        Ok(url.to_owned())
    }

    /// One batch from the aggregator: `/stats` for the host-wide sums and,
    /// if `per_process`, `/stats/<pid>` for each source `/processes` lists
    /// as ok. `time` defaults to the `/stats` timestamp truncated to the
    /// second, so re-reading a pass the server reused yields the same time.
    ///
    /// # Errors
    /// [`Error::Fetch`] if the server cannot be reached, answers with an
    /// error status, or sends JSON without the expected fields.
    pub fn batch(&self, host: &str, time: Option<i64>, per_process: bool) -> Result<Batch, Error> {
        let stats = self.get_json(json::PATH)?;
        let stamp = stats
            .get("timestamp")
            .and_then(Json::as_f64)
            .ok_or_else(|| {
                self.fetch_error(json::PATH, "no numeric \"timestamp\" in the answer".into())
            })?;
        let mut samples = self.samples(json::PATH, &stats, HOST_PID)?;
        let mut sources = stats
            .pointer("/sources/ok")
            .and_then(Json::as_u64)
            .unwrap_or(0);
        if per_process {
            let listing = self.get_json("/processes")?;
            let processes = listing
                .get("processes")
                .and_then(Json::as_array)
                .ok_or_else(|| self.fetch_error("/processes", "no \"processes\" list".into()))?;
            let pids: Vec<u32> = processes
                .iter()
                .filter(|p| p.get("status").and_then(Json::as_str) == Some("ok"))
                .filter_map(|p| p.get("pid").and_then(Json::as_u64))
                .filter_map(|pid| u32::try_from(pid).ok())
                .collect();
            sources = pids.len() as u64;
            for pid in pids {
                let path = format!("{}/{pid}", json::PATH);
                let one = self.get_json(&path)?;
                samples.extend(self.samples(&path, &one, pid)?);
            }
        }
        Ok(Batch {
            time: time.unwrap_or(stamp.max(0.0).floor() as i64),
            host: host.to_owned(),
            per_process,
            sources,
            samples,
        })
    }

    /// The `"stats"` object of an answer as samples of `pid`.
    fn samples(&self, path: &str, answer: &Json, pid: u32) -> Result<Vec<Sample>, Error> {
        let stats = answer
            .get("stats")
            .and_then(Json::as_object)
            .ok_or_else(|| self.fetch_error(path, "no \"stats\" object in the answer".into()))?;
        let mut samples = Vec::with_capacity(stats.len());
        for (name, json) in stats {
            let value = json_value(json).ok_or_else(|| {
                self.fetch_error(
                    path,
                    format!("stat {name:?} has the non-numeric value {json}"),
                )
            })?;
            samples.push(Sample {
                name: name.clone(),
                pid,
                value,
            });
        }
        Ok(samples)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}{path}", self.authority, self.prefix)
    }

    fn fetch_error(&self, path: &str, detail: String) -> Error {
        Error::Fetch {
            url: self.url(path),
            detail,
        }
    }

    fn get_json(&self, path: &str) -> Result<Json, Error> {
        let body = self
            .get(path)
            .map_err(|detail| self.fetch_error(path, detail))?;
        serde_json::from_slice(&body)
            .map_err(|e| self.fetch_error(path, format!("the answer is not JSON: {e}")))
    }

    /// One `GET`, returning the body of a 200 answer (at most
    /// [`MAX_RESPONSE`] bytes, within the timeout).
    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut request = agent
            .get(self.url(path))
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|e| match e {
            ureq::Error::Io(e) => format!("cannot connect to {} or read: {e}", self.authority),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                format!("cannot connect to {}: {e}", self.authority)
            }
            e => format!("cannot read the answer: {e}"),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => {
                    format!("the answer is larger than {MAX_RESPONSE} bytes")
                }
                e => format!("cannot read the answer: {e}"),
            })?;
        if status != 200 {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.chars().take(200).collect();
            return Err(format!("HTTP {status}: {}", text.trim()));
        }
        Ok(body)
    }
}

/// A JSON stat value with its type: an integer stays an integer, a number
/// written with a `.` or exponent is a float, and the strings `"NaN"`,
/// `"Infinity"`, `"-Infinity"` (how the server writes what JSON cannot)
/// are floats.
fn json_value(json: &Json) -> Option<Value> {
    match json {
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::Float)),
        Json::String(text) => match stats_core::format::parse_value(text)? {
            float @ Value::Float(_) => Some(float),
            Value::Int(_) => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_keep_their_type() {
        let parsed: Json = serde_json::from_str(
            r#"[3, 3.0, -7, 1e-7, 18446744073709551615, "NaN", "-Infinity", "3", null]"#,
        )
        .unwrap();
        let values: Vec<Option<Value>> =
            parsed.as_array().unwrap().iter().map(json_value).collect();
        assert_eq!(values[0], Some(Value::Int(3)));
        assert_eq!(values[1], Some(Value::Float(3.0)));
        assert_eq!(values[2], Some(Value::Int(-7)));
        assert_eq!(values[3], Some(Value::Float(1e-7)));
        assert_eq!(values[4], Some(Value::Float(18446744073709551615.0)));
        assert!(matches!(values[5], Some(Value::Float(f)) if f.is_nan()));
        assert_eq!(values[6], Some(Value::Float(f64::NEG_INFINITY)));
        assert_eq!(values[7], None);
        assert_eq!(values[8], None);
    }

    #[test]
    fn urls() {
        let r = Remote::new("http://127.0.0.1", None, Duration::from_secs(1)).unwrap();
        assert_eq!(r.url("/stats"), "http://127.0.0.1:7828/stats");
        let r = Remote::new("http://h:99/agg/", None, Duration::from_secs(1)).unwrap();
        assert_eq!(r.url("/stats"), "http://h:99/agg/stats");
        assert!(Remote::new("https://h", None, Duration::from_secs(1)).is_err());
        assert!(Remote::new("http://", None, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn an_unreachable_server_is_a_clear_error() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = Remote::new(
            &format!("http://127.0.0.1:{port}"),
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        let err = r.batch("h", None, false).unwrap_err().to_string();
        assert!(
            err.contains(&format!("127.0.0.1:{port}/stats")) && err.contains("connect"),
            "{err}"
        );
    }
}
