//! Acceptance of the usage history (issue 18): a scripted week of logins, logouts, releases,
//! refusals and a login timeout at three sites, driven through the server's engine with an
//! injected wall clock that follows paused tokio time, with a restart (a new server on the
//! same state database) in the middle. The events CSV of `GET /api/usage` matches the script
//! exactly, the JSON summary has the right peaks, time at the limit and refusals per AppSlot
//! and site, and nothing recorded before the restart is lost.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{LIMIT, config};
use license_core::SlotRef;
use license_core::clock::{Instant, SharedWallClock, TokioClock};
use license_core::engine::{ClientInfo, SessionId, SessionSecret};
use license_server::config::ServerConfig;
use license_server::store::{UsageEvent, UsageKind};
use license_server::usage::render;
use license_server::{LicenseServer, admin};
use ops_http::BearerToken;
use tokio_util::sync::CancellationToken;

/// Monday 2026-11-30 00:00 UTC.
const WEEK: u64 = 1_795_996_800_000;
const HOUR: u64 = 3_600_000;
const MIN: u64 = 60_000;
const TOKEN: &str = "usage-history-test-token-0123456789";
const CAD: u16 = 1;
const VIEWER: u16 = 2;

/// The scripted server, the clock it shares with the test, and what the script expects.
struct Script {
    server: LicenseServer,
    clock: SharedWallClock,
    start: Instant,
    expected: Vec<UsageEvent>,
    dongle_key: String,
}

fn server(cfg: &ServerConfig, clock: &SharedWallClock) -> LicenseServer {
    test_support::license::simulated_server(cfg, clock.clone())
}

fn client(n: u8, site: Option<&str>) -> ClientInfo {
    ClientInfo {
        addr: SocketAddr::from(([192, 0, 2, n], 40_000 + u16::from(n))),
        site: site.map(str::to_owned),
        name: format!("host{n}"),
    }
}

impl Script {
    /// Moves tokio time (and so the wall clock) to `offset` ms after Monday 00:00.
    async fn goto(&self, offset: u64) {
        let target = self.start + Duration::from_millis(offset);
        let now = Instant::now();
        assert!(target >= now, "the script goes forward");
        tokio::time::advance(target - now).await;
        assert_eq!(self.clock.unix_millis(), WEEK + offset);
    }

    fn open(&self, who: &ClientInfo) -> SessionId {
        let now = Instant::now();
        self.server.with_engine(|e| {
            e.open_session(who.clone(), SessionSecret::new([7; 64]), 1, now)
                .expect("session")
        })
    }

    fn expect(
        &mut self,
        kind: UsageKind,
        slot: u16,
        session: SessionId,
        who: &ClientInfo,
        taken: u32,
    ) {
        let limit = if slot == CAD { 2 } else { 10 };
        self.expected.push(UsageEvent {
            at_ms: self.clock.unix_millis(),
            kind,
            dongle_key: self.dongle_key.clone(),
            slot,
            slot_name: if slot == CAD { "CAD" } else { "AppSlot2" }.to_owned(),
            session: session.get(),
            client_addr: who.addr.to_string(),
            site: who.site.clone(),
            code: (kind == UsageKind::Refused).then_some(-31),
            taken,
            limit,
        });
    }

    fn login(&mut self, session: SessionId, who: &ClientInfo, slot: u16) {
        let now = Instant::now();
        let result = self
            .server
            .with_engine(|e| e.login(session, SlotRef::first_dongle(slot), now));
        let taken = self.taken(slot);
        match result {
            Ok(_) => self.expect(UsageKind::Login, slot, session, who, taken),
            Err(_) => self.expect(UsageKind::Refused, slot, session, who, taken),
        }
    }

    fn logout(&mut self, session: SessionId, who: &ClientInfo, slot: u16) {
        let now = Instant::now();
        self.server
            .with_engine(|e| e.logout(session, SlotRef::first_dongle(slot), now))
            .expect("logout");
        let taken = self.taken(slot);
        self.expect(UsageKind::Logout, slot, session, who, taken);
    }

    fn release(&mut self, session: SessionId, freed: &[(u16, &ClientInfo)]) {
        let now = Instant::now();
        self.server
            .with_engine(|e| e.release(session, now))
            .expect("release");
        for (slot, who) in freed {
            let taken = self.taken(*slot);
            self.expect(UsageKind::Release, *slot, session, who, taken);
        }
    }

    fn taken(&self, slot: u16) -> u32 {
        self.server.snapshot().slot(slot).map_or(0, |s| s.taken)
    }

    fn flush(&self) {
        assert!(self.server.flush_store(LIMIT), "history written");
    }
}

/// One working day: Berlin and Paris take both CAD seats, a direct client is refused CAD and
/// uses the viewer; Berlin logs out at noon, everyone leaves at 17:00. `restart`: the server
/// is replaced at 10:00 while the seats are held.
async fn day(s: &mut Script, d: u64, restart: Option<&ServerConfig>) {
    let (berlin, paris, direct) = (
        client(1, Some("berlin")),
        client(2, Some("paris")),
        client(3, None),
    );
    let base = d * 24 * HOUR;
    s.goto(base + 8 * HOUR).await;
    let b = s.open(&berlin);
    s.login(b, &berlin, CAD);
    s.goto(base + 8 * HOUR + 30 * MIN).await;
    let p = s.open(&paris);
    s.login(p, &paris, CAD);
    s.goto(base + 9 * HOUR).await;
    let x = s.open(&direct);
    s.login(x, &direct, CAD);
    s.login(x, &direct, VIEWER);
    if let Some(cfg) = restart {
        s.goto(base + 10 * HOUR).await;
        s.flush();
        let store = s.server.store().expect("store").clone();
        store.close();
        s.server = server(cfg, &s.clock);
        let status = s.server.store_status().expect("store");
        assert_eq!(status.restored_logins, 3, "the seats held come back");
    }
    s.goto(base + 12 * HOUR).await;
    s.logout(b, &berlin, CAD);
    s.goto(base + 17 * HOUR).await;
    s.release(b, &[]);
    s.release(p, &[(CAD, &paris)]);
    s.logout(x, &direct, VIEWER);
    s.release(x, &[]);
}

async fn get(addr: SocketAddr, path: &str) -> ops_http::client::Answer {
    let answer = ops_http::client::call(addr, http::Method::GET, path, Some(TOKEN), None, LIMIT)
        .await
        .expect("answer");
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    answer
}

#[tokio::test(start_paused = true)]
async fn a_scripted_week_is_reported_exactly_and_survives_a_restart() {
    // Paused time runs the week's eight virtual days in moments; each HTTP step after it is
    // bounded by LIMIT in real time.
    tokio::time::timeout(Duration::from_secs(8 * 24 * 3600), scripted_week())
        .await
        .expect("in time");
}

// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn scripted_week() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let mut cfg = config(2);
    cfg.dongles[0].slot_names = [(CAD, "CAD".to_owned())].into();
    cfg.state_db = Some(path.clone());
    cfg.login_timeout = Duration::from_secs(10 * 3600);
    cfg.session_timeout = Duration::from_secs(2 * 24 * 3600);
    let clock: SharedWallClock = Arc::new(TokioClock::starting_at(WEEK));
    let first = server(&cfg, &clock);
    let dongle_key = first.snapshot().dongles[0].key.clone();
    let mut s = Script {
        server: first,
        clock,
        start: Instant::now(),
        expected: Vec::new(),
        dongle_key,
    };
    for d in 0..5 {
        let restart = (d == 3).then_some(&cfg);
        day(&mut s, d, restart).await;
    }
    // Saturday: a Berlin login never refreshed times out after LoginTimeOut (10 h).
    let berlin = client(4, Some("berlin"));
    s.goto(5 * 24 * HOUR + 10 * HOUR).await;
    let late = s.open(&berlin);
    s.login(late, &berlin, CAD);
    s.goto(5 * 24 * HOUR + 20 * HOUR + 1_000).await;
    s.server.with_engine(|e| e.sweep(Instant::now()));
    s.expect(UsageKind::LoginTimeout, CAD, late, &berlin, 0);
    s.flush();

    // Reports over HTTP, in real time from here (the wall clock stays on Saturday night).
    tokio::time::resume();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let endpoint = tokio::spawn(ops_http::serve(
        listener,
        admin::router(&s.server, None),
        Some(BearerToken::new(TOKEN).expect("token")),
        stop.clone(),
    ));
    let csv = get(
        addr,
        "/api/usage?from=2026-11-30&to=2026-12-06&report=events&format=csv",
    )
    .await;
    assert_eq!(
        csv.text(),
        render::events_csv(&s.expected).expect("csv"),
        "the events CSV is the script"
    );
    assert_eq!(s.expected.len(), 5 * 7 + 2, "7 events a day, 2 on Saturday");
    assert!(
        csv.text().lines().nth(3).is_some_and(|l| l
            .starts_with("2026-11-30T09:00:00.000Z,1796029200000,refused,")
            && l.contains(",192.0.2.3:40003,,-31,2,2")),
        "{}",
        csv.text()
    );

    let json = get(addr, "/api/usage?from=2026-11-30&to=2026-12-06&format=json").await;
    let summary = json.json().expect("json");
    let slots = summary["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 2, "{summary}");
    let cad = &slots[0];
    assert_eq!(
        (cad["slot"].as_u64(), cad["peak"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(cad["refusals"], 5);
    // 08:30 to 12:00 (211 whole minutes) at the limit, five days.
    assert_eq!(cad["hours_at_limit"], 17.58);
    let sites: Vec<_> = cad["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .map(|s| (s["site"].clone(), s["peak"].clone(), s["refusals"].clone()))
        .collect();
    assert_eq!(
        sites,
        [
            (serde_json::Value::Null, 0.into(), 5.into()),
            ("berlin".into(), 1.into(), 0.into()),
            ("paris".into(), 1.into(), 0.into()),
        ]
    );
    let viewer = &slots[1];
    assert_eq!(
        (viewer["peak"].as_u64(), viewer["refusals"].as_u64()),
        (Some(1), Some(0))
    );

    // Bad dates are refused with a reason.
    let bad = ops_http::client::call(
        addr,
        http::Method::GET,
        "/api/usage?from=30.11.2026",
        Some(TOKEN),
        None,
        LIMIT,
    )
    .await
    .expect("answer");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("is not a date"), "{}", bad.text());
    stop.cancel();
    tokio::time::timeout(LIMIT, endpoint)
        .await
        .expect("endpoint stops")
        .expect("task")
        .expect("served");
}
