//! Every command over real TCP on 127.0.0.1:0: with the client library (one connection per
//! call, as section 6.4 describes, and a persistent connection), the blocking and process-wide
//! APIs, and by hand with the raw protocol.

mod common;

use common::{LIMIT, Raw, SLOT, at, config, start};
use license_client::RemoteApi;
use license_core::ErrorCode;
use license_core::protocol::Request;

async fn every_command(api: &RemoteApi, run: &common::Running) {
    assert_eq!(
        api.login(at(SLOT)).await,
        Err(ErrorCode::NoSession),
        "-116 before init"
    );
    assert_eq!(api.init().await, Ok(1));
    assert_eq!(api.dongle_count().await, Ok(1));
    assert_eq!(api.read_ser_nr(0, 1).await, Ok(1_234_567_890));
    assert_eq!(api.read_ser_nr(0, 2).await, Err(ErrorCode::NoDongle));
    assert_eq!(api.login(at(SLOT)).await, Ok(2));
    assert_eq!(api.refresh(at(SLOT)).await, Ok(2));
    assert_eq!(api.login_count(at(SLOT)).await, Ok(1));
    let name = api.settings().client_name;
    assert_eq!(api.login_count_ex(at(SLOT)).await, Ok((1, vec![name])));
    assert_eq!(api.read_data(0, 1, 1, 5).await, Ok(vec![6, 7]));
    assert_eq!(run.taken(SLOT), 1);
    assert_eq!(api.logout(at(SLOT)).await, Ok(3));
    assert_eq!(api.logout(at(SLOT)).await, Err(ErrorCode::NotLoggedIn));
    assert_eq!(run.taken(SLOT), 0);
    assert_eq!(api.release().await, Ok(0));
    assert_eq!(api.release().await, Err(ErrorCode::NoSession));
    assert!(run.server.snapshot().sessions.is_empty());
}

#[tokio::test]
async fn every_command_one_connection_per_call() {
    let run = start(config(3)).await;
    let api = run.client();
    tokio::time::timeout(LIMIT, every_command(&api, &run))
        .await
        .expect("in time");
    run.stop().await;
}

#[tokio::test]
async fn every_command_on_a_persistent_connection() {
    let run = start(config(3)).await;
    let api = run.persistent_client();
    tokio::time::timeout(LIMIT, every_command(&api, &run))
        .await
        .expect("in time");
    run.stop().await;
}

/// Section 6.4 at the protocol level: the session outlives the connection that opened it;
/// each call opens, asks, reads and closes.
#[tokio::test]
async fn legacy_pattern_one_tcp_connection_per_call() {
    let run = start(config(3)).await;
    let now = || run.clock.unix_millis();
    let mut session = {
        let mut raw = Raw::connect(run.addr).await;
        raw.init(now()).await
    };
    for (request, expected) in [
        (Request::Login(at(SLOT)), 2),
        (Request::Login(at(SLOT)), 2),
        (Request::DongleCount, 1),
        (Request::LoginCount(at(SLOT)), 1),
        (Request::Logout(at(SLOT)), 3),
        (Request::Release, 0),
    ] {
        let mut raw = Raw::connect(run.addr).await;
        assert_eq!(
            raw.request(&mut session, &request, now()).await,
            expected,
            "{request:?}"
        );
        drop(raw);
    }
    let mut raw = Raw::connect(run.addr).await;
    assert_eq!(
        raw.request(&mut session, &Request::DongleCount, now())
            .await,
        ErrorCode::SessionPassword.code(),
        "released"
    );
    run.stop().await;
}

#[tokio::test]
async fn many_calls_on_one_raw_connection() {
    let run = start(config(3)).await;
    let now = run.clock.unix_millis();
    let mut raw = Raw::connect(run.addr).await;
    let mut session = raw.init(now).await;
    for _ in 0..50 {
        assert_eq!(
            raw.request(&mut session, &Request::Login(at(SLOT)), now)
                .await,
            2
        );
    }
    assert_eq!(run.taken(SLOT), 1);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_api_round_trip() {
    let run = start(config(3)).await;
    let cfg = run.client_config();
    let result = tokio::task::spawn_blocking(move || {
        let api = license_client::blocking::RemoteApi::new(cfg).expect("runtime");
        let out = (
            api.init(),
            api.init(),
            api.login(at(SLOT)),
            api.dongle_count(),
            api.logout(at(SLOT)),
            api.release(),
            api.release(),
        );
        drop(api);
        out
    });
    let out = tokio::time::timeout(LIMIT, result)
        .await
        .expect("in time")
        .expect("thread");
    assert_eq!(out, (Ok(1), Ok(2), Ok(2), Ok(1), Ok(3), Ok(1), Ok(0)));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_wide_c_like_api() {
    use license_client::global::*;
    let run = start(config(3)).await;
    let addr = run.addr;
    let out = tokio::task::spawn_blocking(move || {
        mxnet_set_ip(&addr.ip().to_string());
        mxnet_set_port(addr.port());
        mxnet_set_timeout(2000);
        let v = [
            r_login_matrix_net(0, SLOT, 1),
            r_init_matrix_api(),
            r_dongle_count(),
            r_dongle_read_ser_nr(0, 1),
            r_login_matrix_net(0, SLOT, 1),
            r_dongle_get_login_count(0, SLOT, 1),
            r_logout_matrix_net(0, SLOT, 1),
            r_release_matrix_api(),
        ];
        r_reset_matrix_api();
        v
    });
    let v = tokio::time::timeout(LIMIT, out)
        .await
        .expect("in time")
        .expect("thread");
    assert_eq!(v, [-116, 1, 1, 1_234_567_890, 2, 1, 3, 0]);
    run.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting() {
    let run = start(config(3)).await;
    let api = run.persistent_client();
    assert_eq!(api.init().await, Ok(1));
    let addr = run.addr;
    run.stop().await;
    let late = RemoteApi::new(license_client::ClientConfig::for_server(
        addr.ip().to_string(),
        addr.port(),
    ));
    assert_eq!(late.init().await, Err(ErrorCode::Connect));
}
