//! The files under `deploy/` checked against the binary and the libraries they configure, so
//! they cannot drift: every systemd unit is a `Type=notify` service with a watchdog,
//! `Restart=on-failure`, a stop timeout longer than its component's drain, secrets only from
//! an `EnvironmentFile=` or credentials, and an `ExecStart=` the real command line accepts;
//! sections and keys come from an allow-list (the check that stands in for
//! `systemd-analyze verify` where systemd is missing; `.ci/run` runs that too when present).
//! The udev rule, the Containerfiles, the Kubernetes manifest, the environment examples and
//! the example `mxnet2.ini` are checked the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use dongle_relay::cli::{Cli, Command};

const BINARY: &str = "/usr/local/bin/dongle-relay";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

/// A unit file: section → (key, value) in order (keys may repeat).
type Unit = BTreeMap<String, Vec<(String, String)>>;

fn parse_unit(name: &str, text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "{name}:{}: no continuation lines",
            n + 1
        );
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(s.to_owned());
            unit.entry(s.to_owned()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{name}:{}: not key=value: {line}", n + 1));
        let section = section
            .clone()
            .unwrap_or_else(|| panic!("{name}:{}: key before any section", n + 1));
        unit.entry(section)
            .or_default()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    unit
}

/// The keys these units may use (systemd.unit(5), systemd.service(5), systemd.exec(5),
/// systemd.resource-control(5)). A typo, or a key that belongs in another section, fails.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "Unit",
        &[
            "Description",
            "Documentation",
            "After",
            "Wants",
            "Requires",
            "StartLimitIntervalSec",
            "StartLimitBurst",
        ],
    ),
    (
        "Service",
        &[
            "Type",
            "NotifyAccess",
            "ExecStart",
            "EnvironmentFile",
            "Environment",
            "LoadCredential",
            "WatchdogSec",
            "Restart",
            "RestartSec",
            "TimeoutStartSec",
            "TimeoutStopSec",
            "LimitNOFILE",
            "User",
            "Group",
            "DynamicUser",
            "StateDirectory",
            "StateDirectoryMode",
            "LogsDirectory",
            "LogsDirectoryMode",
            "ConfigurationDirectory",
            "ConfigurationDirectoryMode",
            "UMask",
            "NoNewPrivileges",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "DevicePolicy",
            "DeviceAllow",
            "RestrictAddressFamilies",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectClock",
            "ProtectHostname",
            "ProtectProc",
            "RestrictNamespaces",
            "RestrictRealtime",
            "RestrictSUIDSGID",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "RemoveIPC",
            "CapabilityBoundingSet",
            "AmbientCapabilities",
            "SystemCallArchitectures",
            "SystemCallFilter",
        ],
    ),
    ("Install", &["WantedBy"]),
];

fn values<'a>(unit: &'a Unit, section: &str, key: &str) -> Vec<&'a str> {
    unit.get(section)
        .map(|kv| {
            kv.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect()
        })
        .unwrap_or_default()
}

fn one<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    match values(unit, section, key).as_slice() {
        [v] => v,
        other => panic!("[{section}] {key}= should appear once, found {other:?}"),
    }
}

/// `30`, `30s`, `2min`: the forms these units use.
fn seconds(value: &str) -> Duration {
    let (number, unit) = value
        .find(|c: char| !c.is_ascii_digit())
        .map_or((value, ""), |i| value.split_at(i));
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("a duration: {value}"));
    match unit {
        "" | "s" => Duration::from_secs(n),
        "min" => Duration::from_secs(n * 60),
        _ => panic!("unexpected time unit in {value}"),
    }
}

fn connection() -> hc_protocol::ConnectionString {
    "Endpoint=sb://relay.test/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hc"
        .parse()
        .expect("connection string")
}

/// What each unit runs and the shortest stop timeout its drain needs.
fn expected(command: &str) -> Duration {
    match command {
        // Calls finish (SHUTDOWN_GRACE), queued seat changes are written (5 s), the admin
        // endpoint and an in-process listener stop (10 s).
        "server" => license_server::server::SHUTDOWN_GRACE + Duration::from_secs(15),
        // Bridged connections drain, then the rest are closed (3 × 5 s).
        "relay" => relay_server::config::Limits::default().shutdown_grace + Duration::from_secs(15),
        "listen" => relay_listener::ListenerConfig::new(connection()).shutdown_grace,
        "proxy" => local_proxy::ProxyConfig::new(connection()).shutdown_grace,
        other => panic!("no unit expected for {other}"),
    }
}

fn parse_command_line(origin: &str, args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("dongle-relay").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{origin}: the binary refuses {args:?}: {e}"))
}

fn command_name(cli: &Cli) -> &'static str {
    match cli.command {
        Command::Server(_) => "server",
        Command::Relay(_) => "relay",
        Command::Listen(_) => "listen",
        Command::Proxy(_) => "proxy",
        Command::Demo(_) => "demo",
        Command::Token(_) => "token",
        Command::Client(_) => "client",
        Command::Usage(_) => "usage",
        Command::Hq(_) => "hq",
        #[cfg(windows)]
        Command::Service(_) => "service",
    }
}

/// Secrets never appear in a unit: not in `Environment=`, not on the command line.
fn assert_no_inline_secret(name: &str, text: &str) {
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for marker in [
            "SharedAccessKey=",
            "SharedAccessSignature=",
            "_TOKEN=",
            "_KEY=",
            "PASSWORD=",
        ] {
            assert!(!line.contains(marker), "{name}: inline secret? {line}");
        }
    }
}

#[test]
// Long: one checklist of cases on one fixture; split, each would set the fixture up again.
fn systemd_units_are_notify_services_with_watchdog_restart_and_hardening() {
    let mut seen = Vec::new();
    let dir = deploy("systemd");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/systemd")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let text = read(&format!("systemd/{name}"));
        let unit = parse_unit(&name, &text);
        for (section, keys) in &unit {
            let allowed = ALLOWED
                .iter()
                .find(|(s, _)| s == section)
                .unwrap_or_else(|| panic!("{name}: unexpected section [{section}]"))
                .1;
            for (key, _) in keys {
                assert!(
                    allowed.contains(&key.as_str()),
                    "{name}: [{section}] {key}= is not an allowed key"
                );
            }
        }
        assert_eq!(one(&unit, "Service", "Type"), "notify", "{name}");
        assert_eq!(one(&unit, "Service", "NotifyAccess"), "main", "{name}");
        assert_eq!(one(&unit, "Service", "Restart"), "on-failure", "{name}");
        let watchdog = seconds(one(&unit, "Service", "WatchdogSec"));
        assert_eq!(watchdog, Duration::from_secs(30), "{name}");
        // The license engine is declared stalled after LIVENESS_MAX_AGE; the watchdog must
        // leave room for that and a ping period (half the interval).
        assert!(watchdog / 2 > license_server::server::LIVENESS_MAX_AGE);
        for (key, value) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
        ] {
            assert_eq!(one(&unit, "Service", key), value, "{name}: {key}");
        }
        assert!(
            one(&unit, "Service", "RestrictAddressFamilies").contains("AF_UNIX"),
            "{name}: sd_notify needs AF_UNIX"
        );
        assert!(
            values(&unit, "Service", "DynamicUser") == ["yes"]
                || !values(&unit, "Service", "User").is_empty(),
            "{name}: a dedicated user"
        );
        assert_eq!(
            one(&unit, "Install", "WantedBy"),
            "multi-user.target",
            "{name}"
        );
        assert_no_inline_secret(&name, &text);

        let exec = one(&unit, "Service", "ExecStart");
        assert!(!exec.contains(['"', '\'']), "{name}: plain words only");
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some(BINARY), "{name}");
        let args: Vec<&str> = words.collect();
        let cli = parse_command_line(&name, &args);
        let command = command_name(&cli);
        assert_eq!(name, format!("dongle-relay-{command}.service"));
        let stop = seconds(one(&unit, "Service", "TimeoutStopSec"));
        assert!(
            stop > expected(command),
            "{name}: TimeoutStopSec={stop:?} must exceed the drain ({:?})",
            expected(command)
        );
        match command {
            "server" => {
                assert_eq!(one(&unit, "Service", "User"), "dongle-relay");
                let state = one(&unit, "Service", "StateDirectory");
                let logs = one(&unit, "Service", "LogsDirectory");
                let state_dir = format!("/var/lib/{state}/");
                for flag in ["--state-db", "--key-file"] {
                    let i = args.iter().position(|a| *a == flag).expect(flag);
                    assert!(
                        args[i + 1].starts_with(&state_dir),
                        "{name}: {flag} belongs in StateDirectory"
                    );
                }
                let ini = server_example();
                assert_eq!(
                    ini.log_file_folder.as_deref(),
                    Some(Path::new(&format!("/var/log/{logs}"))),
                    "mxnet2.example.ini logs into the unit's LogsDirectory"
                );
                // The USB key's device nodes.
                assert_eq!(one(&unit, "Service", "DeviceAllow"), "char-usb_device rw");
                assert!(!values(&unit, "Service", "EnvironmentFile").is_empty());
            }
            "listen" | "proxy" => {
                assert_eq!(
                    one(&unit, "Service", "EnvironmentFile"),
                    format!("/etc/dongle-relay/{command}.env"),
                    "{name}: the connection string comes from its env file"
                );
            }
            "relay" => {
                let config = args
                    .iter()
                    .position(|a| *a == "--config")
                    .map(|i| args[i + 1])
                    .expect("--config");
                assert_eq!(config, "%d/relay.toml", "the keys come as a credential");
                assert!(
                    values(&unit, "Service", "LoadCredential")
                        .contains(&"relay.toml:/etc/dongle-relay/relay.toml")
                );
            }
            _ => unreachable!(),
        }
        seen.push(command);
    }
    assert_eq!(seen, ["listen", "proxy", "relay", "server"]);
}

fn server_example() -> license_server::ServerConfig {
    license_server::ServerConfig::load(&deploy("mxnet2.example.ini")).expect("mxnet2.example.ini")
}

#[test]
fn example_mxnet2_ini_loads_and_keeps_the_server_local() {
    let config = server_example();
    assert_eq!(config.port, license_core::DEFAULT_PORT);
    assert!(config.bind.is_loopback());
    assert_eq!(
        config.backend,
        license_server::config::BackendChoice::Usb,
        "the unit is for a real key"
    );
    assert!(
        config.state_db.is_none() && config.key_file.is_none(),
        "set by the unit"
    );
}

#[test]
fn udev_rule_gives_both_matrix_keys_to_the_service_group_only() {
    let rules = read("udev/99-dongle-relay-matrix.rules");
    let sysusers = read("sysusers.d/dongle-relay.conf");
    let user = sysusers
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("u")).then(|| f.next()).flatten()
        })
        .expect("a u line");
    let server = parse_unit("server", &read("systemd/dongle-relay-server.service"));
    assert_eq!(one(&server, "Service", "Group"), user);

    let mut products = Vec::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if line.trim().is_empty() {
            continue;
        }
        let pairs: BTreeMap<&str, &str> = line
            .split(", ")
            .map(|p| {
                let (k, v) = p
                    .split_once("==")
                    .or_else(|| p.split_once('='))
                    .unwrap_or_else(|| panic!("not a udev match/assignment: {p}"));
                (k.trim(), v.trim().trim_matches('"'))
            })
            .collect();
        assert_eq!(pairs.get("SUBSYSTEM"), Some(&"usb"), "{line}");
        assert_eq!(pairs.get("ATTR{idVendor}"), Some(&"0e50"), "{line}");
        assert_eq!(pairs.get("GROUP"), Some(&user), "{line}");
        assert_eq!(pairs.get("MODE"), Some(&"0660"), "{line}");
        products.push(pairs["ATTR{idProduct}"].to_owned());
    }
    assert_eq!(products, ["0001", "0002"]);
}

/// A Containerfile's instructions (continuation lines joined), comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (op, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn containerfiles_build_in_one_stage_and_run_unprivileged_in_another() {
    for (file, command, port, healthcheck) in [
        ("container/relay.Containerfile", "relay", "9443/tcp", true),
        ("container/proxy.Containerfile", "proxy", "12300/tcp", true),
    ] {
        let steps = instructions(&read(file));
        let stages: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, (op, _))| op == "FROM")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(stages.len(), 2, "{file}: build stage and runtime stage");
        let (build, runtime) = steps.split_at(stages[1]);
        assert!(
            build
                .iter()
                .any(|(op, a)| op == "RUN" && a.contains("cargo build --release --locked")),
            "{file}"
        );
        assert!(runtime[0].1.contains("debian:bookworm-slim"), "{file}");
        let get = |op: &str| -> Vec<&str> {
            runtime
                .iter()
                .filter(|(o, _)| o == op)
                .map(|(_, a)| a.as_str())
                .collect()
        };
        let user = get("USER");
        assert_eq!(user.len(), 1, "{file}");
        assert!(
            !user[0].starts_with('0') && !user[0].starts_with("root"),
            "{file}: non-root"
        );
        assert_eq!(get("EXPOSE"), [port], "{file}");
        assert!(
            get("COPY")
                .iter()
                .any(|a| a.starts_with("--from=build") && a.ends_with(BINARY)),
            "{file}"
        );
        let entry: Vec<String> = serde_json::from_str(get("ENTRYPOINT")[0]).expect("exec form");
        assert_eq!(entry, [BINARY]);
        let cmd: Vec<String> = serde_json::from_str(get("CMD")[0]).expect("exec form");
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        assert_eq!(
            command_name(&parse_command_line(file, &cmd)),
            command,
            "{file}"
        );
        assert_eq!(!get("HEALTHCHECK").is_empty(), healthcheck, "{file}");
        if healthcheck {
            // It asks /healthz of the metrics endpoint the command starts on loopback.
            let metrics = cmd
                .iter()
                .position(|a| *a == "--metrics")
                .map(|i| cmd[i + 1])
                .expect("--metrics");
            assert!(metrics.starts_with("127.0.0.1:"), "{file}");
            let check = get("HEALTHCHECK")[0];
            let argv: Vec<String> =
                serde_json::from_str(check.split_once("CMD ").map(|(_, argv)| argv).expect("CMD"))
                    .expect("exec form");
            let port = metrics.trim_start_matches("127.0.0.1:");
            assert!(
                argv[2].contains(&format!("/dev/tcp/127.0.0.1/{port}"))
                    && argv[2].contains("GET /healthz"),
                "{file}: {argv:?}"
            );
        }
        assert_eq!(get("STOPSIGNAL"), ["SIGTERM"], "{file}");
    }
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"))
            .expect(".dockerignore keeps target/ out of the build context");
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}

#[test]
fn kubernetes_relay_runs_the_relay_unprivileged_with_secrets_mounted() {
    let text = read("kubernetes/relay.yaml");
    assert_no_inline_secret("relay.yaml", &text);
    let field = |name: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix(name))
            .map(str::trim)
            .collect()
    };
    let args: Vec<String> = serde_json::from_str(field("args:")[0]).expect("flow sequence");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = parse_command_line("relay.yaml", &args);
    assert_eq!(command_name(&cli), "relay");
    // Off loopback, the metrics endpoint needs its token (from a Secret).
    assert!(args.contains(&"0.0.0.0:9464"));
    assert!(field("name:").contains(&dongle_relay::metrics_endpoint::METRICS_TOKEN_ENV));
    for probe in ["startupProbe:", "readinessProbe:", "livenessProbe:"] {
        let at = text.find(probe).expect(probe);
        let rest = &text[at..];
        assert!(
            rest.find("path: /healthz")
                .is_some_and(|p| p < rest.find("periodSeconds").unwrap_or(0)),
            "{probe} asks /healthz"
        );
    }
    let grace: u64 = field("terminationGracePeriodSeconds:")[0]
        .parse()
        .expect("seconds");
    assert!(Duration::from_secs(grace) > expected("relay"));
    // Replicas share no state: listeners keep a control channel to each (issue 16).
    let replicas: u32 = field("replicas:")[0].parse().expect("replicas");
    assert!(replicas >= 2, "{replicas}");
    assert_eq!(
        field("clusterIP:"),
        ["None"],
        "a headless Service for listeners"
    );
    assert_eq!(field("runAsNonRoot:"), ["true"]);
    assert_eq!(field("readOnlyRootFilesystem:"), ["true"]);
    assert_eq!(field("allowPrivilegeEscalation:"), ["false"]);
    for probe in ["startupProbe:", "readinessProbe:", "livenessProbe:"] {
        assert_eq!(field(probe).len(), 1, "{probe}");
    }
    for secret in ["dongle-relay-config", "dongle-relay-tls"] {
        assert!(field("secretName:").contains(&secret), "{secret}");
    }
    assert_eq!(field("containerPort:"), ["9443", "9464"]);
    assert_eq!(
        field("kind:"),
        ["StatefulSet", "Service", "Service", "Service", "Service"]
    );
    for replica in 0..replicas {
        let per_replica = format!("dongle-relay-{replica}");
        assert!(
            field("name:").contains(&per_replica.as_str()),
            "{per_replica}"
        );
    }
}

#[test]
fn environment_examples_name_only_variables_the_binary_reads_with_placeholders() {
    use dongle_relay::commands::{access, server};
    let known = [
        access::CONNECTION_STRING_ENV,
        access::PROXY_PASSWORD_ENV,
        server::ADMIN_TOKEN_ENV,
        server::LISTENER_CONNECTION_STRING_ENV,
        dongle_relay::metrics_endpoint::METRICS_TOKEN_ENV,
        "RUST_LOG",
    ];
    for (file, required) in [
        ("env/server.env.example", None),
        (
            "env/listen.env.example",
            Some(access::CONNECTION_STRING_ENV),
        ),
        ("env/proxy.env.example", Some(access::CONNECTION_STRING_ENV)),
        ("env/relay.env.example", None),
    ] {
        let text = read(file);
        let mut set = Vec::new();
        for line in text.lines() {
            let commented = line.starts_with('#');
            let body = line.trim_start_matches('#');
            let Some((name, value)) = body.split_once('=') else {
                continue;
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                continue;
            }
            assert!(
                known.contains(&name),
                "{file}: {name} is not read by the binary"
            );
            if value.contains("SharedAccessKey=") || name.ends_with("TOKEN") {
                assert!(value.contains("REPLACE"), "{file}: {name} is a placeholder");
            }
            if !commented {
                set.push(name);
            }
        }
        assert_eq!(set, required.into_iter().collect::<Vec<_>>(), "{file}");
    }
}
