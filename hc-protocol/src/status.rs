//! Status codes with a protocol meaning: the HTTP statuses of a refused upgrade and the
//! WebSocket close codes the service uses on control channels and connections.

/// Token missing, malformed, invalid or expired.
pub const HTTP_UNAUTHORIZED: u16 = 401;
/// Token valid but lacking the right (Listen/Send) or not covering the path.
pub const HTTP_FORBIDDEN: u16 = 403;
/// Unknown hybrid connection, or (for a sender) no listener connected.
pub const HTTP_NOT_FOUND: u16 = 404;
/// The answer to a listener's reject dial-back: the handshake fails by design.
pub const HTTP_GONE: u16 = 410;
/// A per-entity or per-client limit was reached: listeners per hybrid connection (Azure
/// allows 25), or listen attempts per client IP on the self-hosted relay. Back off.
pub const HTTP_TOO_MANY: u16 = 429;
/// The self-hosted relay is at its connection limit or shutting down; retry later.
pub const HTTP_SERVICE_UNAVAILABLE: u16 = 503;
/// The listener did not accept within the rendezvous deadline.
pub const HTTP_GATEWAY_TIMEOUT: u16 = 504;
/// The listener's target is unreachable (what our relay-listener rejects with).
pub const HTTP_BAD_GATEWAY: u16 = 502;
/// Malformed request: unknown action, missing key header.
pub const HTTP_BAD_REQUEST: u16 = 400;

/// Close code: normal closure (listener shut down, for senders).
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: going away (hybrid connection deleted, relay shutting down).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: policy violation (token expired or renewal refused).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code: internal error.
pub const CLOSE_INTERNAL: u16 = 1011;

/// A short explanation of an HTTP status a relay returned, for one-line log messages.
pub fn describe_http(status: u16) -> &'static str {
    match status {
        HTTP_BAD_REQUEST => "bad request (malformed relay URI)",
        HTTP_UNAUTHORIZED => "token rejected (wrong key, malformed or expired)",
        HTTP_FORBIDDEN => "token lacks the right (Listen/Send) for this hybrid connection",
        HTTP_NOT_FOUND => "unknown hybrid connection or no listener connected",
        HTTP_GONE => "rendezvous gone",
        HTTP_TOO_MANY => "relay limit reached",
        HTTP_BAD_GATEWAY => "listener could not reach its target",
        HTTP_GATEWAY_TIMEOUT => "listener did not accept in time",
        HTTP_SERVICE_UNAVAILABLE => "relay busy or shutting down",
        500..=599 => "relay error",
        _ => "refused",
    }
}
