//! No inbound port anywhere but the relay: two client sites and the dongle host each in their
//! own network namespace, joined only to a relay namespace by veth pairs (the relay namespace
//! does not forward, so sites and dongle host cannot reach each other). The built binary runs
//! in each (`ip netns exec`): `relay` in the middle, `server` + `listen --identity proxy-v2` on
//! the dongle host, `proxy` at each site, and `client` walkthroughs at both sites share the
//! dongle's seats. Inbound TCP SYNs to the sites and the dongle host are dropped by nftables or
//! iptables when available; in any case the test shows that nothing there listens on a
//! non-loopback address and that the relay namespace cannot open a connection to them.
//!
//! Needs Linux, root and iproute2; skips with a message otherwise.

// Linux only: network namespaces (`ip netns`) are a Linux kernel feature.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

const LIMIT: Duration = Duration::from_secs(60);
const BIN: &str = env!("CARGO_BIN_EXE_dongle-relay");
const LISTEN_KEY: &str = "bmV0bnMtbGlzdGVuLWtleS0wMTIzNDU2Nzg5YWJjZGVm";
const SEND_KEY: &str = "bmV0bnMtc2VuZC1rZXktMDEyMzQ1Njc4OWFiY2RlZmdo";

/// Runs a command to completion; `Err` with its output when it fails.
fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The namespaces of one test run; deleting them (on drop, also after a failure) removes their
/// veth pairs too.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn create(names: &[String]) -> Result<Self, String> {
        let mut ns = Self { names: Vec::new() };
        for name in names {
            sh("ip", &["netns", "add", name])?;
            ns.names.push(name.clone());
            sh("ip", &["-n", name, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = sh("ip", &["netns", "del", name]);
        }
    }
}

/// Joins namespace `a` (address `a_ip`) and `b` (`b_ip`) with a veth pair on a /24.
fn link(a: &str, a_dev: &str, a_ip: &str, b: &str, b_dev: &str, b_ip: &str) -> Result<(), String> {
    sh(
        "ip",
        &[
            "link", "add", a_dev, "netns", a, "type", "veth", "peer", "name", b_dev, "netns", b,
        ],
    )?;
    for (ns, dev, ip) in [(a, a_dev, a_ip), (b, b_dev, b_ip)] {
        sh(
            "ip",
            &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev],
        )?;
        sh("ip", &["-n", ns, "link", "set", dev, "up"])?;
    }
    Ok(())
}

/// Drops inbound TCP connection attempts (SYN without ACK) arriving from outside in `ns`.
/// Returns how, or why it could not.
fn drop_inbound_syns(ns: &str) -> Result<&'static str, String> {
    let nft = |rule: &str| sh("ip", &["netns", "exec", ns, "nft", rule]);
    if nft("add table inet no_inbound").is_ok()
        && nft("add chain inet no_inbound input { type filter hook input priority 0 ; }").is_ok()
        && nft(
            "add rule inet no_inbound input iifname != \"lo\" tcp flags & (syn | ack) == syn drop",
        )
        .is_ok()
    {
        return Ok("nftables");
    }
    sh(
        "ip",
        &[
            "netns", "exec", ns, "iptables", "-A", "INPUT", "!", "-i", "lo", "-p", "tcp", "--syn",
            "-j", "DROP",
        ],
    )
    .map(|_| "iptables")
    .map_err(|e| format!("neither nft nor iptables usable ({e})"))
}

/// A process in a namespace whose stdout and stderr are collected for readiness checks.
struct Proc {
    name: &'static str,
    child: Child,
    output: Arc<(Mutex<String>, Notify)>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Runs `dongle-relay ARGS` in namespace `ns` with working directory `dir`.
    fn spawn(
        name: &'static str,
        ns: &str,
        dir: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, BIN, "--log", "info"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("NO_COLOR", "1")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn");
        let output = Arc::new((Mutex::new(String::new()), Notify::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), output.clone()),
            collect(child.stderr.take().expect("stderr"), output.clone()),
        ];
        Self {
            name,
            child,
            output,
            readers,
        }
    }

    fn text(&self) -> String {
        self.output.0.lock().expect("output").clone()
    }

    /// Waits until the output contains `needle` (the process's readiness line).
    async fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.output.1.notified();
            if self.text().contains(needle) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{} never printed {needle:?}; output:\n{}",
                    self.name,
                    self.text()
                );
            }
        }
    }

    /// Waits for the process to exit; returns its success and whole output.
    async fn finish(mut self) -> (bool, String) {
        let status = timeout(LIMIT, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait");
        for reader in self.readers.drain(..) {
            let _ = timeout(LIMIT, reader).await;
        }
        (status.success(), self.text())
    }
}

/// Appends every line of `pipe` to `output` and wakes waiters, until EOF.
fn collect(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    output: Arc<(Mutex<String>, Notify)>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = output.0.lock().expect("output");
            text.push_str(&line);
            text.push('\n');
            drop(text);
            output.1.notify_waiters();
        }
    })
}

/// Addresses of listening TCP sockets in `ns`.
fn listening(ns: &str) -> Vec<String> {
    sh("ip", &["netns", "exec", ns, "ss", "-Htln"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

/// True when a TCP connection from `ns` to `addr` succeeds within 2 s.
async fn can_connect(ns: &str, addr: &str) -> bool {
    let script = format!(
        "import socket,sys\ns=socket.socket(); s.settimeout(2)\n\
         try:\n    s.connect(({:?}, {})); sys.exit(0)\nexcept Exception:\n    sys.exit(1)\n",
        addr.rsplit_once(':').map_or(addr, |(h, _)| h),
        addr.rsplit_once(':').map_or("0", |(_, p)| p)
    );
    let status = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &script])
        .status()
        .await;
    status.is_ok_and(|s| s.success())
}

#[tokio::test]
// Long: one scenario, each step on the state the last left; split, it reads out of order.
async fn sites_and_dongle_host_only_dial_out_to_the_relay() {
    let id = std::process::id() % 100_000;
    let [relay, site_a, site_b, dongle] = ["r", "a", "b", "d"].map(|n| format!("drtest{id}{n}"));
    let ns = match Namespaces::create(&[
        relay.clone(),
        site_a.clone(),
        site_b.clone(),
        dongle.clone(),
    ]) {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!(
                "skipping: network namespaces cannot be created here (needs root and iproute2): {e}"
            );
            return;
        }
    };
    let setup = || -> Result<(), String> {
        link(
            &relay,
            &format!("v{id}ra"),
            "10.231.1.1",
            &site_a,
            &format!("v{id}ar"),
            "10.231.1.2",
        )?;
        link(
            &relay,
            &format!("v{id}rb"),
            "10.231.2.1",
            &site_b,
            &format!("v{id}br"),
            "10.231.2.2",
        )?;
        link(
            &relay,
            &format!("v{id}rd"),
            "10.231.3.1",
            &dongle,
            &format!("v{id}dr"),
            "10.231.3.2",
        )?;
        Ok(())
    };
    if let Err(e) = setup() {
        eprintln!("skipping: cannot create veth pairs between namespaces: {e}");
        return;
    }
    let mut firewall = Vec::new();
    for n in [&site_a, &site_b, &dongle] {
        match drop_inbound_syns(n) {
            Ok(how) => firewall.push(how),
            Err(e) => {
                eprintln!(
                    "note: inbound SYNs are not dropped in {n}: {e}; checking listening sockets instead"
                );
                break;
            }
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let ca = dir.join("relay-ca.pem");
    let ca = ca.to_str().expect("utf-8").to_owned();

    timeout(LIMIT, async {
        let relay_proc = Proc::spawn(
            "relay",
            &relay,
            dir,
            &[
                "relay", "--bind", "0.0.0.0:9443", "--listen-key", LISTEN_KEY, "--send-key",
                SEND_KEY, "--tls-name", "10.231.1.1", "--tls-name", "10.231.2.1", "--tls-name",
                "10.231.3.1", "--write-cert", &ca,
            ],
            &[],
        );
        relay_proc.wait_for("relay listening on").await;

        let connection = |ip: &str, rule: &str, key: &str| {
            format!("Endpoint=sb://{ip}:9443/;SharedAccessKeyName={rule};SharedAccessKey={key};EntityPath=license")
        };
        // In an empty directory: no ./mxnet2.ini, the built-in simulated dongle (3 seats).
        let server = Proc::spawn(
            "license server",
            &dongle,
            dir,
            &["server", "--port", "12300", "--ephemeral-key"],
            &[],
        );
        server.wait_for("license server listening on").await;
        let listener = Proc::spawn(
            "relay-listener",
            &dongle,
            dir,
            &["listen", "--ca-file", &ca, "--identity", "proxy-v2", "--target", "127.0.0.1:12300"],
            &[("DONGLE_RELAY_CONNECTION_STRING", connection("10.231.3.1", "listen", LISTEN_KEY))],
        );
        listener.wait_for("control channel open").await;
        let mut proxies = Vec::new();
        for (ns_name, relay_ip, site) in [(&site_a, "10.231.1.1", "site-a"), (&site_b, "10.231.2.1", "site-b")] {
            let p = Proc::spawn(
                "local-proxy",
                ns_name,
                dir,
                &["proxy", "--ca-file", &ca, "--bind", "127.0.0.1:12300", "--site", site],
                &[("DONGLE_RELAY_CONNECTION_STRING", connection(relay_ip, "send", SEND_KEY))],
            );
            p.wait_for("local-proxy on").await;
            proxies.push(p);
        }

        // Site A takes a seat and keeps it (its process ends without logging out).
        let a = Proc::spawn(
            "client at site A",
            &site_a,
            dir,
            &["client", "--server", "127.0.0.1:12300", "--name", "client-a", "init", "login", "status"],
            &[],
        );
        let (ok, out) = a.finish().await;
        assert!(ok, "site A client failed:\n{out}");
        assert!(out.contains("login    ->     2 ok"), "{out}");
        // Site B finds one seat taken by site A, takes another, and returns it.
        let b = Proc::spawn(
            "client at site B",
            &site_b,
            dir,
            &["client", "--server", "127.0.0.1:12300", "--name", "client-b", "init", "login", "status", "logout", "release"],
            &[],
        );
        let (ok, out) = b.finish().await;
        assert!(ok, "site B client failed:\n{out}");
        assert!(out.contains("login    ->     1 ok"), "seats counted across sites:\n{out}");
        assert!(out.contains("AppSlot 1: 2 taken [client-a, client-b]"), "{out}");
        assert!(out.contains("logout   ->     2 ok"), "{out}");
        // The license server saw each client with its site (PROXY v2 from the listener).
        let log = server.text();
        assert!(log.contains("site=Some(\"site-a\")"), "{log}");
        assert!(log.contains("site=Some(\"site-b\")"), "{log}");

        // Nothing at the sites or on the dongle host accepts connections from outside.
        for n in [&site_a, &site_b, &dongle] {
            let open = listening(n);
            assert!(!open.is_empty(), "ss lists the proxy/server sockets in {n}");
            assert!(
                open.iter().all(|a| a.starts_with("127.") || a.starts_with("[::1]")),
                "{n} listens beyond loopback: {open:?}"
            );
        }
        for target in ["10.231.1.2:12300", "10.231.2.2:12300", "10.231.3.2:12300"] {
            assert!(!can_connect(&relay, target).await, "the relay namespace reached {target}");
        }
        // ... and sites cannot reach the dongle host at all: only the relay is reachable.
        assert!(!can_connect(&site_a, "10.231.3.2:12300").await);
        assert!(can_connect(&site_a, "10.231.1.1:9443").await, "sites dial out to the relay");
        eprintln!(
            "netns: 2 sites + dongle host, inbound SYNs dropped by: {}",
            if firewall.len() == 3 { firewall[0] } else { "none (no firewall tool); no inbound listener" }
        );
        drop(proxies);
        drop(listener);
        drop(server);
        drop(relay_proc);
    })
    .await
    .expect("within the limit");
    drop(ns);
}
