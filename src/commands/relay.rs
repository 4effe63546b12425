//! The `relay` subcommand: the self-hosted Hybrid Connections relay. It loads a TOML
//! configuration (or builds the embedded default: one hybrid connection with generated
//! keys), settles TLS before binding, prints what clients need (address, certificate
//! fingerprint, connection strings) and runs `relay_server::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hc_protocol::connection_string::Credentials;
use hc_protocol::{ConnectionString, RelayEndpoint, Secret};
use relay_server::config::{RelayOptions, Right, TlsConfig};
use relay_server::quickstart::{self, QuickstartKeys};
use relay_server::{RelayConfig, tls};
use tokio_util::sync::CancellationToken;

use super::supervised::Supervised;

mod keys;
use crate::metrics_endpoint::{MetricsArgs, MetricsSettings};

/// Where the relay listens when neither --bind nor the configuration say.
const DEFAULT_BIND: &str = "0.0.0.0:9443";

/// Where generated keys of the built-in configuration go (relative to the working directory).
const DEFAULT_KEYS_FILE: &str = "dongle-relay-keys.txt";

/// Long help of the subcommand (clap takes the one-line summary from `cli.rs`).
const RELAY_HELP: &str = "\
Run the self-hosted Azure Relay Hybrid Connections relay.\n\
\n\
Listeners (`dongle-relay listen`, or any Azure Relay listener such as hyco-ws) open\n\
`wss://HOST:PORT/$hc/NAME?sb-hc-action=listen`; senders (`dongle-relay proxy`) open\n\
`…?sb-hc-action=connect`; the relay pairs them. Tokens are Azure SAS tokens signed with\n\
the keys of the hybrid connection's rules (see `dongle-relay token`).\n\
\n\
Without --config the relay hosts one hybrid connection (--hc, default `license`) with\n\
three rules, `listen` (Listen), `send` (Send) and `manage` (Manage). Their keys come from\n\
--listen-key/--send-key/--manage-key (or the DONGLE_RELAY_*_KEY variables) or are\n\
generated. Keys are never printed: generated ones are written, in ready-to-use connection\n\
strings, to the --keys-file (readable by its owner only), and the banner says where.\n\
\n\
TLS: a generated self-signed certificate by default (its SHA-256 fingerprint is printed\n\
for clients to pin; --write-cert saves it as a CA file), PEM files with --cert/--key (or\n\
`[tls] mode = \"pem-files\"`), or plain ws:// with --insecure-plain-ws (loopback binds only,\n\
unless --insecure-plain-ws-non-loopback).\n\
\n\
See docs/relay.md and deploy/relay.example.toml.";

/// Options of `dongle-relay relay`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = RELAY_HELP)]
pub struct Args {
    /// Configuration file (TOML, see deploy/relay.example.toml).
    #[arg(long, short = 'c', env = "DONGLE_RELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// The options that are also keys of the configuration file (`bind`, `[tls]`).
    #[command(flatten)]
    pub options: RelayOptions,
    /// Write the generated self-signed certificate (PEM) to this file, for clients' CA file.
    #[arg(long, value_name = "FILE")]
    pub write_cert: Option<PathBuf>,
    /// Allow plain ws:// (--insecure-plain-ws or `[tls] mode = "plain"`) on an address other
    /// than loopback. Refused without this flag.
    #[arg(long)]
    pub insecure_plain_ws_non_loopback: bool,
    /// Where the built-in configuration's generated keys are written (as connection strings,
    /// mode 0600), instead of being printed.
    #[arg(long, default_value = DEFAULT_KEYS_FILE, conflicts_with = "config", value_name = "FILE")]
    pub keys_file: PathBuf,
    /// Host name clients use to reach this relay, for the printed connection strings.
    #[arg(long, default_value = "localhost", value_name = "HOST")]
    pub public_host: String,
    /// Hybrid connection of the built-in configuration (without --config).
    #[arg(long, default_value = quickstart::DEFAULT_HC, conflicts_with = "config", value_name = "NAME")]
    pub hc: String,
    /// Key of the built-in `listen` rule [default: generated].
    #[arg(
        long,
        env = "DONGLE_RELAY_LISTEN_KEY",
        hide_env_values = true,
        conflicts_with = "config"
    )]
    pub listen_key: Option<String>,
    /// Key of the built-in `send` rule [default: generated].
    #[arg(
        long,
        env = "DONGLE_RELAY_SEND_KEY",
        hide_env_values = true,
        conflicts_with = "config"
    )]
    pub send_key: Option<String>,
    /// Key of the built-in `manage` rule [default: generated].
    #[arg(
        long,
        env = "DONGLE_RELAY_MANAGE_KEY",
        hide_env_values = true,
        conflicts_with = "config"
    )]
    pub manage_key: Option<String>,
    /// Prometheus metrics and health check.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// The validated configuration of `relay`.
pub struct Loaded {
    config: RelayConfig,
    bind: SocketAddr,
    fingerprint: Option<String>,
    self_signed: bool,
    /// The built-in configuration, with where each rule's key came from.
    built_in: Option<KeySources>,
    public_host: String,
    metrics: Option<MetricsSettings>,
}

/// Reads and validates the configuration and settles TLS (a self-signed certificate is
/// generated here), before any socket is bound.
///
/// # Errors
/// Configuration, PEM or certificate errors.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let metrics = args.metrics.settings()?;
    let built_in = args.config.is_none().then(|| KeySources {
        file: args.keys_file.clone(),
        given: [
            (quickstart::LISTEN_RULE, args.listen_key.is_some()),
            (quickstart::SEND_RULE, args.send_key.is_some()),
            (quickstart::MANAGE_RULE, args.manage_key.is_some()),
        ]
        .into_iter()
        .filter(|(_, given)| *given)
        .map(|(rule, _)| rule)
        .collect(),
    });
    let mut config = match &args.config {
        Some(path) => {
            RelayConfig::from_file_under(path, args.options).context("relay configuration")?
        }
        None => quickstart::config(
            &args.hc,
            QuickstartKeys {
                listen: args.listen_key.map(Secret::new),
                send: args.send_key.map(Secret::new),
                manage: args.manage_key.map(Secret::new),
            },
            TlsConfig::default(),
        )
        .under(args.options)?,
    };
    let mut self_signed = false;
    if let TlsConfig::SelfSigned { names } = &config.tls {
        let mut names = names.clone();
        if !names.contains(&args.public_host) {
            names.push(args.public_host.clone());
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let generated = tls::self_signed(&refs).context("self-signed certificate")?;
        if let Some(path) = &args.write_cert {
            std::fs::write(path, &generated.cert_pem)
                .with_context(|| format!("writing the certificate to {}", path.display()))?;
        }
        config.tls = generated.tls_config();
        self_signed = true;
    } else if args.write_cert.is_some() {
        anyhow::bail!("--write-cert only applies to a self-signed certificate");
    }
    config.validate()?;
    let fingerprint = tls::load(&config.tls)?.map(|t| t.sha256_fingerprint);
    let bind = match config.bind {
        Some(bind) => bind,
        None => DEFAULT_BIND.parse().context("default bind address")?,
    };
    if !config.tls.is_tls() && !bind.ip().is_loopback() {
        if !args.insecure_plain_ws_non_loopback {
            anyhow::bail!(
                "plain ws:// on {bind}, which is not loopback: tokens would cross the network in \
                 clear. Bind 127.0.0.1/::1, use TLS, or force it with --insecure-plain-ws-non-loopback"
            );
        }
        tracing::warn!(%bind, "plain ws:// beyond loopback (forced): tokens and data cross the network in clear");
    }
    Ok(Loaded {
        config,
        bind,
        fingerprint,
        self_signed,
        built_in,
        public_host: args.public_host,
        metrics,
    })
}

/// Binds, prints what clients need, and runs the relay until shutdown.
///
/// # Errors
/// Binding the address, or the relay failing to start.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(loaded.bind)
        .await
        .with_context(|| format!("binding {}", loaded.bind))?;
    let local = listener.local_addr().context("local address")?;
    // Keys go to a file only its owner reads, never to stdout: a service manager journals
    // stdout, and the keys may have come from the environment precisely to stay out of logs.
    if let Some(sources) = &loaded.built_in {
        keys::write(&sources.file, &connection_strings(&loaded, local, true))?;
    }
    println!("{}", banner(&loaded, local));
    let stats = loaded.config.stats();
    // READY once the relay accepts connections; watchdog pings while its accept loop beats.
    let supervised = Supervised {
        registry: relay_server::metrics::registry(&stats),
        liveness: Arc::new(stats),
        status: format!("relay listening on {local}"),
    };
    let ran = supervised
        .run(
            loaded.metrics,
            shutdown.clone(),
            relay_server::run(loaded.config, listener, shutdown),
        )
        .await?;
    ran.context("relay")
}

/// Where the built-in configuration's keys are: the keys file, and which were given.
struct KeySources {
    file: PathBuf,
    given: Vec<&'static str>,
}

/// The connection strings of each hybrid connection for a listener and a sender, one a line,
/// with each rule's key only if `with_keys` (else a placeholder naming the rule).
fn connection_strings(loaded: &Loaded, local: SocketAddr, with_keys: bool) -> String {
    let endpoint = RelayEndpoint {
        tls: loaded.config.tls.is_tls(),
        host: loaded.public_host.clone(),
        port: local.port(),
    };
    let mut out = String::new();
    for hc in &loaded.config.hybrid_connections {
        out.push_str(&format!(
            "Connection strings for hybrid connection '{}':\n",
            hc.name
        ));
        let rules = hc.rules.iter().chain(&loaded.config.namespace_rules);
        for (role, right) in [
            ("relay-listener (dongle host)", Right::Listen),
            ("local-proxy (client sites)", Right::Send),
        ] {
            // The narrowest rule: one granting exactly this right, else Manage.
            let Some(rule) = rules
                .clone()
                .find(|r| r.rights == [right])
                .or_else(|| rules.clone().find(|r| r.grants(right)))
            else {
                continue;
            };
            let key = if with_keys {
                rule.key.clone()
            } else {
                Secret::new(format!("<key of rule '{}'>", rule.name))
            };
            let cs = ConnectionString {
                endpoint: endpoint.clone(),
                credentials: Credentials::Key {
                    key_name: rule.name.clone(),
                    key,
                },
                entity_path: Some(hc.name.trim_matches('/').to_owned()),
            };
            out.push_str(&format!(
                "  {role}:\n    {}\n",
                cs.to_secret_string().expose()
            ));
        }
    }
    out
}

/// The start-up banner: address, TLS fingerprint, connection strings without keys.
fn banner(loaded: &Loaded, local: SocketAddr) -> String {
    let tls = loaded.config.tls.is_tls();
    let mut out = format!(
        "dongle-relay relay listening on {local} ({})\n",
        if tls {
            "wss, TLS"
        } else {
            "ws, PLAIN - no TLS"
        }
    );
    if let Some(fp) = &loaded.fingerprint {
        let kind = if loaded.self_signed {
            "self-signed; pin it in clients"
        } else {
            "from PEM"
        };
        out.push_str(&format!(
            "TLS certificate SHA-256 fingerprint ({kind}):\n  {fp}\n"
        ));
    }
    out.push_str(&connection_strings(loaded, local, false));
    if let Some(sources) = &loaded.built_in {
        let file = sources.file.display();
        for rule in &sources.given {
            out.push_str(&format!(
                "Key of rule '{rule}': as given (--{rule}-key or DONGLE_RELAY_{}_KEY).\n",
                rule.to_ascii_uppercase()
            ));
        }
        out.push_str(&format!(
            "Complete connection strings (with the keys) are in {file}, readable by its owner \
             only: read them with `cat {file}`. Pass --listen-key/--send-key/--manage-key (or \
             DONGLE_RELAY_*_KEY) to keep keys across restarts; generated ones change each start.",
        ));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_from(argv: &[&str]) -> anyhow::Result<Loaded> {
        load(crate::commands::parse_args(argv)?)
    }

    /// The `Endpoint=…` lines of `text`, parsed.
    fn strings_in(text: &str) -> Vec<ConnectionString> {
        text.lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("Endpoint=")
                    .map(|s| format!("Endpoint={s}"))
            })
            .map(|s| s.parse().expect("connection string"))
            .collect()
    }

    #[test]
    fn built_in_configuration_prints_no_key_but_where_the_keys_are() {
        let loaded =
            load_from(&["--send-key", "given-send-key", "--bind", "127.0.0.1:0"]).expect("load");
        assert!(loaded.self_signed);
        let local = "127.0.0.1:9443".parse().expect("addr");
        let text = banner(&loaded, local);
        let fp = loaded.fingerprint.as_deref().expect("fingerprint");
        assert!(text.contains(fp), "{text}");
        // No key at all on stdout: not the given one, not a generated one.
        assert!(!text.contains("given-send-key"), "{text}");
        for rule in &loaded.config.hybrid_connections[0].rules {
            assert!(!text.contains(rule.key.expose()), "{text}");
        }
        assert!(text.contains("in dongle-relay-keys.txt"), "{text}");
        assert!(text.contains("cat dongle-relay-keys.txt"), "{text}");
        assert!(text.contains("Key of rule 'send': as given"), "{text}");
        assert_eq!(strings_in(&text).len(), 2, "{text}");
        // The keys file holds usable connection strings.
        let full = strings_in(&connection_strings(&loaded, local, true));
        assert_eq!(full.len(), 2);
        assert_eq!(full[0].endpoint.authority(), "localhost:9443");
        assert!(full[0].endpoint.tls);
        assert_eq!(
            full[1].credentials,
            Credentials::Key {
                key_name: "send".into(),
                key: Secret::new("given-send-key")
            }
        );
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys.txt");
        std::fs::write(&path, "old").expect("pre-existing");
        keys::write(&path, "Endpoint=x").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "Endpoint=x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn plain_ws_binds_loopback_only_unless_forced() {
        let plain = |bind: &str, force: bool| {
            let mut argv = vec!["--insecure-plain-ws", "--bind", bind];
            if force {
                argv.push("--insecure-plain-ws-non-loopback");
            }
            load_from(&argv).map(|_| ())
        };
        assert!(plain("127.0.0.1:0", false).is_ok());
        assert!(plain("[::1]:0", false).is_ok());
        let err = plain("0.0.0.0:9443", false).expect_err("non-loopback");
        assert!(err.to_string().contains("not loopback"), "{err}");
        assert!(plain("10.1.2.3:9443", false).is_err());
        assert!(plain("0.0.0.0:9443", true).is_ok());
        // TLS on any address is fine.
        assert!(load_from(&["--bind", "0.0.0.0:9443"]).is_ok());
    }

    #[test]
    fn config_file_keys_are_not_printed_and_plain_is_explicit() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            "[[hybrid_connection]]\nname = \"hc\"\n[[hybrid_connection.rule]]\nname = \"l\"\nkey = \"topsecret\"\nrights = [\"Listen\"]\n",
        )
        .expect("write");
        let path = path.to_str().expect("utf-8");
        let loaded = load_from(&[
            "--config",
            path,
            "--insecure-plain-ws",
            "--bind",
            "127.0.0.1:0",
        ])
        .expect("load");
        assert!(loaded.fingerprint.is_none());
        let text = banner(&loaded, "127.0.0.1:80".parse().expect("addr"));
        assert!(!text.contains("topsecret"), "{text}");
        assert!(
            text.contains("Endpoint=ws://localhost:80/;SharedAccessKeyName=l"),
            "{text}"
        );
        assert!(load_from(&["--config", path, "--hc", "x"]).is_err());
        assert!(load_from(&["--cert", "c.pem"]).is_err());
    }
}
