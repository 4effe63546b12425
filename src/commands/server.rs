//! The `server` subcommand: loads `mxnet2.ini` (or its TOML equivalent), binds the license
//! port and runs `license_core::run` until shutdown.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use license_core::config::{BackendChoice, ServerConfig, TrustedProxies};
use license_core::protocol::ServerIdentity;
use tokio_util::sync::CancellationToken;

/// The identity key file used when the configuration names none.
const DEFAULT_KEY_FILE: &str = "mxnet2-server.key";

const SERVER_HELP: &str = "\
Run the license server: MxNet2 remote-API semantics (sessions, AppSlot seats, login and\n\
session timeouts, per-session or per-IP licences) over dongle-relay's authenticated TCP\n\
protocol, on port 12300 of 127.0.0.1 by default.\n\
\n\
Configuration: --config FILE (mxnet2.ini as the MxNet2 manual writes it, or a .toml\n\
equivalent); without it, ./mxnet2.ini when present, else built-in defaults: one simulated\n\
dongle (serial 1234567890) with AppSlot 1 \"Demo Application\" (3 seats) and AppSlot 2 (10).\n\
Seat limits are LimitN= keys of the [dongleN] sections. LogFileFolder writes daily\n\
mxnetYYYY-MM-DD.log files (LogLevel 0 errors, 1 information, 2 debug).\n\
\n\
Identity: the server signs every session's key exchange with an Ed25519 key kept in\n\
KeyFile (default mxnet2-server.key next to the configuration, created mode 0600). Its\n\
public key is printed at start; clients pin it with serverkey= (mxnetapi.ini) or --pin-key.\n\
\n\
Dongles: simulated (default), usb (TDi Matrix keys 0e50:0001/0002 via libusb, polled every\n\
2 s; seat limits still come from the configuration) or none. See docs/license-server.md.\n\
\n\
Client identity: a relay-listener on a trusted address (TrustedProxy=, --trusted-proxy;\n\
default loopback) may start each connection with a PROXY protocol v2 header naming the\n\
real client and its site; seats, per-IP licences, logs and status then use them. A header\n\
from any other address is refused and logged. See docs/identity.md.";

/// Options of `dongle-relay server`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = SERVER_HELP)]
pub struct Args {
    /// Server configuration: mxnet2.ini, or a .toml file [default: ./mxnet2.ini if present].
    #[arg(
        long,
        short = 'c',
        env = "DONGLE_RELAY_LICENSE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: the configuration's Bind=, else 127.0.0.1].
    #[arg(long, value_name = "IP")]
    pub bind: Option<IpAddr>,
    /// Port [default: the configuration's Port=, else 12300].
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Where dongles come from [default: the configuration's DongleBackend=, else simulated].
    #[arg(long, value_name = "simulated|usb|none", value_parser = parse_backend)]
    pub dongle: Option<BackendChoice>,
    /// Identity key file [default: KeyFile=, else mxnet2-server.key beside the configuration].
    #[arg(long, value_name = "FILE", conflicts_with = "ephemeral_key")]
    pub key_file: Option<PathBuf>,
    /// Use a new identity key at every start, written nowhere (clients cannot pin it).
    #[arg(long)]
    pub ephemeral_key: bool,
    /// Print the server's public key (base64, for clients to pin) and exit.
    #[arg(long)]
    pub print_key: bool,
    /// Addresses or networks allowed to send PROXY v2 headers (the relay-listener's), comma
    /// separated or repeated; `none` refuses every header [default: TrustedProxy=, else
    /// 127.0.0.0/8 and ::1].
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxy: Vec<String>,
}

fn parse_backend(s: &str) -> Result<BackendChoice, String> {
    match s.to_ascii_lowercase().as_str() {
        "simulated" => Ok(BackendChoice::Simulated),
        "usb" => Ok(BackendChoice::Usb),
        "none" => Ok(BackendChoice::None),
        _ => Err("expected simulated, usb or none".to_owned()),
    }
}

/// The validated configuration of `server`.
pub struct Loaded {
    config: ServerConfig,
    print_key: bool,
}

/// Reads and validates the configuration.
///
/// # Errors
/// Configuration errors, naming the file and key.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let path = args.config.clone().or_else(|| {
        let default = PathBuf::from("mxnet2.ini");
        default.exists().then_some(default)
    });
    let mut config = match &path {
        Some(p) => ServerConfig::load(p).with_context(|| format!("{}", p.display()))?,
        None => ServerConfig::default(),
    };
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(port) = args.port {
        config.port = port;
    }
    if let Some(backend) = args.dongle {
        config.backend = backend;
        if backend == BackendChoice::Simulated && config.dongles.is_empty() {
            config.dongles = vec![license_core::config::default_dongle()];
        }
    }
    if !args.trusted_proxy.is_empty() {
        config.trusted_proxies = TrustedProxies::parse_list(&args.trusted_proxy.join(","))
            .map_err(|e| anyhow::anyhow!("--trusted-proxy: {e}"))?;
    }
    if args.ephemeral_key {
        config.key_file = None;
    } else if let Some(key) = args.key_file {
        config.key_file = Some(key);
    } else if config.key_file.is_none() {
        let dir = path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new(""));
        config.key_file = Some(dir.join(DEFAULT_KEY_FILE));
    }
    Ok(Loaded {
        config,
        print_key: args.print_key,
    })
}

/// Runs the command.
///
/// # Errors
/// The port cannot be bound, the key file cannot be used.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = loaded.config;
    if loaded.print_key {
        let identity = match &config.key_file {
            Some(path) => ServerIdentity::load_or_create(path)?,
            None => anyhow::bail!("--print-key needs a key file"),
        };
        println!("{}", identity.public_key());
        return Ok(());
    }
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let server = license_core::LicenseServer::new(&config)?;
    for warning in &config.warnings {
        tracing::warn!("configuration: {warning}");
    }
    let local = listener.local_addr().unwrap_or(addr);
    println!("license server listening on {local}");
    println!(
        "server public key (pin it with serverkey= / --pin-key): {}",
        server.public_key()
    );
    for dongle in server.snapshot().dongles {
        let slots: Vec<String> = dongle
            .slots
            .iter()
            .map(|s| format!("{} {} ({} seats)", s.slot, s.name, s.limit))
            .collect();
        println!(
            "dongle {} ({}, serial {}): {}",
            dongle.name,
            dongle.kind,
            dongle
                .serial
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            slots.join(", ")
        );
    }
    println!(
        "PROXY v2 headers (client and site from a relay-listener) accepted from: {}",
        server.trusted_proxies()
    );
    server.serve(listener, shutdown).await?;
    Ok(())
}

/// The daily log file the server configuration asks for (`LogFileFolder`, `LogLevel`).
pub fn file_log(loaded: &Loaded) -> Option<crate::telemetry::FileLog> {
    let dir = loaded.config.log_file_folder.clone()?;
    Some(crate::telemetry::FileLog {
        dir,
        prefix: license_core::logs::PREFIX.to_owned(),
        filter: loaded.config.log_level.filter().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> anyhow::Result<Loaded> {
        let cli =
            crate::cli::Cli::try_parse_from(["dongle-relay", "server"].iter().chain(args.iter()))?;
        match cli.command {
            crate::cli::Command::Server(a) => load(a),
            _ => anyhow::bail!("not server"),
        }
    }

    #[test]
    fn config_file_overrides_and_log_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ini = dir.path().join("mxnet2.ini");
        std::fs::write(
            &ini,
            "[Option]\nPort=12345\nLogFileFolder=logs\nLogLevel=2\n",
        )
        .expect("write");
        let path = ini.to_str().expect("utf-8");
        let l = parse(&["--config", path, "--dongle", "none"]).expect("load");
        assert_eq!(l.config.port, 12345);
        assert_eq!(l.config.backend, BackendChoice::None);
        assert_eq!(l.config.key_file, Some(dir.path().join(DEFAULT_KEY_FILE)));
        let log = file_log(&l).expect("file log");
        assert_eq!(log.dir, dir.path().join("logs"));
        assert_eq!(
            (log.prefix.as_str(), log.filter.as_str()),
            ("mxnet", "debug")
        );
        let l = parse(&["--config", path, "--port", "1", "--ephemeral-key"]).expect("load");
        assert_eq!((l.config.port, l.config.key_file.clone()), (1, None));
        assert_eq!(l.config.trusted_proxies, TrustedProxies::loopback());
        let l = parse(&[
            "--config",
            path,
            "--trusted-proxy",
            "10.0.0.5,10.1.0.0/16",
            "--trusted-proxy",
            "::1",
        ])
        .expect("load");
        assert_eq!(
            l.config.trusted_proxies.to_string(),
            "10.0.0.5, 10.1.0.0/16, ::1"
        );
        let l = parse(&["--config", path, "--trusted-proxy", "none"]).expect("load");
        assert!(l.config.trusted_proxies.is_empty());
        assert!(parse(&["--config", path, "--trusted-proxy", "relay.lan"]).is_err());
        std::fs::write(&ini, "[Option]\nPrt=1\n").expect("write");
        let err = parse(&["--config", path]).err().expect("error");
        assert!(format!("{err:#}").contains("Prt"), "{err:#}");
    }
}
