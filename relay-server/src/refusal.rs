//! Refused requests: an HTTP status with a human-readable description that travels, like
//! Azure's status descriptions, in the reason phrase and the body, with a tracking id that
//! also appears in the relay's log.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::ext::ReasonPhrase;

/// The response body type of every relay response.
pub(crate) type Body = Full<Bytes>;

/// Longest reason phrase we send (Azure's descriptions are short; proxies dislike long ones).
const MAX_REASON: usize = 512;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub description: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub fn new(status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            status,
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, description)
    }

    pub fn unauthorized(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, description)
    }

    pub fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, description)
    }

    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, description)
    }

    /// The response: `{description}. TrackingId:{id}[, SystemTracker:{tracker}]` as reason
    /// phrase and as plain-text body.
    pub fn into_response(self, tracking_id: &str, system_tracker: Option<&str>) -> Response<Body> {
        let mut text = self.description.trim_end_matches('.').to_owned();
        text.push_str(". TrackingId:");
        text.push_str(tracking_id);
        if let Some(tracker) = system_tracker {
            text.push_str(", SystemTracker:");
            text.push_str(tracker);
        }
        let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // A refused client gets no second request on this connection: hyper closes it once the
        // answer is sent, so a reconnect storm cannot park its refused sockets on the relay.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        if let Ok(reason) = ReasonPhrase::try_from(reason_phrase(&text)) {
            response.extensions_mut().insert(reason);
        }
        response
    }
}

/// A reason phrase may hold only tab, space, visible ASCII and obs-text; replace everything
/// else (a listener's description could carry CR/LF) and cut it to [`MAX_REASON`] bytes.
fn reason_phrase(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c == '\t' || (' '..='~').contains(&c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    out.truncate(MAX_REASON);
    out
}

/// Longest close reason a WebSocket close frame can carry.
pub(crate) const MAX_CLOSE_REASON: usize = 123;

/// A relay-initiated WebSocket close reason in Azure's form, `{description}. TrackingId:{id}`
/// (the description cut so the whole fits a close frame); the id is logged with it so an
/// operator can find the event a client reports.
pub(crate) fn tracked_reason(description: &str) -> String {
    let tracking_id = uuid::Uuid::new_v4().to_string();
    let suffix = format!(". TrackingId:{tracking_id}");
    let mut cut = description.len().min(MAX_CLOSE_REASON - suffix.len());
    while !description.is_char_boundary(cut) {
        cut -= 1;
    }
    tracing::debug!(reason = description, %tracking_id, "closing a WebSocket");
    format!("{}{suffix}", &description[..cut])
}

/// A plain success response (health check).
pub(crate) fn ok_text(text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_closes_its_connection() {
        let response = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "back off")
            .retry_after(3)
            .into_response("id", None);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn tracked_close_reasons_fit_a_close_frame() {
        let short = tracked_reason("idle timeout");
        assert!(short.starts_with("idle timeout. TrackingId:"), "{short}");
        assert_eq!(short.len(), "idle timeout. TrackingId:".len() + 36);
        let long = tracked_reason(&"é".repeat(100));
        assert!(long.len() <= MAX_CLOSE_REASON, "{}", long.len());
        assert!(long.contains(". TrackingId:"));
    }

    #[test]
    fn description_goes_to_reason_and_body() {
        let response = Refusal::new(StatusCode::NOT_FOUND, "No listener.\r\nInjected")
            .retry_after(3)
            .into_response("abc", Some("host:hybridconnection:hc"));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let reason = response
            .extensions()
            .get::<ReasonPhrase>()
            .expect("reason phrase");
        assert_eq!(
            reason.as_bytes(),
            b"No listener.??Injected. TrackingId:abc, SystemTracker:host:hybridconnection:hc"
        );
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(3u64))
        );
    }
}
