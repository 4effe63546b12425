//! The proxy fixture: a local-proxy accepting on its own `127.0.0.1:0` port, running in a
//! task, with its status handle. Dropping the fixture shuts the proxy down.

use std::net::SocketAddr;

use local_proxy::{LocalProxy, ProxyConfig, ProxyError, ProxyStatus};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running local-proxy.
pub struct Proxy {
    addr: SocketAddr,
    status: ProxyStatus,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ProxyError>>>,
}

impl Proxy {
    /// Binds `127.0.0.1:0` and runs a proxy with `config` on it; clients may connect as soon
    /// as this returns (the socket is listening).
    pub async fn spawn(config: ProxyConfig) -> Self {
        let proxy = LocalProxy::new(config).expect("proxy configuration");
        let status = proxy.status();
        // The default backlog (`somaxconn`): tests open thousands of connections at once.
        let backlog = local_proxy::config::default_backlog();
        let socket =
            local_proxy::bind("127.0.0.1:0".parse().expect("addr"), backlog).expect("bind proxy");
        let addr = socket.local_addr().expect("proxy addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(proxy.run(socket, shutdown.clone()));
        Self {
            addr,
            status,
            shutdown,
            task: Some(task),
        }
    }

    /// Where local clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's live counters.
    pub fn status(&self) -> &ProxyStatus {
        &self.status
    }

    /// Shuts the proxy down and waits until its tunnels drained and it stopped.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
