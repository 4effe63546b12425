//! The relay fixture: the real self-hosted relay (`relay-server`) on `127.0.0.1:0` as
//! `loopback-stack` plans it (TLS with a freshly generated self-signed certificate, one hybrid
//! connection [`HC`] with `listen`, `send` and `manage` rules), with fixed Listen and Send keys,
//! short timeouts for tests, and builders for listener and proxy configurations that pin the
//! certificate and carry real SAS credentials. It can be stopped and restarted on the same
//! port to test reconnection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hc_client::access::AccessConfig;
use hc_protocol::connection_string::ConnectionString;
use hc_protocol::{SasToken, Secret};
use local_proxy::{ProxyConfig, TunnelMode};
use loopback_stack::LoopbackRelay;
use relay_listener::ListenerConfig;
use relay_server::quickstart::QuickstartKeys;
use relay_server::{RelayConfig, RelayError, RelayStats, SelfSigned};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The hybrid connection every fixture uses.
pub const HC: &str = "license";
/// Key of the `listen` rule (Listen right).
pub const LISTEN_KEY: &str = "listen-key-0123456789";
/// Key of the `send` rule (Send right).
pub const SEND_KEY: &str = "send-key-0123456789";

type Customise = Arc<dyn Fn(&mut RelayConfig) + Send + Sync>;

/// A running (or stopped) relay. Dropping it shuts the relay down.
pub struct Relay {
    addr: SocketAddr,
    plan: LoopbackRelay,
    customise: Option<Customise>,
    stats: RelayStats,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), RelayError>>>,
}

impl Relay {
    /// Starts a TLS relay on `127.0.0.1:0` and waits until it serves. Also installs the ring
    /// crypto provider.
    pub async fn start_tls() -> Self {
        Self::start(None).await
    }

    /// Like [`Relay::start_tls`], with `customise` applied to the configuration (limits,
    /// timeouts, more rules) on this and every restart.
    pub async fn start_tls_with(
        customise: impl Fn(&mut RelayConfig) + Send + Sync + 'static,
    ) -> Self {
        Self::start(Some(Arc::new(customise))).await
    }

    async fn start(customise: Option<Customise>) -> Self {
        hc_client::install_crypto_provider();
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = socket.local_addr().expect("relay addr");
        let keys = QuickstartKeys {
            listen: Some(Secret::new(LISTEN_KEY)),
            send: Some(Secret::new(SEND_KEY)),
            manage: None,
        };
        let plan = LoopbackRelay::new(addr.port(), HC, keys).expect("certificate");
        let mut relay = Self {
            addr,
            plan,
            customise,
            stats: RelayStats::default(),
            shutdown: CancellationToken::new(),
            task: None,
        };
        relay.serve(socket).await;
        relay
    }

    async fn serve(&mut self, socket: TcpListener) {
        let mut config = self.plan.relay_config();
        config.limits.shutdown_grace = Duration::from_millis(200);
        if let Some(customise) = &self.customise {
            customise(&mut config);
        }
        self.stats = config.stats();
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(relay_server::run(
            config,
            socket,
            self.shutdown.clone(),
        )));
        self.stats.wait_serving().await;
    }

    /// Shuts the relay down and waits until it has stopped (its port is then free).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the relay if it runs, then starts a new one on the same port with the same
    /// certificate and keys.
    ///
    /// While the relay was down its port was free, and the port came from the ephemeral range
    /// (`127.0.0.1:0`), so another test's outgoing connection may hold it as its source port
    /// for a while: the rebind is retried for up to 10 s before it fails.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut tries = 0;
        let socket = loop {
            match TcpListener::bind(self.addr).await {
                Ok(socket) => break socket,
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("rebind the relay's port {}: {err}", self.addr),
            }
        };
        self.serve(socket).await;
    }

    /// The relay's address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The relay's self-signed certificate.
    pub fn cert(&self) -> &SelfSigned {
        self.plan.cert()
    }

    /// Counters and readiness of the relay (of the latest start).
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// A connection string for rule `rule` with `key` on hybrid connection `hc`.
    pub fn connection(&self, rule: &str, key: &str, hc: &str) -> ConnectionString {
        self.plan.connection(rule, Secret::new(key), hc)
    }

    /// The Listen connection string.
    pub fn listen_connection(&self) -> ConnectionString {
        self.plan.listen_connection()
    }

    /// The Send connection string.
    pub fn send_connection(&self) -> ConnectionString {
        self.plan.send_connection()
    }

    /// A Send token (valid for an hour) for HTTP request mode: the `ServiceBusAuthorization`
    /// header's value, or (URL-encoded) the `sb-hc-token` parameter's.
    pub fn send_token(&self) -> String {
        let resource = format!("http://127.0.0.1:{}/{HC}", self.port());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        SasToken::sign(&resource, "send", self.plan.send_key(), now + 3600)
            .expect("sign")
            .expose()
            .to_owned()
    }

    /// Relay access with `connection`, trusting exactly this relay's certificate (pinned).
    pub fn access(&self, connection: ConnectionString) -> AccessConfig {
        self.plan.access(connection)
    }

    /// A listener configuration bridging to `target` with the Listen key (target timeout 2 s,
    /// reconnects at most 1 s apart, no client identity).
    pub fn listener_config(&self, target: SocketAddr) -> ListenerConfig {
        self.listener_config_with(self.listen_connection(), target)
    }

    /// A listener configuration with any connection string (wrong keys, other hubs).
    pub fn listener_config_with(
        &self,
        connection: ConnectionString,
        target: SocketAddr,
    ) -> ListenerConfig {
        let mut config = self
            .plan
            .listener_config_with(connection, &target.to_string());
        config.target_timeout = Duration::from_secs(2);
        config.reconnect_max = Duration::from_secs(1);
        config
    }

    /// A proxy configuration with the Send key, no site, in **1:1 mode** (one relay connection
    /// per TCP connection: what `tests/tunnel.rs` and `tests/identity.rs` exercise).
    pub fn proxy_config(&self) -> ProxyConfig {
        self.proxy_config_with(self.send_connection())
    }

    /// A proxy configuration with the Send key that names its site (`X-Dongle-Relay-Site`).
    pub fn proxy_config_at(&self, site: &str) -> ProxyConfig {
        let mut config = self.proxy_config();
        config.site = Some(site.to_owned());
        config
    }

    /// A proxy configuration with any connection string and no site, in 1:1 mode.
    pub fn proxy_config_with(&self, connection: ConnectionString) -> ProxyConfig {
        let mut config = self.plan.proxy_config_with(connection);
        config.mode = TunnelMode::Single;
        config
    }

    /// A proxy configuration in `mode` (`Auto` and `Mux` use a pool of `pool_size` relay
    /// connections) with the Send key and `site`.
    pub fn proxy_config_mode(&self, mode: TunnelMode, site: Option<&str>) -> ProxyConfig {
        let mut config = self.proxy_config();
        config.mode = mode;
        config.site = site.map(str::to_owned);
        config
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
