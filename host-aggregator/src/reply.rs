//! An HTTP answer before it is put on the wire: what every route handler
//! (`routes`, `funcs`, `traces`) returns and `http` writes.

use std::sync::Arc;

use hyper::header::HeaderName;

use crate::export::json;

/// An answer before it is put on the wire.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body, shared with the pass cache where it comes from there.
    pub body: Arc<[u8]>,
    /// `X-Stats-Pipe-Pass`: the number of the pass answered from.
    pub pass: Option<u64>,
    /// One more header (`Allow`, `WWW-Authenticate`,
    /// `Content-Security-Policy`).
    pub extra: Option<(HeaderName, &'static str)>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: impl Into<Arc<[u8]>>) -> Reply {
        Reply {
            status,
            content_type: json::CONTENT_TYPE,
            body: body.into(),
            pass: None,
            extra: None,
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, json::error(message))
    }
}
