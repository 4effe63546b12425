//! The `client` subcommand: runs a list of r-API steps (init, login, refresh, status, logout,
//! release, ...) in one session against a license server and prints each return value or
//! error code with its meaning.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use license_client::{ClientConfig, RemoteApi, Step, walkthrough};
use license_core::SlotRef;
use license_core::protocol::ServerPublicKey;
use tokio_util::sync::CancellationToken;

const CLIENT_HELP: &str = "\
Steps (run in order, one session, one process-wide counter as in the MxNet2 client):\n\
  init      rInit_MatrixAPI: opens the session (later inits only count)\n\
  login     rLogIn_MatrixNet: always sent; the first takes a seat, later ones refresh it\n\
            (send one within LoginTimeOut); each accepted login counts\n\
  refresh   a login that is sent but not counted\n\
  status    dongle count, serial number, seats taken and the clients holding them\n\
  logout    rLogOut_MatrixNet: the last one frees the seat (-11 when not logged in)\n\
  release   rRelease_MatrixAPI: the last one ends the session\n\
  reset     rReset_MatrixAPI: zero the counters without telling the server\n\
  sleep=S   wait S seconds\n\
\n\
Each step prints its return value (login/refresh/logout: seats left) or error code and\n\
meaning, e.g. `-31 no licence left in the AppSlot`. The exit status is 1 if any step failed.\n\
\n\
The server comes from --server, else mxnetapi.ini ([Options] ip, port, timeout; [SocksServer]\n\
ip, port, user, password for SOCKS5): the --config file, or without it mxnetapi.ini beside\n\
the program, then in the working directory; else 127.0.0.1:12300.\n\
\n\
Example: dongle-relay client --server 127.0.0.1:12300 --slot 1 init login refresh status logout release";

/// Options of `dongle-relay client`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = CLIENT_HELP)]
pub struct Args {
    /// Steps to run [default: init login status logout release].
    #[arg(value_name = "STEP", value_parser = parse_step)]
    pub steps: Vec<Step>,
    /// License server as HOST:PORT [default: mxnetapi.ini's ip/port, else 127.0.0.1:12300].
    #[arg(long, short = 's', value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Client configuration file [default: mxnetapi.ini beside the program, then in the working
    /// directory, if there is one].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// AppSlot number.
    #[arg(long, default_value_t = 1)]
    pub slot: u16,
    /// Dongle number (DngNr, from 1).
    #[arg(long, default_value_t = 1)]
    pub dongle: u16,
    /// User code sent with dongle calls.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub user_code: i32,
    /// The server's public key (base64) to insist on; a different key fails with -300.
    #[arg(long, value_name = "BASE64")]
    pub pin_key: Option<String>,
    /// Keep one connection for all steps (default: one connection per call, as MxNet2).
    #[arg(long)]
    pub persistent: bool,
    /// Connect timeout in milliseconds [default: mxnetapi.ini's timeout, else 3000].
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Seconds to wait between steps.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Client name shown by the server [default: host/pid].
    #[arg(long)]
    pub name: Option<String>,
    /// Local address to connect from (mxnetapi.ini localip=), e.g. 127.0.0.2 to be another
    /// client address on the same machine [default: chosen by the system].
    #[arg(long, value_name = "IP")]
    pub bind: Option<std::net::IpAddr>,
}

/// Where `client` looks for mxnetapi.ini without `--config`: the executable's folder (manual
/// section 7), then the working directory.
fn default_folders() -> Vec<PathBuf> {
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from));
    beside_exe
        .into_iter()
        .chain(std::env::current_dir().ok())
        .collect()
}

fn parse_step(s: &str) -> Result<Step, String> {
    s.parse()
}

/// The validated configuration of `client`.
pub struct Loaded {
    config: ClientConfig,
    at: SlotRef,
    steps: Vec<Step>,
    interval: Duration,
}

/// Reads and validates the configuration.
///
/// # Errors
/// Bad server address, key, interval or mxnetapi.ini.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let mut config = match &args.config {
        Some(p) => ClientConfig::load(p)?,
        // As the vendor's library does: mxnetapi.ini beside the program, then in the working
        // directory; built-in defaults when neither has one.
        None => match ClientConfig::find(&default_folders())? {
            Some((path, config)) => {
                tracing::info!("client configuration from {}", path.display());
                config
            }
            None => ClientConfig::default(),
        },
    };
    if let Some(server) = &args.server {
        let (host, port) = server
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .with_context(|| format!("--server {server:?}: expected HOST:PORT"))?;
        config.host = host.to_owned();
        config.port = port;
    }
    if let Some(key) = &args.pin_key {
        config.pinned_key =
            Some(ServerPublicKey::from_base64(key).map_err(|e| anyhow::anyhow!("--pin-key: {e}"))?);
    }
    if args.persistent {
        config.persistent = true;
    }
    if let Some(ms) = args.timeout {
        config.connect_timeout = Duration::from_millis(ms);
    }
    if let Some(name) = args.name {
        config.client_name = name;
    }
    if let Some(ip) = args.bind {
        config.local_addr = Some(ip);
    }
    anyhow::ensure!(
        args.interval.is_finite() && (0.0..86_400.0).contains(&args.interval),
        "--interval: expected seconds between 0 and 86400"
    );
    let steps = if args.steps.is_empty() {
        vec![
            Step::Init,
            Step::Login,
            Step::Status,
            Step::Logout,
            Step::Release,
        ]
    } else {
        args.steps
    };
    Ok(Loaded {
        config,
        at: SlotRef {
            dng_nr: args.dongle,
            user_code: args.user_code,
            slot: args.slot,
        },
        steps,
        interval: Duration::from_secs_f64(args.interval),
    })
}

/// Runs the command.
///
/// # Errors
/// Some step failed, or shutdown interrupted the steps.
pub async fn run(loaded: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    println!(
        "license server {}:{}, AppSlot {} of dongle {}",
        loaded.config.host,
        loaded.config.port,
        loaded.at.slot,
        loaded.at.dng_nr.max(1)
    );
    let api = RemoteApi::new(loaded.config);
    let reports = tokio::select! {
        r = walkthrough(&api, loaded.at, &loaded.steps, loaded.interval, |r| println!("{r}")) => r,
        () = shutdown.cancelled() => anyhow::bail!("interrupted"),
    };
    let failed = reports.iter().filter(|r| r.result.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} step(s) failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Loaded> {
        load(crate::commands::parse_args(args)?)
    }

    #[test]
    fn steps_server_and_options() {
        let l = parse(&[
            "--server",
            "10.0.0.5:12301",
            "--slot",
            "5",
            "--bind",
            "127.0.0.2",
            "init",
            "refresh",
            "sleep=1",
        ])
        .expect("parse");
        assert_eq!((l.config.host.as_str(), l.config.port), ("10.0.0.5", 12301));
        assert_eq!(l.at.slot, 5);
        assert_eq!(l.config.local_addr, Some("127.0.0.2".parse().expect("ip")));
        assert_eq!(
            l.steps,
            [
                Step::Init,
                Step::Refresh,
                Step::Sleep(Duration::from_secs(1))
            ]
        );
        let d = parse(&[]).expect("defaults");
        assert_eq!(d.steps.len(), 5);
        assert_eq!(d.config.port, 12300);
        assert!(parse(&["--server", "nohost"]).is_err());
        assert!(parse(&["dance"]).is_err());
        assert!(parse(&["--pin-key", "xyz"]).is_err());
    }

    #[test]
    fn a_config_file_error_names_the_file_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("mxnetapi.ini");
        std::fs::write(&file, "[Options\nip=10.0.0.5\n").expect("write");
        let path = file.to_str().expect("utf-8");
        let err = format!("{:#}", parse(&["--config", path]).err().expect("syntax"));
        assert!(err.starts_with(&format!("{path}: ")), "{err}");
        assert_eq!(err.matches("mxnetapi.ini").count(), 1, "{err}");
        let missing = dir.path().join("missing.ini");
        let path = missing.to_str().expect("utf-8");
        let err = format!("{:#}", parse(&["--config", path]).err().expect("missing"));
        assert_eq!(err.matches(path).count(), 1, "{err}");
        assert_eq!(err.matches("os error").count(), 1, "{err}");
    }
}
