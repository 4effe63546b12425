//! The relay-listener's main loop: open the control channel, run a session, and when it is
//! lost reconnect — one such loop per relay replica (`hc_client::replicas`: replicas share no
//! state, so a sender on any of them must find a listener there; a replica that appears when
//! a relay's name is resolved again gets a loop, one that disappears has its loop stopped);
//! each loop may (`hc_client::Reconnect`: at most 1.5 s apart while the relay cannot be
//! reached, exponential back-off with full jitter after refusals), forever, until shutdown. Each
//! failure is one log line saying what the relay said. On shutdown the control channel is
//! closed first (no new senders), then open streams get a grace period to finish.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use hc_client::access::AccessError;
use hc_client::dial::DialError;
use hc_client::{IssuedToken, Reconnect, RelayAccess, RelayStream, Replicas};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ListenerConfig;
use crate::control::{Handlers, SessionEnd, session};
use crate::http_mode::{self, HttpContext, HttpForward};
use crate::identity::{IdentityError, IdentityMode};
use crate::rendezvous;
use crate::status::ListenerStatus;
use crate::target::{ConfiguredTarget, TargetConnector};

/// The listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Relay access settings are unusable.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Client identity settings are unusable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A relay-listener, generic over how it reaches its target.
pub struct RelayListener<C: TargetConnector = ConfiguredTarget> {
    config: Arc<ListenerConfig>,
    access: Arc<RelayAccess>,
    /// Every relay replica, `access` first: one control channel each.
    replicas: Arc<Replicas>,
    connector: Arc<C>,
    status: ListenerStatus,
    id: String,
    http: Option<Arc<HttpForward>>,
}

impl RelayListener<ConfiguredTarget> {
    /// A listener bridging to the configured TCP target in the configured identity mode.
    ///
    /// # Errors
    /// [`ListenerError`] for unusable relay settings (hybrid connection name, TLS trust) or
    /// identity settings (default site, loopback range).
    pub fn new(config: ListenerConfig) -> Result<Self, ListenerError> {
        let replicas = Replicas::new(&config.access)?;
        let access = replicas.primary().clone();
        config.identity.validate()?;
        let connector = ConfiguredTarget::new(&config)?;
        if connector.mode() == IdentityMode::Loopback && !crate::loopback::SUPPORTED {
            tracing::warn!(
                "loopback identity mode needs Linux or Windows; every connection will be rejected with 502"
            );
        }
        let http = forward_of(&config, &access);
        Ok(Self {
            config: Arc::new(config),
            access,
            replicas: Arc::new(replicas),
            connector: Arc::new(connector),
            status: ListenerStatus::default(),
            id: uuid::Uuid::new_v4().to_string(),
            http,
        })
    }
}

impl<C: TargetConnector> RelayListener<C> {
    /// Replaces the target connector (see [`crate::target`]); the configured identity mode is
    /// then ignored, the default site still applies.
    pub fn with_connector<D: TargetConnector>(self, connector: D) -> RelayListener<D> {
        RelayListener {
            config: self.config,
            access: self.access,
            replicas: self.replicas,
            connector: Arc::new(connector),
            status: self.status,
            id: self.id,
            http: self.http,
        }
    }

    /// Forwards HTTP-mode requests to `target` (`host:port`), for an endpoint whose address is
    /// known only once it is bound (the server's admin endpoint).
    pub fn with_http_target(mut self, target: &str) -> Self {
        let mut config = (*self.config).clone();
        config.http_target = Some(target.to_owned());
        self.http = forward_of(&config, &self.access);
        self.config = Arc::new(config);
        self
    }

    /// A handle on the live state.
    pub fn status(&self) -> ListenerStatus {
        self.status.clone()
    }

    /// Runs until `shutdown` is cancelled, then drains streams for the grace period.
    ///
    /// # Errors
    /// None today; the relay being unreachable is retried, not returned.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ListenerError> {
        let streams = TaskTracker::new();
        let abort = CancellationToken::new();
        tracing::info!(
            "relay-listener for {} ({} credentials, {}) bridging to {}",
            self.replicas.describe(),
            self.access.credentials_kind(),
            self.access.dialer().egress().label(),
            self.connector.describe()
        );
        // Before the first control channel: a name with several addresses is several
        // replicas, each needing a channel of its own.
        self.replicas.refresh().await;
        // The main loops and their heartbeat share this task: a stuck loop stops the beats.
        tokio::select! {
            () = self.supervise(&streams, &abort, &shutdown) => {}
            // Ends only with `shutdown`, when `supervise` must still close the channels.
            () = async {
                self.replicas.follow(&shutdown).await;
                std::future::pending().await
            } => {}
            () = self.status.heartbeat().beat_forever() => {}
        }
        streams.close();
        if tokio::time::timeout(self.config.shutdown_grace, streams.wait())
            .await
            .is_err()
        {
            tracing::info!("closing {} streams after the grace period", streams.len());
            abort.cancel();
            streams.wait().await;
        }
        Ok(())
    }

    /// Runs one main loop per replica until `shutdown`: starts a loop for every replica that
    /// appears (a name resolving to one more address) and stops the loop of every replica
    /// that goes away.
    async fn supervise(
        &self,
        streams: &TaskTracker,
        abort: &CancellationToken,
        shutdown: &CancellationToken,
    ) {
        let mut changes = self.replicas.subscribe();
        let mut running: HashMap<String, CancellationToken> = HashMap::new();
        let mut loops = FuturesUnordered::new();
        loop {
            let current = self.replicas.current();
            running.retain(|key, stop| {
                let keep = current.iter().any(|a| a.describe() == *key);
                if !keep {
                    tracing::info!("relay replica {key} is gone; closing its control channel");
                    stop.cancel();
                }
                keep
            });
            for access in current {
                let key = access.describe();
                if running.contains_key(&key) {
                    continue;
                }
                let stop = shutdown.child_token();
                running.insert(key, stop.clone());
                let backoff = Reconnect::new(self.config.reconnect_max);
                loops.push(self.main_loop(access, streams, abort, backoff, stop, shutdown));
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some(()) = loops.next() => {}
            }
        }
        while loops.next().await.is_some() {}
    }

    /// Connects to `access`'s relay, serves the control channel and reconnects, until `stop`
    /// (the replica went away, or `shutdown`).
    async fn main_loop(
        &self,
        access: Arc<RelayAccess>,
        streams: &TaskTracker,
        abort: &CancellationToken,
        mut backoff: Reconnect,
        stop: CancellationToken,
        shutdown: &CancellationToken,
    ) {
        let access = &access;
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let dialled = tokio::select! {
                _ = stop.cancelled() => break,
                r = access.listen(&self.id) => r,
            };
            let delay = match dialled {
                Err(e) => {
                    self.dial_failed(access, &e, failures);
                    failures += 1;
                    backoff.after_failure(e.relay_unreachable())
                }
                Ok((stream, token)) => {
                    self.status.connected();
                    tracing::info!("control channel open on {}", access.describe());
                    let started = Instant::now();
                    let channel = Channel {
                        access,
                        streams,
                        abort,
                        stop: &stop,
                        shutdown,
                    };
                    let end = self.serve_channel(stream, &token, channel).await;
                    if end == SessionEnd::Shutdown {
                        self.status.disconnected(None);
                        break;
                    }
                    let line = format!(
                        "control channel to {} {end}; reconnecting",
                        access.describe()
                    );
                    tracing::warn!("{line}");
                    self.status.disconnected(Some(line));
                    failures = 0;
                    backoff.after_session(started.elapsed())
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Notes a failed dial (the `failures`-th in a row): one warning per outage, retries
    /// while the relay stays away at debug.
    fn dial_failed(&self, access: &RelayAccess, e: &AccessError, failures: u32) {
        if e.relay_unreachable() {
            self.replicas.report(access, false);
        }
        let line = self.describe_failure(access, e);
        if failures == 0 || !e.relay_unreachable() {
            tracing::warn!("{line}");
        } else {
            tracing::debug!("{line}");
        }
        self.status.dial_failed(line);
    }

    /// Serves one open control channel until it ends: each `accept` becomes a rendezvous
    /// task, each HTTP-mode `request` a forwarding task, both tracked in `streams`.
    async fn serve_channel(
        &self,
        stream: RelayStream,
        token: &IssuedToken,
        channel: Channel<'_>,
    ) -> SessionEnd {
        let Channel {
            access,
            streams,
            abort,
            stop,
            shutdown,
        } = channel;
        let (replies, queued) = tokio::sync::mpsc::channel(16);
        let http = HttpContext {
            forward: self.http.clone(),
            access: access.clone(),
            replies,
        };
        session(
            stream.ws,
            access.tokens(),
            token,
            self.config.control_ping,
            &self.status,
            stop,
            Handlers {
                on_accept: |accept| {
                    let task = rendezvous::handle(
                        accept,
                        access.clone(),
                        self.connector.clone(),
                        self.config.clone(),
                        self.status.clone(),
                        shutdown.clone(),
                        abort.child_token(),
                    );
                    streams.spawn(task);
                },
                on_request: |request, body| {
                    streams.spawn(http_mode::handle(request, body, http.clone()));
                },
                replies: queued,
            },
        )
        .await
    }

    fn describe_failure(&self, access: &RelayAccess, e: &AccessError) -> String {
        match e {
            AccessError::Dial(DialError::Refused { .. }) => {
                let hint = if access.credentials_renewable() {
                    ""
                } else {
                    " (a fixed SharedAccessSignature cannot be renewed)"
                };
                format!("relay refused listener: {e}{hint}")
            }
            other => format!(
                "cannot open control channel to {}: {other}",
                access.describe()
            ),
        }
    }
}

/// The HTTP-mode forwarder of `config`, if it names an endpoint.
fn forward_of(config: &ListenerConfig, access: &RelayAccess) -> Option<Arc<HttpForward>> {
    let target = config.http_target.as_deref()?;
    let forward = HttpForward::new(target, access.entity_path(), &access.endpoint().host);
    Some(Arc::new(forward))
}

/// What serving one control channel needs from [`RelayListener::main_loop`].
struct Channel<'a> {
    access: &'a Arc<RelayAccess>,
    streams: &'a TaskTracker,
    abort: &'a CancellationToken,
    stop: &'a CancellationToken,
    shutdown: &'a CancellationToken,
}
