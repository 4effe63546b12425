//! Responses: JSON bodies, JSON errors and embedded static files, plus the headers every
//! response of an ops endpoint carries.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// A complete response.
pub type Reply = Response<Full<Bytes>>;

/// The Content-Security-Policy of HTML pages: same-origin scripts, styles and fetches only,
/// nothing inline, no framing.
const HTML_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut reply = Response::new(Full::new(body));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// `value` as JSON with `status`.
pub fn json_reply<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, "application/json", Bytes::from(body)),
        Err(e) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the answer: {e}"),
        ),
    }
}

/// `body` as CSV (200), offered as the download `filename`.
pub fn csv_reply(body: String, filename: &str) -> Reply {
    let mut reply = with_body(StatusCode::OK, "text/csv; charset=utf-8", Bytes::from(body));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        reply
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    reply
}

/// `{"error": message}` with `status`.
pub fn error_reply(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string();
    with_body(status, "application/json", Bytes::from(body))
}

/// A static file compiled into the binary (`include_str!`).
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its content.
    pub body: &'static str,
}

impl Asset {
    /// An HTML page.
    pub const fn html(body: &'static str) -> Self {
        Self {
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    /// A script.
    pub const fn javascript(body: &'static str) -> Self {
        Self {
            content_type: "text/javascript; charset=utf-8",
            body,
        }
    }

    /// A style sheet.
    pub const fn css(body: &'static str) -> Self {
        Self {
            content_type: "text/css; charset=utf-8",
            body,
        }
    }

    /// The response serving it.
    pub fn reply(&self) -> Reply {
        let mut reply = with_body(
            StatusCode::OK,
            self.content_type,
            Bytes::from_static(self.body.as_bytes()),
        );
        if self.content_type.starts_with("text/html") {
            reply.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(HTML_CSP),
            );
        }
        reply
    }
}
