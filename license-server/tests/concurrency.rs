//! Many concurrent clients over TCP on a multi-threaded runtime: the seats taken never exceed
//! the AppSlot's limit and return to zero after logout.

mod common;

use std::sync::Arc;

use common::{LIMIT, SLOT, at, config, start};
use license_core::ErrorCode;
use license_core::engine::SeatEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_never_exceed_the_limit() {
    const LIMIT_SEATS: u32 = 5;
    const CLIENTS: usize = 40;
    let run = start(config(LIMIT_SEATS)).await;
    // Track the highest taken count the engine ever reported.
    let peak = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let p = peak.clone();
    run.server.set_observer(Box::new(move |e: &SeatEvent| {
        p.fetch_max(e.taken, std::sync::atomic::Ordering::SeqCst);
    }));
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..CLIENTS {
            let api = if i % 2 == 0 {
                run.client()
            } else {
                run.persistent_client()
            };
            tasks.push(tokio::spawn(async move {
                api.init().await.expect("init");
                let got = api.login(at(SLOT)).await;
                if let Ok(left) = got {
                    assert!((0..5).contains(&left), "{left}");
                } else {
                    assert_eq!(got, Err(ErrorCode::NoLicense));
                }
                (api, got.is_ok())
            }));
        }
        let mut apis = Vec::new();
        let mut winners = 0;
        for t in tasks {
            let (api, won) = tokio::time::timeout(LIMIT, t)
                .await
                .expect("in time")
                .expect("task");
            winners += usize::from(won);
            apis.push(api);
        }
        assert_eq!(winners, LIMIT_SEATS as usize, "round {round}");
        assert_eq!(run.taken(SLOT), LIMIT_SEATS);
        let mut releases = Vec::new();
        for api in apis {
            releases.push(tokio::spawn(async move {
                let _ = api.logout(at(SLOT)).await;
                api.release().await.expect("release");
            }));
        }
        for r in releases {
            tokio::time::timeout(LIMIT, r)
                .await
                .expect("in time")
                .expect("task");
        }
        assert_eq!(run.taken(SLOT), 0, "round {round}");
        assert!(run.server.snapshot().sessions.is_empty());
    }
    assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), LIMIT_SEATS);
    run.stop().await;
}
