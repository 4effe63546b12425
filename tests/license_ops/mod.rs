//! Shared by the admin endpoint tests: a license server with its admin endpoint on
//! `127.0.0.1:0` (as `dongle-relay server --admin` runs them), and requests to it; and the
//! real `dongle-relay server` process, started until its banner's admin endpoint line.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use dongle_relay::commands::server::ops;
use http::Method;
use license_client::{ClientConfig, RemoteApi};
use license_server::admin::InProcessListener;
use license_server::{LicenseServer, ServerConfig};
use ops_http::BearerToken;
use ops_http::client::{Answer, call};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Every step is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(30);
pub const TOKEN: &str = "admin-token-for-tests-0123456789";

pub struct Ops {
    pub server: LicenseServer,
    pub license: SocketAddr,
    pub admin: SocketAddr,
    pub shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Ops {
    /// The server for `config` on 127.0.0.1:0, its admin endpoint on 127.0.0.1:0 with `token`.
    pub async fn start(
        config: &ServerConfig,
        token: Option<&str>,
        listener: Option<InProcessListener>,
    ) -> Self {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::serve(config, socket, token, listener).await
    }

    /// The same on the license address `addr` (a port chosen beforehand, for a listener
    /// configured before the server starts).
    pub async fn start_on(
        config: &ServerConfig,
        addr: SocketAddr,
        token: Option<&str>,
        listener: Option<InProcessListener>,
    ) -> Self {
        let socket = tokio::net::TcpListener::bind(addr).await.expect("bind");
        Self::serve(config, socket, token, listener).await
    }

    async fn serve(
        config: &ServerConfig,
        socket: tokio::net::TcpListener,
        token: Option<&str>,
        listener: Option<InProcessListener>,
    ) -> Self {
        let server = LicenseServer::new(config).expect("server");
        let license = socket.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn({
            let server = server.clone();
            let shutdown = shutdown.clone();
            async move { Ok(server.serve(socket, shutdown).await?) }
        });
        let token = token.map(|t| BearerToken::new(t).expect("token"));
        let (admin, task) = ops::start_admin(
            "127.0.0.1:0".parse().expect("addr"),
            token,
            &server,
            listener,
            shutdown.clone(),
        )
        .await
        .expect("admin endpoint");
        Self {
            server,
            license,
            admin,
            shutdown,
            tasks: vec![serving, task],
        }
    }

    pub fn client(&self, name: &str) -> RemoteApi {
        client_of(self.license, name)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        call(self.admin, Method::GET, path, token, None, LIMIT)
            .await
            .expect("answer")
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Answer {
        call(self.admin, Method::POST, path, token, body, LIMIT)
            .await
            .expect("answer")
    }

    pub async fn status(&self) -> serde_json::Value {
        let answer = self.get("/api/status", Some(TOKEN)).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json().expect("json")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            tokio::time::timeout(LIMIT, task)
                .await
                .expect("stops in time")
                .expect("joined")
                .expect("clean stop");
        }
    }
}

/// AppSlot 1 of the default simulated dongle ("Demo Application", 3 seats).
pub const DEMO_SLOT: license_core::SlotRef = license_core::SlotRef {
    dng_nr: 1,
    user_code: 0,
    slot: 1,
};

/// A port on 127.0.0.1 that was free a moment ago (for a server process to bind, or to bind
/// again after a restart).
pub async fn free_port() -> u16 {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    socket.local_addr().expect("addr").port()
}

/// A library client of the server at `addr`, named `name`.
pub fn client_of(addr: SocketAddr, name: &str) -> RemoteApi {
    let mut config = ClientConfig::for_server(addr.ip().to_string(), addr.port());
    config.client_name = name.to_owned();
    RemoteApi::new(config)
}

/// The default configuration with no key file (nothing written).
pub fn config() -> ServerConfig {
    ServerConfig {
        key_file: None,
        ..ServerConfig::default()
    }
}

/// A dongle host as `dongle-relay server --relay-listener` runs it, before it starts: the
/// license address (a free port chosen beforehand), the in-process relay-listener's
/// configuration for `relay` (PROXY v2 towards that address), the name of its relay, and the
/// server's configuration on that port.
pub async fn dongle_host(
    relay: &test_support::Relay,
) -> (
    SocketAddr,
    relay_listener::ListenerConfig,
    String,
    ServerConfig,
) {
    let license_socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let license_addr = license_socket.local_addr().expect("addr");
    drop(license_socket);
    let mut listener_config = relay.listener_config(license_addr);
    listener_config.identity.mode = relay_listener::IdentityMode::ProxyV2;
    let relay_name = ops::relay_name(&listener_config.access);
    let mut server_config = config();
    server_config.port = license_addr.port();
    (license_addr, listener_config, relay_name, server_config)
}

/// A `dongle-relay server --admin …` process, started once it printed its admin endpoint line
/// (it does so once the license port and the admin endpoint are both bound).
pub struct ServerProcess {
    pub child: Child,
    /// The rest of its standard output.
    pub stdout: Lines<BufReader<ChildStdout>>,
    /// What it printed up to and including the admin endpoint line.
    pub banner: Vec<String>,
}

impl ServerProcess {
    /// Spawns `command` (its arguments and environment set; standard output is read here)
    /// and waits for the admin endpoint line.
    pub async fn start(command: Command) -> Self {
        Self::start_until(command, "admin endpoint").await
    }

    /// Spawns `command` and waits for the first line starting with `ready` (the banner line
    /// the process prints once it serves).
    pub async fn start_until(mut command: Command, ready: &str) -> Self {
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("server");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut banner: Vec<String> = Vec::new();
        while !banner.last().is_some_and(|l| l.starts_with(ready)) {
            let line = tokio::time::timeout(LIMIT, stdout.next_line())
                .await
                .expect("the server starts in time")
                .expect("read")
                .unwrap_or_else(|| panic!("the server exited:\n{}", banner.join("\n")));
            banner.push(line);
        }
        Self {
            child,
            stdout,
            banner,
        }
    }

    /// The banner line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> &str {
        self.banner
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {:?}", self.banner))
    }
}
