//! Request routing: what one HTTP request to the relay is (`/$hc/{path}` with
//! `sb-hc-action=listen|connect|accept|request`, a plain HTTP request to `/{hc}[/more]` for
//! HTTP mode (served by `http_mode`), or the health check) and the protocol steps of the
//! WebSocket actions up to the `101`: authorization, the accept message, the rendezvous wait,
//! the listener's accept or reject, subprotocol checks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hc_protocol::uri::{
    Action, HC_PATH_PREFIX, PARAM_ACTION, PARAM_ID, PARAM_STATUS_CODE, PARAM_STATUS_DESCRIPTION,
};
use hc_protocol::{Accept, ControlMessage, RemoteEndpoint};
use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::admission::ConnectionSlot;
use crate::auth::{request_host, request_token, unix_now};
use crate::bridge::{BridgeSettings, bridge};
use crate::config::Right;
use crate::control_channel::{self, ControlChannel, Ended, RenewCheck};
use crate::handshake::{
    self, chosen_protocol, offered_protocols, switching_protocols, upgrade_key,
};
use crate::homed::rehomed;
use crate::http_mode;
use crate::hub::{Arrival, HcEntry, ListenerHandle, NoListener, Outbound};
use crate::refusal::{Body, Refusal, ok_text};
use crate::relay::Relay;
use crate::request_parts::{Query, connect_headers, hc_path};

/// Relay-private query parameter of an accept address: the rendezvous id. It is `sb-hc-`
/// prefixed so listener SDKs strip it from what they show the application.
pub(crate) const PARAM_RENDEZVOUS: &str = "sb-hc-rendezvous";

/// Health check path (outside `/$hc/`, so it cannot clash with a hybrid connection).
const HEALTH_PATH: &str = "/healthz";

/// The client connection a request arrived on.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub slot: Arc<ConnectionSlot>,
}

/// A refusal plus the entity it concerns (for the `SystemTracker` part of the description).
struct Refused(Refusal, Option<String>);

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        Self(r, None)
    }
}

/// The relay's hyper service.
pub(crate) async fn handle(
    relay: Arc<Relay>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if conn.slot.overflow {
        let refusal = Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServerBusy: the relay is at its connection limit",
        )
        .retry_after(1);
        return Ok(refuse(&relay, &conn, Refused(refusal, None)));
    }
    Ok(match route(&relay, &conn, req).await {
        Ok(response) => response,
        Err(refused) => refuse(&relay, &conn, refused),
    })
}

fn refuse(relay: &Relay, conn: &ConnInfo, Refused(refusal, hc): Refused) -> Response<Body> {
    let tracking_id = uuid::Uuid::new_v4().to_string();
    let status = refusal.status.as_u16();
    if matches!(status, 401 | 403) {
        tracing::info!(peer = %conn.peer, status, %tracking_id, reason = %refusal.description, "refused");
    } else {
        tracing::debug!(peer = %conn.peer, status, %tracking_id, reason = %refusal.description, "refused");
    }
    relay.stats.update(|s| {
        s.refused_total += 1;
        *s.refused_by_status.entry(status).or_default() += 1;
    });
    let tracker = hc.map(|hc| format!("{}:hybridconnection:{hc}", relay.system_name(conn)));
    refusal.into_response(&tracking_id, tracker.as_deref())
}

/// What an action works on: the relay, the client connection, the hybrid connection and the
/// request's query.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub relay: &'a Arc<Relay>,
    pub conn: &'a Arc<ConnInfo>,
    pub hc: &'a Arc<HcEntry>,
    pub query: &'a Query<'a>,
}

impl Target<'_> {
    /// Checks a sender's Send token (WebSocket or HTTP request mode) when the hybrid
    /// connection requires client authorization.
    pub(crate) fn authorize_send(
        &self,
        token: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        if self.hc.config.requires_client_authorization {
            self.relay.auth.authorize(
                &self.hc.config,
                token,
                Right::Send,
                unix_now(),
                request_host(headers),
            )?;
        }
        Ok(())
    }
}

async fn route(
    relay: &Arc<Relay>,
    conn: &Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Refused> {
    let path = req.uri().path().to_owned();
    if path == HEALTH_PATH {
        return Ok(ok_text("ok\n"));
    }
    let raw_query = req.uri().query().unwrap_or_default().to_owned();
    let query = Query::parse(&raw_query);
    let Some(entity) = hc_path(&path) else {
        // HTTP mode relays requests, not upgrades: a WebSocket belongs under /$hc/.
        if req.headers().contains_key(header::UPGRADE) {
            return Err(Refusal::not_found(
                "not a Hybrid Connections path: WebSockets use /$hc/{name}",
            )
            .into());
        }
        return http_request(relay, conn, &path, &query, req).await;
    };
    let action = query
        .get(PARAM_ACTION)
        .and_then(Action::parse)
        .ok_or_else(|| {
            Refusal::bad_request(format!(
                "{PARAM_ACTION} must be listen, connect, accept or request"
            ))
        })?;
    let Some((hc, suffix)) = relay.hub.find(entity) else {
        return Err(Refused(
            Refusal::not_found(format!(
                "EndpointNotFound: hybrid connection '{entity}' does not exist"
            )),
            Some(entity.to_owned()),
        ));
    };
    let tag = |r: Refusal| Refused(r, Some(hc.name.clone()));
    let at = Target {
        relay,
        conn,
        hc: &hc,
        query: &query,
    };
    match action {
        Action::Listen if suffix.is_empty() => listen(&at, req).map_err(tag),
        Action::Listen => Err(tag(Refusal::not_found(format!(
            "EndpointNotFound: hybrid connection '{entity}' does not exist"
        )))),
        Action::Connect => connect(&at, &suffix, req).await.map_err(tag),
        Action::Accept => accept(&at, req).map_err(tag),
        Action::Request => http_mode::rendezvous(&at, req).map_err(tag),
    }
}

/// A plain HTTP request outside `/$hc/`: HTTP mode for the hybrid connection it names.
async fn http_request(
    relay: &Arc<Relay>,
    conn: &Arc<ConnInfo>,
    path: &str,
    query: &Query<'_>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Refused> {
    let entity = path.trim_matches('/');
    let Some((hc, _suffix)) = relay.hub.find(entity) else {
        return Err(Refused(
            Refusal::not_found(format!(
                "EndpointNotFound: no hybrid connection matches '{entity}' (WebSockets use \
                 /$hc/{{name}}, HTTP requests /{{name}}[/more])"
            )),
            (!entity.is_empty()).then(|| entity.to_owned()),
        ));
    };
    let at = Target {
        relay,
        conn,
        hc: &hc,
        query,
    };
    http_mode::serve(&at, path, req)
        .await
        .map_err(|r| Refused(r, Some(hc.name.clone())))
}

/// `ws(s)://{host the client used}`: the base of accept addresses handed to a listener.
fn base_url(relay: &Relay, conn: &ConnInfo, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| conn.local.to_string());
    format!("{}://{host}", if relay.tls { "wss" } else { "ws" })
}

fn listen(at: &Target<'_>, mut req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let Target {
        relay,
        conn,
        hc,
        query,
    } = *at;
    if !relay.admission.allow_listen(conn.peer.ip()) {
        return Err(Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests: too many listen attempts from this address; back off",
        )
        .retry_after(relay.admission.listen_retry_after()));
    }
    let token = request_token(req.headers(), &query.pairs);
    let reached_as = request_host(req.headers()).map(str::to_owned);
    let authorized = relay.auth.authorize(
        &hc.config,
        token,
        Right::Listen,
        unix_now(),
        reached_as.as_deref(),
    )?;
    conn.slot.authenticated();
    let key = upgrade_key(&req)?;
    let mut slot = relay.hub.reserve_listener(hc)?;
    let base = base_url(relay, conn, req.headers());
    let upgrade = hyper::upgrade::on(&mut req);
    let id = relay.hub.next_listener_id();
    // Register before answering 101: once the listener sees its handshake succeed it may tell
    // senders it is ready, and a sender arriving before the upgrade task runs must find it.
    // Accepts queue in the channel until the control channel starts reading them.
    let (accepts, lost) = slot.register(id, base);
    let relay2 = relay.clone();
    let conn2 = conn.clone();
    let hc2 = hc.clone();
    let span = tracing::info_span!("listener", hc = %hc.name, id, peer = %conn.peer);
    relay.tasks.spawn(
        async move {
            let hs = relay2.limits.handshake_timeout;
            let ws = match tokio::time::timeout(
                hs,
                handshake::upgraded(upgrade, handshake::control_ws_config()),
            )
            .await
            {
                Ok(Ok(ws)) => ws,
                _ => return tracing::debug!("upgrade did not complete"),
            };
            tracing::info!("listener registered");
            let channel = ControlChannel {
                accepts,
                listener_id: id,
                exchanges: relay2.hub.exchanges.clone(),
                expiry: authorized.expiry,
                renew: renew_check(&relay2, &hc2, reached_as),
                ping_interval: relay2.limits.control_ping_interval,
                shutdown: relay2.shutdown.clone(),
                lost,
            };
            let ended = control_channel::run(ws, channel).await;
            relay2.hub.exchanges.listener_gone(id);
            match ended {
                Ended::ByListener => tracing::info!("listener disconnected"),
                Ended::ByRelay(code, reason) => {
                    tracing::info!(code, %reason, "listener closed by relay")
                }
            }
            drop(slot);
            drop(conn2);
            // A listener's control channel holds buffers like a bridge does: let the trim
            // loop hand them back once listeners leave (10,000 closed listeners kept ~170 MB
            // of a relay's RSS until a bridge happened to end; docs/performance.md).
            heap_trim::released();
        }
        .instrument(span),
    );
    Ok(switching_protocols(&key, None))
}

/// How the control channel checks a listener's renewed token: as its first one, for the same
/// hybrid connection, and naming the host the channel was opened to.
fn renew_check(relay: &Relay, hc: &HcEntry, reached_as: Option<String>) -> RenewCheck {
    let auth = relay.auth.clone();
    let hc_config = hc.config.clone();
    Box::new(move |t| {
        auth.authorize(
            &hc_config,
            Some(t),
            Right::Listen,
            unix_now(),
            reached_as.as_deref(),
        )
        .map(|a| a.expiry)
    })
}

async fn connect(
    at: &Target<'_>,
    suffix: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    // Rendezvous latency counts from here: the sender's request arrived.
    let arrived = tokio::time::Instant::now();
    let Target {
        relay,
        conn,
        hc,
        query,
    } = *at;
    at.authorize_send(request_token(req.headers(), &query.pairs), req.headers())?;
    conn.slot.authenticated();
    let key = upgrade_key(&req)?;
    let no_listener = Refusal::not_found(format!(
        "EndpointNotFound: no listener is connected to hybrid connection '{}'",
        hc.name
    ));
    if !hc.has_listeners() {
        return Err(no_listener);
    }
    let id = query
        .get(PARAM_ID)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (rendezvous, arrival, _guard) = relay
        .hub
        .open_rendezvous(hc, offered_protocols(req.headers()));
    let message = accept_message(at, suffix, &id, &rendezvous, req.headers());
    // One deadline for both steps: in a burst the sender may first wait for room in the
    // listeners' accept queues (backpressure, not refusal), then for the dial-back.
    let wait = relay.limits.rendezvous_timeout;
    let timed_out = Refusal::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "GatewayTimeout: the listener did not accept the connection within {} s",
            wait.as_secs_f64()
        ),
    );
    let unanswered = Unanswered {
        no_listener,
        timed_out,
    };
    let deadline = arrived + wait;
    let outcome = hand_over(relay, hc, message, arrival, deadline, unanswered).await?;
    tracing::debug!(hc = %hc.name, %id, peer = %conn.peer, "listener answered the accept");
    let (protocol, listener) = match outcome {
        Ok(Arrival::Accepted {
            protocol,
            upgrade,
            slot,
        }) => (protocol, (upgrade, slot)),
        Ok(Arrival::Rejected(refusal)) => return Err(refusal),
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                "the listener's rendezvous failed",
            ));
        }
    };
    let sender = (hyper::upgrade::on(&mut req), conn.slot.clone());
    let span = tracing::debug_span!("bridge", hc = %hc.name, %id, peer = %conn.peer);
    // Counted before the sender hears its 101: the bridge itself starts on another thread,
    // and whoever saw the 101 must find it counted.
    relay.stats.update(|s| {
        s.bridged += 1;
        s.bridged_total += 1;
    });
    let bridged = run_bridge(relay.clone(), sender, listener, arrived).instrument(span);
    match &relay.established {
        Some(established) => relay.tasks.spawn_on(bridged, established.handle()),
        None => relay.tasks.spawn(bridged),
    };
    Ok(switching_protocols(&key, protocol.as_deref()))
}

/// Builds the accept message for each listener: the sender's path suffix and application
/// query, the relay's parameters, its headers and address; the address starts with the
/// base URL the chosen listener used.
fn accept_message(
    at: &Target<'_>,
    suffix: &str,
    id: &str,
    rendezvous: &str,
    headers: &HeaderMap,
) -> impl Fn(&ListenerHandle) -> String + use<> {
    let mut path = format!("{HC_PATH_PREFIX}{}", at.hc.name);
    if !suffix.is_empty() {
        path.push('/');
        path.push_str(suffix);
    }
    let app_query = at.query.app_part();
    let relay_query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(PARAM_ACTION, Action::Accept.as_str())
        .append_pair(PARAM_ID, id)
        .append_pair(PARAM_RENDEZVOUS, rendezvous)
        .finish();
    let query_text = if app_query.is_empty() {
        relay_query
    } else {
        format!("{app_query}&{relay_query}")
    };
    let accept = Accept {
        address: String::new(),
        id: id.to_owned(),
        connect_headers: connect_headers(headers),
        remote_endpoint: Some(RemoteEndpoint {
            address: at.conn.peer.ip().to_canonical().to_string(),
            port: at.conn.peer.port(),
        }),
    };
    move |listener: &ListenerHandle| {
        let mut accept = accept.clone();
        accept.address = format!("{}{path}?{query_text}", listener.base_url);
        ControlMessage::Accept(accept).to_json()
    }
}

/// One side of a bridge: its pending upgrade and the connection slot it holds.
type Side = (hyper::upgrade::OnUpgrade, Arc<ConnectionSlot>);

/// Completes both upgrades (sender and listener) and bridges them until the bridge ends.
async fn run_bridge(
    relay: Arc<Relay>,
    (sender_upgrade, sender_slot): Side,
    (listener_upgrade, listener_slot): Side,
    arrived: tokio::time::Instant,
) {
    // The bridge speaks frames (crate::frames), not messages: it takes the raw connections.
    let both = futures_util::future::join(sender_upgrade, listener_upgrade);
    match tokio::time::timeout(relay.limits.handshake_timeout, both).await {
        Ok((Ok(sender), Ok(listener))) => {
            // Served by this runtime's driver from now on (see crate::established).
            let (sender, listener) = match (rehomed(sender), rehomed(listener)) {
                (Ok(sender), Ok(listener)) => (sender, listener),
                (Err(err), _) | (_, Err(err)) => {
                    tracing::debug!(error = %err, "a bridged connection was lost while moving it");
                    end_bridge(&relay, (sender_slot, listener_slot));
                    return;
                }
            };
            relay
                .stats
                .rendezvous_latency()
                .observe(arrived.elapsed().as_secs_f64());
            tracing::debug!("bridged");
            // The two handshakes' buffers are freed by now: after a burst of rendezvous they
            // leave the heap at its peak until trimmed, as ended tunnels do.
            heap_trim::released();
            let settings = BridgeSettings {
                idle_timeout: relay.limits.idle_timeout,
                peer_response_timeout: relay.limits.peer_response_timeout,
                max_frame: relay.limits.max_frame_size,
                read_chunk: relay.limits.read_buffer_size,
                drain: relay.drain.clone(),
                stats: relay.stats.clone(),
            };
            bridge(sender, listener, settings).await;
            tracing::debug!("bridge ended");
        }
        // One side vanished during its upgrade; dropping the other closes it.
        _ => tracing::debug!("rendezvous upgrade failed"),
    }
    end_bridge(&relay, (sender_slot, listener_slot));
}

/// A bridge counted when its sender was answered (in [`connect`]) is over:
/// uncounted, and its connection slots released.
fn end_bridge(relay: &Relay, slots: (Arc<ConnectionSlot>, Arc<ConnectionSlot>)) {
    relay
        .stats
        .update(|s| s.bridged = s.bridged.saturating_sub(1));
    drop(slots);
}

/// What a sender gets when no listener answers: none is connected, or not before the deadline.
pub(crate) struct Unanswered {
    pub no_listener: Refusal,
    pub timed_out: Refusal,
}

/// The wait every sender (WebSocket or HTTP) goes through: hand `message` to a listener of
/// `hc` (waiting for room in the accept queues if need be), then wait for the listener's
/// `answer` — both before `deadline`, and only while the relay is not shutting down.
pub(crate) async fn hand_over<M, T>(
    relay: &Relay,
    hc: &HcEntry,
    message: impl Fn(&ListenerHandle) -> M,
    answer: impl std::future::Future<Output = T>,
    deadline: tokio::time::Instant,
    unanswered: Unanswered,
) -> Result<T, Refusal>
where
    M: Into<Outbound>,
{
    let shutting_down = || {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServerBusy: the relay is shutting down",
        )
    };
    let listener = tokio::select! {
        () = relay.shutdown.cancelled() => return Err(shutting_down()),
        dispatched = tokio::time::timeout_at(deadline, hc.dispatch(message)) => match dispatched {
            Ok(Ok(listener)) => listener,
            Ok(Err(NoListener)) => return Err(unanswered.no_listener),
            Err(_) => return Err(unanswered.timed_out),
        },
    };
    // A listener found dead (frozen, vanished) will never answer: say so at once, with the
    // cause, rather than let the sender run into the deadline.
    tokio::select! {
        () = relay.shutdown.cancelled() => Err(shutting_down()),
        reason = listener.lost.wait() => Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!("ListenerLost: {reason}; it took the connection but did not accept it"),
        )),
        outcome = tokio::time::timeout_at(deadline, answer) => outcome.map_err(|_| unanswered.timed_out),
    }
}

fn accept(at: &Target<'_>, mut req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let Target {
        relay,
        conn,
        hc,
        query,
    } = *at;
    let invalid = || {
        Refusal::forbidden("the rendezvous address is not valid, was already used, or has expired")
    };
    let key = query.get(PARAM_RENDEZVOUS).ok_or_else(invalid)?;
    if let Some(code) = query.get(PARAM_STATUS_CODE) {
        let pending = relay.hub.take_rendezvous(key).ok_or_else(invalid)?;
        if !Arc::ptr_eq(&pending.hc, hc) {
            return Err(invalid());
        }
        let description = query
            .get(PARAM_STATUS_DESCRIPTION)
            .filter(|d| !d.is_empty())
            .unwrap_or("the listener rejected the connection");
        let refusal = match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) if status.is_client_error() || status.is_server_error() => {
                Refusal::new(status, description)
            }
            _ => Refusal::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the listener rejected the connection with an invalid status {code:?}: {description}"
                ),
            ),
        };
        let _ = pending.arrival.send(Arrival::Rejected(refusal));
        return Err(Refusal::new(
            StatusCode::GONE,
            "the connection was rejected as requested",
        ));
    }
    // A malformed dial-back leaves the rendezvous open: the listener may try again in time.
    let ws_key = upgrade_key(&req)?;
    let chosen = chosen_protocol(req.headers())?;
    let pending = relay.hub.take_rendezvous(key).ok_or_else(invalid)?;
    conn.slot.authenticated();
    if !Arc::ptr_eq(&pending.hc, hc) {
        let _ = pending.arrival.send(Arrival::Rejected(Refusal::new(
            StatusCode::BAD_GATEWAY,
            "the listener's rendezvous named another hybrid connection",
        )));
        return Err(invalid());
    }
    if let Some(chosen) = &chosen
        && !pending.offered_protocols.contains(&chosen.name)
    {
        let refusal = Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "the listener chose subprotocol '{}', which the sender did not offer",
                chosen.name
            ),
        );
        let _ = pending.arrival.send(Arrival::Rejected(refusal.clone()));
        return Err(refusal);
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let arrival = Arrival::Accepted {
        protocol: chosen.as_ref().map(|c| c.name.clone()),
        upgrade,
        slot: conn.slot.clone(),
    };
    if pending.arrival.send(arrival).is_err() {
        return Err(invalid());
    }
    let echo = chosen.filter(|c| c.echo_to_listener).map(|c| c.name);
    Ok(switching_protocols(&ws_key, echo.as_deref()))
}
