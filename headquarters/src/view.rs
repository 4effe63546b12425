//! What the headquarters shows: for each host, its seats now (per AppSlot), its usage summary
//! and chart series for the period — or why they cannot be read — and one combined table of
//! every host's AppSlots. All hosts are asked at once, each within the configured time; a host
//! that fails is one error row and never holds up or breaks the others.

use std::time::Duration;

use futures_util::future::join_all;
use license_server::admin::AdminStatus;
use license_server::usage::{UsageSeries, UsageSummary};
use serde::{Deserialize, Serialize};

use crate::config::HostConfig;
use crate::fetch::{self, FetchError};

/// `GET /api/hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostsView {
    /// When the hosts were asked (Unix ms).
    pub fetched_at_ms: u64,
    /// The period asked for (the hosts' `from`/`to`), as given; `None`: the hosts' default.
    pub from: Option<String>,
    /// The end of the period, as given.
    pub to: Option<String>,
    /// Every host, in the configuration's order.
    pub hosts: Vec<HostView>,
    /// Every AppSlot of every host that answered.
    pub combined: Vec<CombinedRow>,
}

/// One host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    /// Its display name.
    pub name: String,
    /// How it is reached (no secret).
    pub via: String,
    /// Its status could be read.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
    /// The HTTP status of the failure, when the host or the relay answered one (401: the
    /// host's token was refused).
    pub error_status: Option<u16>,
    /// Its server's version.
    pub version: Option<String>,
    /// Its engine is live.
    pub live: Option<bool>,
    /// Sessions open now.
    pub sessions: Option<usize>,
    /// Its relay-listener's control channel is open (when it runs in the server's process).
    pub listener_connected: Option<bool>,
    /// Its AppSlots now.
    pub slots: Vec<SlotNow>,
    /// Its usage summary for the period.
    pub usage: Option<UsageSummary>,
    /// Why there is none (no state database, or the request failed).
    pub usage_error: Option<String>,
    /// Its usage over time (the charts' data).
    pub series: Option<UsageSeries>,
}

/// One AppSlot of a host, now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotNow {
    /// The dongle's name.
    pub dongle: String,
    /// The dongle's stable key.
    pub dongle_key: String,
    /// The dongle is present.
    pub present: bool,
    /// The AppSlot number.
    pub slot: u16,
    /// Its name.
    pub name: String,
    /// Its seats.
    pub limit: u32,
    /// Seats in use now.
    pub taken: u32,
}

/// One line of the combined table: a host's AppSlot, now and over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombinedRow {
    /// The host's display name.
    pub host: String,
    /// The dongle's name.
    pub dongle: String,
    /// The dongle's key.
    pub dongle_key: String,
    /// The AppSlot number.
    pub slot: u16,
    /// Its name.
    pub slot_name: String,
    /// Its seats.
    pub limit: u32,
    /// Seats in use now.
    pub taken: u32,
    /// The most in use at once over the period (`None`: no usage history).
    pub peak: Option<u32>,
    /// Seats in use on average over the period.
    pub average: Option<f64>,
    /// Hours during which every seat was taken.
    pub hours_at_limit: Option<f64>,
    /// Logins refused over the period.
    pub refusals: Option<u64>,
}

/// The period's parameters passed on to every host's `/api/usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Period {
    /// `from`, as the admin endpoint reads it.
    pub from: Option<String>,
    /// `to`.
    pub to: Option<String>,
}

impl Period {
    /// The query for `/api/usage` with `report` (summary or series).
    fn query(&self, report: &str) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("report", report);
        if let Some(from) = &self.from {
            query.append_pair("from", from);
        }
        if let Some(to) = &self.to {
            query.append_pair("to", to);
        }
        format!("/api/usage?{}", query.finish())
    }
}

/// Asks every host at once, each within `limit`.
pub async fn gather(
    hosts: &[HostConfig],
    period: &Period,
    limit: Duration,
    now_ms: u64,
) -> HostsView {
    let views = join_all(hosts.iter().map(|h| host_view(h, period, limit))).await;
    let combined = views.iter().flat_map(combined_rows).collect();
    HostsView {
        fetched_at_ms: now_ms,
        from: period.from.clone(),
        to: period.to.clone(),
        hosts: views,
        combined,
    }
}

async fn host_view(host: &HostConfig, period: &Period, limit: Duration) -> HostView {
    let summary_query = period.query("summary");
    let series_query = period.query("series");
    let asked = async {
        tokio::join!(
            fetch::get_json::<AdminStatus>(host, "/api/status"),
            fetch::get_json::<UsageSummary>(host, &summary_query),
            fetch::get_json::<UsageSeries>(host, &series_query),
        )
    };
    let mut view = HostView {
        name: host.name.clone(),
        via: host.route.describe(),
        reachable: false,
        error: None,
        error_status: None,
        version: None,
        live: None,
        sessions: None,
        listener_connected: None,
        slots: Vec::new(),
        usage: None,
        usage_error: None,
        series: None,
    };
    let Ok((status, usage, series)) = tokio::time::timeout(limit, asked).await else {
        view.error = Some(format!("no answer within {limit:?}"));
        tracing::warn!(host = %host.name, "headquarters: no answer within {limit:?}");
        return view;
    };
    match status {
        Ok(status) => fill_status(&mut view, &status),
        Err(e) => {
            tracing::warn!(host = %host.name, "headquarters: status: {e}");
            view.error_status = e.status();
            view.error = Some(e.to_string());
            return view;
        }
    }
    match (usage, series) {
        (Ok(usage), Ok(series)) => {
            view.usage = Some(usage);
            view.series = Some(series);
        }
        (Err(e), _) | (_, Err(e)) => view.usage_error = Some(usage_error(&e)),
    }
    view
}

fn fill_status(view: &mut HostView, status: &AdminStatus) {
    view.reachable = true;
    view.version = Some(status.server.version.clone());
    view.live = Some(status.server.live);
    view.sessions = Some(status.snapshot.sessions.len());
    view.listener_connected = status
        .relay_listener
        .state
        .as_ref()
        .map(|state| state.connected);
    view.slots = status
        .snapshot
        .dongles
        .iter()
        .flat_map(|d| {
            d.slots.iter().map(|s| SlotNow {
                dongle: d.name.clone(),
                dongle_key: d.key.clone(),
                present: d.number.is_some(),
                slot: s.slot,
                name: s.name.clone(),
                limit: s.limit,
                taken: s.taken,
            })
        })
        .collect();
}

/// A usage failure as the page says it (a server without a state database answers 404 with
/// its own explanation).
fn usage_error(e: &FetchError) -> String {
    match e {
        FetchError::Status { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The host's AppSlots with their usage over the period.
fn combined_rows(view: &HostView) -> Vec<CombinedRow> {
    view.slots
        .iter()
        .map(|s| {
            let usage = view.usage.as_ref().and_then(|u| {
                u.slots
                    .iter()
                    .find(|x| x.dongle_key == s.dongle_key && x.slot == s.slot)
            });
            let history = view.usage.is_some();
            CombinedRow {
                host: view.name.clone(),
                dongle: s.dongle.clone(),
                dongle_key: s.dongle_key.clone(),
                slot: s.slot,
                slot_name: s.name.clone(),
                limit: s.limit,
                taken: s.taken,
                // An AppSlot without events in the period was not used: zero, not unknown.
                peak: history.then(|| usage.map_or(0, |u| u.peak)),
                average: history.then(|| usage.map_or(0.0, |u| u.average)),
                hours_at_limit: history.then(|| usage.map_or(0.0, |u| u.hours_at_limit)),
                refusals: history.then(|| usage.map_or(0, |u| u.refusals)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HqConfig;

    /// A host that accepts the connection and never answers costs the view its time limit,
    /// no more, and shows as an error row (paused time: the limit passes at once).
    #[tokio::test(start_paused = true)]
    async fn a_silent_host_is_an_error_row_after_the_limit() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = silent.local_addr().expect("addr");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t"), "host-token-0123456789").expect("write");
        let config = HqConfig::parse(
            &format!("[[host]]\nname = \"quiet\"\nurl = \"http://{addr}\"\ntoken_file = \"t\""),
            dir.path(),
        )
        .expect("config");
        let limit = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let view = gather(&config.hosts, &Period::default(), limit, 0).await;
        assert_eq!(started.elapsed(), limit);
        let host = &view.hosts[0];
        assert!(!host.reachable);
        assert_eq!(host.error.as_deref(), Some("no answer within 10s"));
        assert!(view.combined.is_empty());
        drop(silent);
    }

    #[test]
    fn the_period_is_passed_on_encoded() {
        let period = Period {
            from: Some("2026-12-01T08:00:00+01:00".into()),
            to: None,
        };
        assert_eq!(
            period.query("series"),
            "/api/usage?report=series&from=2026-12-01T08%3A00%3A00%2B01%3A00"
        );
        assert_eq!(
            Period::default().query("summary"),
            "/api/usage?report=summary"
        );
    }
}
