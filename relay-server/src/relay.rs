//! The shared state of one running relay: configuration-derived parts (hub, authorizer,
//! admission, limits) and the lifecycle handles (shutdown, drain deadline, task tracker)
//! every connection task uses.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::auth::Authorizer;
use crate::config::{Limits, RelayConfig};
use crate::established::Established;
use crate::hub::Hub;
use crate::router::ConnInfo;
use crate::stats::RelayStats;

/// State shared by all connections of a running relay.
#[derive(Debug)]
pub(crate) struct Relay {
    pub hub: std::sync::Arc<Hub>,
    pub auth: Authorizer,
    pub admission: Admission,
    pub limits: Limits,
    /// Whether clients reach us over TLS (`wss://`).
    pub tls: bool,
    /// Cancelled when the relay stops: control channels close, waiting senders get `503`,
    /// idle HTTP connections close.
    pub shutdown: CancellationToken,
    /// Cancelled when the shutdown grace period is over: bridged connections close.
    pub drain: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    pub stats: RelayStats,
    /// Where bridged connections are served (`None`: the thread could not be started, and
    /// they stay on the runtime that accepted them).
    pub established: Option<Established>,
}

impl Relay {
    pub fn new(config: &RelayConfig, tls: bool, shutdown: CancellationToken) -> Self {
        let stats = config.stats.clone();
        Self {
            hub: std::sync::Arc::new(Hub::new(
                &config.hybrid_connections,
                config.limits.max_listeners_per_hc,
                stats.clone(),
            )),
            auth: Authorizer {
                namespace_rules: config.namespace_rules.clone(),
                accepted_hosts: config.accepted_hosts.clone(),
            },
            admission: Admission::new(config.access.clone(), &config.limits, stats.clone()),
            limits: config.limits.clone(),
            tls,
            shutdown,
            drain: CancellationToken::new(),
            tasks: TaskTracker::new(),
            stats,
            established: Established::start()
                .inspect_err(|err| {
                    tracing::warn!("bridges share the main runtime: no thread of their own: {err}");
                })
                .ok(),
        }
    }

    /// The relay's name in status descriptions: the first accepted host, else the local
    /// address of the connection.
    pub fn system_name(&self, conn: &ConnInfo) -> String {
        self.auth
            .accepted_hosts
            .iter()
            .find(|h| *h != crate::auth::ANY_HOST)
            .cloned()
            .unwrap_or_else(|| conn.local.to_string())
    }
}
