//! Parsers of command-line values every command shares: durations and
//! listen addresses. Each is a clap `value_parser`, so a bad value is a
//! usage error (exit 2) named with its flag, before anything runs.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::Duration;

use crate::Error;

/// What a duration flag accepts, for messages.
const DURATION_SYNTAX: &str = "a number with a unit: 100ms, 1.5s, 2m (us, ms, s or m; a bare number has none, so 5 seconds is 5s)";

/// What `--listen` accepts, for messages.
const LISTEN_SYNTAX: &str = "HOST:PORT (127.0.0.1:7828, localhost:7828, [::1]:7828) or :PORT for every interface (with --allow-remote); a bare PORT has no host, write 127.0.0.1:PORT or :PORT";

/// Reads a duration: `250ms`, `1s`, `1.5s`, `2m`, `100us`. A unit is
/// required, for every duration flag alike: a bare `5` would be seconds to
/// one reader and milliseconds to another.
///
/// # Errors
/// [`Error::BadArgument`] naming the value and the syntax, for a bare
/// number, an unknown unit, a negative or overflowing value.
pub fn duration(text: &str) -> Result<Duration, Error> {
    let bad = || Error::BadArgument {
        what: "duration",
        given: text.to_owned(),
        expected: DURATION_SYNTAX,
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// Reads a `--listen` address: `HOST:PORT` with an IP (`127.0.0.1:7828`,
/// `[::1]:7828`) or a name (`localhost:7828` is 127.0.0.1; another name is
/// resolved, first address), or `:PORT` for every IPv4 interface
/// (`0.0.0.0:PORT`, as Prometheus exporters read `:9100`; write
/// `[::]:PORT` for IPv6 too). Binding beyond loopback still needs
/// `--allow-remote`. A bare `PORT` is refused: whether it means this host
/// or every interface is a guess we do not make.
///
/// # Errors
/// [`Error::BadArgument`] naming the value and the forms accepted.
pub fn listen_address(text: &str) -> Result<SocketAddr, Error> {
    let bad = || Error::BadArgument {
        what: "listen address",
        given: text.to_owned(),
        expected: LISTEN_SYNTAX,
    };
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    match host {
        "" => Ok(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into()),
        // Not resolved: /etc/hosts may list ::1 first, or something odd.
        "localhost" => Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into()),
        // A bracketed IPv6 that did not parse, or an unbracketed one.
        _ if host.contains([':', '[', ']']) => Err(bad()),
        _ => (host, port)
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad),
    }
}

/// A clap value parser around one of ours that reports our message alone.
/// clap's own report of a bad value quotes it (`invalid value '...'`),
/// which for `--db postgres://user:PASSWORD@...` or a `--from` URL would
/// print the password; ours echoes values with passwords hidden.
#[derive(Clone, Copy)]
#[cfg(feature = "cli")]
pub struct Quiet<T>(pub fn(&str) -> Result<T, Error>);

#[cfg(feature = "cli")]
impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Quiet<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let flag = arg.map_or_else(|| "a value".to_owned(), |arg| format!("--{}", arg.get_id()));
        let fail = |kind, message: String| {
            let mut cmd = cmd.clone();
            clap::Error::raw(kind, message).format(&mut cmd)
        };
        let text = value.to_str().ok_or_else(|| {
            fail(
                clap::error::ErrorKind::InvalidUtf8,
                format!("{flag} is not valid UTF-8"),
            )
        })?;
        (self.0)(text).map_err(|e| fail(clap::error::ErrorKind::ValueValidation, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let good = [
            ("250ms", Duration::from_millis(250)),
            ("1s", Duration::from_secs(1)),
            ("1.5s", Duration::from_millis(1500)),
            ("0s", Duration::ZERO),
            ("2m", Duration::from_secs(120)),
            ("100us", Duration::from_micros(100)),
        ];
        for (text, want) in good {
            assert_eq!(duration(text).ok(), Some(want), "{text}");
        }
        for bad in ["1", "10", "", "ms", "1h", "-1s", "1.2.3s", "s5"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
        let message = duration("5").unwrap_err().to_string();
        assert!(
            message.contains("\"5\"") && message.contains("5s"),
            "{message}"
        );
    }

    #[test]
    fn listen_addresses() {
        let good = [
            ("127.0.0.1:7828", "127.0.0.1:7828"),
            ("[::1]:7828", "[::1]:7828"),
            (":7828", "0.0.0.0:7828"),
            (":0", "0.0.0.0:0"),
            ("localhost:7828", "127.0.0.1:7828"),
            ("0.0.0.0:9100", "0.0.0.0:9100"),
        ];
        for (text, want) in good {
            assert_eq!(
                listen_address(text).ok(),
                Some(want.parse().unwrap()),
                "{text}"
            );
        }
        for bad in ["7828", "", ":", "localhost", "::1:7828", "[::1", "h:99999"] {
            assert!(listen_address(bad).is_err(), "{bad:?}");
        }
        let message = listen_address("7828").unwrap_err().to_string();
        assert!(message.contains(":PORT"), "{message}");
    }
}
