//! The acceptance path of the client library: a C program written only from the manual's
//! declarations, linked with `libmxnet2_api.so`, takes and returns a seat on our server
//! through the whole tunnel as the demo wires it — program → local-proxy → relay (TLS) →
//! relay-listener → license server — with nothing but `mxnetapi.ini` naming the proxy.
//!
//! Unix only: these build C with `cc` and read exports with `nm -D` against the `.so`. The
//! Windows DLL and its C programs are built and run by `mxnet2-api/build-windows.sh` and
//! `mxnet2-api/run-windows-tests.sh`.
#![cfg(unix)]

mod support;

use relay_server::Direction;
use support::{Server, assert_ok, compile_c, run_program};
use test_support::{Listener, Proxy, Relay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_program_takes_and_returns_a_seat_through_the_relay() {
    let server = Server::start().await;
    let relay = Relay::start_tls().await;
    let listener = Listener::connected(relay.listener_config(server.addr)).await;
    let proxy = Proxy::spawn(relay.proxy_config_at("branch-a")).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let program = dir.path().join("walk");
    compile_c("walk.c", &program);
    std::fs::write(
        dir.path().join("mxnetapi.ini"),
        format!(
            "[Options]\nip=127.0.0.1\nport={}\ntimeout=5000\nremote=1\n",
            proxy.addr().port()
        ),
    )
    .expect("write ini");
    let output = run_program(&program, &["ini".to_owned()]).await;
    assert_ok(&output, "walk ini: ok");

    // It went through the relay, both ways, and left nothing behind on the server.
    assert!(relay.stats().bytes(Direction::SenderToListener) > 0);
    assert!(relay.stats().bytes(Direction::ListenerToSender) > 0);
    assert_eq!(server.taken(1), 0, "the seat was returned");
    assert!(server.server.snapshot().sessions.is_empty(), "released");
    drop((proxy, listener, relay));
    server.stop().await;
}
