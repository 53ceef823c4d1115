//! The one HTTP/1.1 client the tests use to talk to servers: our
//! aggregator, InfluxDB, Prometheus and chromedriver.
//!
//! It sends `Connection: close` and keeps its own side open until the answer
//! is in: Go servers (influxd, Prometheus) and chromedriver take a client's
//! half-close for a hang-up and cancel the request, which under load turned
//! into answers that never came. Garbage and cut-short requests, which need
//! the half-close, go through `serve::exchange` instead.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one exchange may take before we give up on the server.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header lines as `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// The body, a chunked one decoded.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    ///
    /// # Panics
    /// If it is not UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If it is not valid JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends `method path` with `headers` and `body` on a fresh connection and
/// reads the answer: by `Content-Length` when given, else until the server
/// closes the connection.
///
/// # Errors
/// If the connection fails, or the server hangs up without a complete
/// HTTP head.
pub fn try_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut request = raw.into_bytes();
    request.extend_from_slice(body);

    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.write_all(&request)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(response) = complete_response(&answer) {
            return Ok(response);
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            // A reset after a full answer still counts as the answer.
            Err(error) if answer.is_empty() => return Err(error),
            Err(_) => break,
        }
    }
    try_parse_response(&answer).ok_or_else(|| {
        std::io::Error::other(format!(
            "{addr} hung up without an HTTP answer to {method} {path}: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(512)])
        ))
    })
}

/// [`try_send`] for callers that cannot go on without an answer.
///
/// # Panics
/// If there is no HTTP answer.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_send(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// The response in `raw` if its head is in and its `Content-Length` body
/// is complete; `None` while more is to come (or the length is unknown).
fn complete_response(raw: &[u8]) -> Option<HttpResponse> {
    let split = head_end(raw)?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse().ok())?;
    if raw.len() < split + 4 + length {
        return None;
    }
    try_parse_response(&raw[..split + 4 + length])
}

fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses a raw HTTP/1.1 response, decoding a chunked body; `None` if it
/// has no complete head or no status code.
pub fn try_parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let split = head_end(raw)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
    });
    let body = &raw[split + 4..];
    Some(HttpResponse {
        status,
        headers,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        data = &data[end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_sized_bodies_parse() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let response = try_parse_response(chunked).expect("parses");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"abcde"[..])
        );
        let sized = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(complete_response(sized).map(|r| r.status), Some(204));
        assert!(complete_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").is_none());
        assert!(try_parse_response(b"").is_none());
        assert!(try_parse_response(b"garbage\r\n\r\n").is_none());
    }
}
