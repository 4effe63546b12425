//! Tests of reading and checking relay configuration files.

use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
    [[hybrid_connection]]
    name = "license"
    [[hybrid_connection.rule]]
    name = "listen"
    key = "k1"
    rights = ["Listen"]
"#;

#[test]
fn minimal_file_gets_defaults() {
    let c = RelayConfig::from_toml_str(MINIMAL).expect("valid");
    assert_eq!(c.hybrid_connections[0].name, "license");
    assert!(c.hybrid_connections[0].requires_client_authorization);
    assert!(matches!(c.tls, TlsConfig::SelfSigned { .. }));
    assert_eq!(c.limits.max_listeners_per_hc, 25);
    assert_eq!(c.limits.rendezvous_timeout, Duration::from_secs(15));
}

#[test]
fn durations_in_the_shared_syntax_or_the_older_seconds_keys() {
    let c = RelayConfig::from_toml_str(&format!(
        "{MINIMAL}\n[limits]\nidle_timeout = \"90m\"\nrendezvous_timeout = \"1500ms\"\nshutdown_grace = 4\n"
    ))
    .expect("durations");
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(5400));
    assert_eq!(c.limits.rendezvous_timeout, Duration::from_millis(1500));
    assert_eq!(c.limits.shutdown_grace, Duration::from_secs(4));
    let c = RelayConfig::from_toml_str(&format!(
        "{MINIMAL}\n[limits]\nidle_timeout_secs = 0\nrendezvous_timeout_secs = 20.5\n"
    ))
    .expect("older keys");
    assert_eq!(c.limits.idle_timeout, Duration::ZERO);
    assert_eq!(c.limits.rendezvous_timeout, Duration::from_millis(20_500));
    let file: toml::Table = "[limits]\nidle_timeout_secs = 20.5\nshutdown_grace = \"4s\"\n"
        .parse()
        .expect("toml");
    assert_eq!(
        deprecated_keys(&file),
        ["limits.idle_timeout_secs = 20.5 is deprecated; write idle_timeout = \"20s 500ms\""]
    );
    let err = RelayConfig::from_toml_str(&format!(
        "{MINIMAL}\n[limits]\nhandshake_timeout = \"soon\"\n"
    ))
    .expect_err("not a duration");
    assert!(
        err.to_string().contains("\"soon\" is not a duration"),
        "{err}"
    );
    let err = RelayConfig::from_toml_str(&format!(
        "{MINIMAL}\n[limits]\nhandshake_timeout = \"0s\"\n"
    ))
    .expect_err("zero");
    assert!(
        err.to_string().starts_with("limits.handshake_timeout"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_named() {
    let err = RelayConfig::from_toml_str(&format!("{MINIMAL}\n[limits]\nmax_conections = 3\n"))
        .expect_err("typo");
    assert!(err.to_string().contains("max_conections"), "{err}");
    let err = RelayConfig::from_toml_str(&format!("[tls]\nmode = \"plain\"\ncert = 1\n{MINIMAL}"))
        .expect_err("unknown tls key");
    assert!(err.to_string().contains("cert"), "{err}");
    let err =
        RelayConfig::from_toml_str(&format!("[tls]\nmode = \"plain\"\nnames = []\n{MINIMAL}"))
            .expect_err("names with plain");
    assert!(err.to_string().contains("tls.names"), "{err}");
    let err = RelayConfig::from_toml_str(&format!("[tls]\nmode = \"pem-files\"\n{MINIMAL}"))
        .expect_err("pem without files");
    assert!(err.to_string().contains("tls.cert_file"), "{err}");
}

#[test]
fn invalid_values_are_named() {
    let no_listen = MINIMAL.replace("\"Listen\"", "\"Send\"");
    let err = RelayConfig::from_toml_str(&no_listen).expect_err("no listen");
    assert!(
        err.to_string().starts_with("hybrid_connection[0].rule"),
        "{err}"
    );
    let frame = format!("{MINIMAL}\n[limits]\nmax_frame_bytes = 10\nmax_message_bytes = 5\n");
    let err = RelayConfig::from_toml_str(&frame).expect_err("frame > message");
    assert!(
        err.to_string().starts_with("limits.max_frame_bytes"),
        "{err}"
    );
    let err =
        RelayConfig::from_toml_str(&format!("{MINIMAL}\n[access]\nallow = [\"10.0.0.0/33\"]\n"))
            .expect_err("cidr");
    assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
}

#[test]
fn manage_grants_everything() {
    let rule = SasRule::new("m", "k", &[Right::Manage]);
    assert!(rule.grants(Right::Listen) && rule.grants(Right::Send));
    let send = SasRule::new("s", "k", &[Right::Send]);
    assert!(!send.grants(Right::Listen));
}

#[test]
fn secrets_do_not_reach_debug() {
    let c = RelayConfig::from_toml_str(MINIMAL).expect("valid");
    assert!(!format!("{c:?}").contains("k1"));
}

#[test]
fn flags_over_the_file_and_tls_chosen_as_a_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        format!(
            "bind = \"127.0.0.1:1\"\n[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n{MINIMAL}"
        ),
    )
    .expect("write");
    // The file's mode is implied by its keys; relative paths are the file's.
    let file = RelayConfig::from_file(&path).expect("file alone");
    assert!(
        matches!(&file.tls, TlsConfig::PemFiles { cert_file, .. } if cert_file == &dir.path().join("c.pem"))
    );
    assert_eq!(file.bind, Some("127.0.0.1:1".parse().expect("addr")));
    let flags = RelayOptions {
        bind: Some("127.0.0.1:2".parse().expect("addr")),
        tls: TlsOptions {
            names: Some(vec!["relay.test".into()]),
            ..TlsOptions::default()
        },
    };
    let both = RelayConfig::from_file_under(&path, flags).expect("flags win");
    assert_eq!(both.bind, Some("127.0.0.1:2".parse().expect("addr")));
    assert!(matches!(&both.tls, TlsConfig::SelfSigned { names } if names == &["relay.test"]));
    let err = RelayConfig::from_toml_str(&format!("[tls]\nmode = \"tls\"\n{MINIMAL}"))
        .expect_err("unknown mode");
    assert!(err.to_string().starts_with("tls.mode"), "{err}");
    let err = RelayConfig::from_toml_str(&format!("bnid = 1\n{MINIMAL}")).expect_err("typo");
    assert!(err.to_string().contains("bnid"), "{err}");
}
