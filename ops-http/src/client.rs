//! A minimal client for ops endpoints (one request per connection): what tests, scripts and
//! a future `status` subcommand use to read the JSON, post actions and scrape metrics.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// The body is not JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why a request failed before an answer came.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or talking HTTP failed.
    #[error("{0}")]
    Http(String),
    /// No answer within the time limit.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One request to `http://{addr}{path}`: with `token` as a bearer token and `body` as JSON.
///
/// # Errors
/// Connection or protocol errors, or no answer within `limit`.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
    limit: Duration,
) -> Result<Answer, ClientError> {
    tokio::time::timeout(limit, call_inner(addr, method, path, token, body))
        .await
        .map_err(|_| ClientError::Timeout(limit))?
}

async fn call_inner(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<Answer, ClientError> {
    let err = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string());
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| err(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| err(&e))?;
    let driver = tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let payload = match body {
        Some(value) => {
            request = request.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Bytes::from(value.to_string())
        }
        None => Bytes::new(),
    };
    let request = request.body(Full::new(payload)).map_err(|e| err(&e))?;
    let response = sender.send_request(request).await.map_err(|e| err(&e))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| err(&e))?.to_bytes();
    driver.abort();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}
