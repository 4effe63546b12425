//! The license server's Prometheus metrics. The request path only bumps atomic counters
//! ([`Counters`]: answers by command, errors by code, connections, admin actions); everything
//! else — seats taken, limit and peak per AppSlot, sessions, logins, dongles, PROXY headers,
//! the engine's heartbeat, the state database — is read from the server's state when scraped
//! ([`LicenseCollector`]), so a metric can never disagree with the status page.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use ops_http::metrics::{Labels, count, counter, counters, gauge, gauges};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use crate::server::LicenseServer;
use license_core::engine::{AppSlotStatus, StatusSnapshot};
use license_core::error::ErrorCode;
use license_core::protocol::Command;

/// Label values of the `command` label, by command code (0: an unknown code).
const COMMANDS: [&str; 10] = [
    "unknown",
    "init",
    "release",
    "login",
    "logout",
    "dongle_count",
    "read_ser_nr",
    "login_count",
    "login_count_ex",
    "read_data",
];

/// An administrator action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// A session was disconnected.
    Disconnect,
    /// A login was logged out.
    Logout,
}

/// The counters the request path bumps.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    answers: [AtomicU64; COMMANDS.len()],
    errors: [AtomicU64; ErrorCode::ALL.len()],
    connections: AtomicU64,
    /// Connections closed at once: their address had no room in the connection table.
    connections_refused: AtomicU64,
    admin: [AtomicU64; 2],
}

impl Counters {
    /// One answer to `command` (its code) with return value `value`.
    pub(crate) fn answer(&self, command: u16, value: i32) {
        let index = Command::from_code(command).map_or(0, |c| usize::from(c.code()));
        if let Some(c) = self.answers.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if value < 0
            && let Some(i) = ErrorCode::ALL.iter().position(|e| e.code() == value)
        {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn admin(&self, action: AdminAction) {
        self.admin[action as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads the server's state at each scrape.
#[derive(Debug)]
pub struct LicenseCollector {
    server: LicenseServer,
}

impl LicenseCollector {
    /// A collector for `server`.
    pub fn new(server: LicenseServer) -> Self {
        Self { server }
    }
}

fn label(v: impl Into<Cow<'static, str>>) -> Cow<'static, str> {
    v.into()
}

impl Collector for LicenseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        encode_state(e, &self.server.snapshot())?;
        encode_traffic(e, &self.server)?;
        encode_health(e, &self.server)
    }
}

/// What the engine holds now: seats per AppSlot, dongles, sessions, logins.
fn encode_state(e: &mut DescriptorEncoder<'_>, snapshot: &StatusSnapshot) -> std::fmt::Result {
    let slots: Vec<(Labels, &AppSlotStatus)> = snapshot
        .dongles
        .iter()
        .flat_map(|d| {
            d.slots.iter().map(move |s| {
                let labels: Labels = vec![
                    ("dongle", label(d.name.clone())),
                    ("dongle_key", label(d.key.clone())),
                    ("slot", label(s.slot.to_string())),
                    ("appslot", label(s.name.clone())),
                ];
                (labels, s)
            })
        })
        .collect();
    let per_slot =
        |f: fn(&AppSlotStatus) -> u32| slots.iter().map(move |(l, s)| (l.clone(), i64::from(f(s))));
    gauges(
        e,
        "seats_taken",
        "Seats taken now, per AppSlot.",
        per_slot(|s| s.taken),
    )?;
    gauges(
        e,
        "seats_limit",
        "Seats of the AppSlot.",
        per_slot(|s| s.limit),
    )?;
    gauges(
        e,
        "seats_peak",
        "Most seats taken at once since the server started.",
        per_slot(|s| s.peak),
    )?;
    let present = snapshot
        .dongles
        .iter()
        .filter(|d| d.number.is_some())
        .count();
    gauge(
        e,
        "dongles_present",
        "Dongles present and usable.",
        count(present),
    )?;
    gauge(
        e,
        "sessions",
        "Open sessions.",
        count(snapshot.sessions.len()),
    )?;
    gauge(
        e,
        "logins",
        "Login records (a seat may have several in per-IP mode).",
        count(snapshot.logins.len()),
    )
}

/// What the server answered and accepted: requests, errors, connections, PROXY headers,
/// administrator actions.
fn encode_traffic(e: &mut DescriptorEncoder<'_>, server: &LicenseServer) -> std::fmt::Result {
    let c = &server.shared().counters;
    counters(
        e,
        "requests",
        "Requests answered, by command.",
        COMMANDS.iter().zip(&c.answers).map(|(name, n)| {
            let labels: Labels = vec![("command", label(*name))];
            (labels, n.load(Ordering::Relaxed))
        }),
    )?;
    counters(
        e,
        "errors",
        "Error answers, by return code (docs/error-codes.md).",
        ErrorCode::ALL
            .iter()
            .zip(&c.errors)
            .map(|(code, n)| (code, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(code, n)| {
                let labels: Labels = vec![("code", label(code.code().to_string()))];
                (labels, n)
            }),
    )?;
    counter(
        e,
        "connections",
        "TCP connections accepted.",
        c.connections.load(Ordering::Relaxed),
    )?;
    counter(
        e,
        "connections_refused",
        "TCP connections closed at once: their client address had no room left \
         (MaxConnectionsPerAddress, MaxConnections).",
        c.connections_refused.load(Ordering::Relaxed),
    )?;
    gauge(
        e,
        "connections_open",
        "TCP connections open now.",
        i64::try_from(server.open_connections()).unwrap_or(i64::MAX),
    )?;
    let proxy = server.proxy_header_stats();
    counters(
        e,
        "proxy_headers",
        "PROXY v2 headers: accepted from trusted peers, refused from untrusted ones, malformed.",
        [
            ("accepted", proxy.accepted),
            ("untrusted", proxy.refused_untrusted),
            ("malformed", proxy.malformed),
        ]
        .map(|(result, n)| {
            let labels: Labels = vec![("result", label(result))];
            (labels, n)
        }),
    )?;
    counters(
        e,
        "admin_actions",
        "Administrator actions through the admin endpoint or the library.",
        [("disconnect", &c.admin[0]), ("logout", &c.admin[1])].map(|(action, n)| {
            let labels: Labels = vec![("action", label(action))];
            (labels, n.load(Ordering::Relaxed))
        }),
    )?;
    Ok(())
}

/// Whether the server is alive and its state is being written: heartbeat age, store queue.
fn encode_health(e: &mut DescriptorEncoder<'_>, server: &LicenseServer) -> std::fmt::Result {
    let age = server.heartbeat_age().map_or(-1.0, |a| a.as_secs_f64());
    gauge(
        e,
        "heartbeat_age_seconds",
        "Seconds since the engine's periodic sweep last ran (-1 before the first).",
        age,
    )?;
    if let Some(store) = server.store_status() {
        gauge(
            e,
            "store_queued",
            "State changes waiting to be written.",
            count(store.queued),
        )?;
        counter(
            e,
            "store_writes",
            "State changes written to the state database.",
            store.writes,
        )?;
        counter(
            e,
            "store_errors",
            "Failed writes to the state database.",
            store.errors,
        )?;
    }
    Ok(())
}

/// A registry (prefix `license`) with the server's metrics.
pub fn registry(server: &LicenseServer) -> Registry {
    let mut registry = Registry::with_prefix("license");
    registry.register_collector(Box::new(LicenseCollector::new(server.clone())));
    registry
}
