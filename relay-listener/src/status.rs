//! The relay-listener's live state, shared with whoever watches it (tests, the CLI, a later
//! admin page): whether the control channel is up, how often it reconnected, streams (admitted
//! here, up to `max_streams`) and byte counters, and the recent streams with the client, site
//! and source address each one had.
//! The state is [`Published`], so watchers can wait for a condition instead of polling.

use std::net::SocketAddr;
use std::sync::Arc;

use hc_client::ByteMeter;
use hc_client::slots::{FairSlots, Slot, SlotLimits, SlotRefusal};
use ops_http::{Heartbeat, Published};

use crate::identity::{ClientSource, RemoteClient};
use crate::loopback::Collision;

/// Most entries kept in [`ListenerSnapshot::recent_streams`].
pub const RECENT_STREAMS: usize = 64;

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Being pumped.
    Active,
    /// Ended (either side closed, idle timeout, shutdown).
    Ended,
    /// The target was unreachable (the sender was rejected with 502, or the multiplexed
    /// stream reset), or the stream's preamble was refused.
    Rejected,
    /// The dial-back to the relay failed.
    Failed,
}

/// One tunnelled connection as the listener saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The relay's connection id (`accept.id`).
    pub id: String,
    /// The real client.
    pub client: SocketAddr,
    /// Where `client` came from.
    pub client_from: ClientSource,
    /// The client's site.
    pub site: Option<String>,
    /// The address the target saw the connection come from (the mapped address in loopback
    /// mode); `None` when the target was not reached.
    pub source: Option<SocketAddr>,
    /// Active, ended, rejected or failed.
    pub state: StreamState,
}

impl StreamInfo {
    /// A stream of `client`.
    pub fn new(
        id: &str,
        client: &RemoteClient,
        source: Option<SocketAddr>,
        state: StreamState,
    ) -> Self {
        Self {
            id: id.to_owned(),
            client: client.addr,
            client_from: client.source,
            site: client.site.clone(),
            source,
            state,
        }
    }
}

/// A point-in-time copy of the listener's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSnapshot {
    /// The control channel is open.
    pub connected: bool,
    /// Control channels open now: one per relay replica when all are reachable.
    pub control_channels: u64,
    /// Times the control channel was opened.
    pub connections: u64,
    /// Times it was re-opened after being lost (`connections − 1` once up).
    pub reconnects: u64,
    /// Streams being pumped now (1:1 rendezvous and multiplexed streams).
    pub active_streams: u64,
    /// Pooled (multiplexed) relay connections open now.
    pub mux_connections: u64,
    /// Pre-opened 1:1 connections open now and still waiting for their client.
    pub preopened_waiting: u64,
    /// Streams accepted in total (rendezvous dialled back, multiplexed streams bridged).
    pub accepted: u64,
    /// Streams rejected (target unreachable, busy, azbridge port unknown, bad stream header).
    pub rejected: u64,
    /// Rendezvous that failed otherwise (dial-back refused, reject not delivered).
    pub failed: u64,
    /// Tokens renewed on the control channel.
    pub token_renewals: u64,
    /// The last connection problem, one line.
    pub last_error: Option<String>,
    /// The last stream rejected, one line (`… unknown azbridge port name "x" …`).
    pub last_rejection: Option<String>,
    /// Times two different clients were given the same loopback source address.
    pub identity_collisions: u64,
    /// The most recent streams, oldest first, at most [`RECENT_STREAMS`]; when full, the oldest
    /// finished entry makes room first, so active streams stay listed.
    pub recent_streams: Vec<StreamInfo>,
}

impl ListenerSnapshot {
    /// The streams being pumped now (among the recent ones).
    pub fn active(&self) -> impl Iterator<Item = &StreamInfo> {
        self.recent_streams
            .iter()
            .filter(|s| s.state == StreamState::Active)
    }
}

/// A cloneable handle on the listener's state.
#[derive(Clone, Debug)]
pub struct ListenerStatus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Published<ListenerSnapshot>,
    bytes: ByteMeter,
    heartbeat: Heartbeat,
    slots: FairSlots<ClientKey>,
}

/// Whose stream slots are counted together: one client address at one site.
pub(crate) type ClientKey = (Option<String>, std::net::IpAddr);

/// The live-stream slot of one stream, released when its target has gone
/// (`hc_client::slots::Held`) or when the stream ends.
pub(crate) type StreamSlot = Slot<ClientKey>;

impl Default for ListenerStatus {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Published::default(),
                bytes: ByteMeter::default(),
                heartbeat: Heartbeat::default(),
                slots: FairSlots::default(),
            }),
        }
    }
}

impl ListenerStatus {
    /// The current state.
    pub fn snapshot(&self) -> ListenerSnapshot {
        self.inner.state.snapshot()
    }

    /// Payload byte counters of all streams (to the relay = from the target).
    pub fn bytes(&self) -> &ByteMeter {
        &self.inner.bytes
    }

    /// The heartbeat of the listener's main loop (connecting, serving the control channel,
    /// waiting to reconnect): it beats while [`RelayListener::run`](crate::RelayListener::run)
    /// is polled, so a stuck task stops it.
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.inner.heartbeat
    }

    /// The listener's liveness: its main loop beat within `max_age`
    /// ([`LIVENESS_MAX_AGE`](ops_http::heartbeat::LIVENESS_MAX_AGE)). A relay that cannot be
    /// reached does not make it unlive: reconnecting is its job.
    ///
    /// # Errors
    /// The loop has not run, or stalled.
    pub fn liveness(&self, max_age: std::time::Duration) -> Result<(), String> {
        self.inner
            .heartbeat
            .check("the relay-listener's main loop", max_age)
    }

    /// Waits until `condition` holds and returns that state.
    pub async fn wait_for(
        &self,
        condition: impl FnMut(&ListenerSnapshot) -> bool,
    ) -> ListenerSnapshot {
        self.inner.state.wait_for(condition).await
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut ListenerSnapshot)) {
        self.inner.state.update(change);
    }

    /// Admits one more stream of `client` when a live-stream slot is free for it (see
    /// `hc_client::slots`: at most `max_streams`, at most `per_client` per site and address,
    /// and no more than a fair share under contention). Returns the guard that uncounts the
    /// active stream however it ends, and the slot, which the caller releases as soon as the
    /// target has gone. `Err`: the listener is busy for this client (the caller rejects the
    /// stream its own way).
    pub(crate) fn admit_stream(
        &self,
        client: &RemoteClient,
        max_streams: u64,
        per_client: Option<u64>,
    ) -> Result<(Counted<'_>, StreamSlot), SlotRefusal> {
        let capacity = usize::try_from(max_streams).unwrap_or(usize::MAX);
        let limits = SlotLimits {
            capacity,
            per_key: per_client.map_or(capacity, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        let key = (client.site.clone(), client.addr.ip());
        let slot = self.inner.slots.try_acquire(key, limits)?;
        Ok((self.counted(|s| &mut s.active_streams), slot))
    }

    /// Counts one more in `gauge` until the returned guard is dropped, however what it counts
    /// ends (an active stream, a pooled connection, a pre-opened one waiting).
    pub(crate) fn counted(&self, gauge: fn(&mut ListenerSnapshot) -> &mut u64) -> Counted<'_> {
        self.update(|s| *gauge(s) += 1);
        Counted {
            status: self,
            gauge,
        }
    }

    /// Streams holding a live-stream slot now (their target has not gone yet).
    pub fn live_streams(&self) -> usize {
        self.inner.slots.in_use()
    }

    /// Lists a new stream, making room if the list is full.
    pub(crate) fn stream_started(&self, info: StreamInfo) {
        self.update(|s| {
            let list = &mut s.recent_streams;
            if list.len() >= RECENT_STREAMS {
                let victim = list
                    .iter()
                    .position(|e| e.state != StreamState::Active)
                    .unwrap_or(0);
                list.remove(victim);
            }
            list.push(info);
        });
    }

    /// Lists a stream that reached its target as active (and says so in a debug line, `what`
    /// naming the kind of stream) and returns the guard that marks it finished (as
    /// [`Listed::end`] says, `Ended` unless the caller changes it) however the stream ends.
    pub(crate) fn list_active<'a>(
        &'a self,
        id: &'a str,
        client: &RemoteClient,
        source: Option<SocketAddr>,
        what: &str,
    ) -> Listed<'a> {
        tracing::debug!(
            id,
            client = %client.addr,
            from = %client.source,
            site = client.site_label(),
            source = ?source,
            "connected target for {what}"
        );
        self.stream_started(StreamInfo::new(id, client, source, StreamState::Active));
        Listed {
            status: self,
            id,
            end: StreamState::Ended,
        }
    }

    /// Counts and reports a loopback identity collision the target connection ran into: two
    /// clients now share a source address, which the target cannot tell apart.
    pub(crate) fn identity_collision(&self, collision: Option<&Collision>) {
        if let Some(collision) = collision {
            self.update(|s| s.identity_collisions += 1);
            tracing::warn!("client identity collision: {collision}");
        }
    }

    /// Marks the latest active stream with `id` as finished.
    pub(crate) fn stream_finished(&self, id: &str, state: StreamState) {
        self.update(|s| {
            if let Some(e) = s
                .recent_streams
                .iter_mut()
                .rev()
                .find(|e| e.id == id && e.state == StreamState::Active)
            {
                e.state = state;
            }
        });
    }

    /// Counts a rejected stream and keeps its reason.
    pub(crate) fn rejected(&self, line: String) {
        self.update(|s| {
            s.rejected += 1;
            s.last_rejection = Some(line);
        });
    }

    pub(crate) fn connected(&self) {
        self.update(|s| {
            s.control_channels += 1;
            s.connected = true;
            s.connections += 1;
            s.reconnects = s.connections - 1;
            s.last_error = None;
        });
    }

    /// A control channel that was open ended (`error`: why, unless on shutdown).
    pub(crate) fn disconnected(&self, error: Option<String>) {
        self.update(|s| {
            s.control_channels = s.control_channels.saturating_sub(1);
            s.connected = s.control_channels > 0;
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    /// A control channel could not be opened.
    pub(crate) fn dial_failed(&self, error: String) {
        self.update(|s| s.last_error = Some(error));
    }
}

/// One counted in a gauge of the snapshot ([`ListenerStatus::counted`]): uncounted when
/// dropped.
#[derive(Debug)]
pub(crate) struct Counted<'a> {
    status: &'a ListenerStatus,
    gauge: fn(&mut ListenerSnapshot) -> &mut u64,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let gauge = self.gauge;
        self.status.update(|s| {
            let n = gauge(s);
            *n = n.saturating_sub(1);
        });
    }
}

/// A listed stream ([`ListenerStatus::list_active`]): marks its entry finished when dropped.
#[derive(Debug)]
pub(crate) struct Listed<'a> {
    status: &'a ListenerStatus,
    id: &'a str,
    /// The state the entry ends in.
    pub(crate) end: StreamState,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.status.stream_finished(self.id, self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: usize, state: StreamState) -> StreamInfo {
        let client = RemoteClient {
            addr: "192.0.2.7:1".parse().expect("addr"),
            site: Some("a".into()),
            source: ClientSource::FromHeader,
        };
        StreamInfo::new(&id.to_string(), &client, None, state)
    }

    #[test]
    fn streams_are_admitted_up_to_the_limit_and_uncounted_when_dropped() {
        let status = ListenerStatus::default();
        let client = |ip: &str| RemoteClient {
            addr: format!("{ip}:1").parse().expect("addr"),
            site: Some("a".into()),
            source: ClientSource::FromHeader,
        };
        let (a, b) = (client("192.0.2.7"), client("192.0.2.8"));
        let first = status.admit_stream(&a, 2, None).expect("first");
        let second = status.admit_stream(&a, 2, None).expect("second");
        assert!(status.admit_stream(&b, 2, None).is_err(), "over the limit");
        assert_eq!(status.snapshot().active_streams, 2);
        assert_eq!(status.live_streams(), 2);
        drop(first);
        assert_eq!(status.snapshot().active_streams, 1);
        let third = status.admit_stream(&b, 2, None).expect("a place was freed");
        drop((second, third));
        assert_eq!(status.snapshot().active_streams, 0);
        assert_eq!(status.live_streams(), 0);
        // One client may be held to fewer than the whole capacity.
        let one = status.admit_stream(&a, 4, Some(1)).expect("one");
        assert!(status.admit_stream(&a, 4, Some(1)).is_err(), "per client");
        assert!(status.admit_stream(&b, 4, Some(1)).is_ok());
        drop(one);
    }

    #[test]
    fn recent_streams_are_bounded_and_keep_active_ones() {
        let status = ListenerStatus::default();
        status.stream_started(info(0, StreamState::Active));
        for i in 1..RECENT_STREAMS * 3 {
            status.stream_started(info(i, StreamState::Active));
            status.stream_finished(&i.to_string(), StreamState::Ended);
        }
        let s = status.snapshot();
        assert_eq!(s.recent_streams.len(), RECENT_STREAMS);
        assert_eq!(s.recent_streams[0].id, "0", "the active stream was dropped");
        assert_eq!(s.active().count(), 1);
        let last = s.recent_streams.last().expect("last");
        assert_eq!(
            (last.id.as_str(), last.state),
            (
                (RECENT_STREAMS * 3 - 1).to_string().as_str(),
                StreamState::Ended
            )
        );
        // Only active streams are overwritten by a finish.
        status.stream_finished("0", StreamState::Failed);
        status.stream_finished("0", StreamState::Ended);
        assert_eq!(
            status.snapshot().recent_streams[0].state,
            StreamState::Failed
        );
    }
}
