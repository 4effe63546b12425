//! One GET to a host's admin endpoint over its [`Route`]: a fresh connection (plain TCP for a
//! direct host; TLS to the relay, with the hybrid connection's name before the path and a Send
//! token in `ServiceBusAuthorization`, for a relayed one), the host's bearer token in
//! `Authorization`, and an answer of at most [`MAX_ANSWER`] bytes. The caller bounds the time.

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderValue};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use crate::config::{HostConfig, Route};

/// The largest answer read from a host (a year of usage series is far below it).
pub const MAX_ANSWER: usize = 16 << 20;

/// Why a host's answer could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The connection (to the host, or to the relay) failed.
    #[error(transparent)]
    Dial(#[from] hc_client::DialError),
    /// No Send token could be issued for the relay.
    #[error(transparent)]
    Token(#[from] hc_client::TokenError),
    /// HTTP failed on an open connection.
    #[error("HTTP: {0}")]
    Http(String),
    /// The host (or the relay) answered with an error status.
    #[error("{status}: {message}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The answer's `error` (JSON) or first line.
        message: String,
    },
    /// The answer is not what this version expects.
    #[error("unexpected answer: {0}")]
    Json(#[from] serde_json::Error),
}

impl FetchError {
    /// The HTTP status, when the host or the relay answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }
}

/// `GET path_and_query` on `host`'s admin endpoint, as JSON.
///
/// # Errors
/// [`FetchError`].
pub async fn get_json<T: DeserializeOwned>(
    host: &HostConfig,
    path_and_query: &str,
) -> Result<T, FetchError> {
    let body = get(host, path_and_query).await?;
    Ok(serde_json::from_slice(&body)?)
}

/// `GET path_and_query` on `host`'s admin endpoint: the body of a 2xx answer.
///
/// # Errors
/// [`FetchError`].
pub async fn get(host: &HostConfig, path_and_query: &str) -> Result<Bytes, FetchError> {
    let (io, authority, target, relay_token) = match &host.route {
        Route::Direct {
            dialer,
            host: name,
            port,
            base,
        } => (
            dialer.connect(name, *port, false).await?,
            format!("{name}:{port}"),
            format!("{base}{path_and_query}"),
            None,
        ),
        Route::Relay(access) => {
            let endpoint = access.endpoint();
            let io = access
                .dialer()
                .connect(&endpoint.host, endpoint.port, endpoint.tls)
                .await?;
            (
                io,
                endpoint.authority(),
                format!("/{}{path_and_query}", access.entity_path()),
                Some(access.tokens().current()?),
            )
        }
    };
    let http = |e: &dyn std::fmt::Display| FetchError::Http(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| http(&e))?;
    let driver = tokio::spawn(connection);
    let bearer =
        HeaderValue::from_str(&format!("Bearer {}", host.token.expose())).map_err(|e| http(&e))?;
    let mut request = http::Request::get(target)
        .header(header::HOST, authority)
        .header(header::AUTHORIZATION, bearer)
        .header(header::ACCEPT, "application/json");
    if let Some(token) = relay_token {
        let value = HeaderValue::from_str(token.expose()).map_err(|e| http(&e))?;
        request = request.header(hc_protocol::SERVICE_BUS_AUTHORIZATION, value);
    }
    let request = request.body(Empty::<Bytes>::new()).map_err(|e| http(&e))?;
    let response = sender.send_request(request).await.map_err(|e| http(&e))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| http(&e))?
        .to_bytes();
    driver.abort();
    if !parts.status.is_success() {
        return Err(FetchError::Status {
            status: parts.status,
            message: message_of(&body),
        });
    }
    Ok(body)
}

/// What an error answer says: its JSON `error`, else its first line (both bounded).
fn message_of(body: &[u8]) -> String {
    let json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    let text = json.unwrap_or_else(|| {
        String::from_utf8_lossy(body)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("(no description)")
            .to_owned()
    });
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_described() {
        assert_eq!(
            message_of(br#"{"error": "a valid bearer token"}"#),
            "a valid bearer token"
        );
        assert_eq!(message_of(b"\n no listener\r\nmore"), "no listener");
        assert_eq!(message_of(b""), "(no description)");
        assert_eq!(message_of("x".repeat(1000).as_bytes()).len(), 300);
    }
}
