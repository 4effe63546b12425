//! TCP socket tuning applied to every socket the tunnel owns: `TCP_NODELAY` (small license
//! requests must not wait for Nagle) and optional keepalive probes (dead NAT mappings and
//! vanished peers are noticed even when the connection is idle).

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Turns Nagle off and, when `keepalive` is given, enables keepalive probes after that much
/// idle time (then every `keepalive / 3`). Failures are ignored: tuning is best effort and a
/// socket that cannot be tuned still works.
pub fn tune(stream: &TcpStream, keepalive: Option<Duration>) {
    let _ = stream.set_nodelay(true);
    if let Some(idle) = keepalive {
        let params = TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 3).max(Duration::from_secs(1)));
        let _ = SockRef::from(stream).set_tcp_keepalive(&params);
    }
}

/// Connects to `host:port` (trying every resolved address) and tunes the socket.
///
/// # Errors
/// The last connect error.
pub async fn connect(
    host: &str,
    port: u16,
    keepalive: Option<Duration>,
) -> std::io::Result<TcpStream> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((host, port)).await?;
    tune(&stream, keepalive);
    Ok(stream)
}
