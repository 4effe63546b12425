//! The relay's `[limits]`: connection, message and time limits with their defaults and
//! checks. Durations take the one syntax of every dongle-relay file and flag
//! (`config_syntax`); the `*_secs` keys of earlier versions are still read (serde aliases) and
//! draw a deprecation warning ([`deprecated_keys`]).

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Listeners Azure allows on one hybrid connection; the 26th is refused.
pub const AZURE_MAX_LISTENERS_PER_HC: usize = 25;

/// Limits and timeouts. `0` disables a timeout where noted.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent client TCP connections (control channels, senders, rendezvous, handshakes).
    /// Over the limit a connection is answered `503` (a few more are answered, the rest
    /// dropped).
    pub max_connections: usize,
    /// Connections one IP may hold before it has authenticated (a valid token or rendezvous
    /// address); a newer one closes its oldest.
    pub max_unauthenticated_per_ip: usize,
    /// Slots unauthenticated connections can never take: kept for listeners and senders that
    /// have authenticated. At most half of `max_connections` is reserved, whatever this says.
    pub reserved_for_authenticated: usize,
    /// Listeners per hybrid connection (Azure: 25); one more is answered `429`.
    #[serde(rename = "max_listeners_per_hybrid_connection")]
    pub max_listeners_per_hc: usize,
    /// Largest WebSocket message of HTTP request mode (bodies, request rendezvous). Bridged
    /// connections forward frames without reassembling messages; `max_frame_size` bounds them.
    #[serde(rename = "max_message_bytes")]
    pub max_message_size: usize,
    /// Largest WebSocket frame accepted on a bridged connection.
    #[serde(rename = "max_frame_bytes")]
    pub max_frame_size: usize,
    /// Largest read from a bridged connection, into a buffer that exists only while bytes
    /// wait (an idle bridged connection holds none); HTTP request mode's read buffer per
    /// WebSocket (allocated eagerly).
    #[serde(rename = "read_buffer_bytes")]
    pub read_buffer_size: usize,
    /// Bytes an HTTP request mode WebSocket buffers before writing to the socket. Bridged
    /// connections write each frame from a buffer of its own size and flush it.
    #[serde(rename = "write_buffer_bytes")]
    pub write_buffer_size: usize,
    /// Hard cap of a WebSocket's write buffer (tungstenite's default is unbounded). Default:
    /// `write_buffer_bytes + max_message_bytes + 64 KiB`.
    #[serde(rename = "max_write_buffer_bytes")]
    pub max_write_buffer_size: Option<usize>,
    /// TLS handshake plus reading the HTTP upgrade request.
    #[serde(
        alias = "handshake_timeout_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub handshake_timeout: Duration,
    /// How long a sender waits for its listener to dial the rendezvous address; also how
    /// long that address stays valid. Then the sender gets `504`. The default stays below the
    /// 20 s our senders (and the listener's dial-back) allow a WebSocket handshake, so that a
    /// sender hears the true cause instead of timing out itself.
    #[serde(
        alias = "rendezvous_timeout_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub rendezvous_timeout: Duration,
    /// HTTP request mode: how long the listener has to answer a request (the guide's 60 s),
    /// then the client gets `504`; also bounds reading the request body and a request
    /// rendezvous.
    #[serde(deserialize_with = "config_syntax::duration::deserialize")]
    pub http_response_timeout: Duration,
    /// A bridged connection without data messages in either direction for this long is
    /// closed with 1001 (`0`: never).
    #[serde(
        alias = "idle_timeout_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub idle_timeout: Duration,
    /// A side of a bridged connection that was sent data and then sends nothing back (no
    /// pong to the relay's ping, no data) for this long is taken for dead (frozen, not
    /// reading, gone without a FIN): the bridge is closed with 1001 and a reason naming it
    /// (`0`: never).
    #[serde(deserialize_with = "config_syntax::duration::deserialize")]
    pub peer_response_timeout: Duration,
    /// Ping a control channel that was quiet this long; close it (1001) when the ping is not
    /// answered within two more intervals (`0`: never). The 2 s default drops a frozen or
    /// vanished listener within about 8 s.
    #[serde(
        alias = "control_ping_interval_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub control_ping_interval: Duration,
    /// On shutdown, how long bridged connections may drain before they are closed.
    #[serde(
        alias = "shutdown_grace_secs",
        deserialize_with = "config_syntax::duration::deserialize"
    )]
    pub shutdown_grace: Duration,
    /// Listen attempts one client IP may make in a burst (hyco-ws reconnects without
    /// back-off); further attempts are answered `429` (`0`: no limit).
    pub listen_burst_per_ip: u32,
    /// Listen attempts per second one client IP regains.
    pub listen_rate_per_ip: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_unauthenticated_per_ip: 512,
            reserved_for_authenticated: 128,
            max_listeners_per_hc: AZURE_MAX_LISTENERS_PER_HC,
            max_message_size: 4 << 20,
            max_frame_size: 4 << 20,
            read_buffer_size: 32 << 10,
            write_buffer_size: 32 << 10,
            max_write_buffer_size: None,
            handshake_timeout: Duration::from_secs(10),
            rendezvous_timeout: Duration::from_secs(15),
            http_response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(3600),
            peer_response_timeout: Duration::from_secs(10),
            control_ping_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(10),
            listen_burst_per_ip: 20,
            listen_rate_per_ip: 2.0,
        }
    }
}

impl Limits {
    /// The effective write-buffer cap.
    pub fn effective_max_write_buffer(&self) -> usize {
        self.max_write_buffer_size.unwrap_or(
            self.write_buffer_size
                .saturating_add(self.max_message_size)
                .saturating_add(64 << 10),
        )
    }
}

/// The `[limits]` durations of earlier versions, spelled in seconds under `*_secs` keys.
const SECONDS_KEYS: [&str; 5] = [
    "handshake_timeout",
    "rendezvous_timeout",
    "idle_timeout",
    "control_ping_interval",
    "shutdown_grace",
];

/// Deprecation notices for the older spellings a file uses (they are still read, through a
/// serde alias): one line per key, saying what to write instead.
pub(super) fn deprecated_keys(file: &toml::Table) -> Vec<String> {
    let Some(limits) = file.get("limits").and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    SECONDS_KEYS
        .iter()
        .filter_map(|key| {
            let old = format!("{key}_secs");
            let value = limits.get(&old)?;
            let secs = value
                .as_float()
                .or_else(|| value.as_integer().map(|n| n as f64))?;
            let written = Duration::try_from_secs_f64(secs).ok()?;
            Some(format!(
                "limits.{old} = {value} is deprecated; write {key} = \"{}\"",
                config_syntax::format_duration(written)
            ))
        })
        .collect()
}

impl Limits {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("limits.max_connections", self.max_connections),
            (
                "limits.max_unauthenticated_per_ip",
                self.max_unauthenticated_per_ip,
            ),
            (
                "limits.max_listeners_per_hybrid_connection",
                self.max_listeners_per_hc,
            ),
            ("limits.max_message_bytes", self.max_message_size),
            ("limits.max_frame_bytes", self.max_frame_size),
            ("limits.read_buffer_bytes", self.read_buffer_size),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.max_frame_size > self.max_message_size {
            return Err(invalid(
                "limits.max_frame_bytes",
                "must not exceed limits.max_message_bytes",
            ));
        }
        if self.effective_max_write_buffer() <= self.write_buffer_size {
            return Err(invalid(
                "limits.max_write_buffer_bytes",
                "must exceed limits.write_buffer_bytes",
            ));
        }
        let required = [
            ("limits.handshake_timeout", self.handshake_timeout),
            ("limits.rendezvous_timeout", self.rendezvous_timeout),
            ("limits.http_response_timeout", self.http_response_timeout),
        ];
        for (key, value) in required {
            if value.is_zero() {
                return Err(invalid(key, "must be more than 0"));
            }
        }
        if !(self.listen_rate_per_ip.is_finite() && self.listen_rate_per_ip >= 0.0) {
            return Err(invalid(
                "limits.listen_rate_per_ip",
                "must be a non-negative number",
            ));
        }
        if self.listen_burst_per_ip > 0 && self.listen_rate_per_ip == 0.0 {
            return Err(invalid(
                "limits.listen_rate_per_ip",
                "must be more than 0 while listen_burst_per_ip limits listen attempts",
            ));
        }
        Ok(())
    }
}
